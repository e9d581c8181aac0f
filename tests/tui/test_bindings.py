"""Every key of the dashboard against the real scheduler, a real worker and the tiny transformers model."""

from __future__ import annotations

import json
from pathlib import Path

import psutil

from tests.tui.helpers import SMOL, driven, ghost_model, idle, make_app, scheduler_of, streaming, until
from vlmtui.ui.tui.screens.case_detail import CaseDetailScreen
from vlmtui.ui.tui.screens.confirm_quit import ConfirmQuitScreen
from vlmtui.ui.tui.screens.dashboard import DashboardScreen
from vlmtui.ui.tui.screens.filter import FilterScreen
from vlmtui.ui.tui.screens.help import HelpScreen
from vlmtui.vocab import count_by_status


def logged_attempts(log: Path, case_id: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    return [line for line in lines if line["event"] == "case_end" and line["case_id"] == case_id]


class TestSelectionAndRerun:
    async def test_keys_select_and_r_reruns_the_selected_case(self, tmp_path: Path) -> None:
        app = make_app(tmp_path)
        scheduler = scheduler_of(app)
        async with driven(app) as pilot:
            await until(pilot, lambda: idle(app), "the first run to finish")
            table = app.dashboard.table
            image_case, text_case = app.dashboard.view.order
            assert table.selected_case == text_case, "the cursor followed the running case"
            await pilot.press("k")
            assert table.selected_case == image_case and not table.following
            await pilot.press("j", "up")
            assert table.selected_case == image_case
            await pilot.press("down", "k")
            assert table.selected_case == image_case
            assert app.dashboard.output is not None and app.dashboard.output.case_id == image_case

            await pilot.press("r")
            await until(pilot, lambda: len(scheduler.results[image_case]) == 2 and idle(app), "the rerun")
            assert [r.attempt for r in scheduler.results[image_case]] == [1, 2]
            assert len(scheduler.results[text_case]) == 1
            assert table.get_cell(image_case, "status").plain == "✓ pass ×2"
            assert len(logged_attempts(tmp_path / "session.jsonl", image_case)) == 2, "reruns append"

    async def test_f_reruns_every_failed_case_and_slash_filters(self, tmp_path: Path) -> None:
        body = SMOL.replace('text_prompts = ["Hello?"]', "") + ghost_model(tmp_path)
        app = make_app(tmp_path, body)
        scheduler = scheduler_of(app)
        async with driven(app) as pilot:
            await until(pilot, lambda: idle(app), "the first run to finish")
            smol, ghost = app.dashboard.view.order
            assert scheduler.latest()[ghost].status == "failed"
            assert scheduler.latest()[smol].status == "passed"

            await pilot.press("f")
            await until(pilot, lambda: len(scheduler.results[ghost]) == 2 and idle(app), "the rerun")
            assert len(scheduler.results[smol]) == 1, "only failures are rerun"
            assert len(logged_attempts(tmp_path / "session.jsonl", ghost)) == 2

            await pilot.press("slash")
            assert isinstance(app.screen, FilterScreen)
            await pilot.press(*"fail", "enter")
            assert isinstance(app.screen, DashboardScreen)
            assert app.dashboard.table.row_count == 1 and app.dashboard.table.selected_case == ghost
            assert "filter “fail”: 1 of 2" in str(app.dashboard.table.border_title)
            await pilot.press("slash", *"smol", "enter")
            assert app.dashboard.table.row_count == 1 and app.dashboard.table.selected_case == smol
            await pilot.press("slash", "ctrl+u", "enter")  # an empty filter shows everything again
            assert app.dashboard.table.row_count == 2


class TestQueueControls:
    async def test_space_pauses_and_resumes_the_queue(self, tmp_path: Path) -> None:
        app = make_app(tmp_path)
        scheduler = scheduler_of(app)
        async with driven(app) as pilot:
            await pilot.press("space")
            assert scheduler.paused
            await until(pilot, lambda: scheduler.running_case is None, "the running case (if any) to end")
            await pilot.pause(1.5)
            finished = sum(len(r) for r in scheduler.results.values())
            assert finished < 2 and scheduler.pending, "nothing new starts while paused"
            assert app.dashboard.run_state == "paused"
            await pilot.press("space")
            assert not scheduler.paused
            await until(pilot, lambda: idle(app), "the queue to finish after resuming")
            assert count_by_status(scheduler.queue.standing()) == {"passed": 2}

    async def test_a_aborts_the_running_case(self, tmp_path: Path) -> None:
        app = make_app(tmp_path, kind="text", max_tokens=2000)
        scheduler = scheduler_of(app)
        async with driven(app) as pilot:
            await until(pilot, lambda: streaming(app), "tokens to stream")
            (case_id,) = app.dashboard.view.order
            await pilot.press("a")
            await until(pilot, lambda: idle(app), "the aborted case to end")
            result = scheduler.latest()[case_id]
            assert result.status == "aborted" and result.error == "aborted by the user"
            assert result.metrics["gen_tokens"] < 2000
            assert app.dashboard.table.get_cell(case_id, "status").plain == "■ abort"

    async def test_c_frees_the_workers_caches(self, tmp_path: Path) -> None:
        app = make_app(tmp_path, kind="text")
        scheduler = scheduler_of(app)
        async with driven(app) as pilot:
            await until(pilot, lambda: idle(app), "the run to finish")
            assert scheduler.worker_pid is not None, "the worker waits for reruns"
            await pilot.press("c")
            log = tmp_path / "session.jsonl"
            await until(pilot, lambda: "cleanup (requested by the user) freed" in log.read_text(),
                        "the worker's cleanup report")
            assert app.dashboard.memory_panel.last_guard is None, "the user's cleanup is a notice, not the guard's"

    async def test_s_saves_the_log_and_a_report(self, tmp_path: Path) -> None:
        app = make_app(tmp_path, kind="text")
        async with driven(app) as pilot:
            await until(pilot, lambda: idle(app), "the run to finish")
            await pilot.press("s")
            await until(pilot, lambda: app.dashboard.saved_paths is not None, "the report")
            assert app.dashboard.saved_paths is not None
            log, report = app.dashboard.saved_paths
            assert log == tmp_path / "session.jsonl" and log.exists()
            assert report.exists() and "smol/text/t0" in report.read_text()


class TestQuit:
    async def test_q_asks_while_a_case_runs_then_stops_the_worker(self, tmp_path: Path) -> None:
        app = make_app(tmp_path, kind="text", max_tokens=2000)
        scheduler = scheduler_of(app)
        async with driven(app) as pilot:
            await until(pilot, lambda: streaming(app), "tokens to stream")
            pid = scheduler.worker_pid
            assert pid is not None
            await pilot.press("q")
            assert isinstance(app.screen, ConfirmQuitScreen)
            await pilot.press("n")
            assert isinstance(app.screen, DashboardScreen) and scheduler.running_case is not None
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, ConfirmQuitScreen), "the question")
            await pilot.press("y")
            await until(pilot, lambda: app.return_code is not None, "the app to exit")
        assert app.return_code == 130, "a quit that cut a case short is an interruption"
        assert app.engine_task is not None and app.engine_task.done()
        (case_id,) = app.dashboard.view.order
        assert scheduler.latest()[case_id].status == "aborted"
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    async def test_q_when_idle_quits_at_once_and_enter_and_help_open_dialogs(self, tmp_path: Path) -> None:
        app = make_app(tmp_path, kind="text")
        scheduler = scheduler_of(app)
        async with driven(app) as pilot:
            await until(pilot, lambda: idle(app), "the run to finish")
            await pilot.press("enter")
            assert isinstance(app.screen, CaseDetailScreen)
            await pilot.press("escape", "question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert isinstance(app.screen, DashboardScreen)
            pid = scheduler.worker_pid
            await pilot.press("q")
            await until(pilot, lambda: app.return_code is not None, "the app to exit")
        assert app.return_code == 0
        assert pid is not None and (not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie")
