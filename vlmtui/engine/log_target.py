"""Which file a session log may be written to: never a file that is not this suite's log.

``--log victim.toml`` once appended JSON lines to a suite file, and ``--log`` on another suite's log mixed
two sessions in one file (its report then took the newer suite's name). A log goes only to

- a new file (or an empty one);
- a directory: a new file in it, named as the default log is;
- a vlmtui log of the same suite: the suite name and the plan (its case ids, hashed) of the file's latest
  ``session_start`` are this session's (a resume, a rerun, the same suite run again into its own log);
- anything, with ``--force``.

Anything else is one line (``LogTargetError``) and exit 2 before a worker starts.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from pathlib import Path

from vlmtui.reports.records import LogError, load_log
from vlmtui.text import plural


class LogTargetError(LogError):
    """A log path this session may not write to; ``str()`` is one line naming the way out."""


def plan_hash(case_ids: Iterable[str]) -> str:
    """A short digest of a plan's case ids, order left out (a resume plans the same cases in another order)."""
    digest = hashlib.sha256("\n".join(sorted(case_ids)).encode("utf-8"))
    return digest.hexdigest()[:16]


def new_log_name(suite_name: str) -> str:
    """``20261201-231500-<suite>.jsonl``: the default log's file name."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in suite_name) or "session"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}.jsonl"


def log_target(path: str | Path, *, suite_name: str, case_ids: Iterable[str], force: bool = False) -> Path:
    """The file to append this session to, given what the user named; ``LogTargetError`` when it may not be.

    ``suite_name`` and ``case_ids`` are this session's; a log of the same suite must hold the same plan.
    """
    target = Path(path)
    if target.is_dir() or (str(path).endswith(("/", os.sep)) and not target.exists()):
        return _new_in(target, suite_name)
    if not target.exists() or force:
        return target
    if not target.is_file():
        raise LogTargetError(f"--log {path}: not a regular file; name a new file or a directory (or --force)")
    if target.stat().st_size == 0:
        return target
    why = _why_not_ours(target, suite_name, plan_hash(case_ids))
    if why is not None:
        raise LogTargetError(f"--log {path}: {why}; name a new file or a directory, or add --force to append "
                             "anyway")
    return target


def _new_in(directory: Path, suite_name: str) -> Path:
    """A file in ``directory`` no earlier session has used (a second run within the same second gets ``-2``)."""
    name = new_log_name(suite_name)
    candidate = directory / name
    stem = candidate.stem
    n = 2
    while candidate.exists():
        candidate = directory / f"{stem}-{n}.jsonl"
        n += 1
    return candidate


def _why_not_ours(path: Path, suite_name: str, expected_plan: str) -> str | None:
    """Why the existing file at ``path`` is not this suite's log, or ``None`` when it is."""
    try:
        records = load_log(path)
    except LogError:
        return "the file exists and is not a vlmtui session log"
    start = records.starts[-1]
    if start.suite != suite_name:
        return f"it is the log of another suite ({start.suite!r}, this is {suite_name!r})"
    logged_plan = plan_hash(case.case_id for case in start.cases)
    if logged_plan != expected_plan:
        n = len(start.cases)
        return (f"it is a log of {suite_name!r} with another plan ({plural(n, 'case')}; the suite or "
                "--only/--skip changed since)")
    return None
