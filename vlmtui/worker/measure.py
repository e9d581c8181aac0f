"""What the worker measures and reports: a backend's memory (or its server's), a load, a case's stream and metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psutil

from vlmtui.memory.samples import FrameworkSample
from vlmtui.wire import protocol as p
from vlmtui.wire.capabilities import capabilities_of
from vlmtui.wire.spec import ModelSpec
from vlmtui.worker.backends.base import Backend, GenerationStats, LoadInfo
from vlmtui.worker.frameworks import device_info
from vlmtui.worker.tree_peak import NO_PEAK


def backend_sample(backend: Backend) -> FrameworkSample | None:
    """The backend's framework memory, or else the RSS of the server it manages (if any)."""
    sample = backend.framework_memory()
    server_pid = backend.server_pid
    if sample is None and server_pid:
        rss = tree_rss(server_pid)
        if rss is not None:
            sample = FrameworkSample(framework="server-rss", device="server", guarded_bytes=rss)
    return sample


def framework_sample(loaded: Backend | None, loading: Backend | None) -> FrameworkSample | None:
    """The loaded backend's memory, else the loading one's: weights mid-load may sit where RSS is blind."""
    if loaded is not None:
        return backend_sample(loaded)
    if loading is None:
        return None
    # Mid-load the weights may already sit in device memory that RSS does not show (CUDA, Metal), so the
    # loading backend is asked too; but it is half set up, so a failure means "no sample", never the
    # sampler's warning and one-second pause.
    try:
        return backend_sample(loading)
    except Exception:
        return None


def loaded_message(spec: ModelSpec, backend: Backend, info: LoadInfo, load_s: float, *, capped: bool) -> p.Loaded:
    """What the parent hears of a finished load: device, notes, the device's memory, what it can be asked."""
    notes = list(info.notes)
    if capped and not backend.supports_memory_limit:
        notes.append(f"{spec.backend} has no hard memory cap here: the guard watches and aborts instead")
    try:
        devices = device_info(import_if_missing=False)
    except Exception:
        devices = {}
    capabilities = sorted(capabilities_of(info.model_type)) if info.model_type else []
    return p.Loaded(model_id=spec.id, load_s=load_s, device=info.device, dtype=info.dtype,
                    versions=info.versions, notes=notes, device_info=devices,
                    model_type=info.model_type, capabilities=capabilities)


def guarded_bytes(sample: p.Memory) -> int:
    """The figure the guard watches in a memory event: the framework's, else the worker's RSS."""
    if sample.framework:
        return int(sample.framework.get("guarded_bytes", 0))
    return sample.rss_bytes


def tree_rss(pid: int) -> int | None:
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


SAMPLED_PEAK_KINDS = {"mlx": "mlx-active+cache", "torch-cuda": "cuda-reserved", "torch-mps": "mps-driver",
                      "server-rss": "server-rss"}
"""What a sampled peak measured, by the framework sample it came from (``rss``: the worker's own RSS)."""


class CasePeak:
    """The largest guarded figure the sampler saw during one case, and what that figure measures."""

    def __init__(self) -> None:
        self.bytes = 0
        self.kind = "rss"

    def reset(self) -> None:
        """Start a new case."""
        self.bytes, self.kind = 0, "rss"

    def observe(self, framework: FrameworkSample | None, rss: int) -> None:
        """Take one sample: the framework's guarded figure where there is one, else the worker's RSS."""
        guarded = framework.guarded_bytes if framework else rss
        if guarded >= self.bytes:
            self.bytes = guarded
            self.kind = SAMPLED_PEAK_KINDS.get(framework.framework, framework.framework) if framework else "rss"


def _rate(tokens: int | None, seconds: float | None) -> float | None:
    return round(tokens / seconds, 2) if tokens and seconds and seconds > 0 else None


def case_metrics(
    stats: GenerationStats, times: list[float], gen_started: float, total_s: float, sampled_peak: CasePeak
) -> dict[str, Any]:
    """Per-case metrics, each measuring what its name says, or ``None`` when it cannot be known here.

    ``ttft_s``: generation start to the first *token* (the backend's clock; the first streamed chunk only
    when the backend keeps none: a detokenizer may hold text back, moondream2's until the end).
    ``gen_tps``: the decode rate, tokens after the first over the time after the first; never computed from
    the arrival times of a client's stream, which a server may deliver in one burst (``None`` for fewer than
    two tokens).
    ``e2e_tps``: generated tokens over the whole generate call (prefill, image, transfer included).
    ``peak_memory_bytes`` with ``peak_kind``: the backend's own peak and its kind, else the sampled one.
    """
    ttft = stats.ttft_s if stats.ttft_s is not None else times[0] - gen_started if times else None
    gen_s = (times[-1] if times else gen_started) - gen_started
    if ttft is not None and (ttft < 0 or ttft > total_s):
        ttft = None  # a first token outside the case cannot be right
    gen_tokens = stats.gen_tokens if stats.gen_tokens is not None else len(times)
    gen_tps = stats.gen_tps
    if gen_tps is None and stats.metrics_source != "client" and len(times) > 1 and gen_tokens == len(times):
        # An in-process backend that emits each token as it is made, and keeps no clock of its own.
        span = times[-1] - times[0]
        gen_tps = (len(times) - 1) / span if span > 0 else None
    if not gen_tokens or gen_tokens < 2:
        gen_tps = None  # a rate needs an interval: one token has none
    prompt_tps = stats.prompt_tps
    if prompt_tps is None and stats.prompt_tokens and ttft:
        prompt_tps = stats.prompt_tokens / ttft
    extra = dict(stats.extra)
    backend_kind = extra.pop("peak_kind", None)
    if stats.peak_memory_bytes:
        peak, kind = stats.peak_memory_bytes, str(backend_kind or "backend")
    elif backend_kind == NO_PEAK:
        peak, kind = None, None  # the model is in a server not ours: the worker's RSS would be the client's
    elif sampled_peak.bytes:
        peak, kind = sampled_peak.bytes, sampled_peak.kind
    else:
        peak, kind = None, None
    return {
        "ttft_s": round(ttft, 5) if ttft is not None else None,
        "prompt_tokens": stats.prompt_tokens,
        "gen_tokens": gen_tokens,
        "prompt_tps": round(prompt_tps, 2) if prompt_tps else None,
        "gen_tps": round(gen_tps, 2) if gen_tps else None,
        "e2e_tps": _rate(gen_tokens, gen_s) if times else None,
        "total_s": round(total_s, 5),
        "peak_memory_bytes": peak,
        "peak_kind": kind,
        **({"metrics_source": stats.metrics_source} if stats.metrics_source else {}),
        **extra,
    }


TOKEN_BATCH_S = 0.016
"""Streamed text is sent at most this often (about 60 times a second); the rest waits in a batch."""


class TokenStream:
    """A case's streamed text: kept whole with each chunk's time, and sent on in batches."""

    def __init__(self, send: Callable[[str], None], between_tokens: Callable[[], None]) -> None:
        self._send = send
        self._between_tokens = between_tokens
        self.parts: list[str] = []
        self.times: list[float] = []
        self._pending: list[str] = []
        self._last_sent = 0.0

    @property
    def text(self) -> str:
        """Everything generated so far."""
        return "".join(self.parts)

    def emit(self, text: str) -> None:
        """One chunk from the backend; an abort or cleanup waiting for this token acts here."""
        now = time.perf_counter()
        self.times.append(now)
        self.parts.append(text)
        self._pending.append(text)
        # One message per TOKEN_BATCH_S at most: a fast model would otherwise cost a write and a
        # parse per token for text no screen refreshes faster than this anyway.
        if now - self._last_sent >= TOKEN_BATCH_S:
            self._last_sent = now
            self.flush()
        self._between_tokens()

    def flush(self) -> None:
        """Send what waits in the batch."""
        if self._pending:
            self._send("".join(self._pending))
            self._pending.clear()
