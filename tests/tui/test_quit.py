"""Every way out of the dashboard gives the documented exit code (README: 0, 1, 130), and a quit during a
model's load asks first, as during a case: real scheduler, real fault worker (a load that takes ~20 s)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.functional.test_reliability import FAULT_ENV, FAULT_WORKER, fault_case
from tests.tui.helpers import driven, ghost_model, idle, make_app, until
from vlmtui.engine.scheduler import Scheduler
from vlmtui.engine.session_log import SessionLog
from vlmtui.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, session_exit_code
from vlmtui.suite.loader import GuardConfig
from vlmtui.ui.tui.app import VlmApp
from vlmtui.ui.tui.screens.confirm_quit import ConfirmQuitScreen
from vlmtui.ui.tui.screens.dashboard import DashboardScreen
from vlmtui.vocab import ModelState
from vlmtui.wire.spec import ModelSpec

SLOW_LOAD = ModelSpec(id="slow", backend="fault", path="fault:1:50:8:400")
"""Loads in 400 steps 50 ms apart (~20 s), then eats 1 MiB a token."""
SLOW_CASE = ModelSpec(id="steady", backend="fault", path="fault:1:100")
"""Loads at once; each token takes 100 ms."""


def fault_app(tmp_path: Path, model: ModelSpec, cases: int = 2, steps: int = 2000) -> VlmApp:
    scheduler = Scheduler([fault_case(f"{model.id}/c{i}", model, steps) for i in range(cases)],
                          suite_name="quit", suite_path="", guard=GuardConfig(grace_s=1.0),
                          worker_argv=FAULT_WORKER, worker_env=FAULT_ENV)
    log = SessionLog(tmp_path / "session.jsonl")
    scheduler.subscribe(log)
    return VlmApp(scheduler, log_path=log.path, fps=20)


def loading(app: VlmApp) -> bool:
    return any(m.state == ModelState.LOADING for m in app.dashboard.view.models.values())


def session_end(tmp_path: Path) -> dict[str, object]:
    lines = [json.loads(line) for line in (tmp_path / "session.jsonl").read_text().splitlines()]
    (end,) = [line for line in lines if line["event"] == "session_end"]
    return end


async def test_q_during_a_load_asks_and_a_confirmed_quit_exits_130(tmp_path: Path) -> None:
    app = fault_app(tmp_path, SLOW_LOAD)
    async with driven(app) as pilot:
        await until(pilot, lambda: loading(app), "the model to start loading")
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmQuitScreen), "a quit during a load asks first"
        assert "is loading" in app.screen.question and "2 queued cases will not run" in app.screen.question
        await pilot.press("n")
        assert isinstance(app.screen, DashboardScreen) and loading(app), "n goes back; the load goes on"
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmQuitScreen), "the question again")
        await pilot.press("y")
        await until(pilot, lambda: app.return_code is not None, "the app to exit", timeout=60)
    assert app.return_code == EXIT_INTERRUPTED
    end = session_end(tmp_path)
    # The case the load was for ends aborted; the other never ran: neither is a success.
    assert end["stopped"] is True and end["counts"] == {"aborted": 1, "pending": 1}


async def test_ctrl_q_during_a_case_exits_130(tmp_path: Path) -> None:
    app = fault_app(tmp_path, SLOW_CASE, cases=1)
    async with driven(app) as pilot:
        await until(pilot, lambda: app.dashboard.view.running is not None, "the case to start")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: app.return_code is not None, "the app to exit", timeout=60)
    assert app.return_code == EXIT_INTERRUPTED
    assert session_end(tmp_path)["counts"] == {"aborted": 1}


async def test_q_while_paused_with_cases_waiting_exits_130(tmp_path: Path) -> None:
    app = fault_app(tmp_path, SLOW_CASE, cases=2, steps=20)
    async with driven(app) as pilot:
        await until(pilot, lambda: app.dashboard.view.running is not None, "the first case to start")
        await pilot.press("space")
        await until(pilot, lambda: app.dashboard.view.running is None and app.dashboard.view.paused,
                    "the first case to end under the pause")
        await pilot.press("q")
        await until(pilot, lambda: app.return_code is not None, "the app to exit", timeout=60)
    assert app.return_code == EXIT_INTERRUPTED
    assert session_end(tmp_path)["counts"].get("pending") == 1  # type: ignore[union-attr]


async def test_q_once_everything_ran_exits_with_the_results_code(tmp_path: Path) -> None:
    app = make_app(tmp_path, 'prompts = ["Describe this image."]\n' + ghost_model(tmp_path))
    async with driven(app) as pilot:
        await until(pilot, lambda: idle(app), "the failing case to end")
        await pilot.press("q")
        await until(pilot, lambda: app.return_code is not None, "the app to exit")
    assert app.return_code == EXIT_FAILED, "a finished session with a failed case is 1, not 0"


STALE_WORKER = [sys.executable, "-c", "import json, os, sys, time; print(json.dumps({'type': 'hello', "
                "'pid': os.getpid(), 'python': '3.11', 'protocol': 1, 'executable': sys.executable}), flush=True); "
                "time.sleep(30)"]
"""A worker from another installation: it speaks protocol 1, so no case can run on it."""


async def test_a_refused_worker_leaving_cases_unrun_is_a_failure_not_a_success(tmp_path: Path) -> None:
    scheduler = Scheduler([fault_case(f"steady/c{i}", SLOW_CASE, 2) for i in range(2)], suite_name="stale",
                          guard=GuardConfig(grace_s=1.0), worker_argv=STALE_WORKER, worker_env=FAULT_ENV)
    counts = await asyncio.wait_for(scheduler.run(), 60)
    assert counts == {"pending": 2}
    assert session_exit_code(counts, interrupted=False) == EXIT_FAILED, "pending was counted a success"
