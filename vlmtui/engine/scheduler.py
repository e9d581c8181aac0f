"""The engine: an asyncio queue of cases run on one worker subprocess at a time, with memory guarded.

Cases are taken model by model, so a worker loads a model once for all of its cases. The scheduler
emits ``vlmtui.engine.events`` to its subscribers (the session log, the headless printer, the TUI) and takes
pause, resume, abort, cleanup, rerun and stop. It imports no UI and no model framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vlmtui import __version__
from vlmtui.engine.events import (
    FAILED_STATUSES,
    CaseFinished,
    CaseQueued,
    CaseResult,
    CaseStarted,
    Event,
    GuardEvent,
    MemoryUpdate,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    Notice,
    QueueChanged,
    SessionFinished,
    SessionStarted,
    TokenReceived,
    WorkerExited,
)
from vlmtui.engine.expect import check_expectations
from vlmtui.engine.plan import Case, skip_reason
from vlmtui.engine.worker_client import WorkerClient, WorkerRefused, describe_exit
from vlmtui.memory.budget import Budget, resolve_budget
from vlmtui.memory.guard import Guard, GuardDecision, MemoryReading
from vlmtui.memory.preflight import check_fit, model_footprint
from vlmtui.memory.system import probe_pressure, probe_process_rss, probe_system
from vlmtui.suite.loader import GuardConfig
from vlmtui.wire import protocol as p
from vlmtui.wire.spec import ModelSpec

Subscriber = Callable[[Event], None]


@dataclass
class _Running:
    """The case in flight and how it is to end."""

    case: Case
    attempt: int
    started_at: float
    future: asyncio.Future[p.Result | None]
    tokens: list[str] = field(default_factory=list)
    abort_reason: str | None = None
    unload_requested: bool = False
    """The abort also unloads the model (the worker does it right after the result)."""
    guard_reading: dict[str, Any] | None = None
    kill_timer: asyncio.TimerHandle | None = None
    killed: bool = False
    """The worker did not stop within ``grace_s`` and was terminated."""


@dataclass
class _ModelState:
    """What the scheduler knows about one model across the session."""

    load_error: str | None = None
    load_status: str = "failed"
    skip_reason: str | None = None
    loaded: p.Loaded | None = None
    """The worker's last ``Loaded`` for it: its model type and what it can be asked."""


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

    def __init__(
        self,
        cases: Sequence[Case],
        *,
        suite_name: str = "suite",
        suite_path: str = "",
        guard: GuardConfig | None = None,
        budget: Budget | None = None,
        worker_argv: Sequence[str] | None = None,
        worker_env: dict[str, str] | None = None,
        session_id: str | None = None,
        done_attempts: dict[str, int] | None = None,
    ) -> None:
        self.cases: dict[str, Case] = {case.case_id: case for case in cases}
        self.order: list[str] = [case.case_id for case in cases]
        self.suite_name = suite_name
        self.suite_path = suite_path
        self.guard_config = guard or GuardConfig()
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self.results: dict[str, list[CaseResult]] = {case_id: [] for case_id in self.order}
        self._attempt_base = dict(done_attempts or {})
        self._pending: list[str] = list(self.order)
        self._subscribers: list[Subscriber] = []
        self._worker_argv = worker_argv
        self._worker_env = worker_env
        self._worker: WorkerClient | None = None
        self._loaded: str | None = None
        self._models: dict[str, _ModelState] = {}
        self._running: _Running | None = None
        self._reply: asyncio.Future[p.Event | None] | None = None
        self._reply_types: tuple[type[p.Event], ...] = ()
        self._unpaused = asyncio.Event()
        self._unpaused.set()
        self._wake = asyncio.Event()
        self._loading: ModelSpec | None = None
        self._load_abort: str | None = None
        """Why the guard stopped the load in flight."""
        self._load_stop: str | None = None
        """Why the session (the user, a signal) stopped the load in flight: not the guard's, so no on_abort."""
        self._stopping = False
        self._stop_reason = ""
        self._last_framework: tuple[float, dict[str, Any]] | None = None
        self._last_update: MemoryUpdate | None = None
        self._last_exit: WorkerExited | None = None
        self.budget = budget or resolve_budget(self.guard_config.budget, {}, probe_system().total)
        self.guard = Guard.from_config(self.budget, self.guard_config)

    # ------------------------------------------------------------------ subscribers

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

    # ------------------------------------------------------------------ controls

    @property
    def paused(self) -> bool:
        """Whether the queue waits before starting the next case."""
        return not self._unpaused.is_set()

    @property
    def running_case(self) -> str | None:
        """The case in flight, if any."""
        return self._running.case.case_id if self._running else None

    @property
    def pending(self) -> list[str]:
        """Case ids still to run, in order."""
        return list(self._pending)

    @property
    def worker_pid(self) -> int | None:
        """The live worker's pid."""
        return self._worker.pid if self._worker and self._worker.alive else None

    def pause(self) -> None:
        """Finish the running case, then wait."""
        self._unpaused.clear()
        self.emit(QueueChanged(paused=True, pending=len(self._pending)))

    def resume(self) -> None:
        """Go on with the queue."""
        self._unpaused.set()
        self.emit(QueueChanged(paused=False, pending=len(self._pending)))

    def toggle_pause(self) -> bool:
        """Pause or resume; returns whether the queue is now paused."""
        if self.paused:
            self.resume()
        else:
            self.pause()
        return self.paused

    def abort_current(self, reason: str = "aborted by the user", *, unload: bool = False) -> bool:
        """Stop the running case at its next token; kill the worker if it does not answer in time."""
        running = self._running
        if running is None or running.abort_reason is not None:
            return False
        running.abort_reason = reason
        running.unload_requested = unload
        if self._worker is not None:
            self._worker.send(p.Abort(case_id=running.case.case_id, reason=reason, unload=unload))
        loop = asyncio.get_running_loop()
        running.kill_timer = loop.call_later(self.guard_config.grace_s, self._kill_unresponsive, running)
        return True

    def _kill_unresponsive(self, running: _Running) -> None:
        if self._running is running and not running.future.done() and self._worker is not None:
            running.killed = True
            self.emit(Notice("warning", f"the worker did not stop within {self.guard_config.grace_s:g} s; "
                                        f"stopping it (SIGTERM, SIGKILL {self.guard_config.term_grace_s:g} s later)"))
            self._worker.terminate()

    def cleanup_now(self, reason: str = "requested by the user", *, by_guard: bool = False) -> None:
        """Ask the worker to free caches now (its answer is a guard event only when the guard asked)."""
        if self._worker is not None and self._worker.alive:
            self._worker.send(p.Cleanup(reason=reason, by_guard=by_guard))

    def rerun(self, case_ids: Iterable[str]) -> list[str]:
        """Queue new attempts of these cases (after what is pending); returns the ids queued."""
        queued = []
        for case_id in case_ids:
            if case_id not in self.cases or case_id in self._pending:
                continue
            if self._running and self._running.case.case_id == case_id:
                continue
            model_state = self._models.get(self.cases[case_id].model.id)
            if model_state is not None:
                model_state.load_error = None
                model_state.skip_reason = None
            self._pending.append(case_id)
            queued.append(case_id)
            self.emit(CaseQueued(case_id, self._next_attempt(case_id)))
        if queued:
            self.emit(QueueChanged(paused=self.paused, pending=len(self._pending)))
            self._wake.set()
        return queued

    def mark_done(self, case_id: str, record: dict[str, Any] | None) -> None:
        """Take a case out of the queue as finished earlier (resume), keeping its logged result."""
        if case_id in self._pending:
            self._pending.remove(case_id)
        if record is not None:
            fields = CaseResult.__dataclass_fields__
            self.results[case_id].append(CaseResult(**{k: v for k, v in record.items() if k in fields}))
            self._attempt_base[case_id] = self._attempt_base.get(case_id, 0) - 1

    def failed_case_ids(self) -> list[str]:
        """Cases whose latest attempt failed, crashed or was aborted."""
        return [
            case_id for case_id in self.order
            if self.results[case_id] and self.results[case_id][-1].status in FAILED_STATUSES
        ]

    def stop(self, reason: str = "stopped", *, abort_running: bool = True) -> None:
        """End the session after (or, by default, by aborting) the running case."""
        self._stopping = True
        self._stop_reason = reason
        self._unpaused.set()
        self._wake.set()
        if abort_running:
            self.abort_current(f"aborted: {reason}")
            if self._loading is not None and self._worker is not None:
                # A load cannot stop between tokens and can take minutes: end it rather than wait.
                self._load_stop = f"aborted: {reason}"
                self._worker.terminate()

    def latest(self) -> dict[str, CaseResult]:
        """Each case's latest attempt."""
        return {case_id: attempts[-1] for case_id, attempts in self.results.items() if attempts}

    def counts(self) -> dict[str, int]:
        """Counts by status over each non-warm-up case's latest attempt (``pending`` for the rest)."""
        counts: dict[str, int] = {}
        for case_id in self.order:
            attempts = self.results[case_id]
            if self.cases[case_id].warmup:
                continue
            status = attempts[-1].status if attempts else "pending"
            counts[status] = counts.get(status, 0) + 1
        return counts

    # ------------------------------------------------------------------ the run

    async def run(self, *, keep_alive: bool = False) -> dict[str, int]:
        """Run the queue; with ``keep_alive`` wait for reruns until ``stop``. Returns the counts."""
        self.emit(SessionStarted(
            session_id=self.session_id, suite=self.suite_name, suite_path=self.suite_path,
            info={**machine_info(), "budget_bytes": self.budget.bytes, "budget_source": self.budget.source,
                  "guard": {"warn": self.guard_config.warn, "cleanup": self.guard_config.cleanup,
                            "abort": self.guard_config.abort, "on_abort": self.guard_config.on_abort,
                            "sample_ms": self.guard_config.sample_ms}},
            cases=[_case_info(self.cases[c]) for c in self.order],
        ))
        watcher = asyncio.create_task(self._watch_memory(), name="memory-watch")
        try:
            while not self._stopping:
                if not self._pending:
                    if not keep_alive:
                        break
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._unpaused.wait()
                if self._stopping:
                    break
                if not self._pending:
                    continue
                case_id = self._next_case_id()
                self._pending.remove(case_id)
                try:
                    await self._run_case(self.cases[case_id])
                except WorkerRefused as exc:
                    # Every worker would come from the same installation: nothing can run.
                    self._pending.insert(0, case_id)
                    self.emit(Notice("error", str(exc)))
                    self.stop(str(exc), abort_running=False)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await self._stop_worker()
        counts = self.counts()
        self.emit(SessionFinished(counts=counts, stopped=self._stopping, reason=self._stop_reason))
        return counts

    def _next_case_id(self) -> str:
        """The next pending case, preferring the loaded model's so it is loaded once."""
        if self._loaded is not None:
            for case_id in self._pending:
                if self.cases[case_id].model.id == self._loaded:
                    return case_id
        return self._pending[0]

    def _next_attempt(self, case_id: str) -> int:
        return self._attempt_base.get(case_id, 0) + len(self.results[case_id]) + 1

    def _finish(self, case: Case, attempt: int, status: str, *, started_at: float | None = None,
                error: str = "", output: str = "", metrics: dict[str, Any] | None = None,
                detail: str = "") -> CaseResult:
        now = time.time()
        result = CaseResult(
            case_id=case.case_id, attempt=attempt, model=case.model.id, backend=case.model.backend,
            image=str(case.image) if case.image else None, prompt=case.prompt, kind=case.kind,
            status=status, error=error, output=output, metrics=metrics or {},
            started_at=started_at or now, ended_at=now, warmup=case.warmup, detail=detail,
        )
        self.results[case.case_id].append(result)
        self.emit(CaseFinished(result))
        return result

    async def _run_case(self, case: Case) -> None:
        attempt = self._next_attempt(case.case_id)
        if case.skip_reason:
            self._finish(case, attempt, "skipped", error=case.skip_reason)
            return
        state = self._models.setdefault(case.model.id, _ModelState())
        if state.skip_reason:
            self._finish(case, attempt, "skipped", error=state.skip_reason)
            return
        if self._loaded != case.model.id and state.load_error is None:
            await self._switch_model(case.model, state)
        if state.load_error is not None:
            self._finish(case, attempt, state.load_status, error=state.load_error)
            return
        if state.skip_reason:
            self._finish(case, attempt, "skipped", error=state.skip_reason)
            return
        found = state.loaded
        unfit = skip_reason(case.model, case.kind, found.model_type or None, found.capabilities) if found else None
        if unfit:
            self._finish(case, attempt, "skipped", error=unfit)
            return
        assert self._worker is not None
        loop = asyncio.get_running_loop()
        running = _Running(case, attempt, time.time(), loop.create_future())
        self._running = running
        # The worker gets the case first, so writing the log line overlaps with its work.
        self._worker.send(p.Run(
            case_id=case.case_id, prompt=case.prompt, image=str(case.image) if case.image else None,
            max_tokens=case.max_tokens, temperature=case.temperature,
        ))
        self.emit(CaseStarted(case.case_id, attempt, case.model.id, running.started_at))
        try:
            reply = await running.future
        finally:
            if running.kill_timer is not None:
                running.kill_timer.cancel()
            self._running = None
        if running.unload_requested:
            self._loaded = None  # the worker unloads after the result; the next case loads again
        if reply is None:  # the worker died under the case
            self._record_crash(case, attempt, running)
        else:
            self._record_result(case, attempt, running, reply)
        self.guard.reset()

    def _record_result(self, case: Case, attempt: int, running: _Running, reply: p.Result) -> None:
        metrics: dict[str, Any] = dict(reply.metrics)
        if reply.outcome == "completed":
            failures = check_expectations(case.expect, reply.output, metrics)
            status = "failed" if failures else "passed"
            error = "; ".join(failures)
        elif reply.outcome == "aborted":
            status, error = "aborted", reply.error
            if running.guard_reading is not None:
                metrics["guard_reading"] = running.guard_reading
        else:
            status, error = "failed", reply.error
        self._finish(case, attempt, status, started_at=running.started_at, error=error,
                     output=reply.output, metrics=metrics, detail=reply.detail)
        if status == "aborted" and running.guard_reading is not None:
            self._after_guard_abort(case.model)

    def _take_exit(self) -> WorkerExited:
        """How the worker that just died went (recorded when it exited), and forget that worker."""
        exited = self._last_exit or WorkerExited(0, None, describe_exit(None, []), [])
        self._worker, self._loaded, self._last_exit = None, None, None
        return exited

    def _record_crash(self, case: Case, attempt: int, running: _Running) -> None:
        exited = self._take_exit()
        tail, description = exited.stderr_tail, exited.description
        metrics: dict[str, Any] = {"returncode": exited.returncode}
        if self._last_update is not None:
            metrics["last_memory"] = {"guarded_bytes": self._last_update.guarded_bytes,
                                      "source": self._last_update.guarded_source,
                                      "system_available": self._last_update.system.get("available")}
        if running.abort_reason is not None:
            # We stopped it ourselves (or it was exiting on SIGTERM): the case was aborted, not crashed.
            how = f"worker killed after {self.guard_config.grace_s:g} s" if running.killed else description
            self._finish(case, attempt, "aborted", started_at=running.started_at,
                         error=f"{running.abort_reason} ({how})",
                         output="".join(running.tokens), metrics=metrics, detail="\n".join(tail))
            if running.guard_reading is not None:
                self._after_guard_abort(case.model)
            return
        self._finish(case, attempt, "crashed", started_at=running.started_at, error=description,
                     output="".join(running.tokens), metrics=metrics, detail="\n".join(tail))
        self.emit(Notice("error", f"{case.case_id}: {description}; a fresh worker takes the next case"))

    def _after_guard_abort(self, model: ModelSpec) -> None:
        policy = self.guard_config.on_abort
        if policy == "skip-model":
            state = self._models.setdefault(model.id, _ModelState())
            state.skip_reason = f"{model.id} was aborted by the memory guard earlier (on_abort = skip-model)"
        elif policy == "stop":
            self.stop("the memory guard aborted a case (on_abort = stop)", abort_running=False)

    # ------------------------------------------------------------------ workers and models

    async def _ensure_worker(self) -> WorkerClient:
        """The worker to send to: the current one, or a fresh one once the old one is gone (raises
        ``WorkerRefused``)."""
        old = self._worker
        if old is not None and old.usable:
            return old
        if old is not None and old.alive:
            # A worker on its way out still holds its memory: the next one starts after it has gone.
            old.terminate()
            await old.exited.wait()
        worker = WorkerClient(self._on_worker_event, self._on_worker_exit, self._worker_argv, self._worker_env,
                              term_grace_s=self.guard_config.term_grace_s)
        self._worker = worker
        self._loaded = None
        self._last_framework = None  # a dead worker's last sample is not the new worker's memory
        try:
            await worker.start()
        except WorkerRefused:
            self._worker = None
            raise
        return worker

    async def _request(self, command: p.Command, *answers: type[p.Event]) -> p.Event | None:
        """Send a command and wait for one of ``answers`` (``None`` when the worker died instead)."""
        worker = await self._ensure_worker()
        if not worker.alive:
            return None  # it died before its hello; its exit is recorded
        loop = asyncio.get_running_loop()
        self._reply = loop.create_future()
        self._reply_types = answers
        worker.send(command)
        try:
            return await self._reply
        finally:
            self._reply = None

    async def _switch_model(self, model: ModelSpec, state: _ModelState) -> None:
        if self._loaded is not None and self._worker is not None and self._worker.usable:
            await self._request(p.Unload(), p.Unloaded)
            self._loaded = None
        verdict = await asyncio.to_thread(self._preflight, model)
        if verdict is not None:
            state.skip_reason = verdict
            self.emit(Notice("warning", f"{model.id}: {verdict}"))
            return
        await self._ensure_worker()  # a refused worker stops the session before any load begins
        self.emit(ModelLoading(model.id, model.backend, model.path, model.trust_remote_code))
        limit = int(self.budget.bytes * self.guard_config.abort / 100)
        self.guard.reset()
        self._loading, self._load_abort, self._load_stop = model, None, None
        try:
            reply = await self._request(
                p.Load(model=model.to_dict(), memory_limit_bytes=limit, sample_ms=self.guard_config.sample_ms),
                p.Loaded, p.LoadFailed,
            )
        finally:
            self._loading = None
        if isinstance(reply, p.Loaded):
            self._loaded = model.id
            state.load_error, state.loaded = None, reply
            self._refine_budget(reply.device_info)
            self.emit(ModelLoaded(model.id, reply.load_s, reply.device, reply.dtype, reply.versions, reply.notes))
        elif isinstance(reply, p.LoadFailed):
            state.load_error, state.load_status = reply.error, "failed"
            self.emit(ModelLoadFailed(model.id, reply.error, reply.detail))
        else:
            exited = self._take_exit()
            tail = exited.stderr_tail
            self.guard.reset()
            if self._load_stop is not None:
                # The session stopped the load (the user quit, a signal): aborted, and no guard policy applies.
                state.load_error = f"the session stopped the load of {model.id}: {self._load_stop}"
                state.load_status = "aborted"
                self.emit(ModelLoadFailed(model.id, state.load_error, "\n".join(tail)))
                return
            if self._load_abort is not None:
                # The guard stopped the worker mid-load: the model's cases are aborted, not crashed.
                state.load_error = f"memory guard stopped the load of {model.id}: {self._load_abort}"
                state.load_status = "aborted"
                self.emit(ModelLoadFailed(model.id, state.load_error, "\n".join(tail)))
                self._after_guard_abort(model)
                return
            state.load_error = f"while loading {model.id}: {exited.description}"
            state.load_status = "crashed"
            self.emit(ModelLoadFailed(model.id, state.load_error, "\n".join(tail)))

    def _refine_budget(self, devices: dict[str, Any]) -> None:
        """An "auto" budget sized from the device the worker found (Metal working set, CUDA total)."""
        if self.guard_config.budget != "auto" or not devices:
            return
        budget = resolve_budget("auto", devices, probe_system().total)
        if budget != self.budget:
            self.budget = budget
            self.guard = Guard.from_config(budget, self.guard_config)
            self.emit(Notice("info", f"memory budget: {budget}"))

    def _preflight(self, model: ModelSpec) -> str | None:
        """Why the model cannot fit under the budget (its cases are then skipped), or None."""
        if model.force:
            return None
        estimate = model_footprint(model)  # None where the backend declares no preflight, or for tiny models
        if estimate is None:
            return None
        verdict = check_fit(estimate, self.budget.bytes, 0)
        return None if verdict.fits else f"skipped by preflight: {verdict.reason} (force = true loads anyway)"

    async def _stop_worker(self) -> None:
        worker, self._worker, self._loaded = self._worker, None, None
        if worker is not None:
            await worker.stop()

    # ------------------------------------------------------------------ worker events

    def _on_worker_event(self, message: p.Event) -> None:
        running = self._running
        if isinstance(message, p.Token):
            if running is not None and running.case.case_id == message.case_id:
                running.tokens.append(message.text)
            self.emit(TokenReceived(message.case_id, message.text))
        elif isinstance(message, p.Result):
            if running is not None and running.case.case_id == message.case_id and not running.future.done():
                running.future.set_result(message)
        elif isinstance(message, p.Memory):
            if message.framework is not None:
                self._last_framework = (time.monotonic(), message.framework)
            else:
                self._last_framework = None
        elif isinstance(message, p.Cleaned):
            what = f"cleanup ({message.reason}) freed {message.freed_bytes} bytes"
            if message.by_guard:
                self.emit(GuardEvent(t=time.time(), level=self.guard.level.name.lower(),
                                     previous=self.guard.level.name.lower(), action="cleaned", reason=what,
                                     case_id=self.running_case, reading={}, freed_bytes=message.freed_bytes))
            else:  # the user's, or the worker's own after an out-of-memory error: not the guard's doing
                self.emit(Notice("info", what))
        elif isinstance(message, p.Exiting):
            self._loaded = None
            if running is not None and running.abort_reason is None:
                running.abort_reason = f"stopped ({message.reason})"  # aborted, not crashed, if no result comes
            if self._worker is not None and not self._worker.retiring:
                self.emit(Notice("warning", f"the worker is exiting ({message.reason}); "
                                            "a fresh one takes the next case"))
        elif isinstance(message, p.Unloaded):
            self._loaded = None
        elif isinstance(message, p.Log):
            self.emit(Notice(message.level, f"worker: {message.message}"))
        if self._reply is not None and not self._reply.done() and isinstance(message, self._reply_types):
            self._reply.set_result(message)

    def _on_worker_exit(self, returncode: int | None) -> None:
        worker = self._worker
        if worker is not None:
            tail = list(worker.stderr_tail)
            self._last_exit = WorkerExited(worker.pid or 0, returncode, describe_exit(returncode, tail), tail)
            self.emit(self._last_exit)
        self._loaded = None
        # Framework samples now arrive during loads too (a guard kill mid-load is common): the dead
        # worker's last one must not stand, for up to its staleness window, for the next worker's memory.
        self._last_framework = None
        if self._running is not None and not self._running.future.done():
            self._running.future.set_result(None)
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(None)

    # ------------------------------------------------------------------ memory

    def _reading(self) -> tuple[MemoryReading, MemoryUpdate]:
        system = probe_system()
        pressure = probe_pressure()
        pid = self.worker_pid
        rss = probe_process_rss(pid) if pid else None
        framework = None
        stale_after = max(3 * self.guard_config.sample_ms / 1000, 1.0)
        if self._last_framework is not None and time.monotonic() - self._last_framework[0] < stale_after:
            framework = self._last_framework[1]
        if framework is not None:
            guarded, source = int(framework["guarded_bytes"]), str(framework["framework"])
        else:
            guarded, source = (rss or 0), "rss"
        level = pressure.level if pressure is not None else None
        reading = MemoryReading(t=system.t, guarded_bytes=guarded, guarded_source=source,
                                system_available=system.available, pressure_level=level,
                                system_total=system.total)
        update = MemoryUpdate(
            t=system.t, system=_asdict(system), worker_rss=rss, framework=framework,
            guarded_bytes=guarded if pid else None, guarded_source=source, budget_bytes=self.budget.bytes,
            level=self.guard.level.name.lower(), pressure=level,
        )
        return reading, update

    async def _watch_memory(self) -> None:
        interval = self.guard_config.sample_ms / 1000
        while True:
            reading, update = await asyncio.to_thread(self._reading)
            decision = self.guard.observe(reading) if self.worker_pid else None
            if decision is not None:
                update = MemoryUpdate(**{**update.__dict__, "level": decision.level.name.lower()})
            self._last_update = update
            self.emit(update)
            if decision is not None:
                self._act(decision, reading)
            await asyncio.sleep(interval)

    def _act(self, decision: GuardDecision, reading: MemoryReading) -> None:
        reading_dict = _asdict(reading)
        self.emit(GuardEvent(t=decision.t, level=decision.level.name.lower(),
                             previous=decision.previous.name.lower(), action=decision.action,
                             reason=decision.reason, case_id=self.running_case, reading=reading_dict))
        if decision.action == "cleanup":
            self.cleanup_now(decision.reason, by_guard=True)
        elif decision.action == "abort":
            if self._running is not None and self._running.abort_reason is None:
                self._running.guard_reading = reading_dict
                self.abort_current(f"memory guard: {decision.reason}", unload=True)
            elif self._loading is not None and self._worker is not None:
                # A load cannot stop between tokens; the worker holds nothing worth keeping yet.
                self._load_abort = decision.reason
                self._worker.terminate()
            elif self._worker is not None and self._loaded is not None:
                self._worker.send(p.Abort(reason=f"memory guard: {decision.reason}", unload=True))
                self._loaded = None


def _asdict(obj: Any) -> dict[str, Any]:
    return {k: v for k, v in obj.__dict__.items()} if hasattr(obj, "__dict__") else dict(obj)


def _case_info(case: Case) -> dict[str, Any]:
    return {
        "case_id": case.case_id, "model": case.model.id, "backend": case.model.backend,
        "image": str(case.image) if case.image else None, "prompt": case.prompt, "kind": case.kind,
        "warmup": case.warmup, "skip_reason": case.skip_reason,
        "trust_remote_code": case.model.trust_remote_code,
    }
