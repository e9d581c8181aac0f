"""The queue: one row per case with its latest attempt (and its score, once some case has one); the running
case stands out; j/k move like ↓/↑."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region
from textual.message import Message
from textual.widgets import DataTable

from vlmtui.peak_kind import format_peak
from vlmtui.reports.case_scores import JUDGE_KIND, value_text
from vlmtui.text import one_line
from vlmtui.ui.tui.format import rate, seconds, status_label, status_mark
from vlmtui.ui.tui.names import end_cut, name_labels
from vlmtui.ui.tui.state import CaseView

FIXED_COLUMNS = (("status", 10), ("total s", 7), ("tok/s", 5), ("peak", 10))
"""Columns whose width does not depend on the terminal."""
SCORE_WIDTH = 5
"""The score column (``0.60``), shown once some case has scores."""
RIGHT_ALIGNED = frozenset({"total s", "tok/s", "peak", "score"})
COLUMN_ORDER = ("status", "model", "image", "prompt", "total s", "tok/s", "peak")
SCORED_ORDER = (*COLUMN_ORDER, "score")
MIN_PROMPT = 10
"""Cells the prompt keeps before it gives way altogether (the output pane and ``v`` still show it)."""
MIN_NAME = 6
"""Cells a model or image name keeps however narrow the terminal."""
DROPPED_WHEN_NARROW = ("prompt", "total s")
"""Columns left out, in this order, when the names would otherwise get less than they need (60 columns)."""



def peak_cell(metrics: dict[str, object]) -> str:
    """A case's peak and, in four cells, what it measured (``431M srv``, ``1.1M MLX``): peaks of
    different kinds share the column and are different quantities (vlmtui/peak_kind.py)."""
    peak, kind = metrics.get("peak_memory_bytes"), metrics.get("peak_kind")
    if not isinstance(peak, int | float) or not peak:
        return ""
    return format_peak(peak, kind if isinstance(kind, str) else None, short=True)

def column_widths(width: int, cell_padding: int = 1, *, scored: bool = False, model_need: int = 12,
                  image_need: int = 10) -> dict[str, int]:
    """Widths that fill ``width`` cells, in column order: fixed columns as they are; the model and image names
    get what they need (``*_need``, the longest), the model up to a third of the width, before the prompt
    takes the rest; where the names would not fit, the prompt and then the total time are left out."""
    order = list(SCORED_ORDER if scored else COLUMN_ORDER)
    fixed = dict(FIXED_COLUMNS) | ({"score": SCORE_WIDTH} if scored else {})
    model_cap = max(width // 3, MIN_NAME)
    model_want, image_want = min(max(model_need, MIN_NAME), model_cap), min(max(image_need, MIN_NAME), 20)
    for dropped in (None, *DROPPED_WHEN_NARROW):
        if dropped is not None:
            order.remove(dropped)
        flex = width - 2 * cell_padding * len(order) - sum(fixed.get(name, 0) for name in order)
        prompt_room = MIN_PROMPT if "prompt" in order else 0
        if flex >= model_want + MIN_NAME + prompt_room:
            break
    flex = max(flex, MIN_NAME * 2)
    model = max(min(model_want, flex - MIN_NAME - prompt_room), MIN_NAME)
    image = max(min(image_want, flex - model - prompt_room), MIN_NAME)
    if not prompt_room:  # no prompt column: the image takes what the model leaves
        image = max(flex - model, MIN_NAME)
    widths = {"model": model, "image": image, "prompt": max(flex - model - image, MIN_PROMPT)}
    return {name: fixed.get(name) or widths[name] for name in order}


def row_cells(row: CaseView, widths: dict[str, int], now: float, model_label: str | None = None) -> tuple[Text, ...]:
    """The cells of one case, in the order of ``widths``: its status (with attempt count), names, and the latest
    attempt's numbers; ``model_label`` is the model's name as it fits (``names.name_labels``)."""
    status = row.status
    _, style = status_mark(status)
    latest = row.latest
    metrics = latest.metrics if latest is not None and not (row.running or row.queued) else {}
    total = metrics.get("total_s")
    if row.running and row.started_at is not None:
        total = max(now - row.started_at, 0.0)
    emphasis = "bold" if row.running else ""
    prompt = ("(warm-up) " if row.warmup else "") + row.shown_prompt
    cells = {
        "status": Text(status_label(status, row.attempt), style=style),
        "model": Text(model_label or end_cut(row.model, widths["model"]),
                      style=f"{emphasis} cyan" if row.running else ""),
        "image": Text(end_cut(row.image_name, widths["image"]), style=emphasis or ("italic" if not row.image
                                                                                else "")),
        "prompt": Text(one_line(prompt, widths.get("prompt", 0)), style=emphasis or "bright_black"),
        "total s": Text(seconds(total) if total is not None else "", style=emphasis, justify="right"),
        "tok/s": Text(rate(metrics.get("gen_tps")) if metrics.get("gen_tps") else "", justify="right"),
        "peak": Text(peak_cell(metrics), justify="right"),
    }
    if "score" in widths:
        cells["score"] = Text("") if row.running or row.queued else score_cell(row)
    return tuple(cells[name] for name in widths)


def score_cell(row: CaseView) -> Text:
    """The latest attempt's primary score: green when right (≥ pass_at), red when wrong; a judge's grade plain."""
    scores = row.scores
    if not scores.scored:
        return Text("")
    right = scores.right
    style = "" if row.kind == JUDGE_KIND else "bright_black" if right is None else "green" if right else "red"
    return Text(value_text(scores.primary_value), style=style, justify="right")


def _has_scores(row: CaseView) -> bool:
    latest = row.latest
    return latest is not None and bool(latest.scores)


class CaseTable(DataTable[Text]):
    """The queue of cases; highlights follow the running case until the user moves the cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, tooltip="Select the next case."),
        Binding("k", "cursor_up", "Up", show=False, tooltip="Select the previous case."),
        Binding("g,home", "scroll_top", "First", show=False, tooltip="Select the first case."),
        Binding("G,end", "scroll_bottom", "Last", show=False, tooltip="Select the last case."),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | j | Select the next case (as ↓ does). |
    | k | Select the previous case (as ↑ does). |
    | g, home | Select the first case. |
    | G, end | Select the last case. |
    """

    _row_only = False
    """While ``sync`` updates one row's cells: a whole-table repaint is left to its row refresh."""

    @dataclass
    class CaseHighlighted(Message):
        """The cursor is on another case (moved by the user, or following the running case)."""

        case_id: str
        by_user: bool

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, show_cursor=True)
        self.following = True
        """Whether the cursor jumps to each case as it starts (until the user moves it)."""
        self._widths: dict[str, int] = {}
        self._shown: list[str] = []
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._user_move = False
        self._scored = False
        """Whether the score column shows: from the first scored case on."""
        self._labels: dict[str, str] = {}
        """Each model's name as it fits its column."""


    # ------------------------------------------------------------------ what to show

    def sync(self, rows: Sequence[CaseView], now: float) -> None:
        """Show ``rows`` (already filtered), updating only what changed."""
        self._scored = self._scored or any(_has_scores(row) for row in rows)
        models = {row.model for row in rows}
        # Before its first layout the table has no size: it spans the terminal's width (the dashboard's
        # queue does), so the first frame's columns are the final ones instead of 40 cells rebuilt after it.
        width = self.size.width or self.app.size.width
        widths = column_widths(max(width - 1, 40), self.cell_padding, scored=self._scored,
                               model_need=max(map(len, models), default=0),
                               image_need=max((len(row.image_name) for row in rows), default=0))
        ids = [row.case_id for row in rows]
        if widths != self._widths or not models <= self._labels.keys():
            self._labels = name_labels(models, widths["model"])
            self._rebuild_columns(widths)
        if ids != self._shown:
            self._rebuild_rows(rows, now)
            return
        for index, row in enumerate(rows):
            cells = row_cells(row, self._widths, now, self._labels.get(row.model))
            old = self._cells.get(row.case_id)
            if old == cells:
                continue
            # update_cell repaints the whole table (every visible row sent again for one cell, the biggest
            # sender while a case streams): its repaint is held back and only this row's line refreshed.
            self._row_only = True
            try:
                for name, cell, before in zip(self._order, cells, old or (None,) * len(cells), strict=True):
                    if cell != before:
                        self.update_cell(row.case_id, name, cell)
            finally:
                self._row_only = False
            self.refresh_row(index)
            self._cells[row.case_id] = cells

    def refresh(self, *regions: Region, repaint: bool = True, layout: bool = False,
                recompose: bool = False) -> Self:
        if self._row_only and not (regions or layout or recompose):
            return self  # update_cell's whole-table repaint; sync refreshes the row itself
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def _rebuild_columns(self, widths: dict[str, int]) -> None:
        self._widths = widths
        self._shown = []
        self.clear(columns=True)
        for name in self._order:
            label = Text(name, justify="right" if name in RIGHT_ALIGNED else "left")
            self.add_column(label, width=widths[name], key=name)

    def _rebuild_rows(self, rows: Sequence[CaseView], now: float) -> None:
        selected = self.selected_case
        self.clear()
        self._cells = {}
        for row in rows:
            cells = row_cells(row, self._widths, now, self._labels.get(row.model))
            self._cells[row.case_id] = cells
            self.add_row(*cells, key=row.case_id)
        self._shown = [row.case_id for row in rows]
        if selected in self._shown:
            self.move_cursor(row=self._shown.index(selected), animate=False)

    @property
    def _order(self) -> tuple[str, ...]:
        return tuple(self._widths)

    @property
    def selected_case(self) -> str | None:
        """The case under the cursor."""
        if not self._shown or not 0 <= self.cursor_row < len(self._shown):
            return None
        return self._shown[self.cursor_row]

    @property
    def shown_cases(self) -> list[str]:
        """The case ids in the table, top to bottom."""
        return list(self._shown)

    def select_case(self, case_id: str, *, by_user: bool = False) -> None:
        """Move the cursor to a case; unless ``by_user`` (a key such as ``n``), following stays as it is."""
        if case_id in self._shown and self.selected_case != case_id:
            self._user_move = by_user
            self.move_cursor(row=self._shown.index(case_id), animate=False, scroll=True)

    # ------------------------------------------------------------------ who moved the cursor

    def _moved_by_user(self) -> None:
        self._user_move = True

    def action_cursor_down(self) -> None:
        self._moved_by_user()
        super().action_cursor_down()

    def action_cursor_up(self) -> None:
        self._moved_by_user()
        super().action_cursor_up()

    def action_page_down(self) -> None:
        self._moved_by_user()
        super().action_page_down()

    def action_page_up(self) -> None:
        self._moved_by_user()
        super().action_page_up()

    def action_scroll_top(self) -> None:
        self._moved_by_user()
        super().action_scroll_top()

    def action_scroll_bottom(self) -> None:
        self._moved_by_user()
        super().action_scroll_bottom()

    def on_mouse_down(self, _: events.MouseDown) -> None:
        self._moved_by_user()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        by_user, self._user_move = self._user_move, False
        if event.row_key.value is not None:
            self.post_message(self.CaseHighlighted(str(event.row_key.value), by_user))
