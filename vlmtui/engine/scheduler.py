"""The engine: an asyncio queue of cases run on one worker subprocess at a time, with memory guarded.

The scheduler orchestrates the queue policy (``case_queue``), the worker session (``worker_session``) and
the guard loop (``guard_loop``); it emits ``vlmtui.engine.events`` to its subscribers (the session log, the
headless printer, the TUI) and takes the ``Controls``. It imports no UI and no model framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import socket
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from vlmtui import __version__
from vlmtui.engine import verdict
from vlmtui.engine.case_queue import CaseQueue, ModelRecord
from vlmtui.engine.conversation import run_attempt
from vlmtui.engine.downloads import Downloads
from vlmtui.engine.events import (
    CaseFinished,
    CaseQueued,
    CaseResult,
    Event,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    Notice,
    QueueChanged,
    ResultsCarried,
    SessionFinished,
    SessionStarted,
)
from vlmtui.engine.guard_loop import GuardLoop
from vlmtui.engine.plan import Case
from vlmtui.engine.worker_client import WorkerRefused
from vlmtui.engine.worker_session import WorkerSession
from vlmtui.memory.budget import Budget, resolve_budget
from vlmtui.memory.system import probe_system
from vlmtui.memory.telemetry import TelemetrySampler
from vlmtui.suite.loader import GuardConfig
from vlmtui.vocab import CaseStatus, count_by_status
from vlmtui.wire import protocol as p
from vlmtui.wire.spec import ModelSpec

Subscriber = Callable[[Event], None]


def machine_info() -> dict[str, Any]:
    """The machine and versions a session ran on, for the log's first line."""
    return {
        "vlmtui": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


class Scheduler:
    """Runs cases on a worker, guards memory, and tells subscribers everything that happens."""

    live = True
    """An engine is behind these controls (``Controls.live``)."""

    def __init__(self, cases: Sequence[Case], *, suite_name: str = "suite", suite_path: str = "",
                 guard: GuardConfig | None = None, budget: Budget | None = None,
                 worker_argv: Sequence[str] | None = None, worker_env: dict[str, str] | None = None,
                 session_id: str | None = None, done_attempts: dict[str, int] | None = None,
                 telemetry: TelemetrySampler | None = None, notices: Sequence[str] = ()) -> None:
        self.queue = CaseQueue(cases, done_attempts)
        self.suite_name, self.suite_path = suite_name, suite_path
        self.guard_config = guard or GuardConfig()
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self.notices = tuple(notices)
        """Warnings for the start of the run (dataset items left out by ``--skip-missing``)."""
        self.image_problems: dict[str, str] = {}
        """Images found unreadable before the run (engine/image_check.py): their cases fail without a load."""
        self._subscribers: list[Subscriber] = []
        self._unpaused = asyncio.Event()
        self._unpaused.set()
        self._wake = asyncio.Event()
        self._stopping, self._stop_reason = False, ""
        self.session = WorkerSession(self.emit, self.guard_config, worker_argv, worker_env,
                                     on_cleaned=lambda message: self.guard_loop.on_cleaned(message))
        budget = budget or resolve_budget(self.guard_config.budget, {}, probe_system().total)
        self.guard_loop = GuardLoop(self.guard_config, budget, self.session, self.emit, telemetry)
        self.downloads = Downloads(self.emit, worker_env)
        """A hub model's files: resolved, fit-checked and fetched before its load (issue 18)."""

    def subscribe(self, subscriber: Subscriber) -> None:
        """Receive every event from now on."""
        self._subscribers.append(subscriber)

    def emit(self, event: Event) -> None:
        """Hand one event to every subscriber; a failing subscriber never stops the run."""
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception as exc:  # a display bug must not lose the session
                print(f"vlmtui: subscriber {subscriber!r} failed: {exc!r}", file=sys.stderr)

    # ------------------------------------------------------------------ what it holds

    @property
    def results(self) -> dict[str, list[CaseResult]]:
        """Every attempt of every case so far."""
        return self.queue.results

    @property
    def pending(self) -> list[str]:
        """Case ids still to run, in order."""
        return list(self.queue.pending)

    @property
    def paused(self) -> bool:
        """Whether the queue waits before starting the next case."""
        return not self._unpaused.is_set()

    @property
    def running_case(self) -> str | None:
        """The case in flight, if any."""
        return self.session.running_case

    @property
    def worker_pid(self) -> int | None:
        """The live worker's pid."""
        return self.session.pid

    def latest(self) -> dict[str, CaseResult]:
        """Each case's latest attempt."""
        return self.queue.latest()

    def failed_case_ids(self) -> list[str]:
        """Cases whose latest attempt failed, crashed or was aborted."""
        return self.queue.failed_case_ids()

    def mark_done(self, case_id: str, record: Mapping[str, Any] | None) -> None:
        """Take a case out of the queue as finished earlier (resume), keeping its logged result."""
        self.queue.mark_done(case_id, record)

    # ------------------------------------------------------------------ controls

    def pause(self) -> None:
        """Finish the running case, then wait."""
        self._unpaused.clear()
        self.emit(QueueChanged(paused=True, pending=len(self.queue.pending)))

    def resume(self) -> None:
        """Go on with the queue."""
        self._unpaused.set()
        self.emit(QueueChanged(paused=False, pending=len(self.queue.pending)))

    def toggle_pause(self) -> bool:
        """Pause or resume; returns whether the queue is now paused."""
        (self.resume if self.paused else self.pause)()
        return self.paused

    def abort_current(self, reason: str = "aborted by the user", *, unload: bool = False) -> str | None:
        """Stop the running case at its next token (the worker is ended if it does not answer in time);
        returns its id, or None when nothing runs."""
        return self.session.abort(reason, unload=unload)

    def cleanup_now(self, reason: str = "requested by the user") -> bool:
        """Ask the worker to free caches now; False when no worker runs."""
        return self.session.cleanup(reason)

    def rerun(self, case_ids: Iterable[str]) -> list[str]:
        """Queue new attempts of these cases (after what is pending); returns the ids queued."""
        queued = self.queue.rerun(case_ids, self.session.running_case)
        for case_id in queued:
            self.emit(CaseQueued(case_id, self.queue.next_attempt(case_id)))
        if queued:
            self.emit(QueueChanged(paused=self.paused, pending=len(self.queue.pending)))
            self._wake.set()
        return queued

    def rerun_failed(self) -> list[str]:
        """Queue a new attempt of every case whose latest attempt failed, crashed or was aborted."""
        return self.rerun(self.queue.failed_case_ids())

    def stop(self, reason: str = "stopped", *, abort_running: bool = True) -> None:
        """End the session after (or, by default, by aborting) the running case."""
        self._stopping = True
        self._stop_reason = reason
        self._unpaused.set()
        self._wake.set()
        if abort_running:
            self.session.abort(f"aborted: {reason}")
            self.downloads.cancel(reason)
            # A load cannot stop between tokens and can take minutes: end it rather than wait.
            self.session.cut_load(f"aborted: {reason}", by_guard=False)

    def end_worker_now(self) -> None:
        """End the worker from any thread, blocking (SIGTERM, then SIGKILL after ``term_grace_s``)."""
        self.session.end_now()

    # ------------------------------------------------------------------ the run

    async def run(self, *, keep_alive: bool = False) -> dict[str, int]:
        """Run the queue; with ``keep_alive`` wait for reruns until ``stop``. Returns the counts."""
        self.emit(SessionStarted(session_id=self.session_id, suite=self.suite_name, suite_path=self.suite_path,
                                 info={**machine_info(), **self.guard_loop.info()}, cases=self.queue.planned()))
        if self.queue.carried:
            self.emit(ResultsCarried(list(self.queue.carried), self.queue.carried_results()))
        for notice in self.notices:
            self.emit(Notice("warning", notice))
        watcher = asyncio.create_task(self.guard_loop.watch(), name="memory-watch")
        try:
            while not self._stopping:
                if not self.queue.has_ready():
                    if not keep_alive:
                        break
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._unpaused.wait()
                case = None if self._stopping else self.queue.take(self.session.loaded)
                if case is None:
                    continue
                self.session.spares.warm(self.queue.next_model(case.model), case.model.backend)  # (spare_worker.py)
                try:
                    await self._run_case(case)
                except WorkerRefused as exc:
                    # Every worker would come from the same installation: nothing can run.
                    self.queue.put_back(case)
                    self.emit(Notice("error", str(exc)))
                    self.stop(str(exc), abort_running=False)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await self.session.stop_worker()
        counts = count_by_status(self.queue.standing())
        self.emit(SessionFinished(counts=counts, stopped=self._stopping, reason=self._stop_reason))
        return counts

    def _finish(self, result: CaseResult) -> None:
        for done in self.queue.record(result):  # a judge's grade may pass or fail the case it graded again
            self.emit(CaseFinished(done))

    async def _run_case(self, case: Case) -> None:
        attempt = self.queue.next_attempt(case.case_id)
        record = self.queue.model(case.model.id)
        if case.image is not None and str(case.image) in self.image_problems:
            self._finish(verdict.ended(case, attempt, CaseStatus.FAILED, error=self.image_problems[str(case.image)]))
            return
        skip = case.skip_reason or record.skip_reason
        if skip is None:
            if self.session.loaded != case.model.id and record.load_error is None:
                await self._switch_model(case.model, record)
            if record.load_error is not None:
                self._finish(verdict.ended(case, attempt, record.load_status, error=record.load_error))
                return
            skip = record.skip_reason or record.unfit(case)
        if skip:
            self._finish(verdict.ended(case, attempt, CaseStatus.SKIPPED, error=skip))
            return
        await self.guard_loop.begin_case()
        running, result = await run_attempt(self.session, case, attempt, self.emit, record.loaded,
                                            lambda: self.guard_loop.last_update, self.guard_config.grace_s)
        self.downloads.stamp(case.model.id, result.metrics)
        result = await self.guard_loop.end_case(result)
        self._finish(result)
        if result.status == CaseStatus.CRASHED:
            self.emit(Notice("error", f"{case.case_id}: {result.error}; a fresh worker takes the next case"))
        elif result.status == CaseStatus.ABORTED and running is not None and running.guard_reading is not None:
            self._after_guard_abort(case.model)
        self.guard_loop.reset()

    def _after_guard_abort(self, model: ModelSpec) -> None:
        policy = self.guard_config.on_abort
        if policy == "skip-model":
            record = self.queue.model(model.id)
            record.skip_reason = f"{model.id} was aborted by the memory guard earlier (on_abort = skip-model)"
        elif policy == "stop":
            self.stop("the memory guard aborted a case (on_abort = stop)", abort_running=False)

    async def _switch_model(self, model: ModelSpec, record: ModelRecord) -> None:
        await self.session.unload()
        fetched = await self.downloads.prepare(model, self.guard_loop.budget.bytes)
        if fetched.error is not None:
            record.load_error, record.load_status = fetched.error, fetched.status
            self.emit(ModelLoadFailed(model.id, fetched.error, ""))
            return
        reason = fetched.skip_reason or await asyncio.to_thread(self.guard_loop.preflight, model)
        if reason is not None:
            record.skip_reason = reason
            self.emit(Notice("warning", f"{model.id}: {reason}"))
            return
        await self.session.ensure_worker(model.backend)  # a refused worker stops the session before any load
        self.emit(ModelLoading(model.id, model.backend, model.path, model.trust_remote_code))
        limit = self.guard_loop.abort_bytes
        self.guard_loop.reset()
        reply = await self.session.load(model, limit)
        if isinstance(reply, p.Loaded):
            record.load_error, record.loaded = None, reply
            self.guard_loop.refine_budget(reply.device_info)
            self.emit(ModelLoaded(model.id, reply.load_s, reply.device, reply.dtype, reply.versions, reply.notes))
        elif isinstance(reply, p.LoadFailed):
            record.load_error, record.load_status = reply.error, CaseStatus.FAILED
            self.emit(ModelLoadFailed(model.id, reply.error, reply.detail))
        else:
            self.guard_loop.reset()
            record.load_error, record.load_status = reply.error, reply.status
            self.emit(ModelLoadFailed(model.id, reply.error, reply.detail))
            if reply.by_guard:
                self._after_guard_abort(model)
