"""The worker subprocess: ``python -m vlmtui.worker``. Holds one model, runs cases, streams events.

Only this process imports torch, transformers or mlx, so a Metal abort, a segfault or an OOM kill
takes down the worker and never vlmtui. Commands arrive as JSON lines on stdin, events leave as JSON
lines on the original stdout; anything else a library prints goes to stderr, which the parent keeps
for crash reports. On SIGTERM, or when stdin closes (vlmtui ended or died), the worker stops the running
case at its next token, unloads the model, clears caches and exits 0: on macOS a process SIGKILLed while
it holds wired Metal memory can leave that memory wired until reboot, a clean exit gives it back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

import psutil

from vlmtui.vocab import Outcome
from vlmtui.wire import protocol as p
from vlmtui.wire.spec import ModelSpec
from vlmtui.worker.backends import backend_class
from vlmtui.worker.backends.base import (
    Backend,
    BackendError,
    Exchange,
    GenerationRequest,
    GenerationStats,
    LoadInfo,
    OutOfMemoryError,
    one_line,
)
from vlmtui.worker.demo.offline import hub_offline
from vlmtui.worker.demo.tiny import TinyModelError
from vlmtui.worker.images import ImageError, open_image
from vlmtui.worker.interrupts import CaseAborted, CaseInterrupts
from vlmtui.worker.measure import (
    CasePeak,
    TokenStream,
    case_metrics,
    framework_sample,
    guarded_bytes,
    loaded_message,
)
from vlmtui.worker.sampler import MemorySampler
from vlmtui.worker.warm import start_warming, wait_for_warming

if TYPE_CHECKING:
    from PIL.Image import Image

IDLE_POLL_S = 0.1
"""How often an idle worker looks up from its queue: a SIGTERM's handler runs only when the main thread does."""
STDIN_CLOSED_EXIT_S = 10.0
"""After stdin closes, how long the clean exit may take before the worker ends itself anyway (stuck in a
native call, or SIGTERM ignored): it never outlives vlmtui by more."""


class Terminated(BaseException):
    """Raised by SIGTERM's handler in a model load, which has no tokens to stop between: the load is dropped."""


class Worker:
    """Reads commands, runs them on the loaded backend, writes events."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._write_lock = threading.Lock()
        self._commands: queue.Queue[p.Command] = queue.Queue()
        self._backend: Backend | None = None
        self._loading_backend: Backend | None = None
        """The backend whose ``load`` runs now: the sampler probes it, so a load is guarded too."""
        self._spec: ModelSpec | None = None
        self._load_s = 0.0
        self._no_history = ""  # why the loaded model cannot take a conversation's history (Loaded.no_history)
        self._interrupts = CaseInterrupts(self._commands.put)
        self._said_exiting = False
        self._sampler = MemorySampler(self._memory_sample, self.send, lambda exc: self.send(
            p.Log("warning", f"memory probe failed: {one_line(exc)}")))
        self._case_peak = CasePeak()
        self._process = psutil.Process()

    # ------------------------------------------------------------------ plumbing

    def send(self, message: p.Event) -> None:
        """Write one event line (thread-safe)."""
        line = p.encode(message)
        with self._write_lock:
            self._out.write(line)
            self._out.flush()

    def _read_commands(self, stdin: TextIO) -> None:
        """Reader thread: abort and cleanup act at once; everything else is queued in order."""
        for raw in stdin:
            if not raw.strip():
                continue
            try:
                command = p.decode(raw)
            except p.ProtocolError as exc:
                self.send(p.Log("error", f"worker ignored a bad command: {exc}"))
                continue
            if isinstance(command, p.Abort):
                # An abort that finds its case ended (or none ran) leaves the model idle: only the unload applies.
                if not self._interrupts.take_abort(command) and command.unload:
                    self._commands.put(p.Unload())
            elif isinstance(command, p.Cleanup):
                if not self._interrupts.take_cleanup(command):
                    self._commands.put(command)
            else:
                if isinstance(command, p.Run):
                    self._interrupts.queued(command.case_id)
                self._commands.put(command)  # type: ignore[arg-type]
        # stdin closed: vlmtui ended or died. Leave as on SIGTERM, and at the latest after a bound.
        self._interrupts.exit_reason = "stdin closed"
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)
        time.sleep(STDIN_CLOSED_EXIT_S)
        os._exit(0)

    def on_sigterm(self, signum: int, frame: object) -> None:
        """SIGTERM (main thread): stop the running case at its next token, or drop a load; then exit."""
        if self._interrupts.terminating:
            return
        if self._interrupts.terminate() is None and self._loading_backend is not None:
            raise Terminated

    def _memory_sample(self) -> p.Memory:
        rss = self._process.memory_info().rss
        framework = framework_sample(self._backend, self._loading_backend)
        if self._interrupts.running is not None:
            self._case_peak.observe(framework, rss)
        return p.Memory(t=time.time(), rss_bytes=rss, framework=framework.to_dict() if framework else None)

    # ------------------------------------------------------------------ commands

    def serve(self, stdin: TextIO) -> None:
        """Run until a ``Shutdown``, SIGTERM or the end of stdin; the model is unloaded on the way out."""
        self.send(p.Hello(pid=os.getpid(), python=sys.version.split()[0], executable=sys.executable))
        threading.Thread(target=self._read_commands, args=(stdin,), daemon=True, name="commands").start()
        self._sampler.start()
        self._warming = start_warming(self.send)  # a worker started ahead of its model imports its framework now
        try:
            while not self._interrupts.terminating:
                try:
                    command = self._commands.get(timeout=IDLE_POLL_S)
                except queue.Empty:
                    continue
                if isinstance(command, p.Shutdown):
                    self._say_exiting("shutdown")  # the parent waits for this before it signals a stuck worker
                    break
                if isinstance(command, p.Load):
                    with self._sampler.working():
                        self._load(command)
                elif isinstance(command, p.Run):
                    with self._sampler.working():
                        self._run(command)
                elif isinstance(command, p.Cleanup):
                    self._cleanup(command.reason, by_guard=command.by_guard)
                elif isinstance(command, p.Unload):
                    self._unload(announce=True)
        except Terminated:
            pass
        if self._interrupts.terminating:
            self._say_exiting()
        # The backend's unload drops the model and clears the framework's caches; it is also where a
        # backend gives back what it changed for the whole process (MLX's wired limit, where it sets one).
        self._unload(announce=False)

    def _say_exiting(self, reason: str | None = None) -> None:
        """Tell the parent, once, that no command will run any more."""
        if not self._said_exiting:
            self._said_exiting = True
            with contextlib.suppress(OSError):  # vlmtui is gone: nobody to tell
                self.send(p.Exiting(reason=reason or self._interrupts.exit_reason))

    def _load(self, command: p.Load) -> None:
        self._unload(announce=False)
        wait_for_warming(self._warming, lambda: self._interrupts.terminating)
        spec = ModelSpec.from_dict(command.model)
        self._sampler.sample_s = max(command.sample_ms, 10) / 1000
        started = time.perf_counter()
        try:
            backend = backend_class(spec.backend)(spec)
            backend.log = lambda level, message: self.send(p.Log(level, message))
            if command.memory_limit_bytes:
                # Where the framework can cap its allocator (torch), going over becomes a catchable error;
                # MLX takes the limit as a guideline (it reclaims its cache first), and still gets it.
                backend.set_memory_limit(command.memory_limit_bytes)
            self._loading_backend = backend
            if self._interrupts.terminating:
                # SIGTERM came before the load began (the backend's import: ~1 s for the openai package), when
                # its handler had no load to drop: the load would have run whole, to a SIGKILL. From here on
                # the handler itself raises.
                raise Terminated
            with hub_offline() if spec.source.is_tiny else contextlib.nullcontext():  # demo/offline.py
                info = backend.load()
        except Terminated:
            self._loading_backend = None
            _drop(backend)
            raise
        except (BackendError, TinyModelError) as exc:
            self.send(p.LoadFailed(model_id=spec.id, error=str(exc), detail=traceback.format_exc()))
            return
        except Exception as exc:
            self.send(p.LoadFailed(model_id=spec.id, error=f"cannot load {spec.path}: {one_line(exc)}",
                                   detail=traceback.format_exc()))
            return
        else:
            # The loaded backend takes over before the loading one is dropped: no sample falls between.
            self._backend, self._spec = backend, spec
        finally:
            self._loading_backend = None
        self._load_s = time.perf_counter() - started
        # A framework and a model are ~400k objects: frozen, they are not rescanned by every collection,
        # so a guard cleanup costs milliseconds, not a 0.2 s pause between tokens (bench/guard_latency.py).
        gc.collect()
        gc.freeze()
        self._no_history = history_refusal(backend, info)
        loaded = loaded_message(spec, backend, info, self._load_s, capped=bool(command.memory_limit_bytes))
        self.send(dataclasses.replace(loaded, no_history=self._no_history))

    def _between_tokens(self, case_id: str) -> None:
        """Act on a pending cleanup or abort; called after each streamed chunk."""
        request = self._interrupts.next_cleanup()
        if request is not None:
            self._cleanup(request.reason, by_guard=request.by_guard)
        abort = self._interrupts.abort_for(case_id)
        if abort is not None:
            raise CaseAborted(abort)

    def _run(self, command: p.Run) -> None:
        self._interrupts.begin(command.case_id)
        try:
            self._run_case(command)
        finally:
            self._interrupts.end(command.case_id)

    def _run_case(self, command: p.Run) -> None:
        backend, spec = self._backend, self._spec
        case_id = command.case_id
        if backend is None or spec is None:
            self.send(p.Result(case_id=case_id, outcome=Outcome.FAILED, error="no model is loaded in the worker"))
            return
        metrics: dict[str, float | int | str | None] = {"load_s": round(self._load_s, 4)}
        self._case_peak.reset()
        started = time.perf_counter()
        gen_started = started
        stream = TokenStream(lambda text: self.send(p.Token(case_id=case_id, text=text)),
                             lambda: self._between_tokens(case_id))
        outcome, error, detail = Outcome.COMPLETED, "", ""
        unload_after = False
        stats = GenerationStats()
        try:
            image = open_image(command.image, spec.max_image_size) if command.image else None
            backend.reset_peak_memory()
            self._between_tokens(case_id)
            request = generation_request(command, image, lambda: self._interrupts.should_stop(case_id),
                                         self._no_history)
            gen_started = time.perf_counter()
            stats = backend.generate(request, stream.emit)
            self._between_tokens(case_id)  # a backend that saw ``should_stop`` returns; the abort still counts
        except CaseAborted as exc:
            outcome, error = Outcome.ABORTED, exc.command.reason
            unload_after = exc.command.unload
        except ImageError as exc:
            outcome, error = Outcome.FAILED, str(exc)
        except Exception as exc:
            if backend.is_out_of_memory(exc):
                # The backend's own OutOfMemoryError says where already; a raw framework error gets a prefix.
                oom = isinstance(exc, OutOfMemoryError)
                outcome, error = Outcome.ABORTED, str(exc) if oom else f"out of memory: {one_line(exc)}"
                detail = traceback.format_exc()
                self._cleanup("after out of memory")
            elif isinstance(exc, BackendError):
                outcome, error, detail = Outcome.FAILED, str(exc), traceback.format_exc()
            else:
                outcome, error, detail = Outcome.FAILED, one_line(exc), traceback.format_exc()
        finally:
            stream.flush()
            if self._backend is not None:
                self._memory_sample()  # a case shorter than one sampling interval still gets a peak
        ended = time.perf_counter()
        metrics.update(case_metrics(stats, stream.times, gen_started, ended - started, self._case_peak))
        if self._interrupts.terminating:
            self._say_exiting()  # before the result: the parent must not send this worker the next case
        self.send(p.Result(case_id=case_id, outcome=outcome, output=stream.text, error=error,
                           detail=detail, metrics=metrics))
        if unload_after and not self._interrupts.terminating:  # the guard's abort: now give the memory back
            self._unload(announce=True)

    def _cleanup(self, reason: str, *, by_guard: bool = False) -> None:
        before = self._memory_sample()
        if self._backend is not None:
            self._backend.cleanup()  # collects garbage first, then clears the framework's caches
        else:
            gc.collect()
        after = self._memory_sample()
        freed = guarded_bytes(before) - guarded_bytes(after)
        self.send(p.Cleaned(freed_bytes=max(freed, 0), reason=reason, by_guard=by_guard))

    def _unload(self, *, announce: bool) -> None:
        backend, spec = self._backend, self._spec
        self._backend, self._spec = None, None
        if backend is not None:
            gc.unfreeze()  # the model's objects become collectable again
            try:
                backend.unload()  # drops the model, collects garbage, clears the framework's caches
            except Exception as exc:
                self.send(p.Log("warning", f"unload of {spec.id if spec else '?'} failed: {one_line(exc)}"))
            del backend
        if announce:
            self.send(p.Unloaded(model_id=spec.id if spec else ""))


def history_refusal(backend: Backend, info: LoadInfo) -> str:
    """Why the loaded model cannot take a conversation's history (``Loaded.no_history``); ``""`` when it can."""
    if info.no_history or backend.supports_history:
        return info.no_history
    return f"the {backend.name} backend does not send a conversation's history"


def generation_request(command: p.Run, image: Image | None, should_stop: Callable[[], bool],
                       no_history: str) -> GenerationRequest:
    """The backend's view of a ``Run``; a follow-up turn for a model without history is refused (the engine
    skips those turns: this guards the wire), never answered without the conversation before it."""
    if command.history and no_history:
        raise BackendError(no_history)
    history = tuple(Exchange(str(turn.get("prompt", "")), str(turn.get("output", ""))) for turn in command.history)
    return GenerationRequest(case_id=command.case_id, prompt=command.prompt, image=image,
                             max_tokens=command.max_tokens, temperature=command.temperature,
                             should_stop=should_stop, history=history)


def _drop(backend: Backend) -> None:
    """Give back what a half-loaded backend holds (its load was stopped)."""
    try:
        backend.unload()
    except Exception:
        gc.collect()


def main() -> None:
    """Entry point: keep the real stdout for the protocol and send stray prints to stderr."""
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    out = os.fdopen(protocol_fd, "w", encoding="utf-8", buffering=1)
    # Ctrl-C belongs to vlmtui, which stops the worker itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker = Worker(out)
    signal.signal(signal.SIGTERM, worker.on_sigterm)
    worker.serve(sys.stdin)
    with contextlib.suppress(OSError):  # vlmtui may be gone already
        out.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
