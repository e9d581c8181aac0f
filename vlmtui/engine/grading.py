"""A dataset case's answer scored as it ends, and a judge case's reply read as a grade of another case's answer.

The status rule is the one ``vlmtui score`` applies (``reports.case_scores.score_status``): an answered case
whose primary score is under ``pass_at`` fails, saying so; one that failed for another reason keeps it.
A judge's grade arrives after the judged case ended: when the primary metric is that judge's, the judged
case's latest attempt is passed or failed again by it (``regraded``) and written once more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from vlmtui.engine.events import CaseResult
from vlmtui.engine.plan import Case, JudgeTask
from vlmtui.reports.case_scores import NO_SCORES, CaseScores, answered, score_status
from vlmtui.scoring.judge import judge_prompt, parse_judge_reply
from vlmtui.scoring.metrics import score_all
from vlmtui.vocab import CaseStatus


def graded(case: Case, result: CaseResult) -> CaseResult:
    """The attempt's result with its item and scores (a judge case: its grade); a case without an item as it is."""
    item = case.item
    if item is None:
        return result
    result = dataclasses.replace(result, references=list(item.references), dataset=item.dataset,
                                 item_id=item.item_id, answer_type=item.answer_type)
    if case.judging is not None:
        return _judge_graded(case.judging, result)
    result = dataclasses.replace(result, primary_metric=item.metrics[0], pass_at=item.pass_at)
    if not answered(result.status, result.metrics):
        return result  # crashed, aborted, skipped, a failed load: the item, no scores
    scores, errors = score_all(item.metrics, result.output, item.references)
    after = CaseScores.from_result(dataclasses.replace(result, scores=scores, score_errors=errors))
    status, error = score_status(result.status, result.error, NO_SCORES, after)
    return dataclasses.replace(result, scores=scores, score_errors=errors, status=status, error=error)


def _judge_graded(task: JudgeTask, result: CaseResult) -> CaseResult:
    """A judge case's result: the judged case and attempt it read, and the grade its reply holds."""
    result = dataclasses.replace(result, judged_case_id=task.judged_case_id, judged_attempt=task.attempt)
    if not answered(result.status, result.metrics):
        return result
    grade = parse_judge_reply(result.output)
    errors = {task.metric: grade.reason} if grade.reason else {}
    status, error = result.status, result.error
    if grade.value is None and status == CaseStatus.PASSED:
        status, error = CaseStatus.FAILED, grade.reason or "no score in the judge's reply"
    return dataclasses.replace(result, scores={task.metric: grade.value}, score_errors=errors, status=status,
                               error=error)


def prepared(case: Case, judged: CaseResult | None) -> Case:
    """A judge case about to run: its rubric holds the judged case's latest answer; skipped when there is none."""
    task, item = case.judging, case.item
    if task is None or item is None:
        return case
    if judged is None or not answered(judged.status, judged.metrics):
        why = "it has not run" if judged is None else f"it ended {judged.status}"
        reason = case.skip_reason or f"no answer of {task.judged_case_id} to grade: {why}"
        return dataclasses.replace(case, skip_reason=reason)
    prompt = judge_prompt(item.question, item.references, judged.output, task.template)
    return dataclasses.replace(case, prompt=prompt, judging=dataclasses.replace(task, attempt=judged.attempt))


def regraded(judged: CaseResult, before: Iterable[CaseResult], after: Iterable[CaseResult]) -> CaseResult | None:
    """The judged case's latest attempt passed or failed again now that its grades went from ``before`` to
    ``after`` (judge cases' results); None when its status and error stay as they are."""
    old = _with_grades(CaseScores.from_result(judged), judged.attempt, before)
    new = _with_grades(CaseScores.from_result(judged), judged.attempt, after)
    status, error = score_status(judged.status, judged.error, old, new)
    if (status, error) == (judged.status, judged.error):
        return None
    return dataclasses.replace(judged, status=status, error=error)


def _with_grades(scores: CaseScores, attempt: int, judges: Iterable[CaseResult]) -> CaseScores:
    """``scores`` with the grades of the judge results that read ``attempt``."""
    for judge in judges:
        if judge.judged_attempt == attempt and judge.scores:
            scores = scores.with_grades(CaseScores.from_result(judge))
    return scores
