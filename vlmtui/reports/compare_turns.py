"""Two logs' conversations turn by turn: each turn's status before and after, its tok/s delta, and whether its
answer changed. ``compare`` shows this table under its per-case tables when either log has conversations.

A turn's answer depends on every answer before it (the history is sent with each prompt), so a changed turn 1
usually changes the rest: the table says which turn changed first.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from vlmtui.reports.compare import Delta, delta_text, status_text
from vlmtui.reports.model import Report
from vlmtui.reports.turns import Turn
from vlmtui.vocab import CaseStatus


@dataclass(frozen=True)
class TurnChange:
    """One turn of a conversation in both logs (or in one: the other side's status is ``not run``)."""

    case_id: str
    number: int
    """1-based."""
    status_a: CaseStatus
    status_b: CaseStatus
    gen_tps: Delta
    ttft_s: Delta
    output_changed: bool
    why_b: str = ""
    """Why B's turn failed, was skipped or not run."""


def turn_changes(a: Report, b: Report) -> list[TurnChange]:
    """Every turn of every conversation present in both logs (warm-ups left out), in A's case order."""
    turns_b = {row.case_id: row.turns for row in b.cases if not row.warmup}
    out: list[TurnChange] = []
    for row in a.cases:
        if row.warmup or row.case_id not in turns_b or not (row.turns or turns_b[row.case_id]):
            continue
        before = {t.index: t for t in row.turns}
        after = {t.index: t for t in turns_b[row.case_id]}
        for index in sorted(before.keys() | after.keys()):
            out.append(_change(row.case_id, index, before.get(index), after.get(index)))
    return out


def _change(case_id: str, index: int, a: Turn | None, b: Turn | None) -> TurnChange:
    missing = CaseStatus.NOT_RUN
    return TurnChange(
        case_id, index + 1, a.status if a else missing, b.status if b else missing,
        Delta(a.metrics.gen_tps if a else None, b.metrics.gen_tps if b else None),
        Delta(a.metrics.ttft_s if a else None, b.metrics.ttft_s if b else None),
        (a.output if a else "") != (b.output if b else ""),
        b.why if b is not None and b.status != CaseStatus.PASSED else "",
    )


def turn_renderables(a: Report, b: Report) -> list[RenderableType]:
    """The turn-by-turn table (nothing when neither log has a conversation in both)."""
    changes = turn_changes(a, b)
    if not changes:
        return []
    table = Table(title="Conversations turn by turn (A → B)", title_justify="left", pad_edge=False)
    for column, justify in (("case", "left"), ("turn", "right"), ("status A → B", "left"),
                            ("gen tok/s", "right"), ("Δ tok/s", "right"), ("Δ TTFT", "right"), ("answer", "left")):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    first_changed: set[str] = set()
    for c in changes:
        if c.output_changed and c.case_id not in first_changed:
            first_changed.add(c.case_id)
            answer = Text("changed (first)", style="yellow")
        else:
            answer = Text("changed", style="yellow") if c.output_changed else Text("same", style="dim")
        if c.why_b:
            answer.append(f" · {c.why_b}", style="dim")
        table.add_row(Text(c.case_id), str(c.number), status_text(c.status_a, c.status_b),
                      f"{_tps(c.gen_tps.a)} → {_tps(c.gen_tps.b)}",
                      delta_text(c.gen_tps, "tok/s", higher_is_better=True),
                      delta_text(c.ttft_s, "s", higher_is_better=False), answer)
    regressed = sum(c.status_a == CaseStatus.PASSED and c.status_b != CaseStatus.PASSED for c in changes)
    improved = sum(c.status_a != CaseStatus.PASSED and c.status_b == CaseStatus.PASSED for c in changes)
    changed = sum(c.output_changed for c in changes)
    line = Text(f"{len(changes)} turns in both: {improved} now pass, {regressed} no longer pass, "
                f"{changed} answers changed")
    return [Text(""), table, line]


def _tps(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"
