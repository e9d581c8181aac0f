"""What a report shows, built once from a log's records: each planned case once at its latest attempt,
repeats with their spread, the sessions, model loads, guard events and memory samples.

Every format (Markdown, HTML, JSON, JUnit) and ``compare`` render this same ``Report``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vlmtui.reports.case_scores import CaseScores, Judging, joined_scores
from vlmtui.reports.records import (
    CaseEnd,
    CaseStart,
    GuardRecord,
    MemorySample,
    Metrics,
    ModelLoad,
    PlannedCase,
    SessionRecords,
    SessionStart,
    measured,
)
from vlmtui.reports.summary import ModelSummary, Stat, summarise
from vlmtui.reports.turns import Turn
from vlmtui.vocab import CaseStatus, GuardAction, count_by_status

_REPEAT_SUFFIX = re.compile(r"#r\d+$")


@dataclass(frozen=True)
class CaseRow:
    """One planned case at its latest attempt (or ``not run`` / ``interrupted``)."""

    case_id: str
    model: str
    backend: str
    kind: str
    image: str | None
    prompt: str
    status: CaseStatus
    attempts: int
    warmup: bool
    metrics: Metrics
    output: str
    error: str
    started_at: float | None
    ended_at: float | None
    scores: CaseScores = field(default_factory=CaseScores)
    """A dataset case's scores, a judge's grades joined in (for a judge case: its grade of another case)."""
    judging: Judging | None = None
    turns: tuple[Turn, ...] = ()
    """A conversation's turns at its latest attempt (empty for other cases, and for one that never ran)."""

    @property
    def time_s(self) -> float:
        """Wall time of the latest attempt: the worker's ``total_s``, else end minus start, else 0."""
        if self.metrics.total_s is not None:
            return self.metrics.total_s
        if self.started_at and self.ended_at:
            return max(self.ended_at - self.started_at, 0.0)
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {
            "case_id": self.case_id, "model": self.model, "backend": self.backend, "kind": self.kind,
            "image": self.image, "prompt": self.prompt, "status": self.status, "attempts": self.attempts,
            "warmup": self.warmup, "metrics": self.metrics.to_dict(), "output": self.output, "error": self.error,
            "started_at": self.started_at, "ended_at": self.ended_at,
            "scores": dict(self.scores.scores), "score_errors": dict(self.scores.errors),
            "primary_metric": self.scores.primary, "right": self.scores.right,
            "references": list(self.scores.references), "dataset": self.scores.dataset,
            "item_id": self.scores.item_id, "answer_type": self.scores.answer_type,
            "judged_case_id": self.judging.case_id if self.judging else None,
            **({"turns": [turn.to_dict() for turn in self.turns]} if self.turns else {}),
        }


@dataclass(frozen=True)
class RepeatRow:
    """One case over its repeats (``…#r0``, ``…#r1``, …; warm-ups left out), as llama-bench shows it."""

    case_id: str
    model: str
    n: int
    total_s: Stat
    ttft_s: Stat
    prompt_tps: Stat
    gen_tps: Stat
    peak_memory_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {
            "case_id": self.case_id, "model": self.model, "n": self.n, "total_s": self.total_s.to_dict(),
            "ttft_s": self.ttft_s.to_dict(), "prompt_tps": self.prompt_tps.to_dict(),
            "gen_tps": self.gen_tps.to_dict(), "peak_memory_bytes": self.peak_memory_bytes,
        }


@dataclass(frozen=True)
class SessionRow:
    """One run recorded in the log (a resumed or rerun session appends another)."""

    session_id: str
    schema_version: int
    started_at: float | None
    info: dict[str, Any]
    ended_at: float | None
    counts: dict[str, int] | None
    """Counts by status at its ``session_end``; None when it has none (killed or cut off)."""
    stopped: bool
    reason: str
    budget_source: str = ""
    """Where the budget came from (also in ``info``)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {
            "session_id": self.session_id, "schema_version": self.schema_version,
            "started_at": self.started_at, "ended_at": self.ended_at, "counts": self.counts,
            "stopped": self.stopped, "reason": self.reason, "info": self.info,
        }


@dataclass
class Report:
    """Everything a report shows, in display order; ``build_report`` makes one from a log."""

    log_path: str
    suite: str
    sessions: list[SessionRow]
    models: list[ModelSummary]
    cases: list[CaseRow]
    repeats: list[RepeatRow]
    loads: list[ModelLoad]
    """The latest ``model_loaded`` or ``model_load_failed`` line per model."""
    guard: list[GuardRecord]
    memory: list[MemorySample]
    budget_bytes: int | None
    thresholds: dict[str, float]
    """Guard thresholds in percent of the budget: ``warn``, ``cleanup``, ``abort``."""
    bad_lines: int = 0
    not_run: dict[str, int] = field(default_factory=dict)
    """Per model: planned cases without a result (``not run`` or ``interrupted``)."""

    @property
    def machine(self) -> dict[str, Any]:
        """Machine and versions of the latest session (budget and guard settings left out)."""
        return {k: v for k, v in self.sessions[-1].info.items()
                if k not in ("budget_bytes", "budget_source", "guard")} if self.sessions else {}

    @property
    def budget_source(self) -> str:
        """Where the latest session's budget came from."""
        return self.sessions[-1].budget_source if self.sessions else ""

    @property
    def started_at(self) -> float | None:
        """When the first session began."""
        return self.sessions[0].started_at if self.sessions else None

    @property
    def scored(self) -> bool:
        """Whether any case has scores: the leaderboard, the scatter and the score columns show only then."""
        return any(row.scores.scored for row in self.cases)

    @property
    def conversations(self) -> list[CaseRow]:
        """The cases that have turns, in case order: the conversations table shows only when there are some."""
        return [row for row in self.cases if row.turns]

    @property
    def guard_actions(self) -> list[GuardRecord]:
        """The guard events worth a line: every one where the guard did something."""
        return [g for g in self.guard if g.action != GuardAction.NONE]

    def counts(self) -> dict[str, int]:
        """Counts by status over the non-warm-up cases."""
        return count_by_status(self.cases)


def build_report(data: SessionRecords) -> Report:
    """The report of a log: planned cases in plan order (then any others), each at its latest attempt."""
    latest = data.latest()
    planned: dict[str, PlannedCase | CaseEnd] = {}
    for start in data.starts:
        for case in start.cases:
            planned.setdefault(case.case_id, case)
    for case_id, record in latest.items():
        planned.setdefault(case_id, record)

    attempts = data.attempts()
    scores = joined_scores(latest.values())
    rows = [_case_row(plan, latest.get(case_id), attempts.get(case_id, 1), data.running.get(case_id),
                      scores.get(case_id)) for case_id, plan in planned.items()]
    not_run: dict[str, int] = {}
    for row in rows:
        if row.status in (CaseStatus.NOT_RUN, CaseStatus.INTERRUPTED) and not row.warmup:
            not_run[row.model] = not_run.get(row.model, 0) + 1
    models = summarise(latest[r.case_id] for r in rows if r.case_id in latest)
    for model in not_run:
        if model not in {m.model for m in models}:
            backend = next((r.backend for r in rows if r.model == model), "")
            models.append(ModelSummary(model, backend))
    loads = {load.model: load for load in data.loads}
    last = data.starts[-1] if data.starts else None
    return Report(
        log_path=str(data.path),
        suite=last.suite if last else "",
        sessions=_sessions(data),
        models=models,
        cases=rows,
        repeats=_repeats(rows),
        loads=list(loads.values()),
        guard=list(data.guard),
        memory=list(data.memory),
        budget_bytes=_budget(data),
        thresholds=next((s.thresholds for s in reversed(data.starts) if s.thresholds), {}),
        bad_lines=data.bad_lines,
        not_run=not_run,
    )


def _case_row(plan: PlannedCase | CaseEnd, result: CaseEnd | None, attempts: int,
              running: CaseStart | None, scores: CaseScores | None) -> CaseRow:
    """A planned case at its latest attempt; without one, ``interrupted`` (started) or ``not run``."""
    if result is not None:
        return CaseRow(
            case_id=plan.case_id, model=result.model or plan.model, backend=result.backend or plan.backend,
            kind=result.kind or plan.kind, image=result.image, prompt=result.prompt, status=result.status,
            attempts=attempts, warmup=result.warmup, metrics=result.metrics, output=result.output,
            error=result.error, started_at=result.started_at, ended_at=result.ended_at,
            scores=scores or result.scoring, judging=result.judging, turns=result.turns,
        )
    if running is not None:
        status, error = CaseStatus.INTERRUPTED, "the run ended while this case was running (killed or cut off)"
    else:
        status, error = CaseStatus.NOT_RUN, "the session ended before this case ran"
    return CaseRow(
        case_id=plan.case_id, model=plan.model, backend=plan.backend, kind=plan.kind, image=plan.image,
        prompt=plan.prompt, status=status, attempts=0, warmup=plan.warmup, metrics=Metrics(), output="",
        error=error, started_at=running.t if running else None, ended_at=None,
    )


def _sessions(data: SessionRecords) -> list[SessionRow]:
    """Each session_start with the session_end that follows it (if any)."""
    rows: list[SessionRow] = []
    ends = sorted(data.ends, key=lambda e: e.t or 0)
    starts: list[SessionStart] = sorted(data.starts, key=lambda s: s.t or 0)
    for i, start in enumerate(starts):
        t0 = start.t
        t1 = starts[i + 1].t if i + 1 < len(starts) else None
        end = next((e for e in ends if (t0 is None or (e.t or 0) >= t0) and (t1 is None or (e.t or 0) < t1)), None)
        rows.append(SessionRow(
            session_id=start.session_id, schema_version=start.schema_version, started_at=t0,
            info=dict(start.info), ended_at=end.t if end else None, counts=dict(end.counts) if end else None,
            stopped=end.stopped if end else False, reason=end.reason if end else "",
            budget_source=start.budget_source,
        ))
    return rows


def _budget(data: SessionRecords) -> int | None:
    """The budget the guard last worked with: the latest memory sample's, else the last session's."""
    for sample in reversed(data.memory):
        if sample.budget_bytes is not None:
            return sample.budget_bytes
    return next((s.budget_bytes for s in reversed(data.starts) if s.budget_bytes is not None), None)


def _repeats(rows: Sequence[CaseRow]) -> list[RepeatRow]:
    """Repeated cases grouped under their base id, when the suite has ``repeat`` > 1."""
    groups: dict[str, list[CaseRow]] = {}
    for row in rows:
        if row.warmup or not _REPEAT_SUFFIX.search(row.case_id):
            continue
        groups.setdefault(_REPEAT_SUFFIX.sub("", row.case_id), []).append(row)
    out = []
    for base, members in groups.items():
        ran = [r.metrics for r in members if measured(r.status, r.metrics)]
        peaks = [m.peak_memory_bytes for m in ran if m.peak_memory_bytes]
        out.append(RepeatRow(
            case_id=base, model=members[0].model, n=len(ran), total_s=Stat.of(m.total_s for m in ran),
            ttft_s=Stat.of(m.ttft_s for m in ran), prompt_tps=Stat.of(m.prompt_tps for m in ran),
            gen_tps=Stat.of(m.gen_tps for m in ran), peak_memory_bytes=max(peaks) if peaks else None,
        ))
    return out
