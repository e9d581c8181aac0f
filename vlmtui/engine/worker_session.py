"""The parent's side of one worker at a time: request and reply, the case in flight, loads, aborts, exits.

A worker that died or is on its way out is replaced by a fresh one when the next command needs it (after
the old one has gone, since it still holds its memory); one that speaks another protocol is refused
(``WorkerRefused``). What the worker says goes to the scheduler's subscribers as events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vlmtui.engine.events import CaseStarted, Event, Notice, TokenReceived, WorkerExited
from vlmtui.engine.plan import Case
from vlmtui.engine.spare_worker import Spares
from vlmtui.engine.worker_client import WorkerClient, WorkerRefused, describe_exit, terminate_pid
from vlmtui.suite.loader import GuardConfig
from vlmtui.vocab import CaseStatus
from vlmtui.wire import protocol as p
from vlmtui.wire.spec import ModelSpec


@dataclass
class RunningCase:
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


@dataclass(frozen=True)
class LoadCut:
    """A load that ended with its worker: stopped by the session or the guard, or a crash."""

    error: str
    status: CaseStatus
    """How the model's cases end: ``aborted`` when stopped, ``crashed`` otherwise."""
    detail: str
    by_guard: bool = False
    """The guard stopped it: its ``on_abort`` policy applies."""


class WorkerSession:
    """One worker at a time: what it runs, what it has loaded, and how the last one ended."""

    def __init__(self, emit: Callable[[Event], None], config: GuardConfig, argv: Sequence[str] | None,
                 env: dict[str, str] | None, on_cleaned: Callable[[p.Cleaned], None]) -> None:
        self._emit = emit
        self._config = config
        self._argv = argv
        self._env = env
        self._on_cleaned = on_cleaned
        self.worker: WorkerClient | None = None
        self.loaded: str | None = None
        """The model id the worker holds."""
        self.running: RunningCase | None = None
        self.loading: ModelSpec | None = None
        self._load_abort: str | None = None
        """Why the guard stopped the load in flight."""
        self._load_stop: str | None = None
        """Why the session (the user, a signal) stopped the load in flight: not the guard's, so no on_abort."""
        self._reply: asyncio.Future[p.Event | None] | None = None
        self._reply_types: tuple[type[p.Event], ...] = ()
        self._last_exit: WorkerExited | None = None
        self._last_framework: tuple[float, dict[str, Any]] | None = None
        self.spares = Spares(emit, argv, env, config.term_grace_s)  # the next model's worker, warming

    @property
    def pid(self) -> int | None:
        """The live worker's pid."""
        return self.worker.pid if self.worker and self.worker.alive else None

    @property
    def running_case(self) -> str | None:
        """The case in flight, if any."""
        return self.running.case.case_id if self.running else None

    def framework_sample(self, max_age_s: float) -> dict[str, Any] | None:
        """The worker's latest framework sample, if it is younger than ``max_age_s``."""
        last = self._last_framework
        return last[1] if last is not None and time.monotonic() - last[0] < max_age_s else None

    # ------------------------------------------------------------------ requests

    async def ensure_worker(self, backend: str | None = None) -> WorkerClient:
        """The worker to send to: the current one, else (once it is gone) the spare for ``backend`` or a fresh one."""
        old = self.worker
        spare = self.spares.claim(backend)
        if old is not None and old.usable and spare is None:
            return old
        taken = await self.spares.succeed(old, spare, self._on_event, self._on_exit)
        worker = taken or WorkerClient(self._on_event, self._on_exit, self._argv, self._env,
                                       term_grace_s=self._config.term_grace_s)
        # A dead worker's last sample is not the new worker's memory.
        self.worker, self.loaded, self._last_framework, self.spares.imported = worker, None, None, set()
        try:
            if taken is None:
                await worker.start()
        except WorkerRefused:
            self.worker = None
            raise
        return worker

    async def request(self, command: p.Command, *answers: type[p.Event]) -> p.Event | None:
        """Send a command and wait for one of ``answers`` (``None`` when the worker died instead)."""
        worker = await self.ensure_worker()
        if not worker.alive:
            return None  # it died before its hello; its exit is recorded
        self._reply = asyncio.get_running_loop().create_future()
        self._reply_types = answers
        worker.send(command)
        try:
            return await self._reply
        finally:
            self._reply = None

    async def unload(self) -> None:
        """Unload the model the worker holds, if it holds one and takes commands."""
        if self.loaded is not None and self.worker is not None and self.worker.usable:
            await self.request(p.Unload(), p.Unloaded)
            self.loaded = None

    async def load(self, model: ModelSpec, limit_bytes: int) -> p.Loaded | p.LoadFailed | LoadCut:
        """Load ``model`` into the worker: its answer, or how the load ended with the worker."""
        self.loading, self._load_abort, self._load_stop = model, None, None
        try:
            reply = await self.request(
                p.Load(model=model.to_dict(), memory_limit_bytes=limit_bytes, sample_ms=self._config.sample_ms),
                p.Loaded, p.LoadFailed,
            )
        finally:
            self.loading = None
        cut = self._load_abort is not None or self._load_stop is not None
        if isinstance(reply, p.Loaded) and not cut:
            self.loaded = model.id
            self.spares.loaded(model.backend)
            return reply
        if isinstance(reply, p.LoadFailed) and not cut:
            return reply
        if reply is not None and self.worker is not None:
            # The load ended just as it was cut: the worker has its SIGTERM and is going; no case may start
            # on it (it would be recorded as crashed), so the load ends the way the cut said.
            await self.worker.exited.wait()
        exited = self.take_exit()
        tail = "\n".join(exited.stderr_tail)
        if self._load_stop is not None:
            # The session stopped the load (the user quit, a signal): aborted, and no guard policy applies.
            return LoadCut(f"the session stopped the load of {model.id}: {self._load_stop}", CaseStatus.ABORTED, tail)
        if self._load_abort is not None:
            # The guard stopped the worker mid-load: the model's cases are aborted, not crashed.
            return LoadCut(f"memory guard stopped the load of {model.id}: {self._load_abort}", CaseStatus.ABORTED,
                           tail, by_guard=True)
        return LoadCut(f"while loading {model.id}: {exited.description}", CaseStatus.CRASHED, tail)

    async def run(self, case: Case, attempt: int, *, prompt: str | None = None,
                  history: Sequence[dict[str, str]] = (), announce: bool = True) -> tuple[RunningCase, p.Result | None]:
        """Run one case (a conversation's turn: its ``prompt`` after the ``history``, not ``announce``d) on the loaded
        model: the case as it ran, and the worker's result (None if it died)."""
        assert self.worker is not None
        running = RunningCase(case, attempt, time.time(), asyncio.get_running_loop().create_future())
        self.running = running
        # The worker gets the case first, so writing the log line overlaps with its work.
        self.worker.send(p.Run(
            case_id=case.case_id, prompt=case.prompt if prompt is None else prompt,
            image=str(case.image) if case.image else None, max_tokens=case.max_tokens,
            temperature=case.temperature, history=list(history),
        ))
        if announce:
            self._emit(CaseStarted(case.case_id, attempt, case.model.id, running.started_at))
        try:
            reply = await running.future
        finally:
            if running.kill_timer is not None:
                running.kill_timer.cancel()
            self.running = None
        if running.unload_requested:
            self.loaded = None  # the worker unloads after the result; the next case loads again
        return running, reply

    # ------------------------------------------------------------------ stopping what runs

    def abort(self, reason: str, *, unload: bool = False) -> str | None:
        """Stop the running case at its next token; terminate the worker if it does not answer within
        ``grace_s``. Returns the case's id, or None when nothing runs (or it is already being aborted)."""
        running = self.running
        if running is None or running.abort_reason is not None:
            return None
        running.abort_reason = reason
        running.unload_requested = unload
        if self.worker is not None:
            self.worker.send(p.Abort(case_id=running.case.case_id, reason=reason, unload=unload))
        loop = asyncio.get_running_loop()
        running.kill_timer = loop.call_later(self._config.grace_s, self._kill_unresponsive, running)
        return running.case.case_id

    def _kill_unresponsive(self, running: RunningCase) -> None:
        if self.running is running and not running.future.done() and self.worker is not None:
            running.killed = True
            self._emit(Notice("warning", f"the worker did not stop within {self._config.grace_s:g} s; "
                                         f"stopping it (SIGTERM, SIGKILL {self._config.term_grace_s:g} s later)"))
            self.worker.terminate()

    def cut_load(self, reason: str, *, by_guard: bool) -> bool:
        """End the load in flight by ending its worker (a load cannot stop between tokens); False if none."""
        if self.loading is None or self.worker is None:
            return False
        if by_guard:
            self._load_abort = reason
        else:
            self._load_stop = reason
        self.worker.terminate()
        return True

    def unload_idle(self, reason: str) -> None:
        """Have an idle worker drop its model now (the guard's abort between cases)."""
        if self.worker is not None and self.loaded is not None:
            self.worker.send(p.Abort(reason=reason, unload=True))
            self.loaded = None

    def cleanup(self, reason: str, *, by_guard: bool = False) -> bool:
        """Ask the worker to free caches now; False when no worker runs."""
        if self.worker is None or not self.worker.alive:
            return False
        self.worker.send(p.Cleanup(reason=reason, by_guard=by_guard))
        return True

    async def stop_worker(self) -> None:
        """Ask the worker to unload and exit, and wait for it."""
        worker, self.worker, self.loaded = self.worker, None, None
        if worker is not None:
            await worker.stop(answer_s=self._config.grace_s)
        await self.spares.close()

    def end_now(self) -> None:
        """SIGTERM the worker, SIGKILL it ``term_grace_s`` later; blocks, so a thread may call it while the
        loop is wedged."""
        pid = self.pid
        if pid is not None:
            terminate_pid(pid, self._config.term_grace_s)
        self.spares.end_now()

    # ------------------------------------------------------------------ what the worker says

    def take_exit(self) -> WorkerExited:
        """How the worker that just died went (recorded when it exited), and forget that worker."""
        exited = self._last_exit or WorkerExited(0, None, describe_exit(None, []), [])
        self.worker, self.loaded, self._last_exit = None, None, None
        return exited

    def _on_event(self, message: p.Event) -> None:
        running = self.running
        if isinstance(message, p.Token):
            if running is not None and running.case.case_id == message.case_id:
                running.tokens.append(message.text)
            self._emit(TokenReceived(message.case_id, message.text))
        elif isinstance(message, p.Result):
            if running is not None and running.case.case_id == message.case_id and not running.future.done():
                running.future.set_result(message)
        elif isinstance(message, p.Memory):
            self._last_framework = (time.monotonic(), message.framework) if message.framework is not None else None
        elif isinstance(message, p.Cleaned):
            self._on_cleaned(message)
        elif isinstance(message, p.Exiting):
            self.loaded = None
            if running is not None and running.abort_reason is None:
                running.abort_reason = f"stopped ({message.reason})"  # aborted, not crashed, if no result comes
            if self.worker is not None and not self.worker.retiring:
                self._emit(Notice("warning", f"the worker is exiting ({message.reason}); "
                                             "a fresh one takes the next case"))
        elif isinstance(message, p.Unloaded):
            self.loaded = None
        elif isinstance(message, p.Log):
            self._emit(Notice(message.level, f"worker: {message.message}"))
        if self._reply is not None and not self._reply.done() and isinstance(message, self._reply_types):
            self._reply.set_result(message)

    def _on_exit(self, returncode: int | None) -> None:
        worker = self.worker
        if worker is not None:
            tail = list(worker.stderr_tail)
            self._last_exit = WorkerExited(worker.pid or 0, returncode, describe_exit(returncode, tail), tail)
            self._emit(self._last_exit)
        self.loaded = None
        # Framework samples now arrive during loads too (a guard kill mid-load is common): the dead
        # worker's last one must not stand, for up to its staleness window, for the next worker's memory.
        self._last_framework = None
        if self.running is not None and not self.running.future.done():
            self.running.future.set_result(None)
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(None)
