"""The dashboard knows a session from the engine's events alone and acts through its Controls.

A resumed session's carried results reach it as ``ResultsCarried`` (the real scheduler, nothing left to
run, so no worker starts); a refined budget as ``BudgetChanged``; a replay's keys meet ``NullControls``.
"""

from __future__ import annotations

from pathlib import Path

from tests.functional.helpers import cases_of, write_suite
from tests.tui.helpers import ONE_IMAGE, SMOL, driven, scheduler_of, until
from tests.tui.replay import finished_session
from vlmtui.engine.events import BudgetChanged, CaseResult, ResultsCarried
from vlmtui.engine.scheduler import Scheduler
from vlmtui.ui.tui.app import VlmApp
from vlmtui.ui.tui.state import SessionView


def resumed_app(tmp_path: Path) -> VlmApp:
    """A session whose image case passed (attempt 2) in an earlier one, and whose text case was never run."""
    cases = cases_of(write_suite(tmp_path, SMOL, images=ONE_IMAGE))
    image, text = cases
    scheduler = Scheduler(cases, suite_name="test", done_attempts={image.case_id: 2})
    earlier = CaseResult(image.case_id, 2, "smol", "transformers", str(image.image), image.prompt, "image",
                         "passed", output="A still life.", started_at=1.0, ended_at=2.0)
    scheduler.mark_done(image.case_id, earlier.to_dict())
    scheduler.mark_done(text.case_id, None)
    return VlmApp(scheduler, fps=20)


async def test_a_resumed_session_shows_what_it_carried_over(tmp_path: Path) -> None:
    app = resumed_app(tmp_path)
    carried: list[ResultsCarried] = []
    scheduler_of(app).subscribe(lambda event: carried.append(event) if isinstance(event, ResultsCarried) else None)
    async with driven(app) as pilot:
        await until(pilot, lambda: app.dashboard.view.started_at is not None, "the session to start")
        await pilot.pause(0.2)
        view = app.dashboard.view
        image, text = view.order
        assert carried[0].case_ids == [image, text] and [r.attempt for r in carried[0].results] == [2]
        assert view.cases[image].status == "passed" and view.cases[image].next_attempt == 3
        assert not view.cases[text].queued and not view.cases[text].attempts
        assert view.idle and app.dashboard.run_state == "done"
        assert app.dashboard.table.get_cell(image, "status").plain == "✓ pass ×2", "its second attempt"
        assert scheduler_of(app).worker_pid is None, "nothing to run: no worker started"


def test_a_refined_budget_reaches_the_view_as_an_event() -> None:
    view = SessionView()
    for event in finished_session()[0]:
        view.apply(event)
    assert view.budget_source == "metal recommended working set"
    view.apply(BudgetChanged(12 * 1024**3, "cuda total"))
    assert (view.budget_bytes, view.budget_source) == (12 * 1024**3, "cuda total")


async def test_a_replays_keys_act_on_no_engine() -> None:
    events, now = finished_session()
    app = VlmApp(replay=events, clock=lambda: now, fps=15)
    said: list[str] = []
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        assert not app.dashboard.controls.live
        app.dashboard.notify = lambda message, **_: said.append(message)  # type: ignore[method-assign]
        for key in ("r", "f", "space", "a", "c"):
            await pilot.press(key)
        assert said == ["this is a replay: there is no engine to act on"] * 5
        assert not app.dashboard.view.paused
