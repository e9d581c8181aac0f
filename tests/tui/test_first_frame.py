"""The first frame waits for none of the engine (issue 17): the planned queue is drawn from the prepared
session while the scheduler is still to be built, and the engine is built and started only after it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.functional.helpers import write_suite
from tests.tui.helpers import ONE_IMAGE, SMOL, until
from vlmtui.engine.events import SessionStarted
from vlmtui.engine.setup import prepare_session
from vlmtui.ui.tui.app import VlmApp
from vlmtui.ui.tui.screens.panes import crowded_before_layout


def test_the_dashboard_shows_the_planned_queue_before_the_scheduler_exists(tmp_path: Path) -> None:
    session = prepare_session(write_suite(tmp_path, SMOL, images=ONE_IMAGE), log_path=tmp_path / "s.jsonl")
    engine = session.engine
    release, building = threading.Event(), threading.Event()
    build = engine._build

    def slow_build():  # type: ignore[no-untyped-def]
        building.set()
        release.wait(60)
        return build()

    engine._build = slow_build
    app = VlmApp(engine, log_path=session.log.path, fps=20, preview=engine.preview)

    async def drive() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            try:
                await until(pilot, building.is_set, "the engine's build to start after the first frame")
                table = app.dashboard.table
                assert not engine.built
                assert table.row_count == 2, "the image and the text case, from the plan"
                assert "queue" in str(table.border_title) and "2" in str(table.border_title)
                app.dashboard.controls.toggle_pause()  # a key before the scheduler exists is kept for it
                release.set()
                await until(pilot, lambda: engine.built, "the scheduler")
                assert engine.scheduler.paused, "the pause pressed during the build holds"
                assert not engine.scheduler.results or all(not r for r in engine.scheduler.results.values())
            finally:
                release.set()
                await app.stop_engine("the test is over")

    asyncio.run(drive())
    log = session.log.path.read_text()
    assert log.count('"event": "session_start"') == 1, "the preview is never logged; the scheduler's start is"


def test_a_stop_before_the_scheduler_exists_ends_the_run_without_a_case(tmp_path: Path) -> None:
    session = prepare_session(write_suite(tmp_path, SMOL, images=ONE_IMAGE), log_path=tmp_path / "s.jsonl")
    engine = session.engine
    seen: list[str] = []
    started: list[SessionStarted] = []
    engine.subscribe(lambda event: seen.append(type(event).__name__))
    engine.subscribe(lambda event: started.append(event) if isinstance(event, SessionStarted) else None)
    engine.stop("quit before the first case")
    assert not engine.built and engine.rerun_failed() == [] and engine.abort_current() is None
    counts = asyncio.run(engine.run())
    assert engine.built and seen[0] == "SessionStarted" and seen[-1] == "SessionFinished"
    assert "CaseStarted" not in seen and "ModelLoading" not in seen
    # What the first frame showed is what the scheduler then said (it adds the machine's details).
    preview, real = engine.preview, started[0]
    assert (preview.session_id, preview.cases) == (real.session_id, real.cases)
    assert preview.info.items() <= real.info.items()
    assert counts == {"pending": 2}, "both cases still to run, in the log's session_end too"
    assert '"stopped": true' in session.log.path.read_text()


def test_preparing_a_session_imports_no_scheduler_and_no_image_library(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, SMOL)
    code = (
        "import sys\n"
        "from vlmtui.engine.setup import prepare_session\n"
        f"prepare_session({str(suite)!r}, log_path={str(tmp_path / 's.jsonl')!r})\n"
        "print(','.join(m for m in ('vlmtui.engine.scheduler', 'vlmtui.engine.worker_session',\n"
        "                           'vlmtui.engine.guard_loop', 'PIL') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"imported before the first frame: {done.stdout.strip()}"


def _plan(models: int) -> SessionStarted:
    cases = [{"case_id": f"m{i}/text/t{j}", "model": f"model-{i}", "backend": "transformers", "image": None,
              "prompt": "Hello?", "kind": "text"} for i in range(models) for j in range(4)]
    return SessionStarted(session_id="s", suite="t", suite_path="t.toml", info={}, cases=cases, t=0.0)


@pytest.mark.parametrize("size", [(60, 20), (80, 24), (100, 30), (120, 40), (80, 34)])
@pytest.mark.parametrize("models", [1, 3, 7])
def test_the_models_table_is_placed_before_the_first_layout_as_after_it(size: tuple[int, int], models: int) -> None:
    """``crowded_before_layout`` (compose, from the terminal's height) agrees with ``fit_panes`` (after layout,
    from the panes' real heights): otherwise the first frame would be restyled and drawn again."""
    app = VlmApp(None, replay=[_plan(models)])

    async def drive() -> bool:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            app.dashboard.fit_panes()
            return app.dashboard.has_class("-crowded")

    assert asyncio.run(drive()) == crowded_before_layout(size[1], models)
