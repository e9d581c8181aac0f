"""A hub model resolved and fetched before its load, in a short-lived helper process (issue 18).

``python -m vlmtui.worker.hub`` reads one request (a JSON line: repo, revision, backend, options) on stdin,
resolves the repo with huggingface_hub (the revision's commit and each needed file's size: one
``model_info`` request; the cache alone when ``HF_HUB_OFFLINE`` is set), prints ``{"resolved": …}`` and
waits: a ``fetch`` line downloads what is missing with ``{"progress": …}`` lines and ends with
``{"done": …}``; anything else (or EOF) ends it without a byte fetched. Any failure is one
``{"error": "<one line>"}``. The engine (engine/downloads.py) runs the fit check between the two steps, so
a model that cannot fit is skipped before its download; huggingface_hub reads HF_ENDPOINT, HF_HOME,
HF_HUB_OFFLINE and the token at import, which a fresh process per model honours as the user set them.

SIGTERM (the user's stop) and SIGINT end the download between two chunks: huggingface_hub removes its
partial ``.incomplete`` file on the way out (file_download._download_to_tmp_and_move, 1.x-2.x).
"""

from __future__ import annotations

import errno
import fnmatch
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from vlmtui.memory.preflight import hub_cache_dir, select_weights
from vlmtui.units import format_bytes
from vlmtui.wire.source import ModelSource

SIDE_FILES = ("*.json", "*.jsonl", "*.model", "*.tiktoken", "*.txt", "*.jinja")
"""Config, processor and tokenizer files every backend reads beside the weights (mlx_vlm.utils.get_model_path
0.7.10 fetches these; transformers' processors read the same names)."""
PROGRESS_EVERY_S = 0.25
"""How often a download reports its bytes: 4 lines a second is smooth on screen and small in the log."""
FETCH_HINT = "download it once online (vlmtui run --download-only SUITE, or unset HF_HUB_OFFLINE)"
"""What to do about a hub model missing from the cache while the hub may not be contacted."""
DOWNLOAD_CHUNK_BYTES = 256 * 1024
"""Bytes read per step of a plain HTTP download (a xet-backed file reports through hf_xet's own callbacks)."""
STALL_REPORT_S = 1.0
"""With no byte arriving, a report still goes out this often: the rate falls towards 0 and the ETA grows, so a
stalled link looks stalled on screen instead of frozen at its last good figures."""
RATE_WINDOW_S = 5.0
"""The rate (and so the ETA) is over the last few seconds, not since the start: a link that slows down or a
stall shows within seconds rather than being averaged away over a 5 GB download."""
PREFERRED_QUANT = "Q4_K_M"
"""The GGUF quantisation llama-server's ``-hf`` picks when the repo has it, so sizes match what it loads."""


@dataclass(frozen=True)
class HubFile:
    """One file a backend needs from the repo: its size (None when the hub did not say) and whether it is cached."""

    name: str
    size: int | None
    cached: bool


@dataclass(frozen=True)
class HubPlan:
    """A repo resolved: the commit, the files the backend needs, and how much of that is still to fetch."""

    repo: str
    revision: str
    commit: str
    files: tuple[HubFile, ...]
    weights: dict[str, int]
    """The weight files among ``files`` and their sizes (the preflight's estimate reads these)."""
    offline: bool
    """Resolved from the cache alone (HF_HUB_OFFLINE)."""

    @property
    def total_bytes(self) -> int:
        """All the needed files' bytes."""
        return sum(f.size or 0 for f in self.files)

    @property
    def missing_bytes(self) -> int:
        """Bytes still to download."""
        return sum(f.size or 0 for f in self.files if not f.cached)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form sent to the engine."""
        return {**asdict(self), "total_bytes": self.total_bytes, "missing_bytes": self.missing_bytes}


class HubError(Exception):
    """A resolve or download that failed, as the one line a user reads."""


# ----------------------------------------------------------------------------- which files a backend needs


def needed_files(sizes: Mapping[str, int], backend: str, options: Mapping[str, Any],
                 trust_remote_code: bool = False) -> tuple[list[str], dict[str, int]]:
    """The repo files ``backend`` loads, and the weight files among them, from the repo's ``name → size``."""
    top = {n: s for n, s in sizes.items() if "/" not in n}
    if backend == "openai":  # llama.cpp: one GGUF quantisation and one vision projector
        weights = _gguf_pair(top, options)
        return sorted(weights), weights
    weights, _ = select_weights(top, {})
    patterns = [*SIDE_FILES, *(["*.py"] if trust_remote_code or backend == "mlx-vlm" else [])]
    side = [n for n in sizes if _side_file(n, patterns)]
    return sorted({*side, *weights}), weights


def _side_file(name: str, patterns: list[str]) -> bool:
    folder, _, base = name.rpartition("/")
    if folder not in ("", "additional_chat_templates"):
        return False
    return any(fnmatch.fnmatch(base, p) for p in patterns)


def _gguf_pair(top: Mapping[str, int], options: Mapping[str, Any]) -> dict[str, int]:
    ggufs = {n: s for n, s in top.items() if n.lower().endswith(".gguf")}
    proj = {n: s for n, s in ggufs.items() if "mmproj" in n.lower()}
    main = {n: s for n, s in ggufs.items() if n not in proj}
    chosen: dict[str, int] = {}
    for group, option in ((main, "model_file"), (proj, "mmproj")):
        wanted = str(options.get(option) or "")
        if wanted in group:
            chosen[wanted] = group[wanted]
        elif group:
            preferred = [n for n in sorted(group) if PREFERRED_QUANT.lower() in n.lower()]
            name = preferred[0] if preferred else min(group, key=lambda n: group[n])
            chosen[name] = group[name]
    return chosen


# ----------------------------------------------------------------------------- resolve


def resolve(source: ModelSource, backend: str, options: Mapping[str, Any] | None = None,
            trust_remote_code: bool = False, timeout_s: float = 20.0) -> HubPlan:
    """The commit and needed files of a hub repo: from the hub, or from the cache alone when offline."""
    from huggingface_hub import HfApi, constants, try_to_load_from_cache

    repo, revision = source.name, source.revision or "main"
    if constants.HF_HUB_OFFLINE:
        return _resolve_offline(source, backend, options or {}, trust_remote_code)
    try:
        info = HfApi().model_info(repo, revision=revision, files_metadata=True, timeout=timeout_s)
    except Exception as exc:
        raise HubError(describe_failure(repo, revision, exc)) from None
    sizes = {s.rfilename: int(s.size or 0) for s in (info.siblings or [])}
    names, weights = needed_files(sizes, backend, options or {}, trust_remote_code)
    if not weights:
        raise HubError(f"{repo}@{revision} has no weights {backend} can load "
                       f"({len(sizes)} files; expected .safetensors, .bin or .gguf)")
    commit = str(info.sha or revision)
    files = tuple(
        HubFile(n, sizes.get(n), isinstance(try_to_load_from_cache(repo, n, revision=commit), str)) for n in names
    )
    return HubPlan(repo, revision, commit, files, weights, offline=False)


def _resolve_offline(source: ModelSource, backend: str, options: Mapping[str, Any],
                     trust_remote_code: bool) -> HubPlan:
    repo, revision = source.name, source.revision or "main"
    storage = hub_cache_dir() / ("models--" + repo.replace("/", "--"))
    ref = storage / "refs" / revision
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else revision
    snapshot = storage / "snapshots" / commit
    if not snapshot.is_dir():
        raise HubError(f"{repo} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; {FETCH_HINT}")
    sizes = {str(p.relative_to(snapshot)): p.stat().st_size for p in snapshot.rglob("*") if p.is_file()}
    names, weights = needed_files(sizes, backend, options, trust_remote_code)
    if not weights:
        raise HubError(f"{repo} has no weights in the Hugging Face cache and HF_HUB_OFFLINE is set; {FETCH_HINT}")
    return HubPlan(repo, revision, commit, tuple(HubFile(n, sizes[n], True) for n in names), weights, offline=True)


def describe_failure(repo: str, revision: str, exc: BaseException) -> str:
    """One line for a hub failure: the hub's own status and reason, a disk that filled, or no connection."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RevisionNotFoundError

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG):
        cache = hub_cache_dir()
        free = shutil.disk_usage(_existing(cache)).free
        return (f"cannot write {repo} into {cache}: {exc.strerror} ({format_bytes(free)} free there); "
                "the partial file was removed")
    if isinstance(exc, RevisionNotFoundError):
        return f"revision {revision!r} not found in {repo} on the hub"
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        reason = exc.server_message or exc.response.reason_phrase or "no reason given"
        hint = {401: "log in (hf auth login) or set HF_TOKEN", 403: "accept its licence on the hub, then log in",
                404: "check the repo id"}.get(status, "")
        return f"the hub refused {repo} ({status}): {_one_line(reason)}" + (f"; {hint}" if hint else "")
    if isinstance(exc, OfflineModeIsEnabled):
        return f"{repo} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; {FETCH_HINT}"
    reason = _one_line(str(exc)) or type(exc).__name__
    return f"cannot reach the hub for {repo}: {reason}; set HF_HUB_OFFLINE=1 to use the cache only"


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# ----------------------------------------------------------------------------- download


class ProgressReport:
    """Bytes fetched so far across a plan's files, reported at most every ``PROGRESS_EVERY_S``."""

    def __init__(self, total: int, send: Callable[[dict[str, Any]], None]) -> None:
        self.total = total
        self.downloaded = 0
        self._send = send
        self._last = 0.0
        self._window: deque[tuple[float, int]] = deque([(time.monotonic(), 0)])
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        """``n`` more bytes arrived (negative when huggingface_hub restarts a file the server would not resume)."""
        self.downloaded += n
        self.tick(PROGRESS_EVERY_S)

    def tick(self, every_s: float) -> None:
        """Report if the last report is ``every_s`` old: from each chunk, and from a clock so a stall shows."""
        if time.monotonic() - self._last >= every_s:
            self.send()

    def send(self) -> None:
        """Report now: bytes, total, the rate over the last ``RATE_WINDOW_S`` and the time left at that rate."""
        with self._lock:  # the chunks' thread and the clock's
            now = self._last = time.monotonic()
            self._window.append((now, self.downloaded))
            while len(self._window) > 2 and now - self._window[1][0] >= RATE_WINDOW_S:
                self._window.popleft()
            then, before = self._window[0]
            rate = (self.downloaded - before) / (now - then) if now > then and self.downloaded > before else 0.0
            eta = max(self.total - self.downloaded, 0) / rate if rate else None
            self._send({"progress": {"downloaded": self.downloaded, "total": self.total or None,
                                     "rate_bps": rate, "eta_s": eta}})


def progress_bar_class(report: ProgressReport) -> type:
    """A tqdm stand-in for huggingface_hub's ``tqdm_class`` hook that adds each chunk to ``report``.

    It counts bytes written (``update``), never network bytes (``update_transfer``): having that method makes a
    xet download (hf_xet, utils/_xet_progress_reporting.py 2.x) route both figures through one bar instead of
    making a second bar whose ``update`` would count the same file twice.
    """

    class HubProgress:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.total = kwargs.get("total")
            self.n = int(kwargs.get("initial") or 0)
            report.total -= self.n  # a resumed file: these bytes were fetched earlier

        def update_transfer(self, n: float | None = 1) -> None:
            return None

        def set_transfer_postfix_str(self, *args: Any, **kwargs: Any) -> None:
            return None

        def refresh(self) -> None:
            return None

        def __enter__(self) -> HubProgress:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def update(self, n: float | None = 1) -> None:
            self.n += int(n or 0)
            report.add(int(n or 0))

        def close(self) -> None:
            return None

        def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
            return None

    return HubProgress


def download(plan: HubPlan, send: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Fetch the plan's missing files one after another; the ``done`` summary (bytes, seconds, from cache)."""
    from huggingface_hub import constants, hf_hub_download

    # huggingface_hub reads DOWNLOAD_CHUNK_SIZE (10 MiB, 1.x-2.x) before each progress update and each resume
    # point: at 1 MB/s one update per 10 s, which the stall clock would call stalled. 256 KiB: ~4 a second.
    constants.DOWNLOAD_CHUNK_SIZE = DOWNLOAD_CHUNK_BYTES
    missing = [f for f in plan.files if not f.cached]
    report = ProgressReport(plan.missing_bytes, send)
    bar = progress_bar_class(report)
    started = time.monotonic()
    finished = threading.Event()
    threading.Thread(target=_report_stalls, args=(report, finished), name="progress-clock", daemon=True).start()
    try:
        for hub_file in missing:
            try:
                hf_hub_download(plan.repo, hub_file.name, revision=plan.commit, tqdm_class=bar)
            except Exception as exc:
                raise HubError(describe_failure(plan.repo, plan.revision, exc)) from None
    finally:
        finished.set()
    _remember_revision(plan)
    if missing:
        report.send()
    return {"downloaded": report.downloaded, "seconds": round(time.monotonic() - started, 3),
            "from_cache": not missing}


def _report_stalls(report: ProgressReport, finished: threading.Event) -> None:
    while not finished.wait(STALL_REPORT_S):
        report.tick(STALL_REPORT_S)


def _remember_revision(plan: HubPlan) -> None:
    """Write ``refs/<revision>`` as a download by branch does, so a load by repo id finds the snapshot offline."""
    if plan.revision == plan.commit:
        return
    ref = hub_cache_dir() / ("models--" + plan.repo.replace("/", "--")) / "refs" / plan.revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    if not ref.is_file() or ref.read_text(encoding="utf-8").strip() != plan.commit:
        ref.write_text(plan.commit, encoding="utf-8")


# ----------------------------------------------------------------------------- the helper process


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _stop_when_orphaned() -> None:
    """The engine keeps our stdin open while we download: its end (the vlmtui process died, even by kill -9)
    stops the download as SIGTERM does, rather than leaving an orphan fetching gigabytes for no one."""
    sys.stdin.read()
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> int:
    """Resolve one request from stdin, then fetch it when told to; 0 when all went well."""
    signal.signal(signal.SIGTERM, _stop)
    try:
        request = json.loads(sys.stdin.readline() or "{}")
        source = ModelSource("hub", request["repo"], request.get("revision"))
        plan = resolve(source, request["backend"], request.get("options") or {},
                       bool(request.get("trust_remote_code")))
        _send({"resolved": plan.to_dict()})
        if sys.stdin.readline().strip() != "fetch":
            return 0
        threading.Thread(target=_stop_when_orphaned, name="orphan-watch", daemon=True).start()
        _send({"done": download(plan, _send)})
        return 0
    except HubError as exc:
        _send({"error": str(exc)})
    except KeyboardInterrupt:
        _send({"error": "stopped"})
    return 1


if __name__ == "__main__":
    sys.exit(main())
