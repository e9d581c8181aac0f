"""The per-model summary: passed/failed/crashed/aborted/skipped, mean time, tok/s, peak memory, and the
primary score when some case has scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from vlmtui.peak_kind import format_peak
from vlmtui.ui.tui.format import rate, seconds
from vlmtui.ui.tui.names import name_labels
from vlmtui.vocab import RESULT_STATUSES, ModelState

if TYPE_CHECKING:
    from vlmtui.reports.accuracy import Accuracy

MIN_NAME_ROOM = 16
"""Cells a model's name keeps (or the longest name's, if shorter) before the other columns give way, in the order
of ``LAYOUTS``: the score's interval (its mean stays), then the five counts (one column of the counts that are not
0, ``✓4 ✗1``, and the short peak ``406M RSS``), then the mean time, then J/token."""
LAYOUTS = (  # (score interval, one counts column, mean time, J/token): each gives a little more to the name
    (True, False, True, True),
    (False, False, True, True),
    (False, True, True, True),
    (False, True, False, True),
    (False, True, False, False),
)
"""At 80 columns the demo's six models keep every column; at 60 the counts fold into one (the name had 0 cells)."""


Column = tuple[str, str, list[Text]]
"""A column after the name: its heading, the heading's style, its cells (right-justified)."""


@dataclass(frozen=True)
class SummaryRow:
    """One model's line."""

    model: str
    state: str
    """Where the model is (a ``vocab.ModelState``)."""
    counts: tuple[int, int, int, int, int]
    """passed, failed, crashed, aborted, skipped."""
    mean_s: float | None
    tok_s: float | None
    peak_bytes: int | None
    trust_remote_code: bool = False
    accuracy: Accuracy | None = None
    """The primary score (mean, 95 % interval from n ≥ 10); None for a model without scored cases."""
    j_per_token: float | None = None
    """Mean joules per generated token (docs/telemetry.md); None where nothing measured power."""
    download: str = ""
    """The model's hub download while it runs, shown after its name."""
    peak_kind: str | None = None
    """What ``peak_bytes`` measured (vlmtui/peak_kind.py), shown beside it."""


def joules(value: float | None) -> str:
    """``0.84`` J per token (three significant places below 1), ``—`` when not measured."""
    if value is None:
        return "—"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.0f}"


class ModelSummaryTable(Widget):
    """One line per model of the run, every model included (those not started yet too)."""

    BORDER_TITLE = "models"

    DEFAULT_CSS = """
    ModelSummaryTable {
        height: auto;
    }
    """

    rows: reactive[tuple[SummaryRow, ...]] = reactive(())
    """The models, in plan order. A new count or time redraws the table; only a new number of rows changes
    its height (a layout pass for every finished case before)."""

    def watch_rows(self, old: tuple[SummaryRow, ...], new: tuple[SummaryRow, ...]) -> None:
        if len(old) != len(new):
            self.refresh(layout=True)

    def render(self) -> RenderableType:
        return SummaryLayout(self.rows)


class SummaryLayout:
    """The summary table laid out for the width it is drawn at (Textual measures the height with it too)."""

    def __init__(self, rows: tuple[SummaryRow, ...]) -> None:
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield summary_table(self.rows, options.max_width)


def summary_table(rows: tuple[SummaryRow, ...], width: int) -> Table:
    """The table in ``width`` cells: every column while the names keep ``MIN_NAME_ROOM`` cells (or what the
    longest needs), else the first of ``LAYOUTS`` that leaves them that much."""
    longest = max((len(" ".join(row.model.split())) for row in rows), default=0)
    need = min(longest, MIN_NAME_ROOM)
    for layout in LAYOUTS:
        columns = summary_columns(rows, *layout)
        # The name's room: the width less every other column (a cell of padding each side, none at the
        # table's right edge; the name's own cell on its right) and the state mark and space before it.
        room = width - sum(_width(column) + 2 for column in columns) + 1 - 1 - 2
        if room >= need:
            break
    table = Table(box=None, pad_edge=False, expand=True, show_edge=False, padding=(0, 1), header_style="bold")
    table.add_column("model", ratio=1, no_wrap=True, overflow="ellipsis")
    for heading, style, _ in columns:
        table.add_column(heading, justify="right", no_wrap=True, header_style=style)
    labels = name_labels([row.model for row in rows], max(room, 4))  # cut at the end, kept apart (issue 17)
    for i, row in enumerate(rows):
        look = ModelState(row.state).look
        name = Text.assemble((look.mark, look.style), " ", labels[row.model])
        if row.trust_remote_code and name.cell_len + 14 <= room + 2:
            name.append(" (remote code)", style="yellow")
        elif row.trust_remote_code:
            name.append(" ⚠", style="yellow")
        if row.download:
            name.append(f" {row.download}", style="cyan")
        table.add_row(name, *(cells[i] for _, _, cells in columns))
    return table


def summary_columns(rows: tuple[SummaryRow, ...], interval: bool, one_count: bool, mean: bool,
                    energy: bool) -> list[Column]:
    """The columns after the name, for one of ``LAYOUTS``."""
    columns: list[Column] = []
    if one_count:
        columns.append(("cases", "bold", [count_marks(row.counts) for row in rows]))
    else:
        for n, status in enumerate(RESULT_STATUSES):
            look = status.look
            columns.append((look.word, f"bold {look.style}",
                            [Text(str(row.counts[n]), style="" if row.counts[n] else "bright_black")
                             for row in rows]))
    if mean:
        columns.append(("mean s", "bold", [Text(seconds(row.mean_s)) for row in rows]))
    columns.append(("tok/s", "bold", [Text(rate(row.tok_s)) for row in rows]))
    if energy and any(row.j_per_token is not None for row in rows):  # only where some case measured energy
        columns.append(("J/tok", "bold", [Text(joules(row.j_per_token)) for row in rows]))
    columns.append(("peak", "bold", [Text(format_peak(row.peak_bytes, row.peak_kind, short=one_count))
                                     for row in rows]))
    accuracies = [row.accuracy for row in rows]
    if any(accuracies):
        # Only a scored run needs the report tables: the first frame does without them (issue 17).
        from vlmtui.reports.table import Cell
        from vlmtui.reports.tables import score_heading

        columns.append((score_heading(accuracies), "bold",
                        [Text(Cell.accuracy(found, interval=interval).text) for found in accuracies]))
    return columns


def _width(column: Column) -> int:
    """The cells a column's widest line takes, heading included."""
    heading, _, cells = column
    return max([cell_len(heading), *(cell.cell_len for cell in cells)])


def count_marks(counts: tuple[int, int, int, int, int]) -> Text:
    """The counts that are not 0, each after its status mark (``✓4 ✗1``); ``0`` where nothing ended yet."""
    text = Text()
    for n, status in zip(counts, RESULT_STATUSES, strict=True):
        if n:
            look = status.look
            text.append(f"{' ' if text else ''}{look.mark}{n}", style=look.style)
    return text or Text("0", style="bright_black")
