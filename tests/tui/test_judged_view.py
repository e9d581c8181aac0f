"""The dashboard's view of a judged answer: its judge's grade joined in, and the same attempt passed or failed
again by that grade replacing the attempt, not added as another."""

from __future__ import annotations

import dataclasses

from tests.fixtures.scored_log import ITEMS, judge_result, planned, scored_result
from vlmtui.engine.events import CaseFinished, SessionStarted
from vlmtui.ui.tui.state import SessionView


def test_a_regraded_answer_replaces_its_attempt_and_shows_the_grade() -> None:
    answer = scored_result("smol", ITEMS[2], "3", 100.0, metrics=("judge:qwen", "vqa"))
    assert answer.status == "passed", "ungraded, the judge's primary score is null"
    grade = judge_result("qwen", answer, 0.2, 101.0)
    again = dataclasses.replace(answer, status="failed", error="judge:qwen 0.20 is under pass_at 0.5")
    view = SessionView()
    view.apply(SessionStarted("s", "t", "", {}, [planned(answer), planned(grade)]))
    for result in (answer, grade, again):
        view.apply(CaseFinished(result))
    row = view.cases[answer.case_id]
    assert [a.attempt for a in row.attempts] == [1] and row.status == "failed"
    assert row.scores.scores == {"vqa": 0.6, "judge:qwen": 0.2} and row.scores.right is False
    assert view.counts()["failed"] == 1 and view.counts()["passed"] == 1
