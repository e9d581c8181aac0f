"""Every model's answer to one image × prompt (or dataset item) next to each other: the suite's core question,
which model answers best, at what speed and memory, on one screen."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Label

from vlmtui.reports.case_scores import value_text
from vlmtui.text import one_line, printable
from vlmtui.ui.tui.answers import AnswerGroup, answer_groups, answer_text
from vlmtui.ui.tui.format import rate, size, status_label, status_mark
from vlmtui.ui.tui.names import end_cut
from vlmtui.ui.tui.screens.pager import PageScreen
from vlmtui.ui.tui.state import CaseView, SessionView
from vlmtui.ui.tui.widgets.key_bar import KeyBar

MIN_ANSWER_WIDTH = 24
"""Cells an answer column keeps; more models than fit side by side go on to a next band below."""
ANSWER_CHARS = 4000
"""How much of each answer is shown (the pager, ``o``, shows a whole answer)."""

SIDE_BY_SIDE_KEYS: list[BindingType] = [
    Binding("right,l,bracketright", "step(1)", "next", key_display="→", tooltip="The next image × prompt."),
    Binding("left,h,bracketleft", "step(-1)", "previous", key_display="←", tooltip="The previous image × prompt."),
    Binding("j,down", "scroll(1)", "down", show=False, tooltip="Scroll down."),
    Binding("k,up", "scroll(-1)", "up", show=False, tooltip="Scroll up."),
    Binding("escape,q,v", "close", "back", key_display="q", tooltip="Back to the dashboard."),
]
"""
| Key(s) | Description |
| :- | :- |
| →/←, l/h, ]/[ | The next or previous image × prompt (or dataset item). |
| j/k, ↓/↑ | Scroll. |
| escape, q, v | Back to the dashboard. |
"""


def answer_cell(row: CaseView, stream: tuple[str, str], width: int) -> Text:
    """One model's column: its name, status, tok/s, peak memory and score, then its answer."""
    cell = Text(end_cut(row.model, width), style="bold cyan")
    cell.append("\n")
    _, style = status_mark(row.status)
    cell.append(status_label(row.status, row.attempt), style=style)
    latest = row.latest
    finished = latest is not None and not (row.running or row.queued)
    scores = row.scores
    if finished and scores.scored:
        cell.append(f"  score {value_text(scores.primary_value)}", style="bold")
    cell.append("\n")
    metrics = latest.metrics if latest is not None and finished else {}
    figures = []
    tps, peak, kind = metrics.get("gen_tps"), metrics.get("peak_memory_bytes"), metrics.get("peak_kind")
    if isinstance(tps, int | float):
        figures.append(f"{rate(tps)} tok/s")
    if isinstance(peak, int | float):
        figures.append(f"peak {size(peak, kind if isinstance(kind, str) else None)}")
    if figures:
        cell.append(" · ".join(figures) + "\n", style="bright_black")
    error = latest.error if latest is not None and not row.running else ""
    if error:
        cell.append(one_line(error, 240) + "\n", style="red")
    text = answer_text(row, stream)
    if len(text) > ANSWER_CHARS:
        text = text[:ANSWER_CHARS] + f"… ({len(text)} characters: o shows all)"
    cell.append(printable(text) if text else ("…" if row.running else "(no answer)"),
                style="" if text else "italic bright_black")
    return cell


class AnswersGrid(Widget):
    """The answers of one group in bands of as many columns as the width holds."""

    DEFAULT_CSS = """
    AnswersGrid {
        height: auto;
    }
    """

    group: reactive[AnswerGroup | None] = reactive(None, layout=True)
    """The image × prompt shown."""

    def __init__(self, stream: Callable[[], tuple[str, str]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.stream = stream

    def render(self) -> RenderableType:
        group = self.group
        if group is None:
            return Text("no cases yet", style="bright_black")
        per_band = max(1, min(len(group.rows), self.size.width // MIN_ANSWER_WIDTH or 1))
        width = max(self.size.width // per_band - 3, 8)
        bands: list[RenderableType] = []
        for start in range(0, len(group.rows), per_band):
            table = Table(box=None, show_header=False, expand=True, padding=(0, 1), pad_edge=False,
                          show_edge=False)
            rows = group.rows[start:start + per_band]
            for _ in range(per_band):
                table.add_column(ratio=1, vertical="top", overflow="fold")
            cells = [answer_cell(row, self.stream(), width) for row in rows]
            table.add_row(*cells, *([""] * (per_band - len(cells))))
            bands.append(table)
            bands.append(Text(""))
        return Group(*bands[:-1])


class SideBySideScreen(PageScreen):
    """Answers keyed by image × prompt, stepped through with ←/→; opened on the selected case's group."""

    BINDINGS: ClassVar[list[BindingType]] = SIDE_BY_SIDE_KEYS

    index: reactive[int] = reactive(0)
    """Which group is shown (an index into ``groups``)."""

    def __init__(self, view: SessionView, case_id: str | None, stream: Callable[[], tuple[str, str]]) -> None:
        super().__init__()
        self.view = view
        self.stream = stream
        self.groups = answer_groups(view)
        start = next((i for i, group in enumerate(self.groups) if any(r.case_id == case_id for r in group.rows)),
                     0)
        self.set_reactive(SideBySideScreen.index, start)
        self._drawn: tuple[object, ...] = ()

    def compose(self) -> ComposeResult:
        yield Label("", id="answers-title", classes="page-title")
        with VerticalScroll(id="answers-body", classes="page-body", can_focus=True):
            yield AnswersGrid(self.stream, id="answers")
        yield KeyBar(SIDE_BY_SIDE_KEYS, ("escape,q,v", "right,l,bracketright", "left,h,bracketleft"),
                     id="answers-keys")

    def on_mount(self) -> None:
        self.query_one("#answers-body").focus()
        self._draw(self.index)
        # Answers that end while the view is open appear; nothing is redrawn while nothing changes.
        self.set_interval(1.0, self.refresh_answers, name="answers")

    def watch_index(self, index: int) -> None:
        self._draw(index)

    def _draw(self, index: int) -> None:
        title = self.query_one("#answers-title", Label)
        if not self.groups:
            title.update("answers side by side: no cases yet")
            return
        group = self.groups[index]
        what = f"{group.image} · {one_line(group.prompt, 200)}"
        title.update(Text(f"{index + 1}/{len(self.groups)}  {what}", no_wrap=True, overflow="ellipsis"))
        self._show(group)
        self.query_one("#answers-body", VerticalScroll).scroll_home(animate=False)

    def _show(self, group: AnswerGroup) -> None:
        grid = self.query_one("#answers", AnswersGrid)
        self._drawn = self._signature(group)
        grid.group = group
        grid.refresh(layout=True)

    def _signature(self, group: AnswerGroup) -> tuple[object, ...]:
        return tuple((row.status, len(row.attempts), row.running and len(self.stream()[1])) for row in group.rows)

    def refresh_answers(self) -> None:
        """Redraw the group if one of its answers changed since it was drawn."""
        if self.groups and self._signature(self.groups[self.index]) != self._drawn:
            self._show(self.groups[self.index])

    def action_step(self, step: int) -> None:
        """Show the next (1) or previous (-1) image × prompt, wrapping around."""
        if self.groups:
            self.index = (self.index + step) % len(self.groups)

    def action_scroll(self, lines: int) -> None:
        """Scroll the answers."""
        body = self.query_one("#answers-body", VerticalScroll)
        body.scroll_relative(y=lines, animate=False)

    def action_close(self) -> None:
        """Back to the dashboard."""
        self.dismiss(None)
