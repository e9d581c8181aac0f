"""The session log: append-only JSONL, one object a line with an ``event`` field.

Written by a scheduler subscriber; flushed on every line and fsynced at each case boundary, so a
``kill -9`` loses at most the case that was running. Read back as typed records by
``vlmtui.reports.records.load_log`` (re-exported here) for resume, reruns, reports and comparisons.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import platformdirs

from vlmtui.engine.events import (
    CaseFinished,
    CaseStarted,
    DownloadFinished,
    DownloadProgress,
    Event,
    GuardEvent,
    MemoryUpdate,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    Notice,
    SessionFinished,
    SessionStarted,
    TurnFinished,
    WorkerExited,
)
from vlmtui.reports.records import load_log as load_log
from vlmtui.text import clean
from vlmtui.vocab import GuardLevel

SCHEMA_VERSION = 1


def default_log_path(suite_name: str) -> Path:
    """A new log file under the platform's user data directory."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in suite_name) or "session"
    base = Path(os.environ.get("VLMTUI_DATA_DIR") or platformdirs.user_data_dir("vlmtui"))
    return base / "sessions" / f"{stamp}-{safe}.jsonl"


class SessionLog:
    """A scheduler subscriber that appends every event worth keeping to a JSONL file."""

    def __init__(self, path: str | Path, *, memory_every_s: float = 1.0, idle_memory_every_s: float = 10.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torn = _ends_torn(self.path)
        self._file: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (lives as long as the run)
        if torn:
            # A kill -9 mid-write left half a line: end it, or the resumed session_start would be glued on.
            self._file.write("\n")
        self._memory_every_s = memory_every_s
        self._idle_memory_every_s = max(idle_memory_every_s, memory_every_s)
        """Between cases and loads (a finished queue left open for hours) one memory line per this many
        seconds, unless the guard's level is raised: 360 lines an hour instead of 3600."""
        self._busy = False
        self._last_memory = 0.0
        self._last_download = 0.0
        self.session_id = ""
        self._carried: list[dict[str, Any]] = []
        self._carried_from = ""

    def carry(self, results: Iterable[Mapping[str, Any]], source: str | Path) -> None:
        """Copy these finished results from the log at ``source`` in, right after this session's start.

        For ``--resume``/``--rerun-failed`` into another file: the cases not run again keep their
        result in the new log, marked ``carried_from``, so the new log alone reports the whole suite.
        """
        self._carried = [dict(r) for r in results]
        self._carried_from = str(source)

    def write(self, event: str, payload: dict[str, Any], *, sync: bool = False) -> None:
        """Append one line; ``sync`` also fsyncs it (case boundaries)."""
        record = {"event": event, "t": payload.pop("t", time.time()), "session_id": self.session_id, **payload}
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        try:
            self._file.write(line)
        except UnicodeEncodeError:
            # A lone surrogate (half an emoji from a streaming server) is not UTF-8: keep the line, not the half.
            self._file.write(clean(line))
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())

    def __call__(self, event: Event) -> None:
        if isinstance(event, SessionStarted):
            self.session_id = event.session_id
            self.write("session_start", {"schema_version": SCHEMA_VERSION, **asdict(event)}, sync=True)
            for i, result in enumerate(self._carried, 1):
                payload = {k: v for k, v in result.items() if k not in ("event", "session_id", "carried_from")}
                self.write("case_end", {**payload, "carried_from": self._carried_from},
                           sync=i == len(self._carried))
        elif isinstance(event, CaseStarted):
            self._busy = True
            self.write("case_start", asdict(event))  # flushed; only a case's end is worth an fsync
        elif isinstance(event, CaseFinished):
            self._busy = False
            self.write("case_end", {"t": event.result.ended_at, **event.result.to_dict()}, sync=True)
        elif isinstance(event, MemoryUpdate):
            quiet = not self._busy and event.level == GuardLevel.OK
            if event.t - self._last_memory >= (self._idle_memory_every_s if quiet else self._memory_every_s):
                self._last_memory = event.t
                self.write("memory", event.to_dict())
        elif isinstance(event, TurnFinished):  # a conversation's turn, kept should the session die before case_end
            self.write("turn_end", asdict(event))
        elif isinstance(event, GuardEvent):
            self.write("guard", asdict(event), sync=True)
        elif isinstance(event, ModelLoading):
            self._busy = True
            self.write("model_load", asdict(event))
        elif isinstance(event, ModelLoaded):
            self._busy = False
            self.write("model_loaded", asdict(event))
        elif isinstance(event, ModelLoadFailed):
            self._busy = False
            self.write("model_load_failed", asdict(event), sync=True)
        elif isinstance(event, WorkerExited):
            self.write("worker_exit", asdict(event), sync=True)
        elif isinstance(event, DownloadProgress):
            # At most one line a second (the hub helper reports 4): enough to see a slow link from a hang.
            if event.t - self._last_download >= self._memory_every_s or event.downloaded == 0:
                self._last_download = event.t
                self.write("download_progress", asdict(event))
        elif isinstance(event, DownloadFinished):
            self.write("download", asdict(event), sync=True)
        elif isinstance(event, Notice):
            self.write("notice", asdict(event))
        elif isinstance(event, SessionFinished):
            self.write("session_end", asdict(event), sync=True)

    def close(self) -> None:
        """Flush and close the file."""
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


def _ends_torn(path: Path) -> bool:
    """Whether a non-empty file's last byte is not a newline."""
    try:
        with open(path, "rb") as existing:
            existing.seek(-1, os.SEEK_END)
            return existing.read(1) != b"\n"
    except OSError:  # missing, or empty (cannot seek before the start)
        return False
