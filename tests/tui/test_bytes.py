"""What the dashboard sends when nothing changes: once the queue is done and nobody types, no frame at all.

Driven through the real scheduler and worker on a tiny model. The host's RAM figure is held at its first
real reading: on a shared CI box other processes move it by more than a gauge's eighth within a second,
which would be a displayed change (the dashboard draws those, as it should).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.widget import Widget

from tests.tui.helpers import driven, idle, make_app, until
from vlmtui.engine import guard_loop
from vlmtui.memory.system import probe_system
from vlmtui.ui.tui.widgets.history import MemoryHistory
from vlmtui.ui.tui.widgets.output import OutputContent, OutputPane


@pytest.fixture
def steady_ram(monkeypatch: pytest.MonkeyPatch) -> None:
    first = probe_system()
    monkeypatch.setattr(guard_loop, "probe_system", lambda: dataclasses.replace(first, t=time.time()))


class FrameCounter:
    """Counts the frames the app writes and which widgets asked to be drawn again."""

    def __init__(self, app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.frames = 0
        self.refreshed: Counter[str] = Counter()
        display = app._display

        def counted_display(screen: Any, renderable: Any) -> None:
            if renderable is not None:
                self.frames += 1
            display(screen, renderable)

        monkeypatch.setattr(app, "_display", counted_display)
        refresh = Widget.refresh

        def counted_refresh(widget: Widget, *args: Any, **kwargs: Any) -> Any:
            if widget.is_mounted and kwargs.get("repaint", True):
                self.refreshed[f"{type(widget).__name__}#{widget.id}"] += 1
            return refresh(widget, *args, **kwargs)

        monkeypatch.setattr(Widget, "refresh", counted_refresh)

    def reset(self) -> None:
        self.frames = 0
        self.refreshed.clear()


@pytest.mark.usefixtures("steady_ram")
async def test_a_finished_idle_dashboard_draws_nothing_for_a_second(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(tmp_path)
    async with driven(app, size=(80, 24)) as pilot:
        await until(pilot, lambda: idle(app), "the queue to finish", timeout=180)
        scheduler = app.engine
        assert scheduler is not None
        # The samples slow down once nothing runs (1 s by default) and the history stops.
        await until(pilot, lambda: app.dashboard.memory_panel.frozen, "the history to stop")
        # Notifications (the budget notice at the first load) time out with a redraw of their own.
        await until(pilot, lambda: not app.screen.query("Toast"), "the notifications to time out", timeout=30)
        await pilot.pause(1.5)  # the last case's redraws and the first slow sample go out
        counter = FrameCounter(app, monkeypatch)
        sample = app.dashboard.memory_panel.sample
        await pilot.pause(1.0)
        await until(pilot, lambda: app.dashboard.memory_panel.sample is not sample, "an idle sample", timeout=5)
        assert counter.frames == 0, f"{counter.frames} frames while idle; asked by {dict(counter.refreshed)}"


async def test_the_output_pane_sends_only_the_lines_a_token_changes() -> None:
    from textual.app import App, ComposeResult

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield OutputPane(id="output")

    app = One()
    async with app.run_test(size=(40, 10)) as pilot:
        pane = app.query_one(OutputPane)
        pane.content = OutputContent("m/case", "running", streaming=True)
        await pilot.pause()
        pane.append("one two three four five six seven eight nine ten eleven")
        await pilot.pause()
        before = pane.line_redraws
        pane.append(" x")
        await pilot.pause()
        assert pane.line_redraws - before == 1  # the last line, with the cursor
        assert "eleven x" in "\n".join(line.plain for line in pane._lines())
        pane.clear()
        await pilot.pause()
        assert pane._lines()[0] == Text("waiting for the first case…", style="bright_black")


async def test_the_history_is_drawn_against_the_budget_and_moves_only_when_a_column_changes() -> None:
    from textual.app import App, ComposeResult

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield MemoryHistory(id="chart")

    app = One()
    async with app.run_test(size=(35, 4)) as pilot:  # 30 columns of 2 s, 4 rows
        chart = app.query_one(MemoryHistory)
        chart.budget = 1000.0
        samples = [(1000.0 + i * 0.5, 500.0) for i in range(8)]  # two slices
        chart.show(samples)
        await pilot.pause()
        rows = [line.plain for line in chart.render().split("\n")]
        # Half the budget fills two of four rows: a fixed scale, not one stretched to the highest sample.
        assert rows[-1].endswith("██") and rows[-2].endswith("██") and rows[1].strip() == ""
        assert rows[0].endswith("╌╌")  # warn, cleanup and abort all fall in the top quarter
        assert rows[0].startswith("100%") and rows[-1].startswith("60 s")
        drawn = chart.redraws
        chart.show([*samples, (1002.1, 510.0)])  # inside the newest slice, under the next eighth
        await pilot.pause()
        assert chart.redraws == drawn
        chart.frozen = True
        chart.show([*samples, (1010.0, 990.0)])
        await pilot.pause()
        assert chart.redraws == drawn


async def test_a_changed_cell_redraws_its_row_not_the_whole_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """DataTable.update_cell repaints every visible row; the queue sends only the row that changed."""
    from textual.app import App, ComposeResult

    from vlmtui.engine.events import CaseStarted, SessionStarted
    from vlmtui.ui.tui.state import SessionView
    from vlmtui.ui.tui.widgets.case_table import CaseTable

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield CaseTable(id="queue")

    view = SessionView()
    cases = [{"case_id": f"m/text/t{i}", "model": "m", "backend": "transformers", "image": None,
              "prompt": f"prompt {i}", "kind": "text"} for i in range(8)]
    view.apply(SessionStarted(session_id="s", suite="t", suite_path="t.toml", info={}, cases=cases, t=0.0))
    app = One()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(CaseTable)
        table.sync(list(view.cases.values()), 1.0)
        await pilot.pause()
        drawn: list[int] = []
        render_line = CaseTable.render_line
        monkeypatch.setattr(CaseTable, "render_line", lambda self, y: drawn.append(y) or render_line(self, y))
        view.apply(CaseStarted("m/text/t3", 1, "m", t=1.0))
        table.sync(list(view.cases.values()), 2.0)
        await pilot.pause()
        assert "run" in table.get_cell("m/text/t3", "status").plain
        assert drawn and set(drawn) == {drawn[0]}, f"lines drawn again: {sorted(set(drawn))}"
