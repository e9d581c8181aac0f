"""A case in full (enter): every attempt, the latest output, its scores (references and every metric), its
metrics, error and the worker's detail."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from vlmtui.reports.case_scores import value_text
from vlmtui.reports.turns import read_turns
from vlmtui.scoring.judge import format_references
from vlmtui.text import printable
from vlmtui.ui.tui.conversation import describe_turns
from vlmtui.ui.tui.format import rate, seconds, size, status_label, status_mark
from vlmtui.ui.tui.state import CaseView


def describe_case(row: CaseView, streamed: str = "", *, trust_remote_code: bool = False) -> RenderableType:
    """The case's identity, its attempts as a table, then the latest attempt's output, error and detail."""
    head = Table.grid(padding=(0, 1))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("case", Text(row.case_id))
    head.add_row("model", Text(f"{row.model} ({row.backend})"))
    if trust_remote_code:
        head.add_row("", Text("trust_remote_code = true: this model runs code from its repository", style="yellow"))
    head.add_row("image", Text(row.image or "— (text only)"))
    if row.turn_total:
        head.add_row("turns", Text(f"{row.turn_total}, each sent with the whole conversation before it"
                                   + ("; the image with turn 1" if row.image else "")))
    else:
        head.add_row("prompt", Text(printable(row.prompt)))
    head.add_row("status", Text(status_label(row.status, row.attempt), style=status_mark(row.status)[1]))
    attempts = Table(title="attempts", title_justify="left", box=None, header_style="bold", pad_edge=False)
    for name in ("#", "status", "total s", "ttft s", "tok/s", "tokens", "peak", "error"):
        attempts.add_column(name, justify="right" if name not in ("status", "error") else "left")
    for result in row.attempts:
        m = result.metrics
        attempts.add_row(str(result.attempt), Text(result.status, style=status_mark(result.status)[1]),
                         seconds(m.get("total_s")), seconds(m.get("ttft_s")), rate(m.get("gen_tps")),
                         str(m.get("gen_tokens", "—")), size(m.get("peak_memory_bytes"), m.get("peak_kind")),
                         Text(printable(result.error), style="red"))
    parts: list[RenderableType] = [head, Text(), attempts]
    latest = row.latest
    if row.running:
        heading = "conversation so far" if row.turn_total else "output so far"
        parts += [Text(f"\n{heading}", style="bold"), Text(printable(streamed))]
    elif latest is not None:
        scores = row.scores
        heading = "answer" if scores.scored else "output"
        if latest.turns:
            parts += describe_turns(read_turns(latest.turns), row.turn_total)
        else:
            parts += [Text(f"\n{heading}", style="bold"), Text(printable(latest.output) or "(none)")]
        if scores.scored or scores.dataset or latest.judged_case_id:
            parts += describe_scores(row)
        if latest.error:
            parts += [Text("\nerror", style="bold red"), Text(printable(latest.error), style="red")]
        other = {k: v for k, v in latest.metrics.items() if k not in
                 ("total_s", "ttft_s", "gen_tps", "gen_tokens", "peak_memory_bytes")}
        if other:
            parts += [Text("\nmore metrics", style="bold"),
                      Text(", ".join(f"{k} {v}" for k, v in other.items()), style="bright_black")]
        if latest.detail:
            parts += [Text("\ndetail (traceback or worker stderr)", style="bold"),
                      Text(printable(latest.detail[-4000:]), style="bright_black")]
    return Group(*parts)


def describe_scores(row: CaseView) -> list[RenderableType]:
    """A dataset case's item, references and every metric's score (or why it has none); a judge's grade."""
    latest = row.latest
    scores = row.scores
    where = " · ".join(part for part in (scores.dataset, f"item {scores.item_id}" if scores.item_id else None,
                                         scores.answer_type) if part)
    parts: list[RenderableType] = [Text(f"\nscores ({where})" if where else "\nscores", style="bold")]
    if latest is not None and latest.judged_case_id:
        attempt = f", attempt {latest.judged_attempt}" if latest.judged_attempt else ""
        parts.append(Text(f"grades the answer of {latest.judged_case_id}{attempt}", style="bright_black"))
    parts.append(Text.assemble(("references ", "bold"), printable(format_references(scores.references))))
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("metric", "score", ""):
        table.add_column(name, justify="right" if name == "score" else "left")
    for metric in scores.metrics:
        value = scores.scores.get(metric)
        note = scores.errors.get(metric, "")
        if metric == scores.primary:
            verdict = {True: "right", False: "wrong", None: "unscored"}[scores.right]
            note = f"primary: {verdict} at pass_at {scores.threshold:g}" + (f"; {note}" if note else "")
        style = "bright_black" if value is None else "green" if value >= scores.threshold else "red"
        table.add_row(metric, Text(value_text(value), style=style), Text(printable(note), style="bright_black"))
    if scores.metrics:
        parts.append(table)
    return parts


class CaseDetailScreen(ModalScreen[None]):
    """One case, scrollable; escape, enter or q closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter,q", "close", "Close", tooltip="Back to the dashboard."),
        Binding("j", "scroll('down')", "Down", show=False, tooltip="Scroll down."),
        Binding("k", "scroll('up')", "Up", show=False, tooltip="Scroll up."),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | escape, enter, q | Back to the dashboard. |
    | j, k, ↑, ↓ | Scroll. |
    """

    def __init__(self, row: CaseView, streamed: str = "", *, trust_remote_code: bool = False) -> None:
        super().__init__()
        self.row = row
        self.streamed = streamed
        self.trust_remote_code = trust_remote_code

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Label(self.row.case_id, id="dialog-title", markup=False)
            yield Static(describe_case(self.row, self.streamed, trust_remote_code=self.trust_remote_code),
                         id="detail-body")

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll(self, direction: str) -> None:
        scroller = self.query_one("#detail", VerticalScroll)
        if direction == "down":
            scroller.scroll_down(animate=False)
        else:
            scroller.scroll_up(animate=False)
