"""The queue policy: a loaded model's cases first, reruns, attempt numbers across sessions, counting."""

from __future__ import annotations

from vlmtui.engine.case_queue import CaseQueue
from vlmtui.engine.events import CaseResult
from vlmtui.engine.plan import Case
from vlmtui.vocab import count_by_status
from vlmtui.wire.spec import Expect, ModelSpec

A = ModelSpec(id="a", backend="transformers", path="tiny:idefics3")
B = ModelSpec(id="b", backend="transformers", path="tiny:llava-next")


def case(case_id: str, model: ModelSpec, *, warmup: bool = False) -> Case:
    return Case(case_id, model, "Hello?", None, 0, 4, 0.0, Expect(), warmup=warmup)


def result(case_id: str, status: str, attempt: int = 1) -> CaseResult:
    return CaseResult(case_id, attempt, case_id.split("/")[0], "transformers", None, "Hello?", "text", status)


def test_the_loaded_models_cases_go_first_then_plan_order() -> None:
    queue = CaseQueue([case("a/1", A), case("b/1", B), case("a/2", A)])
    assert queue.take(None) is not None and queue.pending == ["b/1", "a/2"]
    taken = queue.take("a")
    assert taken is not None and taken.case_id == "a/2", "the loaded model is not unloaded for one case"
    taken = queue.take("a")
    assert taken is not None and taken.case_id == "b/1"
    assert queue.take("b") is None and not queue.has_ready()


def test_a_rerun_queues_a_new_attempt_and_gives_its_model_another_chance() -> None:
    queue = CaseQueue([case("a/1", A), case("a/2", A)])
    for _ in range(2):
        taken = queue.take(None)
        assert taken is not None
        queue.record(result(taken.case_id, "failed"))
    queue.model("a").load_error, queue.model("a").skip_reason = "no such model", "skipped by preflight"
    assert queue.failed_case_ids() == ["a/1", "a/2"]
    assert queue.rerun(["a/1", "a/2", "a/1", "ghost"], running="a/2") == ["a/1"]
    assert queue.pending == ["a/1"] and queue.next_attempt("a/1") == 2
    assert queue.model("a").load_error is None and queue.model("a").skip_reason is None


def test_cases_finished_earlier_leave_the_queue_and_keep_counting_attempts() -> None:
    queue = CaseQueue([case("a/1", A), case("a/2", A), case("a/3", A)], done_attempts={"a/1": 2, "a/3": 1})
    queue.mark_done("a/1", result("a/1", "passed", attempt=2).to_dict())
    queue.mark_done("a/2", None)
    assert queue.pending == ["a/3"] and queue.carried == ["a/1", "a/2"]
    assert [r.attempt for r in queue.carried_results()] == [2]
    assert queue.next_attempt("a/1") == 3, "a rerun of a resumed case is its third attempt"
    assert queue.next_attempt("a/3") == 2, "the attempt a kill cut short counts"


def test_counts_are_over_latest_attempts_without_warmups() -> None:
    queue = CaseQueue([case("a/1#w0", A, warmup=True), case("a/1", A), case("a/2", A), case("a/3", A)])
    for case_id, status in (("a/1#w0", "passed"), ("a/1", "failed"), ("a/1", "passed"), ("a/2", "crashed")):
        queue.record(result(case_id, status))
    assert count_by_status(queue.standing()) == {"passed": 1, "crashed": 1, "pending": 1}
    assert queue.latest()["a/1"].status == "passed" and queue.failed_case_ids() == ["a/2"]
