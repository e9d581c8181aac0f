"""The memory history: the guarded memory of the last minute on a fixed scale, the budget at the top.

Each column is one slice of the minute (60 s / the columns there are), the highest sample of that slice;
columns are aligned to the clock, so the chart moves one column when a slice ends, not on each sample,
and only when what it draws changes is it redrawn. The warn, cleanup and abort thresholds are lines
across it (with one row, the columns take the colour of their level instead). ``frozen`` stops it: a
finished run's trace stays as it was.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from rich.text import Text
from textual.geometry import Region
from textual.reactive import reactive
from textual.widget import Widget

HISTORY_S = 60.0
"""How far back the chart reaches."""
LABEL_WIDTH = 5
"""Cells of the label column (``100%`` / ``60 s``)."""
_BLOCKS = " ▁▂▃▄▅▆▇█"
MARK_STYLES = ("yellow", "dark_orange", "red")
"""Colours of the warn, cleanup and abort marks (on the gauge's bar too)."""
LEVEL_STYLES = ("green", *MARK_STYLES)
"""A column's colour below warn, from warn, from cleanup and from abort."""


def level_of(pct: float, thresholds: tuple[float, float, float]) -> int:
    """0 below warn, 1 from warn, 2 from cleanup, 3 from abort."""
    return sum(pct >= t for t in thresholds)


class MemoryHistory(Widget):
    """``100% ▁▂▃▅▆▇`` against the budget, with the guard's lines; one slice of the minute a column."""

    DEFAULT_CSS = """
    MemoryHistory {
        height: 1fr;
        width: 1fr;
    }
    """

    budget: reactive[float] = reactive(0.0, repaint=False)
    """The top of the scale (bytes): the guard's budget."""
    thresholds: reactive[tuple[float, float, float]] = reactive((75.0, 85.0, 95.0), repaint=False)
    """warn, cleanup and abort in percent of the budget."""
    frozen: reactive[bool] = reactive(False, repaint=False)
    """Samples are ignored (the run has ended): the chart stays as it is."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._samples: deque[tuple[float, float]] = deque()
        self._drawn: list[list[tuple[str, str]]] | None = None
        self.redraws = 0
        """Times the chart asked to be drawn again (tests count them)."""

    def show(self, samples: Sequence[tuple[float, float]]) -> None:
        """The last minute's samples (seconds since the epoch, bytes), oldest first; redrawn only if a column
        changes."""
        if self.frozen or not samples:
            return
        newest = samples[-1][0]
        self._samples = deque(sample for sample in samples if sample[0] >= newest - HISTORY_S)
        self._redraw_if_changed()

    def peak(self) -> float | None:
        """The minute's highest sample."""
        return max(v for _, v in self._samples) if self._samples else None

    def watch_budget(self) -> None:
        self._redraw_if_changed()

    def watch_thresholds(self) -> None:
        self._redraw_if_changed()

    def _redraw_if_changed(self) -> None:
        """Send only the cells that changed: while a case streams the newest column grows many times a
        slice, and the whole chart (6 rows at 120×40) went out each time."""
        if not self.is_mounted:
            return
        cells = self._cells()
        drawn = self._drawn
        if drawn is None or [len(row) for row in drawn] != [len(row) for row in cells]:
            self.redraws += 1
            self.refresh()
            return
        regions = []
        for y, (old, new) in enumerate(zip(drawn, cells, strict=True)):
            changed = [x for x, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
            if changed:
                regions.append(Region(LABEL_WIDTH + changed[0], y, changed[-1] - changed[0] + 1, 1))
        if regions:
            self._drawn = cells
            self.redraws += 1
            self.refresh(*regions)

    def columns(self, count: int) -> list[float | None]:
        """The highest sample of each of the last ``count`` slices of the minute (None: no sample)."""
        if count <= 0 or not self._samples:
            return [None] * max(count, 0)
        slice_s = HISTORY_S / count
        newest = int(self._samples[-1][0] // slice_s)
        values: list[float | None] = [None] * count
        for t, value in self._samples:
            index = count - 1 - (newest - int(t // slice_s))
            if 0 <= index < count:
                current = values[index]
                values[index] = value if current is None else max(current, value)
        return values

    def _cells(self) -> list[list[tuple[str, str]]]:
        """The chart's cells, top row first, as (character, style)."""
        width, height = max(self.size.width, 1), max(self.size.height, 1)
        budget = self.budget
        values = self.columns(max(width - LABEL_WIDTH, 1))
        thresholds = self.thresholds
        mark_rows = {min(int(pct / 100 * height), height - 1): MARK_STYLES[i] for i, pct in enumerate(thresholds)}
        rows: list[list[tuple[str, str]]] = []
        for row in range(height - 1, -1, -1):
            cells: list[tuple[str, str]] = []
            for value in values:
                if value is None or budget <= 0:
                    eighths, style = 0, ""
                else:
                    pct = 100 * value / budget
                    eighths = min(max(round(pct / 100 * height * 8), 1 if value > 0 else 0), height * 8)
                    style = LEVEL_STYLES[level_of(pct, thresholds)]
                filled = min(max(eighths - row * 8, 0), 8)
                if filled:
                    cells.append((_BLOCKS[filled], style))
                elif height > 1 and row in mark_rows:
                    cells.append(("╌", mark_rows[row]))
                else:
                    cells.append((" ", ""))
            rows.append(cells)
        return rows

    def render(self) -> Text:
        self._drawn = cells = self._cells()
        height = len(cells)
        lines: list[Text] = []
        for y, row in enumerate(cells):
            label = "100% " if y == 0 and height > 1 else "60 s " if y == height - 1 else ""
            line = Text(f"{label:<{LABEL_WIDTH}}", style="bright_black")
            for char, style in row:
                line.append(char, style=style)
            lines.append(line)
        return Text("\n", no_wrap=True, overflow="crop").join(lines)

    def on_resize(self) -> None:
        self._drawn = None
