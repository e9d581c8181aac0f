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
import gc
import os
import queue
import signal
import sys
import threading
import time
import traceback
from typing import Any, TextIO

import psutil

from vlmtui.memory.samples import FrameworkSample
from vlmtui.vocab import Outcome
from vlmtui.wire import protocol as p
from vlmtui.wire.capabilities import capabilities_of
from vlmtui.wire.spec import ModelSpec
from vlmtui.worker.backends import backend_class
from vlmtui.worker.backends.base import (
    Backend,
    BackendError,
    GenerationRequest,
    GenerationStats,
    OutOfMemoryError,
    one_line,
)
from vlmtui.worker.demo.tiny import TinyModelError
from vlmtui.worker.frameworks import device_info
from vlmtui.worker.images import ImageError, open_image

TOKEN_BATCH_S = 0.016
"""Streamed text is sent at most this often (about 60 times a second); the rest waits in a batch."""
IDLE_POLL_S = 0.1
"""How often an idle worker looks up from its queue: a SIGTERM's handler runs only when the main thread does."""
STDIN_CLOSED_EXIT_S = 10.0
"""After stdin closes, how long the clean exit may take before the worker ends itself anyway (stuck in a
native call, or SIGTERM ignored): it never outlives vlmtui by more."""


class Terminated(BaseException):
    """Raised by SIGTERM's handler in a model load, which has no tokens to stop between: the load is dropped."""


class CaseAborted(Exception):
    """Raised between tokens to stop a generation; carries the abort command."""

    def __init__(self, command: p.Abort) -> None:
        super().__init__(command.reason)
        self.command = command


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
        self._running_case: str | None = None
        self._queued_runs: set[str] = set()
        """Cases whose ``Run`` waits in the queue: an abort aimed at one of them is kept for it."""
        self._aborts: dict[str, p.Abort] = {}
        """Aborts of the running or a queued case only; each goes when its case ends."""
        self._case_lock = threading.Lock()
        self._cleanup_request: p.Cleanup | None = None
        self._terminating = False
        self._exit_reason = "SIGTERM"
        self._said_exiting = False
        self._sample_s = 0.25
        self._case_peak = 0
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
                self._take_abort(command)
            elif isinstance(command, p.Cleanup):
                self._take_cleanup(command)
            else:
                if isinstance(command, p.Run):
                    with self._case_lock:
                        self._queued_runs.add(command.case_id)
                self._commands.put(command)  # type: ignore[arg-type]
        # stdin closed: vlmtui ended or died. Leave as on SIGTERM, and at the latest after a bound.
        self._exit_reason = "stdin closed"
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)
        time.sleep(STDIN_CLOSED_EXIT_S)
        os._exit(0)

    def _take_cleanup(self, command: p.Cleanup) -> None:
        """A cleanup acts at the running case's next token, or in turn when no case runs."""
        with self._case_lock:
            if self._running_case is not None:
                self._cleanup_request = command
                return
        self._commands.put(command)

    def _take_abort(self, command: p.Abort) -> None:
        """Keep an abort for the case it names while that case runs or waits; never for a later case."""
        with self._case_lock:
            target = command.case_id if command.case_id is not None else self._running_case
            if target is not None and (target == self._running_case or target in self._queued_runs):
                self._aborts[target] = command
                return
        # Its case has ended (or none ran): the model is idle now, so only the unload still applies.
        if command.unload:
            self._commands.put(p.Unload())

    def on_sigterm(self, signum: int, frame: object) -> None:
        """SIGTERM (main thread): stop the running case at its next token, or drop a load; then exit."""
        if self._terminating:
            return
        self._terminating = True
        case_id = self._running_case
        if case_id is not None:
            # A plain dict write, no lock: the main thread this interrupts may hold it. An earlier abort's
            # reason (the guard's, the user's) stays the case's reason.
            self._aborts.setdefault(case_id, p.Abort(case_id=case_id, reason=f"stopped ({self._exit_reason})"))
        elif self._loading_backend is not None:
            raise Terminated

    def _sample_loop(self) -> None:
        """Sampler thread: the worker's RSS and framework memory, every ``sample_ms``."""
        while True:
            time.sleep(self._sample_s)
            try:
                self.send(self._memory_sample())
            except Exception as exc:  # a probe must never take the worker down
                self.send(p.Log("warning", f"memory probe failed: {one_line(exc)}"))
                time.sleep(1.0)

    def _memory_sample(self) -> p.Memory:
        rss = self._process.memory_info().rss
        framework = self._framework_sample()
        guarded = framework.guarded_bytes if framework else rss
        if self._running_case is not None:
            self._case_peak = max(self._case_peak, guarded)
        return p.Memory(t=time.time(), rss_bytes=rss, framework=framework.to_dict() if framework else None)

    def _framework_sample(self) -> FrameworkSample | None:
        backend = self._backend
        if backend is not None:
            return _backend_sample(backend)
        loading = self._loading_backend
        if loading is None:
            return None
        # Mid-load the weights may already sit in device memory that RSS does not show (CUDA, Metal),
        # so the loading backend is asked too; but it is half set up, so a failure means "no sample",
        # never the sampler's warning and one-second pause.
        try:
            return _backend_sample(loading)
        except Exception:
            return None

    # ------------------------------------------------------------------ commands

    def serve(self, stdin: TextIO) -> None:
        """Run until a ``Shutdown``, SIGTERM or the end of stdin; the model is unloaded on the way out."""
        self.send(p.Hello(pid=os.getpid(), python=sys.version.split()[0], executable=sys.executable))
        threading.Thread(target=self._read_commands, args=(stdin,), daemon=True, name="commands").start()
        threading.Thread(target=self._sample_loop, daemon=True, name="sampler").start()
        try:
            while not self._terminating:
                try:
                    command = self._commands.get(timeout=IDLE_POLL_S)
                except queue.Empty:
                    continue
                if isinstance(command, p.Shutdown):
                    break
                if isinstance(command, p.Load):
                    self._load(command)
                elif isinstance(command, p.Run):
                    self._run(command)
                elif isinstance(command, p.Cleanup):
                    self._cleanup(command.reason, by_guard=command.by_guard)
                elif isinstance(command, p.Unload):
                    self._unload(announce=True)
        except Terminated:
            pass
        if self._terminating:
            self._say_exiting()
        # The backend's unload drops the model and clears the framework's caches; it is also where a
        # backend gives back what it changed for the whole process (MLX's wired limit, where it sets one).
        self._unload(announce=False)

    def _say_exiting(self) -> None:
        """Tell the parent, once, that no command will run any more."""
        if not self._said_exiting:
            self._said_exiting = True
            with contextlib.suppress(OSError):  # vlmtui is gone: nobody to tell
                self.send(p.Exiting(reason=self._exit_reason))

    def _load(self, command: p.Load) -> None:
        self._unload(announce=False)
        spec = ModelSpec.from_dict(command.model)
        self._sample_s = max(command.sample_ms, 10) / 1000
        started = time.perf_counter()
        try:
            backend = backend_class(spec.backend)(spec)
            backend.log = lambda level, message: self.send(p.Log(level, message))
            if command.memory_limit_bytes:
                # Where the framework can cap its allocator (torch), going over becomes a catchable error;
                # MLX takes the limit as a guideline (it reclaims its cache first), and still gets it.
                backend.set_memory_limit(command.memory_limit_bytes)
            self._loading_backend = backend
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
        notes = list(info.notes)
        if command.memory_limit_bytes and not backend.supports_memory_limit:
            notes.append(f"{spec.backend} has no hard memory cap here: the guard watches and aborts instead")
        try:
            devices = device_info(import_if_missing=False)
        except Exception:
            devices = {}
        capabilities = sorted(capabilities_of(info.model_type)) if info.model_type else []
        self.send(p.Loaded(model_id=spec.id, load_s=self._load_s, device=info.device, dtype=info.dtype,
                           versions=info.versions, notes=notes, device_info=devices,
                           model_type=info.model_type, capabilities=capabilities))

    def _between_tokens(self, case_id: str) -> None:
        """Act on a pending cleanup or abort; called after each streamed chunk."""
        request = self._cleanup_request
        if request is not None:
            self._cleanup_request = None
            self._cleanup(request.reason, by_guard=request.by_guard)
        abort = self._aborts.get(case_id)
        if abort is None and self._terminating:  # SIGTERM came between the case's start and its first token
            abort = p.Abort(case_id=case_id, reason=f"stopped ({self._exit_reason})")
        if abort is not None:
            raise CaseAborted(abort)

    def _run(self, command: p.Run) -> None:
        case_id = command.case_id
        with self._case_lock:
            self._queued_runs.discard(case_id)
            self._running_case = case_id
        try:
            self._run_case(command)
        finally:
            with self._case_lock:
                self._running_case = None
                self._aborts.pop(case_id, None)
                # A cleanup that came after the case's last token is not left for the next case.
                parked, self._cleanup_request = self._cleanup_request, None
            if parked is not None:
                self._commands.put(parked)

    def _run_case(self, command: p.Run) -> None:
        backend, spec = self._backend, self._spec
        case_id = command.case_id
        if backend is None or spec is None:
            self.send(p.Result(case_id=case_id, outcome=Outcome.FAILED, error="no model is loaded in the worker"))
            return
        metrics: dict[str, float | int | str | None] = {"load_s": round(self._load_s, 4)}
        parts: list[str] = []
        times: list[float] = []
        self._case_peak = 0
        started = time.perf_counter()
        gen_started = started

        pending: list[str] = []
        last_sent = [0.0]

        def flush_tokens() -> None:
            if pending:
                self.send(p.Token(case_id=case_id, text="".join(pending)))
                pending.clear()

        def emit(text: str) -> None:
            now = time.perf_counter()
            times.append(now)
            parts.append(text)
            pending.append(text)
            # One message per TOKEN_BATCH_S at most: a fast model would otherwise cost a write and a
            # parse per token for text no screen refreshes faster than this anyway.
            if now - last_sent[0] >= TOKEN_BATCH_S:
                last_sent[0] = now
                flush_tokens()
            self._between_tokens(case_id)

        outcome, error, detail = Outcome.COMPLETED, "", ""
        unload_after = False
        stats = GenerationStats()
        try:
            image = open_image(command.image, spec.max_image_size) if command.image else None
            backend.reset_peak_memory()
            self._between_tokens(case_id)
            request = GenerationRequest(
                case_id=case_id, prompt=command.prompt, image=image, max_tokens=command.max_tokens,
                temperature=command.temperature,
                should_stop=lambda: case_id in self._aborts or self._terminating,
            )
            gen_started = time.perf_counter()
            stats = backend.generate(request, emit)
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
            flush_tokens()
            if self._backend is not None:
                self._memory_sample()  # a case shorter than one sampling interval still gets a peak
        ended = time.perf_counter()
        metrics.update(_metrics(stats, times, gen_started, ended - started, self._case_peak))
        if self._terminating:
            self._say_exiting()  # before the result: the parent must not send this worker the next case
        self.send(p.Result(case_id=case_id, outcome=outcome, output="".join(parts), error=error,
                           detail=detail, metrics=metrics))
        if unload_after and not self._terminating:  # the guard's abort: now give the memory back
            self._unload(announce=True)

    def _cleanup(self, reason: str, *, by_guard: bool = False) -> None:
        before = self._memory_sample()
        if self._backend is not None:
            self._backend.cleanup()  # collects garbage first, then clears the framework's caches
        else:
            gc.collect()
        after = self._memory_sample()
        freed = _guarded(before) - _guarded(after)
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


def _drop(backend: Backend) -> None:
    """Give back what a half-loaded backend holds (its load was stopped)."""
    try:
        backend.unload()
    except Exception:
        gc.collect()


def _backend_sample(backend: Backend) -> FrameworkSample | None:
    """The backend's framework memory, or else the RSS of the server it manages (if any)."""
    sample = backend.framework_memory()
    server_pid = backend.server_pid
    if sample is None and server_pid:
        rss = _tree_rss(server_pid)
        if rss is not None:
            sample = FrameworkSample(framework="server-rss", device="server", guarded_bytes=rss)
    return sample


def _guarded(sample: p.Memory) -> int:
    if sample.framework:
        return int(sample.framework.get("guarded_bytes", 0))
    return sample.rss_bytes


def _tree_rss(pid: int) -> int | None:
    """RSS of a process and its children (a managed server and what it spawned)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def _metrics(
    stats: GenerationStats, times: list[float], gen_started: float, total_s: float, sampled_peak: int
) -> dict[str, Any]:
    """Per-case metrics: the backend's own numbers where it has them, else measured from the stream."""
    chunks = len(times)
    ttft = stats.ttft_s if stats.ttft_s is not None else times[0] - gen_started if times else None
    gen_tokens = stats.gen_tokens if stats.gen_tokens is not None else chunks
    gen_tps = stats.gen_tps
    if gen_tps is None and chunks > 1:
        span = times[-1] - times[0]
        gen_tps = (chunks - 1) / span if span > 0 else None
    prompt_tps = stats.prompt_tps
    if prompt_tps is None and stats.prompt_tokens and ttft:
        prompt_tps = stats.prompt_tokens / ttft
    peak = stats.peak_memory_bytes if stats.peak_memory_bytes else (sampled_peak or None)
    return {
        "ttft_s": round(ttft, 5) if ttft is not None else None,
        "prompt_tokens": stats.prompt_tokens,
        "gen_tokens": gen_tokens,
        "prompt_tps": round(prompt_tps, 2) if prompt_tps else None,
        "gen_tps": round(gen_tps, 2) if gen_tps else None,
        "total_s": round(total_s, 5),
        "peak_memory_bytes": peak,
        **({"metrics_source": stats.metrics_source} if stats.metrics_source else {}),
        **stats.extra,
    }


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
