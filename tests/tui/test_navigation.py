"""Moving through the queue (issue 17): g/G/home/end, n/N between failures, and the cursor on the first
failure once the queue is done, over recorded events and over the real scheduler."""

from __future__ import annotations

from pathlib import Path

from tests.tui.helpers import SMOL, driven, ghost_model, idle, make_app, until
from tests.tui.replay import finished_session, running_session
from tests.tui.test_snapshots import replay_app, settle

FIRST_FAILURE = "moondream2/lake.jpg/p0"
"""The finished replay's first failed, crashed or aborted case in plan order (a crash; SmolVLM's failure
passed on its rerun)."""


class TestFirstFailure:
    async def test_the_cursor_is_on_the_first_failure_when_the_queue_is_done(self) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            table = app.dashboard.table
            assert table.selected_case == FIRST_FAILURE, "not the last case that ran"
            assert app.dashboard.output is not None and app.dashboard.output.case_id == FIRST_FAILURE

    async def test_while_a_case_runs_the_cursor_follows_it(self) -> None:
        app = replay_app(running_session())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert app.dashboard.table.selected_case == "moondream2/lake.jpg/p0"
            assert app.dashboard.view.running == "moondream2/lake.jpg/p0"

    async def test_a_real_run_ends_on_its_first_failure(self, tmp_path: Path) -> None:
        # The ghost model's cases fail at load and come first; SMOL's pass after them, and the cursor,
        # following each case as it starts, ends the run on SMOL's last case until the queue is done.
        head, smol = SMOL.replace('text_prompts = ["Hello?"]', "").split("[[models]]")
        body = head + ghost_model(tmp_path) + "[[models]]" + smol
        app = make_app(tmp_path, body)
        async with driven(app) as pilot:
            await until(pilot, lambda: idle(app), "the run to finish")
            ghost, smol = app.dashboard.view.order
            await until(pilot, lambda: app.dashboard.table.selected_case == ghost, "the cursor on the failure")
            assert app.dashboard.view.cases[ghost].status == "failed"
            assert app.dashboard.view.cases[smol].status == "passed"


class TestKeys:
    async def test_g_G_home_end_go_to_either_end(self) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            table = app.dashboard.table
            first, last = table.shown_cases[0], table.shown_cases[-1]
            await pilot.press("G")
            assert table.selected_case == last and not table.following
            await pilot.press("g")
            assert table.selected_case == first
            await pilot.press("end")
            assert table.selected_case == last
            await pilot.press("home")
            assert table.selected_case == first

    async def test_n_and_N_step_through_failures_and_wrap(self) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            table = app.dashboard.table
            failures = ["moondream2/lake.jpg/p0", "moondream2/still-life.png/p0", "llava-1.6-7b/bicycle.jpg/p0",
                        "llava-1.6-7b/lake.jpg/p0", "llava-1.6-7b/still-life.png/p0", "llava-1.6-7b/text/t0"]
            await pilot.press("g")
            seen = []
            for _ in failures:
                await pilot.press("n")
                seen.append(table.selected_case)
            assert seen == failures, "crashed, aborted and failed cases in order; passes and skips passed over"
            await pilot.press("n")
            assert table.selected_case == failures[0], "n wraps around"
            await pilot.press("N")
            assert table.selected_case == failures[-1], "N wraps back"
            await pilot.press("N", "N")
            assert table.selected_case == failures[-3]
            assert app.dashboard.output is not None and app.dashboard.output.case_id == failures[-3]

    async def test_n_with_no_failure_says_so(self) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            app.dashboard.filter_text = "pass"
            await settle(pilot)
            table = app.dashboard.table
            before = table.selected_case
            await pilot.press("n")
            assert table.selected_case == before
            assert any("no failed, crashed or aborted case" in str(n.message) for n in app._notifications)
