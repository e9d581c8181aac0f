"""What a script needs from ``vlmtui compare``: a one-line summary, warnings when the two logs are not of the
same suite or plan, the regressions ``--fail-on-regression`` fails on, and the comparison as Markdown or
JSON (the text form is compare.py's Rich tables).

A regression is a case that passed in A and does not pass in B, or a model whose mean tok/s fell, or whose
mean total time or peak memory rose, by more than the threshold (in percent of A). The metrics are judged
per model, not per case: one case's tok/s on a busy 2-core machine moves by ±15 % run to run, a model's mean
over its cases much less.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vlmtui.reports.compare import Comparison, Delta, metric_value
from vlmtui.reports.table import md_cell
from vlmtui.reports.tables import CASE
from vlmtui.text import plural
from vlmtui.vocab import CaseStatus, counts_text

DEFAULT_THRESHOLD_PCT = 10.0
_TITLE_LIMIT, _LINE_LIMIT = 200, 300
"""Characters of the suite name in the Markdown heading, and of a warning or regression line (md_report's)."""


@dataclass(frozen=True)
class Regression:
    """One reason ``--fail-on-regression`` fails: what regressed and by how much."""

    subject: str
    """A case id, or a model id for a metric."""
    what: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.what}"


def _pass_rate(comparison: Comparison, side: str) -> float | None:
    report = comparison.a if side == "a" else comparison.b
    rows = [r for r in report.cases if not r.warmup]
    return sum(r.status == CaseStatus.PASSED for r in rows) / len(rows) if rows else None


def _mean_tps(comparison: Comparison) -> Delta:
    """Mean gen tok/s over the cases both logs measured (so a case missing on one side skews nothing)."""
    pairs = [(c.gen_tps.a, c.gen_tps.b) for c in comparison.cases if c.gen_tps.a and c.gen_tps.b]
    if not pairs:
        return Delta(None, None)
    return Delta(sum(a for a, _ in pairs) / len(pairs), sum(b for _, b in pairs) / len(pairs))


def summary_line(comparison: Comparison) -> str:
    """``12 cases in both: 2 better, 1 worse, 9 same; pass rate 75% → 83% (+8 pts); tok/s 41.2 → 44.0 (+6.8%)``,
    with ``, 1 changed status`` where a case went from one failure to another (crashed → failed), and for scored
    logs ``; answers: 1 right → wrong, 2 wrong → right``: the one verdict of the text, Markdown and JSON forms."""
    verdicts = comparison.verdicts()
    changed = f", {verdicts['changed']} changed status" if verdicts["changed"] else ""  # crashed → failed
    line = (f"{plural(len(comparison.cases), 'case')} in both: {verdicts['improved']} better, "
            f"{verdicts['regressed']} worse{changed}, {verdicts['same']} same")
    rate_a, rate_b = _pass_rate(comparison, "a"), _pass_rate(comparison, "b")
    if rate_a is not None and rate_b is not None:
        line += f"; pass rate {rate_a:.0%} → {rate_b:.0%} ({(rate_b - rate_a) * 100:+.0f} pts)"
    tps = _mean_tps(comparison)
    if tps.a is not None and tps.b is not None:
        pct = f" ({tps.pct:+.1f}%)" if tps.pct is not None else ""
        line += f"; tok/s {tps.a:.1f} → {tps.b:.1f}{pct}"
    if comparison.scored:
        up = sum(flip.now_right for flip in comparison.flips)
        line += f"; answers: {len(comparison.flips) - up} right → wrong, {up} wrong → right"
    return line


def mismatch_warnings(comparison: Comparison) -> list[str]:
    """Why the two logs may not be comparable: another suite, or another plan (cases only one side planned)."""
    warnings = []
    a, b = comparison.a, comparison.b
    if a.suite != b.suite:
        warnings.append(f"the logs are of different suites ({a.suite!r} and {b.suite!r})")
    only_a, only_b = len(comparison.only_a), len(comparison.only_b)
    if only_a or only_b:
        warnings.append(f"the plans differ: {only_a} case(s) only in A, {only_b} only in B; they are not compared")
    return warnings


def _worse(delta: Delta, threshold: float, higher_is_better: bool) -> bool:
    pct = delta.pct
    if pct is None:
        return False
    return pct < -threshold if higher_is_better else pct > threshold


def regressions(comparison: Comparison, threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> list[Regression]:
    """Every case that passed in A and fails in B, and every model metric worse by more than the threshold."""
    found = [Regression(c.case_id, f"passed → {c.status_b}") for c in comparison.cases
             if c.status_a == CaseStatus.PASSED and c.status_b != CaseStatus.PASSED]
    for m in comparison.models:
        for delta, name, unit, higher in ((m.gen_tps, "mean gen tok/s", "tok/s", True),
                                          (m.total_s, "mean total time", "s", False),
                                          (m.peak_memory, "peak memory", "bytes", False)):
            if _worse(delta, threshold_pct, higher):
                found.append(Regression(m.model, f"{name} {_num(delta.a, unit)} → {_num(delta.b, unit)} "
                                                 f"({delta.pct:+.1f}%, past {threshold_pct:g}%)"))
    return found


def _num(value: float | None, unit: str) -> str:
    """A figure with its unit (``41.5 tok/s``, ``1.20 s``, ``406.3 MiB``)."""
    text = metric_value(value, unit)
    if value is None or unit == "bytes":
        return text
    return f"{text} tok/s" if unit == "tok/s" else f"{text} s"


def _delta_dict(delta: Delta) -> dict[str, float | None]:
    return {"a": delta.a, "b": delta.b, "change": delta.change, "pct": delta.pct}


def comparison_json(comparison: Comparison, threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> dict[str, Any]:
    """The comparison as plain data: both logs, the summary, warnings, regressions, per model and per case."""
    return {
        "a": {"log": comparison.a.log_path, "suite": comparison.a.suite},
        "b": {"log": comparison.b.log_path, "suite": comparison.b.suite},
        "summary": summary_line(comparison),
        "verdicts": comparison.verdicts(),
        "warnings": mismatch_warnings(comparison),
        "threshold_pct": threshold_pct,
        "regressions": [{"subject": r.subject, "what": r.what} for r in regressions(comparison, threshold_pct)],
        "models": [{"model": m.model, "counts_a": m.counts_a, "counts_b": m.counts_b,
                    "total_s": _delta_dict(m.total_s), "gen_tps": _delta_dict(m.gen_tps),
                    "peak_memory_bytes": _delta_dict(m.peak_memory), "accuracy": _delta_dict(m.accuracy),
                    "j_per_token": _delta_dict(m.j_per_token)} for m in comparison.models],
        "cases": [{"case_id": c.case_id, "model": c.model, "status_a": str(c.status_a), "status_b": str(c.status_b),
                   "verdict": c.verdict, "total_s": _delta_dict(c.total_s), "gen_tps": _delta_dict(c.gen_tps),
                   "peak_memory_bytes": _delta_dict(c.peak_memory), "error_b": c.error_b} for c in comparison.cases],
        "only_a": [r.case_id for r in comparison.only_a],
        "only_b": [r.case_id for r in comparison.only_b],
    }


def comparison_markdown(comparison: Comparison, threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> str:
    """The comparison as GitHub Markdown: the summary, warnings, the per-model and per-case tables."""
    lines = [f"# Comparison: {md_cell(comparison.a.suite, _TITLE_LIMIT)}", "",
             f"- A: `{comparison.a.log_path}`", f"- B: `{comparison.b.log_path}`", "",
             f"**{summary_line(comparison)}**"]
    if warnings := mismatch_warnings(comparison):
        lines += ["", *(f"> warning: {md_cell(w, _LINE_LIMIT)}" for w in warnings)]
    lines += ["", "| model | cases A | cases B | mean total s | mean gen tok/s | peak memory |",
              "|---|---|---|--:|--:|--:|"]
    for m in comparison.models:
        lines.append(f"| {md_cell(m.model, CASE.limit)} | {counts_text(m.counts_a, '—')} | "
                     f"{counts_text(m.counts_b, '—')} | {_pair(m.total_s, 's')} | {_pair(m.gen_tps, 'tok/s')} | "
                     f"{_pair(m.peak_memory, 'bytes')} |")
    lines += ["", "| case | status A → B | total s | gen tok/s | peak memory |", "|---|---|--:|--:|--:|"]
    for c in comparison.cases:
        status = str(c.status_b) if c.status_a == c.status_b else f"{c.status_a} → {c.status_b}"
        lines.append(f"| {md_cell(c.case_id, CASE.limit)} | {status} | {_pair(c.total_s, 's')} | "
                     f"{_pair(c.gen_tps, 'tok/s')} | {_pair(c.peak_memory, 'bytes')} |")
    found = regressions(comparison, threshold_pct)
    lines += ["", f"Regressions (threshold {threshold_pct:g}%): {len(found)}"]
    lines += [f"- {md_cell(str(r), _LINE_LIMIT)}" for r in found]
    return "\n".join(lines) + "\n"


def _pair(delta: Delta, unit: str) -> str:
    text = f"{metric_value(delta.a, unit)} → {metric_value(delta.b, unit)}"
    return text + (f" ({delta.pct:+.1f}%)" if delta.pct is not None else "")

