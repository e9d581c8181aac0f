"""What may stop the running case from outside: aborts aimed at one case, a parked cleanup, SIGTERM.

The reader thread files what arrives; the main thread asks between tokens. An abort is kept only for
the case it names while that case runs or waits in the queue, and goes when that case ends, so it can
never stop a later case; a cleanup that arrives as a case ends is handed back to the queue.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from vlmtui.wire import protocol as p


class CaseAborted(Exception):
    """Raised between tokens to stop a generation; carries the abort command."""

    def __init__(self, command: p.Abort) -> None:
        super().__init__(command.reason)
        self.command = command


class CaseInterrupts:
    """The running case, the aborts and cleanup waiting for its next token, and whether the worker is ending."""

    def __init__(self, requeue: Callable[[p.Command], None]) -> None:
        self._requeue = requeue
        self._lock = threading.Lock()
        self.running: str | None = None
        self._queued: set[str] = set()
        """Cases whose ``Run`` waits in the queue: an abort aimed at one of them is kept for it."""
        self._aborts: dict[str, p.Abort] = {}
        self._cleanup: p.Cleanup | None = None
        self.terminating = False
        self.exit_reason = "SIGTERM"

    def queued(self, case_id: str) -> None:
        """A ``Run`` for this case was read and waits in the queue."""
        with self._lock:
            self._queued.add(case_id)

    def take_abort(self, command: p.Abort) -> bool:
        """Keep an abort for the case it names while that case runs or waits; False when it found none."""
        with self._lock:
            target = command.case_id if command.case_id is not None else self.running
            if target is not None and (target == self.running or target in self._queued):
                self._aborts[target] = command
                return True
        return False

    def take_cleanup(self, command: p.Cleanup) -> bool:
        """Park a cleanup for the running case's next token; False when no case runs."""
        with self._lock:
            if self.running is None:
                return False
            self._cleanup = command
            return True

    def begin(self, case_id: str) -> None:
        """The case starts running."""
        with self._lock:
            self._queued.discard(case_id)
            self.running = case_id

    def end(self, case_id: str) -> None:
        """The case has ended: its abort goes, and a cleanup it did not reach goes back to the queue."""
        with self._lock:
            self.running = None
            self._aborts.pop(case_id, None)
            parked, self._cleanup = self._cleanup, None
        if parked is not None:
            self._requeue(parked)

    def should_stop(self, case_id: str) -> bool:
        """Whether the backend should stop generating now (polled by backends that can)."""
        return case_id in self._aborts or self.terminating

    def next_cleanup(self) -> p.Cleanup | None:
        """The cleanup waiting for this token, taken."""
        request, self._cleanup = self._cleanup, None
        return request

    def abort_for(self, case_id: str) -> p.Abort | None:
        """The abort that stops this case now, if any (SIGTERM stops it too)."""
        abort = self._aborts.get(case_id)
        if abort is None and self.terminating:  # SIGTERM came between the case's start and its first token
            abort = p.Abort(case_id=case_id, reason=f"stopped ({self.exit_reason})")
        return abort

    def terminate(self) -> str | None:
        """SIGTERM (main thread): stop the running case at its next token; returns that case, if any."""
        self.terminating = True
        case_id = self.running
        if case_id is not None:
            # A plain dict write, no lock: the main thread this interrupts may hold it. An earlier abort's
            # reason (the guard's, the user's) stays the case's reason.
            self._aborts.setdefault(case_id, p.Abort(case_id=case_id, reason=f"stopped ({self.exit_reason})"))
        return case_id
