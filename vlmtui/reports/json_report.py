"""The report as JSON for scripts: the same report, every number unformatted, model text in full."""

from __future__ import annotations

import json
from typing import Any

from vlmtui.reports.model import Report
from vlmtui.reports.summary import ModelSummary
from vlmtui.scoring.stats import ScoreSummary
from vlmtui.text import clean

REPORT_VERSION = 1
"""Version of the JSON report's shape (independent of the log's ``schema_version``)."""


def render_json(report: Report) -> str:
    """The report as JSON: sessions, machine, per-model summary, repeats, cases, loads and guard events."""
    doc = {
        "report_version": REPORT_VERSION,
        "log": report.log_path,
        "suite": report.suite,
        "counts": report.counts(),
        "sessions": [s.to_dict() for s in report.sessions],
        "machine": report.machine,
        "budget": {"bytes": report.budget_bytes, "thresholds_pct": report.thresholds},
        "models": [{
            "model": s.model, "backend": s.backend, "counts": s.counts,
            "not_run": report.not_run.get(s.model, 0),
            "total_s": s.total_stat.to_dict(), "gen_tps": s.gen_tps_stat.to_dict(),
            "energy_j": s.energy_j, "j_per_token": s.j_per_token_stat.to_dict(), "throttled_cases": s.throttled,
            "peak_memory_bytes": s.peak_memory_bytes,
            "peak_kind": s.peak_kind,
            **_scores(s),
        } for s in report.models],
        "repeats": [r.to_dict() for r in report.repeats],
        "cases": [c.to_dict() for c in report.cases],
        "loads": [dict(load) for load in report.loads],
        "guard": [dict(g) for g in report.guard],
        "bad_lines": report.bad_lines,
    }
    return json.dumps(_clean_tree(doc), indent=2, ensure_ascii=False, default=str) + "\n"


def _scores(summary: ModelSummary) -> dict[str, Any]:
    """A model's scores: per metric, per answer type and per dataset ``{"mean", "n", "ci95"}``, and its primary."""
    found = summary.accuracy
    return {
        "primary_metric": found.metric if found else None,
        "scores": _shaped(summary.scores()),
        "scores_by_answer_type": {k: _shaped(v) for k, v in summary.scores_by_answer_type().items()},
        "scores_by_dataset": {k: _shaped(v) for k, v in summary.scores_by_dataset().items()},
    }


def _shaped(by_metric: dict[str, ScoreSummary]) -> dict[str, Any]:
    return {metric: found.as_dict() for metric, found in by_metric.items()}


def _clean_tree(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(str(k)): _clean_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_tree(v) for v in value]
    return value
