"""Scheduler events as Textual messages, posted by ``EngineBridge`` to the dashboard screen.

Low-rate events travel one message each; token text and memory samples travel at most a few dozen
times a second, and a burst that the screen has not handled yet collapses into the newest message.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from vlmtui.engine.events import Event, MemoryUpdate


@dataclass
class EngineEvent(Message):
    """A low-rate scheduler event: a case queued, started or finished, a model load, a guard action, a notice."""

    event: Event


@dataclass
class TokensStreamed(Message):
    """All the text streamed so far for one case (cumulative, so a newer message can replace an older one)."""

    case_id: str
    text: str

    def can_replace(self, message: Message) -> bool:
        """A newer text of the same case supersedes this one."""
        return isinstance(message, TokensStreamed) and message.case_id == self.case_id


@dataclass
class MemorySampled(Message):
    """The newest memory sample and the guarded bytes of the last minute (for the sparkline)."""

    sample: MemoryUpdate
    history: tuple[float, ...]
    gpu_history: tuple[float, ...] = ()
    """GPU utilisation (%) over the same minute, where the telemetry measures it."""
    power_history: tuple[float, ...] = ()
    """GPU power (W) over the same minute."""
    history_times: tuple[float, ...] = ()
    """When each of ``history``'s samples was taken (the memory chart's columns are slices of the clock)."""

    def can_replace(self, message: Message) -> bool:
        """A newer sample supersedes this one (it carries the history too)."""
        return isinstance(message, MemorySampled)
