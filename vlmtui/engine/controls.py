"""What a UI may ask of the engine, and nothing more: it learns everything else from the engine's events.

Each control returns at once; what follows (a case queued, aborted, a cleanup's report) arrives as
events. ``NullControls`` stands in where no engine runs (a replayed log, a snapshot).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from vlmtui.engine.events import Event


class Controls(Protocol):
    """The dashboard's keys, as the engine takes them."""

    @property
    def live(self) -> bool:
        """Whether an engine is behind these controls (a replay has none: nothing to act on)."""
        ...

    def rerun(self, case_ids: Iterable[str]) -> list[str]:
        """Queue new attempts of these cases (not the running or a queued one); returns the ids queued."""
        ...

    def rerun_failed(self) -> list[str]:
        """Queue a new attempt of every case whose latest attempt failed, crashed or was aborted."""
        ...

    def toggle_pause(self) -> bool:
        """Pause (the running case finishes first) or resume the queue; returns whether it is now paused."""
        ...

    def abort_current(self, reason: str = "aborted by the user") -> str | None:
        """Stop the running case at its next token; returns its id, or None when nothing runs."""
        ...

    def cleanup_now(self, reason: str = "requested by the user") -> bool:
        """Ask the worker to free its caches; False when no worker runs."""
        ...

    def stop(self, reason: str = "stopped") -> None:
        """End the session, aborting the running case and stopping the worker."""
        ...


class Engine(Controls, Protocol):
    """What the app that hosts a session needs besides the controls: the events, the run, the last resort."""

    def subscribe(self, subscriber: Callable[[Event], None]) -> None:
        """Receive every event from now on."""
        ...

    async def run(self, *, keep_alive: bool = False) -> dict[str, int]:
        """Run the queue (with ``keep_alive``, wait for reruns until ``stop``); returns the counts by status."""
        ...

    def end_worker_now(self) -> None:
        """End the worker from any thread, blocking (SIGTERM, then SIGKILL): for when the loop is wedged."""
        ...


class NullControls:
    """Controls with no engine behind them: every request is refused."""

    live = False

    def rerun(self, case_ids: Iterable[str]) -> list[str]:
        """Nothing is queued."""
        return []

    def rerun_failed(self) -> list[str]:
        """Nothing is queued."""
        return []

    def toggle_pause(self) -> bool:
        """Nothing runs, so nothing pauses."""
        return False

    def abort_current(self, reason: str = "aborted by the user") -> str | None:
        """Nothing runs."""
        return None

    def cleanup_now(self, reason: str = "requested by the user") -> bool:
        """No worker runs."""
        return False

    def stop(self, reason: str = "stopped") -> None:
        """Nothing to stop."""
