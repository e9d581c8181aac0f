"""The engine's grading of dataset and judge cases: the same scores and status rule as ``vlmtui score``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vlmtui.engine.events import CaseResult
from vlmtui.engine.grading import graded, prepared, regraded
from vlmtui.engine.plan import Case, CaseItem, JudgeTask
from vlmtui.scoring.judge import DEFAULT_JUDGE_PROMPT
from vlmtui.wire.spec import Expect, ModelSpec

MODEL = ModelSpec(id="smol", backend="transformers", path="tiny:idefics3")
JUDGE = ModelSpec(id="judge", backend="transformers", path="tiny:idefics3")
REFS = ("2",) * 7 + ("two", "3", "3")
ITEM = CaseItem("vqa", "2000", "How many circles are there?", REFS, "number", ("vqa", "relaxed"), 0.5)
CASE = Case("smol/vqa/2000", MODEL, "How many circles are there?\nAnswer briefly.", Path("/data/2.png"), 0, 8, 0.0,
            Expect(), item=ITEM)
RUN = {"gen_tokens": 3, "total_s": 0.2}


def result(case: Case, output: str, status: str = "passed", error: str = "", attempt: int = 1,
           metrics: dict[str, object] | None = None) -> CaseResult:
    return CaseResult(case.case_id, attempt, case.model.id, case.model.backend, None, case.prompt, case.kind,
                      status, error, output, dict(RUN if metrics is None else metrics))


def judge_case(item: CaseItem = ITEM) -> Case:
    return Case(f"judge/judge/{CASE.case_id}", JUDGE, "(later)", None, 0, 16, 0.0, Expect(), item=item,
                judging=JudgeTask(CASE.case_id, "judge:judge", DEFAULT_JUDGE_PROMPT))


def test_an_answer_is_scored_and_passes_or_fails_by_its_primary_score() -> None:
    right = graded(CASE, result(CASE, "Two"))
    assert right.scores == {"vqa": 1.0, "relaxed": 1.0} and right.status == "passed" and right.error == ""
    assert (right.primary_metric, right.pass_at, right.dataset, right.item_id, right.answer_type) == \
        ("vqa", 0.5, "vqa", "2000", "number")
    assert right.references == list(REFS)
    partial = graded(CASE, result(CASE, "3"))
    assert partial.scores == {"vqa": 0.6, "relaxed": 0.6} and partial.status == "passed"
    wrong = graded(CASE, result(CASE, "There are 3 of them."))
    assert wrong.scores == {"vqa": 0.0, "relaxed": 0.6}
    assert wrong.status == "failed" and wrong.error == "vqa 0.00 is under pass_at 0.5"


def test_an_expectation_failure_is_kept_and_an_unanswered_case_carries_its_item_without_scores() -> None:
    expected = graded(CASE, result(CASE, "Two", status="failed", error="output does not contain 'circle'"))
    assert expected.scores["vqa"] == 1.0 and expected.status == "failed"
    assert expected.error == "output does not contain 'circle'"
    crashed = graded(CASE, result(CASE, "Tw", status="crashed", error="worker died (SIGKILL)"))
    assert crashed.scores == {} and crashed.status == "crashed" and crashed.item_id == "2000"
    assert crashed.primary_metric == "vqa"
    load_failed = graded(CASE, result(CASE, "", status="failed", error="cannot load", metrics={}))
    assert load_failed.scores == {} and load_failed.error == "cannot load"


def test_without_references_the_answer_is_recorded_not_scored_and_passes() -> None:
    case = dataclasses.replace(CASE, item=dataclasses.replace(ITEM, references=()))
    unscored = graded(case, result(case, "2"))
    assert unscored.scores == {"vqa": None, "relaxed": None} and unscored.status == "passed"
    assert unscored.score_errors == {"vqa": "no reference answers", "relaxed": "no reference answers"}


def test_a_case_without_an_item_is_left_as_it_is() -> None:
    plain = dataclasses.replace(CASE, item=None)
    before = result(plain, "hello")
    assert graded(plain, before) is before


def test_a_judge_case_gets_the_rubric_with_the_latest_answer_and_the_attempt_it_read() -> None:
    answer = graded(CASE, result(CASE, "three", attempt=2))
    ready = prepared(judge_case(), answer)
    assert ready.skip_reason is None and ready.judging is not None and ready.judging.attempt == 2
    assert "Question: How many circles are there?" in ready.prompt and "Answer briefly" not in ready.prompt
    assert 'Reference answers (from people who saw the image): "2" (7 of 10); "3" (2 of 10); "two" (1 of 10)' \
        in ready.prompt
    assert "Answer to grade: three" in ready.prompt


def test_a_judge_case_with_nothing_to_grade_is_skipped_saying_why() -> None:
    crashed = result(CASE, "", status="crashed", error="SIGKILL")
    assert prepared(judge_case(), crashed).skip_reason == f"no answer of {CASE.case_id} to grade: it ended crashed"
    assert prepared(judge_case(), None).skip_reason == f"no answer of {CASE.case_id} to grade: it has not run"
    skipped = graded(judge_case(), result(judge_case(), "", status="skipped", metrics={}))
    assert skipped.kind == "judge" and skipped.judged_case_id == CASE.case_id and skipped.scores == {}


def test_a_judge_reply_is_a_grade_and_an_unreadable_one_a_null_score_quoting_it() -> None:
    ready = prepared(judge_case(), graded(CASE, result(CASE, "3")))
    grade = graded(ready, result(ready, "The answer is partly right. Score: 0.6"))
    assert grade.kind == "judge" and grade.scores == {"judge:judge": 0.6} and grade.status == "passed"
    assert (grade.judged_case_id, grade.judged_attempt, grade.item_id) == (CASE.case_id, 1, "2000")
    assert grade.primary_metric is None, "a judge case's scores are the judged case's, joined by readers"
    babble = graded(ready, result(ready, "lorem ipsum dolor"))
    assert babble.scores == {"judge:judge": None} and babble.status == "failed"
    assert babble.score_errors == {"judge:judge": 'no score in judge reply: "lorem ipsum dolor"'}
    assert babble.error == babble.score_errors["judge:judge"]


def test_a_grade_of_a_judge_primary_metric_passes_or_fails_the_judged_case_again() -> None:
    case = dataclasses.replace(CASE, item=dataclasses.replace(ITEM, metrics=("judge:judge", "vqa")))
    answer = graded(case, result(case, "3"))
    assert answer.status == "passed" and "judge:judge" not in answer.scores, "ungraded: the primary is null"
    ready = prepared(judge_case(case.item), answer)  # type: ignore[arg-type]
    low = graded(ready, result(ready, "score: 0.2"))
    failed = regraded(answer, [], [low])
    assert failed is not None and failed.status == "failed" and failed.error == "judge:judge 0.20 is under pass_at 0.5"
    assert failed.attempt == answer.attempt and failed.scores == answer.scores
    high = graded(ready, result(ready, "score: 1"))
    again = regraded(failed, [low], [high])
    assert again is not None and again.status == "passed" and again.error == ""
    assert regraded(again, [high], [high]) is None, "no change, nothing to write"
    stale = dataclasses.replace(low, judged_attempt=7)
    assert regraded(answer, [], [stale]) is None, "a grade of another attempt does not count"
    primary_vqa = graded(CASE, result(CASE, "3"))
    assert regraded(primary_vqa, [], [dataclasses.replace(low, scores={"judge:judge": 0.0})]) is None


def test_a_log_with_a_judged_case_written_again_counts_one_attempt_and_rescores_to_the_same(tmp_path: Path) -> None:
    from vlmtui.engine.events import CaseFinished, SessionStarted
    from vlmtui.engine.session_log import SessionLog, load_log
    from vlmtui.reports.rescore import rescore

    case = dataclasses.replace(CASE, item=dataclasses.replace(ITEM, metrics=("judge:judge", "vqa")))
    answer = graded(case, dataclasses.replace(result(case, "3"), started_at=10.0, ended_at=11.0))
    ready = prepared(judge_case(case.item), answer)  # type: ignore[arg-type]
    grade = graded(ready, dataclasses.replace(result(ready, "score: 0"), started_at=12.0, ended_at=13.0))
    again = regraded(answer, [], [grade])
    assert again is not None
    log = SessionLog(tmp_path / "live.jsonl")
    log(SessionStarted("s1", "t", "", {}, []))
    for done in (answer, grade, again):
        log(CaseFinished(done))
    log.close()
    data = load_log(tmp_path / "live.jsonl")
    assert data.attempts() == {case.case_id: 1, ready.case_id: 1}
    assert data.latest()[case.case_id].status == "failed"
    rescored = rescore(tmp_path / "live.jsonl").records.latest()
    for case_id, live in data.latest().items():
        assert (rescored[case_id].status, rescored[case_id].error) == (live.status, live.error)
        assert rescored[case_id].scoring == live.scoring
