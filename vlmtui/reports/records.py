"""A session log read back as typed records: one frozen dataclass per line, grouped by event.

The writer is ``engine.session_log.SessionLog``; docs/log-format.md describes the lines. Reading is
forgiving: a torn last line (kill -9 mid-write) or any line that is not a JSON object is counted and
skipped, lines from older schemas are brought up to the current one, and a field of the wrong type
reads as unknown (``None``, ``""``) rather than failing. Each record is also a read-only mapping of
its JSON line (``record["status"]``): resume copies lines verbatim, and scripts that read lines by
key keep working.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmtui.reports.case_scores import JUDGE_KIND, CaseScores, Judging
from vlmtui.reports.metrics import Metrics as Metrics
from vlmtui.reports.metrics import measured as measured
from vlmtui.reports.metrics import number as number
from vlmtui.reports.metrics import text as _text
from vlmtui.reports.metrics import whole as whole
from vlmtui.reports.turns import Turn, read_turns
from vlmtui.vocab import THRESHOLD_LEVELS, CaseStatus

if TYPE_CHECKING:
    from vlmtui.engine.events import CaseResult


class LogError(Exception):
    """A log that cannot be read; ``str()`` is one line."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, kw_only=True)
class LogLine(Mapping[str, Any]):
    """One line of the log: typed fields in subclasses, the JSON object itself in ``line``."""

    line: Mapping[str, Any] = field(repr=False, compare=False)
    t: float | None = None
    """When it happened (Unix seconds)."""

    def __getitem__(self, key: str) -> Any:
        return self.line[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.line)

    def __len__(self) -> int:
        return len(self.line)


@dataclass(frozen=True)
class PlannedCase:
    """One case a ``session_start`` planned."""

    case_id: str
    model: str = ""
    backend: str = ""
    image: str | None = None
    prompt: str = ""
    kind: str = ""
    warmup: bool = False

    @classmethod
    def from_line(cls, line: Mapping[str, Any]) -> PlannedCase:
        """The planned case of one entry of ``cases``."""
        image = line.get("image")
        return cls(str(line["case_id"]), _text(line.get("model")), _text(line.get("backend")),
                   None if image is None else str(image), _text(line.get("prompt")), _text(line.get("kind")),
                   bool(line.get("warmup")))


@dataclass(frozen=True, kw_only=True)
class SessionStart(LogLine):
    """A run began (a resumed run adds another): suite, machine, budget, guard thresholds, the plan."""

    session_id: str
    schema_version: int
    suite: str
    suite_path: str
    info: Mapping[str, Any]
    """Machine, versions, budget and guard settings, as logged."""
    budget_bytes: int | None
    budget_source: str
    thresholds: dict[str, float]
    """The guard's ``warn``, ``cleanup`` and ``abort`` in percent of the budget (those logged)."""
    cases: tuple[PlannedCase, ...]

    @classmethod
    def from_line(cls, line: Mapping[str, Any]) -> SessionStart:
        """The record of a ``session_start`` line."""
        info = _mapping(line.get("info"))
        budget = info.get("budget_bytes")
        guard = _mapping(info.get("guard"))
        thresholds = {str(k): float(guard[k]) for k in THRESHOLD_LEVELS if number(guard.get(k)) is not None}
        cases = tuple(PlannedCase.from_line(c) for c in line.get("cases") or [] if isinstance(c, dict)
                      and "case_id" in c)
        version = line.get("schema_version", 0)
        return cls(line=line, t=number(line.get("t")), session_id=_text(line.get("session_id")),
                   schema_version=version if isinstance(version, int) else 0, suite=_text(line.get("suite")),
                   suite_path=_text(line.get("suite_path")), info=info,
                   budget_bytes=budget if isinstance(budget, int) else None,
                   budget_source=_text(info.get("budget_source")), thresholds=thresholds, cases=cases)


@dataclass(frozen=True, kw_only=True)
class CaseStart(LogLine):
    """A case was sent to the worker."""

    case_id: str
    attempt: int
    model: str

    @classmethod
    def from_line(cls, line: Mapping[str, Any]) -> CaseStart:
        """The record of a ``case_start`` line."""
        return cls(line=line, t=number(line.get("t")), case_id=str(line["case_id"]),
                   attempt=whole(line.get("attempt")) or 1, model=_text(line.get("model")))


@dataclass(frozen=True, kw_only=True)
class CaseEnd(LogLine):
    """The end of one attempt at one case: its status, output, error, metrics and (a dataset case) scores."""

    case_id: str
    attempt: int
    model: str
    backend: str
    image: str | None
    prompt: str
    kind: str
    status: CaseStatus
    error: str
    output: str
    metrics: Metrics
    started_at: float | None
    ended_at: float | None
    warmup: bool
    carried_from: str | None
    """The log this result was copied from (``--rerun-failed LOG --log NEW``), else None."""
    scoring: CaseScores = field(default_factory=CaseScores)
    """A dataset case's scores, references and item (empty otherwise)."""
    judging: Judging | None = None
    """A judge case: the case whose answer it graded."""
    turns: tuple[Turn, ...] = ()
    """A conversation's turns in order (reports/turns.py); empty for every other kind of case."""

    @property
    def is_judge(self) -> bool:
        """A judge model's case: its scores grade another case's answer, not its own."""
        return self.kind == JUDGE_KIND or self.judging is not None

    @classmethod
    def from_line(cls, line: Mapping[str, Any]) -> CaseEnd:
        """The record of a ``case_end`` line."""
        image = line.get("image")
        carried = line.get("carried_from")
        return cls(line=line, t=number(line.get("t")), case_id=str(line["case_id"]),
                   attempt=whole(line.get("attempt")) or 1, model=_text(line.get("model")),
                   backend=_text(line.get("backend")), image=None if image is None else str(image),
                   prompt=_text(line.get("prompt")), kind=_text(line.get("kind")),
                   status=CaseStatus.parse(line.get("status")), error=_text(line.get("error")),
                   output=_text(line.get("output")), metrics=Metrics.from_dict(_mapping(line.get("metrics"))),
                   started_at=number(line.get("started_at")), ended_at=number(line.get("ended_at")),
                   warmup=bool(line.get("warmup")), carried_from=None if carried is None else str(carried),
                   scoring=CaseScores.from_line(line), judging=Judging.from_line(line),
                   turns=read_turns(line.get("turns")))

    @classmethod
    def from_result(cls, result: CaseResult) -> CaseEnd:
        """The record the log will hold for a live result."""
        return cls.from_line({"event": "case_end", "t": result.ended_at, **result.to_dict()})


@dataclass(frozen=True, kw_only=True)
class MemorySample(LogLine):
    """One memory sample (at most one a second is logged): the guarded bytes, system use and the budget."""

    guarded_bytes: int | None
    """The worker's guarded memory; None while no worker ran."""
    system_used: int | None
    budget_bytes: int | None
    level: str

    @classmethod
    def from_line(cls, line: Mapping[str, Any]) -> MemorySample:
        """The record of a ``memory`` line (its ``telemetry`` is read where drawn: reports/chart.py)."""
        budget = line.get("budget_bytes")
        return cls(line=line, t=number(line.get("t")), guarded_bytes=whole(line.get("guarded_bytes")),
                   system_used=whole(_mapping(line.get("system")).get("used")),
                   budget_bytes=budget if isinstance(budget, int) else None, level=_text(line.get("level")))


@dataclass(frozen=True, kw_only=True)
class GuardRecord(LogLine):
    """The guard changed level or acted."""

    level: str
    previous: str
    action: str
    reason: str
    case_id: str | None
    freed_bytes: int | None

    @classmethod
    def from_line(cls, line: Mapping[str, Any]) -> GuardRecord:
        """The record of a ``guard`` line."""
        case_id = line.get("case_id")
        return cls(line=line, t=number(line.get("t")), level=_text(line.get("level")),
                   previous=_text(line.get("previous")), action=_text(line.get("action")),
                   reason=_text(line.get("reason")), case_id=None if case_id is None else str(case_id),
                   freed_bytes=whole(line.get("freed_bytes")))


@dataclass(frozen=True, kw_only=True)
class ModelLoad(LogLine):
    """A model loaded (device, dtype, versions, notes) or failed to (``error``)."""

    model: str
    failed: bool
    load_s: float | None
    device: str
    dtype: str
    versions: dict[str, str]
    notes: tuple[str, ...]
    error: str

    @classmethod
    def from_line(cls, line: Mapping[str, Any]) -> ModelLoad:
        """The record of a ``model_loaded`` or ``model_load_failed`` line."""
        versions = {str(k): str(v) for k, v in _mapping(line.get("versions")).items()}
        return cls(line=line, t=number(line.get("t")), model=_text(line.get("model")),
                   failed=line.get("event") == "model_load_failed", load_s=number(line.get("load_s")),
                   device=_text(line.get("device")), dtype=_text(line.get("dtype")), versions=versions,
                   notes=tuple(str(n) for n in line.get("notes") or []), error=_text(line.get("error")))


@dataclass(frozen=True, kw_only=True)
class SessionEnd(LogLine):
    """A run ended (or was stopped): counts by status over each case's latest attempt."""

    counts: dict[str, int]
    stopped: bool
    reason: str

    @classmethod
    def from_line(cls, line: Mapping[str, Any]) -> SessionEnd:
        """The record of a ``session_end`` line."""
        counts = {str(k): int(n) for k, n in _mapping(line.get("counts")).items() if whole(n) is not None}
        return cls(line=line, t=number(line.get("t")), counts=counts, stopped=bool(line.get("stopped")),
                   reason=_text(line.get("reason")))


@dataclass
class SessionRecords:
    """A log read back: its sessions' starts and ends, every case result, guard events, memory and loads."""

    path: Path
    starts: list[SessionStart] = field(default_factory=list)
    results: list[CaseEnd] = field(default_factory=list)
    guard: list[GuardRecord] = field(default_factory=list)
    memory: list[MemorySample] = field(default_factory=list)
    loads: list[ModelLoad] = field(default_factory=list)
    ends: list[SessionEnd] = field(default_factory=list)
    running: dict[str, CaseStart] = field(default_factory=dict)
    """Cases started but never ended (the run was killed under them)."""
    bad_lines: int = 0

    @property
    def suite_path(self) -> str:
        """The suite file of the first session in the log."""
        return self.starts[0].suite_path if self.starts else ""

    def latest(self) -> dict[str, CaseEnd]:
        """Each case's latest ended attempt, in log order."""
        return {result.case_id: result for result in self.results}

    def attempts(self) -> dict[str, int]:
        """How many attempts each case has had: its ``case_end`` lines, or its highest ``attempt`` where a
        result was carried in from an earlier log (``carried_from``) with the attempts before it. A line that
        repeats an attempt (its number and start: a judged case passed or failed again by its grade) is not
        another."""
        counts: dict[str, int] = {}
        seen: set[tuple[str, int, float | None]] = set()
        for result in self.results:
            key = (result.case_id, result.attempt, result.started_at)
            if key in seen:
                continue
            seen.add(key)
            counts[result.case_id] = max(counts.get(result.case_id, 0) + 1, result.attempt)
        return counts

    def add(self, line: dict[str, Any]) -> None:
        """Take one JSON line in (lines of events no report reads, and lines without a case id, are skipped)."""
        _upgrade(line)
        kind = line.get("event")
        if kind in ("case_start", "case_end") and "case_id" not in line:
            self.bad_lines += 1
        elif kind == "session_start":
            self.starts.append(SessionStart.from_line(line))
        elif kind == "case_start":
            self.running[str(line["case_id"])] = CaseStart.from_line(line)
        elif kind == "case_end":
            self.running.pop(str(line["case_id"]), None)
            self.results.append(CaseEnd.from_line(line))
        elif kind == "guard":
            self.guard.append(GuardRecord.from_line(line))
        elif kind == "memory":
            self.memory.append(MemorySample.from_line(line))
        elif kind in ("model_loaded", "model_load_failed"):
            self.loads.append(ModelLoad.from_line(line))
        elif kind == "session_end":
            self.ends.append(SessionEnd.from_line(line))


def load_log(path: str | Path) -> SessionRecords:
    """Read a session log; a torn last line (kill -9 mid-write) is skipped, not fatal."""
    log_path = Path(path)
    try:
        text = log_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LogError(f"{log_path}: session log not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LogError(f"{log_path}: cannot read the session log: {exc}") from None
    records = SessionRecords(log_path)
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            records.bad_lines += 1
            continue
        if not isinstance(record, dict):
            records.bad_lines += 1
            continue
        records.add(record)
    if not records.starts:
        raise LogError(f"{log_path}: not a vlmtui session log (no session_start line)")
    return records


def _upgrade(line: dict[str, Any]) -> None:
    """Bring a line from an older schema up to the current one, in place."""
    if line.get("event") == "session_start":
        line.setdefault("schema_version", 0)
    if line.get("event") == "case_end":
        line.setdefault("attempt", 1)
        line.setdefault("metrics", {})
        line.setdefault("warmup", False)
