"""From scheduler events (plain callbacks on the UI's own asyncio loop) to throttled Textual messages."""

from __future__ import annotations

import asyncio
import os
from collections import deque

from asyncio_throttle.throttler import Throttler
from textual.message_pump import MessagePump

from vlmtui.engine.events import (
    CaseStarted,
    Event,
    MemoryUpdate,
    SessionStarted,
    TokenReceived,
    TurnFinished,
    TurnStarted,
)
from vlmtui.ui.tui.conversation import outcome_line, prompt_line, turn_from_event
from vlmtui.ui.tui.messages import EngineEvent, MemorySampled, TokensStreamed
from vlmtui.ui.tui.state import turn_prompts

DEFAULT_FPS = 15.0
"""UI updates a second for streamed text and gauges on a local terminal."""
SSH_FPS = 8.0
"""The same over SSH (``SSH_CONNECTION`` is set), where every redraw crosses the network."""
HISTORY_S = 60.0
"""How far back the memory sparkline reaches."""


def ui_fps(environ: dict[str, str] | None = None) -> float:
    """Updates a second: ``VLMTUI_FPS`` if set (1–60), else lower over SSH than locally."""
    env = os.environ if environ is None else environ
    raw = env.get("VLMTUI_FPS", "").strip()
    if raw:
        try:
            return min(max(float(raw), 1.0), 60.0)
        except ValueError:
            pass
    return SSH_FPS if env.get("SSH_CONNECTION") else DEFAULT_FPS


class EngineBridge:
    """A scheduler subscriber: low-rate events are posted at once, tokens and memory at most ``fps`` a second.

    The scheduler calls it on the same asyncio loop as the app, so it only records and posts; the
    ``pump`` coroutine (run as a worker of the screen) sends the throttled updates.
    """

    def __init__(self, target: MessagePump, fps: float = DEFAULT_FPS) -> None:
        self.fps = fps
        self._target = target
        self._throttler = Throttler(rate_limit=1, period=1.0 / fps, retry_interval=0.25 / fps)
        self._dirty = asyncio.Event()
        self._stream_case: str | None = None
        self._stream_text = ""
        self._stream_parts: list[str] = []
        self._stream_dirty = False
        self._turn_started: int | None = None
        self._first_turn_of: str | None = None
        """The conversation whose first turn just started: the engine may announce it before its ``CaseStarted``,
        which then must not clear the prompt from the stream."""
        self._turn_totals: dict[str, int] = {}
        """Planned turns per conversation (from ``SessionStarted``), for ``turn 2/3``."""
        self._memory: MemoryUpdate | None = None
        self._memory_dirty = False
        self._history: deque[tuple[float, float]] = deque()
        self._gpu_history: deque[tuple[float, float]] = deque()
        self._power_history: deque[tuple[float, float]] = deque()
        self.closed = False
        self.posted = 0
        """Throttled messages posted so far (for tests and the curious)."""

    def __call__(self, event: Event) -> None:
        if self.closed:
            return
        if isinstance(event, TokenReceived):
            self._first_turn_of = None
            if event.case_id != self._stream_case:
                self._reset_stream(event.case_id)
            self._stream_parts.append(event.text)
            self._stream_dirty = True
            self._dirty.set()
            return
        if isinstance(event, MemoryUpdate):
            self._memory = event
            self._history.append((event.t, float(event.guarded_bytes or 0)))
            telemetry = event.telemetry
            if telemetry is not None and telemetry.gpu_util_pct is not None:
                self._gpu_history.append((event.t, telemetry.gpu_util_pct))
            if telemetry is not None and telemetry.power_w is not None:
                self._power_history.append((event.t, telemetry.power_w))
            for history in (self._history, self._gpu_history, self._power_history):
                while history and history[0][0] < event.t - HISTORY_S:
                    history.popleft()
            self._memory_dirty = True
            self._dirty.set()
            return
        # Text of the case that just ended goes out before the event that ends it.
        self._flush_stream()
        if isinstance(event, CaseStarted):
            if self._first_turn_of != event.case_id:
                self._reset_stream(event.case_id)
            self._first_turn_of = None
        elif isinstance(event, TurnStarted | TurnFinished):
            self._stream_turn(event)
        elif isinstance(event, SessionStarted):
            self._turn_totals.update((str(case["case_id"]), len(turn_prompts(case.get("turns"))))
                                     for case in event.cases)
        self._target.post_message(EngineEvent(event))

    def _stream_turn(self, event: TurnStarted | TurnFinished) -> None:
        """A turn's prompt goes into the stream above its answer, its outcome under it, at once (a few a case)."""
        if event.case_id != self._stream_case or (isinstance(event, TurnStarted) and event.index == 0):
            self._reset_stream(event.case_id)
        self._first_turn_of = event.case_id if isinstance(event, TurnStarted) and event.index == 0 else None
        total = self._turn_totals.get(event.case_id) or None
        first = not self._stream_text
        if isinstance(event, TurnStarted):
            self._turn_started = event.index
            piece = prompt_line(event.index, event.prompt, total, first=first)
        else:
            turn = turn_from_event(event.turn, event.index)
            # A skipped or not-run turn never started: its prompt comes with its outcome.
            piece = "" if self._turn_started == event.index else prompt_line(turn.index, turn.prompt, total,
                                                                             first=first)
            piece += outcome_line(turn, total, self._stream_text + piece)
            self._turn_started = None
        self._stream_parts.append(piece)
        self._stream_dirty = True
        self._flush_stream()

    def _reset_stream(self, case_id: str) -> None:
        self._stream_case, self._stream_text, self._stream_parts = case_id, "", []
        self._stream_dirty, self._turn_started = False, None

    def _flush_stream(self) -> None:
        if self._stream_dirty and self._stream_case is not None:
            self._stream_text += "".join(self._stream_parts)
            self._stream_parts.clear()
            self._stream_dirty = False
            self.posted += 1
            self._target.post_message(TokensStreamed(self._stream_case, self._stream_text))

    def flush(self) -> None:
        """Post whatever is pending now (the pump does this at most ``fps`` times a second)."""
        self._dirty.clear()
        self._flush_stream()
        if self._memory_dirty and self._memory is not None:
            self._memory_dirty = False
            self.posted += 1
            self._target.post_message(MemorySampled(self._memory, tuple(v for _, v in self._history),
                                                    tuple(v for _, v in self._gpu_history),
                                                    tuple(v for _, v in self._power_history),
                                                    tuple(t for t, _ in self._history)))

    async def pump(self) -> None:
        """Send pending updates, throttled, until ``close``."""
        while not self.closed:
            await self._dirty.wait()
            async with self._throttler:
                if not self.closed:
                    self.flush()

    def close(self) -> None:
        """Stop posting (the app is going away); the scheduler may still emit a few events."""
        self.closed = True
        self._dirty.set()
