"""The per-model summary: passed/failed/crashed/aborted/skipped, mean time, tok/s, peak memory, and the
primary score when some case has scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from vlmtui.peak_kind import peak_label
from vlmtui.ui.tui.format import rate, seconds, size
from vlmtui.ui.tui.names import name_labels
from vlmtui.vocab import RESULT_STATUSES, ModelState

if TYPE_CHECKING:
    from vlmtui.reports.accuracy import Accuracy

NUMBERS_WIDTH = 58
"""Cells the count, time, speed and memory columns of the summary take, padding included."""
ENERGY_WIDTH = 7
"""Cells the J/token column takes, padding included, when it is shown."""
MIN_NAME_ROOM = 16
"""Cells the model names keep before the score's interval gives way to its mean alone (80 columns)."""


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

    def render(self) -> Table:
        table = Table(box=None, pad_edge=False, expand=True, show_edge=False, padding=(0, 1),
                      header_style="bold")
        table.add_column("model", ratio=1, no_wrap=True, overflow="ellipsis")
        for status in RESULT_STATUSES:
            look = status.look
            table.add_column(look.word, justify="right", no_wrap=True, header_style=f"bold {look.style}")
        table.add_column("mean s", justify="right", no_wrap=True)
        table.add_column("tok/s", justify="right", no_wrap=True)
        energy = any(row.j_per_token is not None for row in self.rows)
        if energy:  # only when some case has an energy figure: otherwise the table is as it was
            table.add_column("J/tok", justify="right", no_wrap=True)
        table.add_column("peak", justify="right", no_wrap=True)
        accuracies = [row.accuracy for row in self.rows]
        scores: list[str] = []
        heading = ""
        if any(accuracies):
            # Only a scored run needs the report tables: the first frame does without them (issue 17).
            from vlmtui.reports.table import Cell
            from vlmtui.reports.tables import score_heading

            scores = [Cell.accuracy(found).text for found in accuracies]
            heading = score_heading(accuracies)
        if scores and self.content_size.width - NUMBERS_WIDTH - max(map(len, scores)) - 3 < MIN_NAME_ROOM:
            scores = [Cell.accuracy(found, interval=False).text for found in accuracies]  # names come first
        if scores:
            table.add_column(heading, justify="right", no_wrap=True)
        score_width = max(len(heading), *map(len, scores)) + 1 if scores else 0
        # The numeric columns and their padding take 58 cells (and the score's); the name gets the rest.
        # A peak says what it measured (" RSS", " server"): that word's cells come off the name's room too.
        label = max((len(peak_label(row.peak_kind)) + 1 for row in self.rows if row.peak_kind), default=0)
        room = max(self.content_size.width - NUMBERS_WIDTH - score_width - (ENERGY_WIDTH if energy else 0) - 2 - label,
                   12)
        labels = name_labels([row.model for row in self.rows], room)  # cut at the end, kept apart (issue 17)
        for i, row in enumerate(self.rows):
            look = ModelState(row.state).look
            name = Text.assemble((look.mark, look.style), " ", labels[row.model])
            if row.trust_remote_code and name.cell_len + 14 <= room + 2:
                name.append(" (remote code)", style="yellow")
            elif row.trust_remote_code:
                name.append(" ⚠", style="yellow")
            if row.download:
                name.append(f" {row.download}", style="cyan")
            table.add_row(name, *(Text(str(n), style="" if n else "bright_black") for n in row.counts),
                          seconds(row.mean_s), rate(row.tok_s), *((joules(row.j_per_token),) if energy else ()),
                          size(row.peak_bytes, row.peak_kind), *scores[i:i + 1])
        return table
