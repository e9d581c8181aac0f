"""The queue first (issue 17): at 80×24 the queue lists at least 10 cases, names get their width before
prompts, 60×20 stays usable, and ``m``/``z`` fold the other panes away. Drawn from recorded events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.pilot import Pilot

from tests.tui.replay import finished_session, running_session
from tests.tui.test_snapshots import replay_app, settle
from vlmtui.engine.events import SessionStarted
from vlmtui.ui.tui.keys import DASHBOARD_KEYS, FOOTER_PRIORITY
from vlmtui.ui.tui.names import name_labels
from vlmtui.ui.tui.screens.dashboard import DashboardScreen
from vlmtui.ui.tui.screens.help import HelpScreen
from vlmtui.ui.tui.widgets.case_table import column_widths
from vlmtui.ui.tui.widgets.key_bar import KeyBar, fit_keys
from vlmtui.ui.tui.widgets.summary import ModelSummaryTable, SummaryRow
from vlmtui.vocab import ModelState

MORE_SIZES = [pytest.param((100, 30), id="100x30"), pytest.param((60, 20), id="60x20")]
"""The sizes test_snapshots.py does not draw (it has 80×24 and 120×40)."""


def dashboard_of(pilot: Pilot[Any]) -> DashboardScreen:
    screen = pilot.app.screen
    assert isinstance(screen, DashboardScreen)
    return screen


async def press_m(pilot: Pilot[Any]) -> None:
    """Once the dashboard has settled, show the models table."""
    await settle(pilot)
    await pilot.press("m")
    await settle(pilot)


class TestSizes:
    @pytest.mark.parametrize("size", MORE_SIZES)
    def test_finished(self, snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
        assert snap_compare(replay_app(finished_session()), terminal_size=size, run_before=settle)

    @pytest.mark.parametrize("size", MORE_SIZES)
    def test_running(self, snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
        assert snap_compare(replay_app(running_session()), terminal_size=size, run_before=settle)

    def test_m_shows_the_models_table_at_80x24(self, snap_compare: Callable[..., bool]) -> None:
        assert snap_compare(replay_app(finished_session()), terminal_size=(80, 24), run_before=press_m)

    def test_m_shows_the_models_table_at_60x20(self, snap_compare: Callable[..., bool]) -> None:
        assert snap_compare(replay_app(finished_session()), terminal_size=(60, 20), run_before=press_m)

    def test_z_zooms_the_output_at_80x24(self, snap_compare: Callable[..., bool]) -> None:
        async def press_z_twice(pilot: Pilot[Any]) -> None:
            await settle(pilot)
            await pilot.press("z", "z")
            await settle(pilot)

        assert snap_compare(replay_app(finished_session()), terminal_size=(80, 24), run_before=press_z_twice)


class TestQueueFirst:
    async def test_80x24_lists_at_least_10_cases_and_m_z_fold_the_rest(self) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            screen = dashboard_of(pilot)
            table, summary = screen.table, screen.query_one("#summary")
            rows = table.scrollable_content_region.height - 1  # less the column names
            assert rows >= 10 and table.row_count == 12, f"the queue lists {rows} rows"
            assert not summary.display, "the models table gives its rows to the queue at 24 rows"
            await pilot.press("m")
            await settle(pilot)
            assert summary.display and summary.region.height >= 5
            await pilot.press("m", "z")
            await settle(pilot)
            assert not summary.display and not screen.query_one("#lower").display
            assert table.scrollable_content_region.height - 1 >= 18, "zoomed: the queue takes the screen"
            await pilot.press("z")
            await settle(pilot)
            assert not table.display and screen.output_pane.region.width == 80, "then the output alone"
            await pilot.press("z")
            await settle(pilot)
            assert table.display and screen.query_one("#lower").display and table.has_focus
            assert not summary.display, "back as it was: the models table still gives way at 24 rows"

    async def test_models_table_shown_where_the_queue_keeps_10_rows(self) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            screen = dashboard_of(pilot)
            assert screen.query_one("#summary").display
            assert screen.table.scrollable_content_region.height - 1 >= 10
            await pilot.press("z", "z")
            await settle(pilot)
            screen.after_event(False)  # what each engine event does, here with the output zoomed to full height
            await pilot.press("z")
            await settle(pilot)
            assert screen.query_one("#summary").display, "unzoomed, the panes are as they were"

    async def test_60x20_keeps_help_quit_a_readable_output_and_no_bare_ellipsis(self) -> None:
        app = replay_app(running_session())
        async with app.run_test(size=(60, 20)) as pilot:
            await settle(pilot)
            screen = dashboard_of(pilot)
            bar = screen.query_one(KeyBar)
            shown = bar.render().plain
            assert "? help" in shown and "q quit" in shown and len(shown) <= 60
            assert screen.output_pane.content_region.width >= 25, "the output pane stays readable"
            table = screen.table
            for case_id in table.shown_cases:
                for cell in table.get_row(case_id):
                    assert cell.plain.strip() != "…", f"a bare … in {case_id}"
            names = {table.get_cell(cid, "model").plain for cid in table.shown_cases}
            assert names == {"smolvlm-500m", "moondream2", "llava-1.6-7b"}, "whole names at 60 columns"


    async def test_60x20_with_m_names_every_model_in_the_models_table(self) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(60, 20)) as pilot:
            await press_m(pilot)
            summary = dashboard_of(pilot).query_one("#summary", ModelSummaryTable)
            assert summary.display
            lines = [strip.text for strip in summary.render_lines(summary.region.reset_offset)]
            rows = lines[2:]  # under its border and the column names
            assert not any("…" in line.split() for line in rows), lines
            for name, row in zip(("smolvlm-500m", "moondream2", "llava-1.6-7b"), rows, strict=True):
                assert f" {name} " in row, f"{name} whole: {lines}"


    async def test_60x20_with_m_and_seven_models_the_screen_does_not_scroll(self) -> None:
        """The models table shown anyway scrolls in the rows left and says how many it shows; before, the
        screen overflowed by four rows and its scrollbar took two columns from every pane."""
        models = [f"model-{i}" for i in range(7)]
        cases = [{"case_id": f"{m}/text/t0", "model": m, "backend": "transformers", "image": None,
                  "prompt": "Hello?", "kind": "text"} for m in models]
        app = replay_app(([SessionStarted(session_id="s", suite="t", suite_path="t.toml", info={}, cases=cases,
                                          t=0.0)], 0.0))
        async with app.run_test(size=(60, 20)) as pilot:
            await press_m(pilot)
            screen = dashboard_of(pilot)
            summary = screen.query_one("#summary", ModelSummaryTable)
            assert summary.display
            assert screen.max_scroll_y == 0 and not screen.show_vertical_scrollbar
            assert summary.border_title == "models · 4 of 7"
            assert summary.region.bottom <= 19, "above the key bar"


class TestKeyBar:
    def test_keys_that_do_not_fit_are_left_out_whole_by_priority(self) -> None:
        every = fit_keys(DASHBOARD_KEYS, FOOTER_PRIORITY, 400)
        assert len(every) == sum(1 for b in DASHBOARD_KEYS if isinstance(b, Binding) and b.show)
        few = fit_keys(DASHBOARD_KEYS, FOOTER_PRIORITY, 30)
        assert [b.key for b in few] == ["m", "question_mark", "q"], "in table order, chosen by priority"

    async def test_while_a_case_runs_abort_and_pause_come_first(self) -> None:
        for recorded, wanted, unwanted in ((running_session(), ("a abort", "␣ pause"), ("o pager",)),
                                           (finished_session(), ("o pager", "r rerun"), ("a abort",))):
            app = replay_app(recorded)
            async with app.run_test(size=(80, 24)) as pilot:
                await settle(pilot)
                shown = dashboard_of(pilot).query_one(KeyBar).render().plain
                assert all(key in shown for key in wanted) and not any(key in shown for key in unwanted), shown
                assert shown.rstrip().endswith("? help q quit …")


    async def test_a_click_on_a_key_runs_it(self) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            bar = dashboard_of(pilot).query_one(KeyBar)
            x = bar.render().plain.index("? help")
            await pilot.click(KeyBar, offset=(x + 2, 0))
            await settle(pilot)
            assert isinstance(app.screen, HelpScreen)


class TestNames:
    def test_names_are_cut_at_the_end_and_stay_apart(self) -> None:
        names = ["smolvlm-500m-tiny-mlx", "smolvlm-500m-tiny-server", "moondream2"]
        assert name_labels(names, 30) == {name: name for name in names}, "whole when they fit"
        labels = name_labels(names, 12)
        assert labels["moondream2"] == "moondream2"
        assert labels["smolvlm-500m-tiny-mlx"] == "smolv…mlx"
        assert labels["smolvlm-500m-tiny-server"] == "smolv…server"
        assert name_labels(["qwen2-vl-2b-instruct"], 10) == {"qwen2-vl-2b-instruct": "qwen2-vl-…"}
        assert all(len(label) <= 12 for label in labels.values())
        assert name_labels(["abc"], 1) == {"abc": "a"}, "never a bare …"

    def test_names_get_their_width_before_the_prompt(self) -> None:
        widths = column_widths(79, model_need=12, image_need=14)
        assert widths["model"] == 12 and widths["prompt"] >= 10
        assert sum(widths.values()) + 2 * len(widths) == 79
        long = column_widths(79, model_need=40, image_need=14)
        assert long["model"] == 79 // 3, "a long name gets up to a third of the width"
        assert "prompt" not in long, "the prompt gives way first"
        narrow = column_widths(59, model_need=12, image_need=14)
        assert narrow["model"] == 12 and narrow["image"] >= 12 and "prompt" not in narrow
        assert sum(narrow.values()) + 2 * len(narrow) <= 59

    async def test_the_models_table_cuts_names_at_the_end_too(self) -> None:
        class SummaryApp(App[None]):
            def compose(self) -> ComposeResult:
                yield ModelSummaryTable(id="summary")

        app = SummaryApp()
        async with app.run_test(size=(80, 6)) as pilot:
            table = app.query_one(ModelSummaryTable)
            names = ("smolvlm-500m-instruct-tiny-mlx", "smolvlm-500m-instruct-tiny-server")
            table.rows = tuple(SummaryRow(name, ModelState.UNLOADED, (3, 0, 0, 0, 0), 1.9, 41.5, 2**30)
                               for name in names)
            await pilot.pause()
            lines = [strip.text for strip in table.render_lines(table.region.reset_offset)[1:3]]
            assert "smolvlm-500m-in…mlx " in lines[0] and "smolvlm-500m-in…server " in lines[1], lines

    async def test_at_60_columns_the_counts_fold_into_one_column_and_the_names_stay_whole(self) -> None:
        class SummaryApp(App[None]):
            def compose(self) -> ComposeResult:
                yield ModelSummaryTable(id="summary")

        names = ("smolvlm-tiny-hf", "llava-next-tiny-hf", "llava-next-tiny-mlx", "moondream2-tiny-mlx",
                 "smolvlm-tiny-server")
        app = SummaryApp()
        async with app.run_test(size=(58, 8)) as pilot:  # the table's width in a 60-column dashboard
            table = app.query_one(ModelSummaryTable)
            table.rows = tuple(SummaryRow(name, ModelState.UNLOADED, (4, i % 2, 0, 0, 0), 0.11, 302.0, 406 * 2**20,
                                          peak_kind="rss") for i, name in enumerate(names))
            await pilot.pause()
            heading, *lines = [strip.text for strip in table.render_lines(table.region.reset_offset)[:6]]
            assert heading.split() == ["model", "cases", "mean", "s", "tok/s", "peak"], heading
            for name, line in zip(names, lines, strict=True):
                assert line.split()[0] == name, "whole names: the five counts gave their cells"
            assert lines[1].split()[1:3] == ["✓4", "✗1"] and lines[0].split()[1] == "✓4", "counts that are not 0"
            assert lines[0].rstrip().endswith("406M RSS"), "the short peak, still saying what it measured"
