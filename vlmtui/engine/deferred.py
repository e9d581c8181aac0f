"""An engine whose scheduler is built when it first runs, so the dashboard draws before the engine's imports.

``prepare_session`` validates everything a user can get wrong (the suite, the log target, the budget, a
log to resume) before the dashboard starts; what is left — importing the scheduler, the guard loop, the
worker session and the telemetry (~0.15 s of a 2-core machine's start-up), checking the images, carrying
a resumed log's results — is ``build``, run by ``run`` after the dashboard's first frame. Until then the
dashboard shows ``preview``: the planned queue and the guard, as the scheduler's ``SessionStarted`` will.

A control pressed before the scheduler exists is kept (a stop or a pause) or refused (nothing to rerun,
abort or clean yet) and the scheduler takes the kept ones as it is built.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from vlmtui.engine.events import Event, SessionStarted

if TYPE_CHECKING:
    from vlmtui.engine.scheduler import Scheduler


class DeferredEngine:
    """The ``Engine`` over a scheduler built on first use (``run`` or ``scheduler``)."""

    live = True

    def __init__(self, build: Callable[[], Scheduler], preview: SessionStarted) -> None:
        self._build = build
        self.preview = preview
        """What the dashboard shows before the scheduler exists (never logged: the scheduler emits its own)."""
        self._scheduler: Scheduler | None = None
        self._subscribers: list[Callable[[Event], None]] = []
        self._stop_reason: str | None = None
        self._paused = False
        self._building = False

    @property
    def built(self) -> bool:
        """Whether the scheduler exists yet."""
        return self._scheduler is not None

    @property
    def scheduler(self) -> Scheduler:
        """The scheduler, built now if it was not yet (with the subscribers and controls taken so far)."""
        if self._scheduler is None:
            if self._building:
                raise RuntimeError("the scheduler is being built by run()")
            self._attach(self._build())
        assert self._scheduler is not None
        return self._scheduler

    def _attach(self, scheduler: Scheduler) -> None:
        """Hand the built scheduler what was asked of the engine before it existed."""
        for subscriber in self._subscribers:
            scheduler.subscribe(subscriber)
        if self._paused:
            scheduler.pause()
        if self._stop_reason is not None:
            scheduler.stop(self._stop_reason)
        self._scheduler = scheduler

    def subscribe(self, subscriber: Callable[[Event], None]) -> None:
        """Receive every event from now on (from the scheduler once it is built)."""
        if self._scheduler is None:
            self._subscribers.append(subscriber)
        else:
            self._scheduler.subscribe(subscriber)

    async def run(self, *, keep_alive: bool = False) -> dict[str, int]:
        """Build the scheduler (if not yet) and run its queue.

        The build runs in a thread (its imports and the image checks would stall the loop, and the
        dashboard on it, for as long as they take: 0.36 s for one 4000×4000 PNG); what it made is
        attached here, on the loop, so every event is emitted from the loop's thread."""
        if self._scheduler is None:
            self._building = True
            try:
                built = await asyncio.to_thread(self._build)
            finally:
                self._building = False
            self._attach(built)
        return await self.scheduler.run(keep_alive=keep_alive)

    def end_worker_now(self) -> None:
        """End the worker from any thread; no worker exists before the scheduler does."""
        if self._scheduler is not None:
            self._scheduler.end_worker_now()

    # ------------------------------------------------------------------ controls

    def rerun(self, case_ids: Iterable[str]) -> list[str]:
        """Queue new attempts (nothing has run before the scheduler exists, so nothing to rerun)."""
        return self._scheduler.rerun(case_ids) if self._scheduler is not None else []

    def rerun_failed(self) -> list[str]:
        """Queue every failed case again (none before the scheduler exists)."""
        return self._scheduler.rerun_failed() if self._scheduler is not None else []

    def toggle_pause(self) -> bool:
        """Pause or resume; before the scheduler exists the choice is kept for it."""
        if self._scheduler is not None:
            return self._scheduler.toggle_pause()
        self._paused = not self._paused
        return self._paused

    def abort_current(self, reason: str = "aborted by the user") -> str | None:
        """Abort the running case (none before the scheduler exists)."""
        return self._scheduler.abort_current(reason) if self._scheduler is not None else None

    def cleanup_now(self, reason: str = "requested by the user") -> bool:
        """Ask the worker to free its caches (no worker before the scheduler exists)."""
        return self._scheduler.cleanup_now(reason) if self._scheduler is not None else False

    def stop(self, reason: str = "stopped") -> None:
        """End the session; before the scheduler exists it will stop as soon as it runs."""
        if self._scheduler is not None:
            self._scheduler.stop(reason)
        else:
            self._stop_reason = reason
