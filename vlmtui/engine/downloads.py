"""A hub model's files, fetched before its load: resolve, fit check, download with progress (issue 18).

The hub is asked by a short-lived helper (``python -m vlmtui.worker.hub``), never by this process: it
resolves the repo (commit, needed files, sizes, what is cached), this module runs the preflight on those
sizes — a model that cannot fit is skipped before a byte is fetched — and tells the helper to fetch what is
missing. Its progress lines become ``DownloadProgress`` events and its end a ``DownloadFinished``; the
download's seconds go into each of the model's case metrics as ``download_s``, apart from ``load_s``.
``cancel`` (the user's stop, Ctrl-C or ``q``) ends the helper, which removes its partial file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vlmtui.engine.events import DownloadFinished, DownloadProgress, Event, Notice
from vlmtui.memory.preflight import FootprintEstimate, check_fit
from vlmtui.plugins import BackendNotFound, find_backend
from vlmtui.units import format_bytes
from vlmtui.vocab import CaseStatus
from vlmtui.wire.spec import ModelSpec

HELPER_ARGV = (sys.executable, "-m", "vlmtui.worker.hub")
FETCHED_BY_WORKER = ("transformers", "mlx-vlm")
"""Backends whose worker loads a hub repo from the Hugging Face cache; a server (llama.cpp's ``-hf``) fetches
into its own cache, so only its sizes are reported (doctor), not fetched here."""


@dataclass(frozen=True)
class Prepared:
    """What came of preparing a model's files: nothing to say (go on and load), a skip, or a failure."""

    skip_reason: str | None = None
    error: str | None = None
    status: CaseStatus = CaseStatus.FAILED
    """How the model's cases end when ``error`` is set: ``failed``, or ``aborted`` when the user stopped it."""
    download_s: float | None = None


@dataclass
class Resolved:
    """The helper's answer for one model: the plan as a dict (``HubPlan.to_dict``), or one line of error."""

    plan: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def estimate(self) -> FootprintEstimate:
        """The preflight's estimate from the hub's sizes of the weight files."""
        plan = self.plan
        return FootprintEstimate.from_weights(dict(plan["weights"]), "hub metadata",
                                              f"{plan['repo']}@{plan['revision']}")


def hub_download_applies(model: ModelSpec) -> bool:
    """A hub repo that this backend's worker loads from the Hugging Face cache."""
    if not model.source.is_hub or model.backend not in FETCHED_BY_WORKER:
        return False
    try:
        return find_backend(model.backend).preflight
    except BackendNotFound:
        return False


class HubHelper:
    """One helper process: send the request, read its JSON lines, tell it to fetch, end it."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None) -> None:
        self._argv = list(argv)
        self._env = env
        self.process: asyncio.subprocess.Process | None = None
        self._stderr: deque[str] = deque(maxlen=8)
        self._drain: asyncio.Task[None] | None = None

    async def start(self, model: ModelSpec) -> None:
        """Start the helper and send it the model's request."""
        self.process = await asyncio.create_subprocess_exec(
            *self._argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self._env, start_new_session=True,
            limit=4 * 1024 * 1024,  # a repo of many files is one long "resolved" line
        )
        self._drain = asyncio.create_task(self._read_stderr())
        self.send(json.dumps({"repo": model.source.name, "revision": model.source.revision,
                              "backend": model.backend, "options": model.options,
                              "trust_remote_code": model.trust_remote_code}))

    def send(self, line: str) -> None:
        """One line to the helper's stdin (ignored once it has gone)."""
        if self.process is not None and self.process.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self.process.stdin.write(line.encode() + b"\n")

    async def message(self) -> dict[str, Any]:
        """The helper's next message; ``{"error": …}`` naming its exit when it ends without one."""
        assert self.process is not None and self.process.stdout is not None
        while True:
            raw = await self.process.stdout.readline()
            if not raw:
                code = await self.process.wait()
                if self._drain is not None:
                    await self._drain
                tail = self._stderr[-1] if self._stderr else "no output"
                return {"error": f"the hub helper exited with code {code}: {tail}", "exited": True}
            with contextlib.suppress(ValueError):
                decoded: dict[str, Any] = json.loads(raw)
                return decoded

    async def close(self) -> None:
        """Close its stdin (it exits without fetching) and wait for it."""
        if self.process is None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            await self.process.wait()
        if self._drain is not None:
            await self._drain

    def terminate(self) -> None:
        """SIGTERM: the helper stops between two chunks and removes its partial file."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()

    async def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").strip()
            if line:
                self._stderr.append(line)


class Downloads:
    """Prepares hub models' files before their load, one at a time, and remembers each one's download time."""

    def __init__(self, emit: Callable[[Event], None], env: dict[str, str] | None = None,
                 argv: Sequence[str] | None = None) -> None:
        self._emit = emit
        self._env = env
        self._argv = tuple(argv or HELPER_ARGV)
        self._helper: HubHelper | None = None
        self._stopped: str | None = None
        self.download_s: dict[str, float] = {}
        """Seconds each model's download took (0 when its files were cached), by model id."""

    def cancel(self, reason: str) -> bool:
        """Stop the download in flight (the user's stop); False when none runs."""
        if self._helper is None:
            return False
        self._stopped = reason
        self._helper.terminate()
        return True

    def stamp(self, model_id: str, metrics: dict[str, Any]) -> None:
        """Add the model's ``download_s`` to a case's metrics (hub models only)."""
        if model_id in self.download_s:
            metrics.setdefault("download_s", self.download_s[model_id])

    async def resolve(self, model: ModelSpec) -> Resolved:
        """The repo resolved by a helper that then exits without fetching (doctor's cache report)."""
        helper = HubHelper(self._argv, self._env)
        await helper.start(model)
        try:
            answer = await helper.message()
        finally:
            await helper.close()
        return Resolved(answer["resolved"]) if "resolved" in answer else Resolved(error=str(answer.get("error")))

    async def prepare(self, model: ModelSpec, budget_bytes: int) -> Prepared:
        """Resolve, check the fit on the hub's sizes, and fetch what is missing (no-op for other models)."""
        if not hub_download_applies(model):
            return Prepared()
        # A model loaded again (after another, or a rerun): its files are here. Asking again would cost a helper,
        # 1.4-2.3 s measured on a loaded 2-core box (its Python and huggingface_hub imports, one model_info).
        if model.id in self.download_s:
            return Prepared(download_s=self.download_s[model.id])
        self._stopped = None
        helper = self._helper = HubHelper(self._argv, self._env)
        try:
            await helper.start(model)
            answer = await helper.message()
            if "resolved" not in answer:
                return self._failed(model, str(answer.get("error")), 0, 0.0)
            resolved = Resolved(answer["resolved"])
            verdict = check_fit(resolved.estimate, budget_bytes, 0)
            if not verdict.fits and not model.force:
                return Prepared(skip_reason=f"skipped by preflight: {verdict.reason}; "
                                            "force = true downloads and loads anyway")
            return await self._fetch(model, helper, resolved.plan)
        finally:
            self._helper = None
            helper.terminate()
            await helper.close()

    async def _fetch(self, model: ModelSpec, helper: HubHelper, plan: dict[str, Any]) -> Prepared:
        missing, total = int(plan["missing_bytes"]), int(plan["total_bytes"])
        cached = sum(1 for f in plan["files"] if f["cached"])
        if missing == 0:
            self._emit(DownloadFinished(model.id, 0, 0.0, from_cache=True))
            self.download_s[model.id] = 0.0
            return Prepared(download_s=0.0)
        self._emit(Notice("info", f"{model.id}: downloading {format_bytes(missing)} of {format_bytes(total)} "
                                  f"from the hub ({cached} of {len(plan['files'])} files cached)"))
        self._emit(DownloadProgress(model.id, 0, missing, None, None))
        started, downloaded = time.monotonic(), 0
        helper.send("fetch")
        while True:
            answer = await helper.message()
            if "progress" in answer:
                step = answer["progress"]
                downloaded = int(step["downloaded"])
                self._emit(DownloadProgress(model.id, downloaded, step.get("total"), step.get("rate_bps"),
                                            step.get("eta_s")))
            elif "done" in answer:
                done = answer["done"]
                seconds = round(time.monotonic() - started, 3)
                self._emit(DownloadFinished(model.id, int(done["downloaded"]), seconds, from_cache=False))
                self.download_s[model.id] = seconds
                return Prepared(download_s=seconds)
            else:
                return self._failed(model, str(answer.get("error")), downloaded, time.monotonic() - started)

    def _failed(self, model: ModelSpec, error: str, downloaded: int, seconds: float) -> Prepared:
        status = CaseStatus.FAILED
        if self._stopped is not None:
            error, status = f"the download of {model.id} was stopped: {self._stopped}", CaseStatus.ABORTED
        self._emit(DownloadFinished(model.id, downloaded, round(seconds, 3), from_cache=False, error=error))
        return Prepared(error=error, status=status)

