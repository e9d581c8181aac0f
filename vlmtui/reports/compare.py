"""Two session logs side by side: status changes and time, tok/s and peak-memory deltas per model and case;
for scored logs, each model's accuracy delta and the items whose answer flipped right ↔ wrong.

The before/after table the original incident report wrote by hand. Both logs are read with the same
``build_report`` the reports use, so a case is compared at its latest attempt; warm-ups are left out.
The comparison comes back as Rich renderables; the CLI prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import JustifyMethod, RenderableType
from rich.table import Table
from rich.text import Text

from vlmtui.peak_kind import format_peak
from vlmtui.reports.model import CaseRow, Report, build_report
from vlmtui.reports.records import SessionRecords
from vlmtui.reports.table import format_time
from vlmtui.text import excerpt
from vlmtui.units import format_bytes
from vlmtui.vocab import CaseStatus, count_by_status, counts_text, status_look

_NOISE_PCT = 5.0
"""Changes smaller than this (in percent) are shown dim: run-to-run noise, not a finding."""


@dataclass(frozen=True)
class Delta:
    """One metric before (``a``) and after (``b``)."""

    a: float | None
    b: float | None
    comparable: bool = True
    """False when ``a`` and ``b`` measured different things (peaks of different kinds): no change is made up."""

    @property
    def change(self) -> float | None:
        """``b - a``, None when either is unknown or they are not comparable."""
        return None if self.a is None or self.b is None or not self.comparable else self.b - self.a

    @property
    def pct(self) -> float | None:
        """The change in percent of ``a``, None when ``a`` is unknown or zero."""
        change = self.change
        return None if change is None or not self.a else change / self.a * 100


@dataclass(frozen=True)
class CaseChange:
    """One case present in both logs."""

    case_id: str
    model: str
    status_a: CaseStatus
    status_b: CaseStatus
    total_s: Delta
    gen_tps: Delta
    peak_memory: Delta
    error_b: str = ""
    peak_kinds: tuple[str | None, str | None] = (None, None)
    """What each peak measured (vlmtui/peak_kind.py)."""
    j_per_token: Delta = Delta(None, None)
    """Joules per generated token (docs/telemetry.md), where the log measured energy."""

    @property
    def verdict(self) -> str:
        """``improved`` (now passes), ``regressed`` (no longer passes), ``changed`` or ``same``."""
        if self.status_a == self.status_b:
            return "same"
        if self.status_b == CaseStatus.PASSED:
            return "improved"
        if self.status_a == CaseStatus.PASSED:
            return "regressed"
        return "changed"


@dataclass(frozen=True)
class ModelChange:
    """One model's counts and means before and after."""

    model: str
    counts_a: dict[str, int]
    counts_b: dict[str, int]
    total_s: Delta
    gen_tps: Delta
    peak_memory: Delta
    peak_kinds: tuple[str | None, str | None] = (None, None)
    accuracy: Delta = Delta(None, None)
    """The primary score's mean (``accuracy.primary_accuracy``)."""
    j_per_token: Delta = Delta(None, None)
    """Mean joules per generated token, where the log measured energy."""
    metric_a: str = ""
    """The metric the accuracy is in A (``""`` when A has no scores), and in B."""
    metric_b: str = ""

    @property
    def scored(self) -> bool:
        """Whether either log scored this model."""
        return bool(self.metric_a or self.metric_b)


@dataclass(frozen=True)
class Flip:
    """An item whose answer was right in one log and wrong in the other (primary score against ``pass_at``)."""

    case_id: str
    model: str
    item: str
    """``dataset/item id``, or ``""``."""
    score_a: float
    score_b: float
    now_right: bool
    """True: wrong → right; False: right → wrong."""


@dataclass
class Comparison:
    """Log A against log B, model by model and case by case."""

    a: Report
    b: Report
    models: list[ModelChange] = field(default_factory=list)
    cases: list[CaseChange] = field(default_factory=list)
    only_a: list[CaseRow] = field(default_factory=list)
    only_b: list[CaseRow] = field(default_factory=list)
    flips: list[Flip] = field(default_factory=list)
    """Items right in one log and wrong in the other, in A's case order."""

    @property
    def scored(self) -> bool:
        """Whether either log has scores: the accuracy columns and the flips show only then."""
        return any(m.scored for m in self.models)

    @property
    def has_energy(self) -> bool:
        """Whether either log measured energy: the J/token columns show only then."""
        return any(m.j_per_token.a is not None or m.j_per_token.b is not None for m in self.models)

    def verdicts(self) -> dict[str, int]:
        """How many compared cases improved, regressed, changed or stayed the same."""
        counts = {"improved": 0, "regressed": 0, "changed": 0, "same": 0}
        for case in self.cases:
            counts[case.verdict] += 1
        return counts


def _bytes(value: int | None) -> float | None:
    return None if value is None else float(value)


def compare_logs(a: SessionRecords, b: SessionRecords) -> Comparison:
    """The comparison of two loaded logs (A is "before", B is "after")."""
    report_a, report_b = build_report(a), build_report(b)
    rows_a = {r.case_id: r for r in report_a.cases if not r.warmup}
    rows_b = {r.case_id: r for r in report_b.cases if not r.warmup}
    comparison = Comparison(report_a, report_b)
    for case_id, ra in rows_a.items():
        rb = rows_b.get(case_id)
        if rb is None:
            comparison.only_a.append(ra)
            continue
        comparison.cases.append(CaseChange(
            case_id=case_id, model=rb.model or ra.model, status_a=ra.status, status_b=rb.status,
            total_s=Delta(ra.metrics.total_s, rb.metrics.total_s),
            gen_tps=Delta(ra.metrics.gen_tps, rb.metrics.gen_tps),
            peak_memory=peak_delta(ra.metrics.peak_memory_bytes, kind_a := ra.metrics.raw.get("peak_kind"),
                                   rb.metrics.peak_memory_bytes, kind_b := rb.metrics.raw.get("peak_kind")),
            peak_kinds=(kind_a, kind_b),
            error_b=rb.error if rb.status != CaseStatus.PASSED else "",
            j_per_token=Delta(ra.metrics.j_per_token, rb.metrics.j_per_token),
        ))
        flip = _flip(ra, rb)
        if flip is not None:
            comparison.flips.append(flip)
    comparison.only_b = [r for case_id, r in rows_b.items() if case_id not in rows_a]

    summaries_a = {s.model: s for s in report_a.models}
    summaries_b = {s.model: s for s in report_b.models}
    for model in [*summaries_a, *(m for m in summaries_b if m not in summaries_a)]:
        sa, sb = summaries_a.get(model), summaries_b.get(model)
        acc_a, acc_b = sa.accuracy if sa else None, sb.accuracy if sb else None
        comparison.models.append(ModelChange(
            model=model,
            counts_a=_counts(report_a, model) if sa else {},
            counts_b=_counts(report_b, model) if sb else {},
            total_s=Delta(sa.mean_total_s if sa else None, sb.mean_total_s if sb else None),
            gen_tps=Delta(sa.mean_gen_tps if sa else None, sb.mean_gen_tps if sb else None),
            peak_memory=peak_delta(sa.peak_memory_bytes if sa else None, sa.peak_kind if sa else None,
                                   sb.peak_memory_bytes if sb else None, sb.peak_kind if sb else None),
            peak_kinds=(sa.peak_kind if sa else None, sb.peak_kind if sb else None),
            accuracy=Delta(acc_a.summary.mean if acc_a else None, acc_b.summary.mean if acc_b else None),
            metric_a=acc_a.metric if acc_a else "", metric_b=acc_b.metric if acc_b else "",
            j_per_token=Delta(sa.mean_j_per_token if sa else None, sb.mean_j_per_token if sb else None),
        ))
    return comparison


def _flip(ra: CaseRow, rb: CaseRow) -> Flip | None:
    """The flip of a case scored in both logs whose answer is right in one and wrong in the other."""
    right_a, right_b = ra.scores.right, rb.scores.right
    if right_a is None or right_b is None or right_a == right_b:
        return None
    return Flip(rb.case_id, rb.model or ra.model, rb.scores.item or ra.scores.item,
                ra.scores.primary_value or 0.0, rb.scores.primary_value or 0.0, right_b)


def _counts(report: Report, model: str) -> dict[str, int]:
    """Statuses of a model's non-warm-up cases (``not run`` and ``interrupted`` included)."""
    return count_by_status(row for row in report.cases if row.model == model)


# ----------------------------------------------------------------------------- rendering


def metric_value(value: float | None, unit: str) -> str:
    """A compared figure without its unit (``41.5``, ``1.20``, ``406.3 MiB``); ``—`` when unknown."""
    if value is None:
        return "—"
    if unit == "bytes":
        return format_bytes(value)
    if unit == "J/tok":
        return f"{value:.3f}"
    return f"{value:.1f}" if unit == "tok/s" else f"{value:.2f}"


def accuracy_delta_text(delta: Delta) -> Text:
    """``+0.10``: green when the accuracy rose, red when it fell, dim when unchanged or unknown."""
    change = delta.change
    if change is None:
        return Text("—", style="dim")
    style = "dim" if abs(change) < 0.005 else "green" if change > 0 else "red"
    return Text(f"{change:+.2f}", style=style)


def _accuracy_pair(change: ModelChange) -> str:
    """``0.60 → 0.80``, naming the metrics when they differ (``0.60 → 0.80 (vqa → relaxed)``)."""
    pair = _pair(change.accuracy, "score")
    if change.metric_a and change.metric_b and change.metric_a != change.metric_b:
        pair += f" ({change.metric_a} → {change.metric_b})"
    elif change.metric_a or change.metric_b:
        pair += f" {change.metric_a or change.metric_b}"
    return pair


def _flips_table(flips: list[Flip]) -> Table:
    """The items whose answer flipped, with the primary score before and after."""
    table = Table(title=f"Flipped right ↔ wrong ({len(flips)})", title_justify="left", pad_edge=False)
    for column, justify in (("case", "left"), ("item", "left"), ("score A → B", "right"), ("now", "left")):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for flip in flips:
        now = Text("▲ right", style="green") if flip.now_right else Text("▼ wrong", style="bold red")
        table.add_row(Text(flip.case_id), Text(flip.item), f"{flip.score_a:.2f} → {flip.score_b:.2f}", now)
    return table


def peak_delta(a: int | None, kind_a: str | None, b: int | None, kind_b: str | None) -> Delta:
    """Two peaks; not comparable when both say what they measured and it differs (process RSS against MLX's
    active memory is no change of 400 MiB)."""
    return Delta(_bytes(a), _bytes(b), comparable=not (kind_a and kind_b and kind_a != kind_b))


def _peak_pair(delta: Delta, kinds: tuple[str | None, str | None]) -> str:
    """``409.0 MiB RSS → 1.6 MiB MLX``."""
    return f"{format_peak(delta.a, kinds[0])} → {format_peak(delta.b, kinds[1])}"


def _pair(delta: Delta, unit: str) -> str:
    """``2.00 → 1.00``."""
    return f"{metric_value(delta.a, unit)} → {metric_value(delta.b, unit)}"


def delta_text(delta: Delta, unit: str, *, higher_is_better: bool) -> Text:
    """``-1.00 s (-50.0%)``: green when better, red when worse, dim when within noise or unknown."""
    change = delta.change
    if change is None:
        return Text("—", style="dim")
    if unit == "bytes":
        amount = ("+" if change > 0 else "") + format_bytes(change)
    elif unit == "tok/s":
        amount = f"{change:+.1f} tok/s"
    elif unit == "J/tok":
        amount = f"{change:+.3f} J/tok"
    else:
        amount = f"{change:+.2f} s"
    pct = delta.pct
    text = f"{amount} ({pct:+.1f}%)" if pct is not None else amount
    if pct is None or abs(pct) < _NOISE_PCT:
        style = "dim"
    else:
        better = (change > 0) == higher_is_better
        style = "green" if better else "red"
    return Text(text, style=style)


def status_text(before: str, after: str) -> Text:
    """``crashed → passed`` with each side coloured; one word when nothing changed."""
    if before == after:
        return Text(after, style=status_look(after).style)
    text = Text()
    text.append(before, style=status_look(before).style)
    text.append(" → ")
    text.append(after, style=status_look(after).style)
    if after == CaseStatus.PASSED:
        text.append(" ▲", style="green")
    elif before == CaseStatus.PASSED:
        text.append(" ▼", style="bold red")
    return text


def _log_line(label: str, report: Report) -> Text:
    session = report.sessions[-1] if report.sessions else None
    host = session.info.get("host", "?") if session else "?"
    when = format_time(report.started_at)
    return Text.assemble((f"{label}: ", "bold"), report.log_path,
                         (f"  ({report.suite}, {when}, {host}, {len(report.sessions)} session(s))", "dim"))


def comparison_renderables(comparison: Comparison) -> list[RenderableType]:
    """The comparison as Rich renderables: the two logs, the per-model table, per-case tables per model, turns,
    flips and the cases in one log only; the one-line verdict under them is ``compare_verdict.summary_line``."""
    out: list[RenderableType] = [_log_line("A", comparison.a), _log_line("B", comparison.b), Text("")]
    models = Table(title="Per model (A → B)", title_justify="left", pad_edge=False)
    scored, energy = comparison.scored, comparison.has_energy
    columns: list[tuple[str, JustifyMethod]] = [
        ("model", "left"), ("cases A", "left"), ("cases B", "left"), ("mean total s", "right"), ("Δ total", "right"),
        ("mean gen tok/s", "right"), ("Δ tok/s", "right"), ("peak memory", "right"), ("Δ peak", "right")]
    if energy:
        columns += [("J/token", "right"), ("Δ J/token", "right")]
    if scored:
        columns += [("accuracy", "right"), ("Δ accuracy", "right")]
    for column, justify in columns:
        models.add_column(column, justify=justify, overflow="fold")
    for m in comparison.models:
        models.add_row(
            Text(m.model), counts_text(m.counts_a, "—"), counts_text(m.counts_b, "—"),
            _pair(m.total_s, "s"), delta_text(m.total_s, "s", higher_is_better=False),
            _pair(m.gen_tps, "tok/s"), delta_text(m.gen_tps, "tok/s", higher_is_better=True),
            _peak_pair(m.peak_memory, m.peak_kinds), delta_text(m.peak_memory, "bytes", higher_is_better=False),
            *((_pair(m.j_per_token, "J/tok"), delta_text(m.j_per_token, "J/tok", higher_is_better=False))
              if energy else ()),
            *((_accuracy_pair(m), accuracy_delta_text(m.accuracy)) if scored else ()),
        )
    out.append(models)
    by_model: dict[str, list[CaseChange]] = {}
    for case in comparison.cases:
        by_model.setdefault(case.model, []).append(case)
    for model, cases in by_model.items():
        table = Table(title=f"Cases of {model}", title_justify="left", pad_edge=False)
        for column, justify in (("case", "left"), ("status A → B", "left"), ("total s", "right"),
                                ("Δ total", "right"), ("gen tok/s", "right"), ("Δ tok/s", "right"),
                                ("peak memory", "right"), ("Δ peak", "right"),
                                *((("J/token", "right"), ("Δ J/token", "right")) if energy else ())):
            table.add_column(column, justify=justify, overflow="fold")
        for c in cases:
            table.add_row(
                Text(c.case_id), status_text(c.status_a, c.status_b),
                _pair(c.total_s, "s"), delta_text(c.total_s, "s", higher_is_better=False),
                _pair(c.gen_tps, "tok/s"), delta_text(c.gen_tps, "tok/s", higher_is_better=True),
                _peak_pair(c.peak_memory, c.peak_kinds), delta_text(c.peak_memory, "bytes", higher_is_better=False),
                *((_pair(c.j_per_token, "J/tok"), delta_text(c.j_per_token, "J/tok", higher_is_better=False))
                  if energy else ()),
            )
        out.append(Text(""))
        out.append(table)
    from vlmtui.reports.compare_turns import turn_renderables  # here: it builds on this module's deltas

    out += turn_renderables(comparison.a, comparison.b)
    if comparison.flips:
        out += [Text(""), _flips_table(comparison.flips)]
    for label, rows in (("Only in A", comparison.only_a), ("Only in B", comparison.only_b)):
        if rows:
            out.append(Text(""))
            out.append(Text(f"{label} ({len(rows)}):", style="bold"))
            for row in rows:
                out.append(Text(f"  {row.case_id}  {row.status}" + (f"  {excerpt(row.error, 100)}" if row.error
                                                                    and row.status != CaseStatus.PASSED else "")))
    out.append(Text(""))  # the CLI prints compare_verdict.summary_line after this blank line
    return out
