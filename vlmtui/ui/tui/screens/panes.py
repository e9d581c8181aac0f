"""What the dashboard's layout and view keys do: the models table and zoom (``m``, ``z``), jumps between
failures (``n``, ``N``, and the first failure when the queue is done), and one answer in full, in the pager,
side by side with the other models' or on the clipboard (enter, ``o``, ``v``, ``y``), and the key list."""

from __future__ import annotations

from textual.reactive import reactive
from textual.screen import Screen

from vlmtui.text import printable
from vlmtui.ui.tui.answers import answer_text
from vlmtui.ui.tui.keys import key_help
from vlmtui.ui.tui.state import CaseView, SessionView
from vlmtui.ui.tui.widgets.case_table import CaseTable
from vlmtui.vocab import FAILURE_STATUSES

ZOOMS = ("", "queue", "output")
"""What ``z`` steps through: every pane, the queue alone, the output alone."""
MIN_QUEUE_ROWS = 10
"""Cases the queue lists before the models table gives way (``m`` shows it anyway)."""
CHROME_ROWS = 4
"""Rows that are not panes: the header, the footer, the queue's border and column names."""
QUEUE_MIN_HEIGHT = 5
"""The queue's ``min-height`` (app.tcss)."""
SUMMARY_MAX, SUMMARY_MAX_TALL = 10, 16
"""The models table's ``max-height`` (app.tcss ``#summary``, and under ``-tall``)."""
LOWER_ROWS = {False: 7, True: 14}
"""The output and memory panes' height (app.tcss ``#lower``), below and from ``TALL_FROM`` rows (``-tall``)."""
TALL_FROM = 32
"""Where the ``-tall`` breakpoint starts (the app's ``VERTICAL_BREAKPOINTS``)."""


def crowded(height: int, lower: int, models: int) -> bool:
    """Whether the models table would leave the queue fewer than ``MIN_QUEUE_ROWS`` rows: ``height`` of the
    terminal, ``lower`` of the output and memory panes, one row per model plus its border and column names."""
    return height - CHROME_ROWS - lower - (models + 2) < MIN_QUEUE_ROWS


def crowded_before_layout(height: int, models: int) -> bool:
    """``crowded`` before any layout: the panes' height from the terminal's (as app.tcss sets it)."""
    return crowded(height, LOWER_ROWS[height >= TALL_FROM], models)


class DashboardPanes(Screen[None]):
    """The dashboard's panes and views (DashboardScreen adds the engine and the session's keys)."""

    HORIZONTAL_BREAKPOINTS = [(0, "-tiny"), (72, "-narrow"), (110, "-wide")]  # noqa: RUF012 (Textual's own)
    """Under 72 columns the memory panel narrows so the output pane stays readable (60 columns: 30 each)."""

    view: SessionView
    _stream: tuple[str, str]

    zoom: reactive[str] = reactive("")
    """The pane shown alone (``queue``, ``output``), or ``""`` for every pane."""

    def _queue(self) -> CaseTable:
        return self.query_one("#queue", CaseTable)

    def _selected(self) -> CaseView | None:
        return self.view.cases.get(self._queue().selected_case or "")

    # ------------------------------------------------------------------ layout

    def fit_panes(self) -> None:
        """Hide the models table where it would leave the queue fewer than ``MIN_QUEUE_ROWS`` rows (80×24
        with three models: 8 rows with it, 13 without); left as it is while a pane is zoomed."""
        if self.zoom:
            return
        lower = self.query_one("#lower").outer_size.height
        self.set_class(crowded(self.size.height, lower, len(self.view.models)), "-crowded")
        # Shown anyway (m) where it does not fit, the models table scrolls in the rows the queue's minimum
        # leaves: the screen itself never scrolls (at 60x20 with seven models it did, and every pane lost
        # two columns to its scrollbar). Where it fits, app.tcss's cap holds (no inline rule, no relayout).
        room = self.size.height - 2 - lower - QUEUE_MIN_HEIGHT  # less the header and the key bar
        cap = SUMMARY_MAX_TALL if self.has_class("-tall") else SUMMARY_MAX
        summary = self.query_one("#summary")
        summary.styles.max_height = max(room, 3) if room < cap else None
        shown = min(room, cap) - 2  # its border and column names
        count = len(self.view.models)
        title = f"models · {max(shown, 1)} of {count}" if shown < count else "models"
        if summary.border_title != title:  # (setting it, even unchanged, redraws the table)
            summary.border_title = title

    def after_event(self, finished: bool) -> None:
        """After an engine event: the panes fitted again, and the first failure selected once the queue is done."""
        self.fit_panes()
        if finished:
            self.select_first_failure()

    def action_toggle_models(self) -> None:
        """Show or hide the models table (hidden by default where the queue needs the rows)."""
        shown = self.query_one("#summary").display
        self.set_class(shown, "-no-models")
        self.set_class(not shown, "-models")

    def action_zoom(self) -> None:
        """Show the queue alone, then the output alone, then every pane again."""
        self.zoom = ZOOMS[(ZOOMS.index(self.zoom) + 1) % len(ZOOMS)]

    def watch_zoom(self, zoom: str) -> None:
        for name in ZOOMS[1:]:
            self.set_class(zoom == name, f"-zoom-{name}")
        if zoom != "output":
            self._queue().focus()
        if not zoom:
            self.call_after_refresh(self.fit_panes)

    # ------------------------------------------------------------------ failures

    def _failure(self, step: int) -> None:
        table = self._queue()
        shown = table.shown_cases
        if not shown:
            return
        start = table.cursor_row
        for offset in range(1, len(shown) + 1):
            case_id = shown[(start + step * offset) % len(shown)]
            if self.view.cases[case_id].status in FAILURE_STATUSES:
                table.select_case(case_id, by_user=True)
                return
        self.notify("no failed, crashed or aborted case in the queue", timeout=3)

    def action_next_failure(self) -> None:
        """Select the next failed, crashed or aborted case (wrapping around)."""
        self._failure(1)

    def action_previous_failure(self) -> None:
        """Select the previous failed, crashed or aborted case (wrapping around)."""
        self._failure(-1)

    def select_first_failure(self) -> None:
        """Once the queue is done, put the cursor on the first failure, unless the user has moved it."""
        table = self._queue()
        if not (self.view.idle and table.following):
            return
        first = next((cid for cid in table.shown_cases if self.view.cases[cid].status in FAILURE_STATUSES), None)
        if first is not None:
            table.select_case(first)

    # ------------------------------------------------------------------ one answer

    def action_details(self) -> None:
        """Show the selected case in full."""
        row = self._selected()
        if row is not None:
            streamed = self._stream[1] if self._stream[0] == row.case_id else ""
            model = self.view.models.get(row.model)
            trust = model.trust_remote_code if model is not None else False
            from vlmtui.ui.tui.screens.case_detail import CaseDetailScreen  # (on first use: not in the first frame)

            self.app.push_screen(CaseDetailScreen(row, streamed, trust_remote_code=trust))

    def action_help(self) -> None:
        """Show every key."""
        from vlmtui.ui.tui.screens.help import HelpScreen  # (on first use)

        self.app.push_screen(HelpScreen(key_help(self.BINDINGS)))

    # The pager and the side-by-side view are imported when first opened, not before the first frame.

    def action_pager(self) -> None:
        """Read the selected case's answer full screen."""
        from vlmtui.ui.tui.screens.pager import PagerScreen

        row = self._selected()
        if row is None:
            return
        latest = row.latest
        error = latest.error if latest is not None and not row.running else ""
        title = f"{row.case_id} · {printable(row.prompt)}"
        self.app.push_screen(PagerScreen(title, answer_text(row, self._stream), error))

    def action_external_pager(self) -> None:
        """Hand the selected case's answer straight to $PAGER (what ``o`` in the pager does)."""
        from vlmtui.ui.tui.screens.pager import open_in_pager

        row = self._selected()
        if row is not None:
            open_in_pager(self.app, answer_text(row, self._stream), row.case_id, unset="o reads it full screen")

    def action_side_by_side(self) -> None:
        """Every model's answer to the selected case's image and prompt."""
        from vlmtui.ui.tui.screens.side_by_side import SideBySideScreen

        row = self._selected()
        self.app.push_screen(SideBySideScreen(self.view, row.case_id if row else None, lambda: self._stream))

    def action_copy_output(self) -> None:
        """Copy the selected case's answer to the clipboard (OSC 52)."""
        from vlmtui.ui.tui.screens.pager import copy_text

        row = self._selected()
        if row is not None:
            copy_text(self.app, answer_text(row, self._stream), row.case_id)
