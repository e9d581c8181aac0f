"""Judging for real: a dataset answered by models in the real worker, then graded by judge models whose cases
wait until every answer is in, so two models are never loaded at once; a scripted judge's replies become
exact grades that pass or fail the answers, a tiny model's gibberish becomes null grades with reasons, and
``vlmtui score`` on the saved log reproduces what the live run wrote."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.script_backend import write_script
from tests.fixtures.script_site import script_on_path
from tests.fixtures.vqa_sample import SAMPLE, write_vqa_sample
from tests.functional.helpers import Recorder
from vlmtui.engine.events import CaseFinished
from vlmtui.engine.setup import Session, prepare_session
from vlmtui.reports.case_scores import joined_scores
from vlmtui.reports.records import SessionRecords, load_log
from vlmtui.reports.rescore import rescore

pytestmark = pytest.mark.slow

ORACLE = [("What color is the square", "Red."), ("Is the square blue", "No, it is red."),
          ("How many circles", "3"), ("What shape", "A pyramid."), ("Is there a circle", "yes"),
          ("What color is the circle", "Blue.")]
"""The oracle's answers, in SAMPLE's order: vqa 1, 0, 0.6, 0.3, 1, 0."""
GRADER = [("Answer to grade: Red.", "score: 1"), ("Answer to grade: No, it is red.", "Yes, that is correct."),
          ("Answer to grade: 3", "Score: 2 out of 10"),
          ("Answer to grade: A pyramid.", "<think>a pyramid is not a triangle</think> score: 0.5"),
          ("Answer to grade: yes", "score: 1"), ("Answer to grade: Blue.", "No.")]
"""The grader's replies to the oracle's answers: 1, 1, 0.2, 0.5, 1, 0; anything else it cannot grade."""
ORACLE_GRADES = [1.0, 1.0, 0.2, 0.5, 1.0, 0.0]
ORACLE_VQA = [1.0, 0.0, 0.6, 0.3, 1.0, 0.0]
UNSURE = "Hmm, hard to say."


@pytest.fixture
def script_models(tmp_path: Path) -> Iterator[Path]:
    """The scripted backend known here and in every worker, its loads traced to ``tmp_path/trace.txt``."""
    with script_on_path(tmp_path / "site"), pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLMTUI_SCRIPT_TRACE", str(tmp_path / "trace.txt"))
        yield tmp_path / "trace.txt"


def write_judged_suite(tmp_path: Path, metrics: str, *, tiny: bool = True, extra: str = "") -> Path:
    """An oracle and a grader (scripted), and a tiny transformers model with ``tiny``, answer the drawn
    sample; ``metrics`` say who judges."""
    data = write_vqa_sample(tmp_path / "data")
    oracle = write_script(tmp_path / "oracle.json", ORACLE)
    grader = write_script(tmp_path / "grader.json", GRADER)
    smol = '[[models]]\nid = "smol"\nbackend = "transformers"\npath = "tiny:idefics3"\nmax_tokens = 8\n'
    suite = tmp_path / "judged.toml"
    suite.write_text(f"""name = "judged"
max_tokens = 16

[[models]]
id = "oracle"
backend = "script"
script = "{oracle}"
default = "{UNSURE}"

[[models]]
id = "grader"
backend = "script"
script = "{grader}"
default = "{UNSURE}"

{smol if tiny else ""}
[[datasets]]
id = "shapes"
format = "vqa2"
questions = "{data.questions}"
annotations = "{data.annotations}"
images = "{data.images}"
metrics = {metrics}
{extra}""")
    return suite


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def answer_id(model: str, index: int) -> str:
    return f"{model}/shapes/{SAMPLE[index].question_id}"


async def run(session: Session) -> Recorder:
    """The session run to its end, every event recorded."""
    recorder = Recorder()
    session.scheduler.subscribe(recorder)
    await session.scheduler.run()
    return recorder


def assert_live_equals_rescored(log: Path) -> SessionRecords:
    """``vlmtui score`` with each case's own metrics gives every case's latest line as the live run wrote it."""
    live = load_log(log)
    again = rescore(log, output=log.with_name("again.jsonl")).records
    for case_id, result in live.latest().items():
        other = again.latest()[case_id]
        assert (other.status, other.error, other.scoring) == (result.status, result.error, result.scoring), case_id
    return live


async def test_judges_grade_every_answer_after_all_answers_one_model_at_a_time(script_models: Path,
                                                                                tmp_path: Path) -> None:
    suite = write_judged_suite(tmp_path, '["judge:grader", "vqa", "judge:smol"]')
    log_path = tmp_path / "judged.jsonl"
    session = prepare_session(suite, log_path=log_path)
    await run(session)
    session.log.close()
    log = lines(log_path)

    # Every answer is in before the first judge case starts, and each model's cases run in one stretch.
    starts = [line for line in log if line["event"] == "case_start"]
    answers: dict[object, int] = {}  # each answer's first case_end: its grade may write it again later
    for i, line in enumerate(log):
        if line["event"] == "case_end" and "/judge/" not in str(line["case_id"]):
            answers.setdefault(line["case_id"], i)
    judging = [i for i, line in enumerate(log) if line["event"] == "case_start" and "/judge/" in str(line["case_id"])]
    assert len(answers) == 18 and len(judging) == 36 and max(answers.values()) < min(judging)
    loads = [str(line["model"]) for line in log if line["event"] == "model_loaded"]
    assert loads == ["oracle", "grader", "smol", "grader"], "the loaded smol judges first, then the grader loads once"
    runs = [str(line["model"]) for line in starts]
    assert [m for i, m in enumerate(runs) if i == 0 or runs[i - 1] != m] == loads, "no model is loaded twice in a row"
    trace = script_models.read_text().split("\n")[:-1]
    assert [t.split()[:2] for t in trace] == [["load", "oracle"], ["unload", "oracle"], ["load", "grader"],
                                               ["unload", "grader"], ["load", "grader"], ["unload", "grader"]]

    data = assert_live_equals_rescored(log_path)
    latest = data.latest()
    joined = joined_scores(latest.values())
    for index, (grade, vqa) in enumerate(zip(ORACLE_GRADES, ORACLE_VQA, strict=True)):
        case_id = answer_id("oracle", index)
        scores = joined[case_id]
        assert scores.scores["judge:grader"] == grade and scores.scores["vqa"] == vqa, case_id
        assert scores.primary == "judge:grader" and scores.item_id == str(SAMPLE[index].question_id)
        right = grade >= 0.5
        assert latest[case_id].status == ("passed" if right else "failed"), case_id
        assert latest[case_id].error == ("" if right else f"judge:grader {grade:.2f} is under pass_at 0.5")
        judge = latest[f"grader/judge/{case_id}"]
        assert judge.kind == "judge" and judge.status == "passed" and judge.judging is not None
        assert (judge.judging.case_id, judge.judging.attempt) == (case_id, 1)
        assert judge.scoring.references == SAMPLE[index].answers
    assert data.attempts()[answer_id("oracle", 2)] == 1, "written again with its grade, still one attempt"

    # The grader cannot grade what it does not know: a null grade quoting the reply, and its case failed.
    own = latest[f"grader/judge/{answer_id('grader', 0)}"]
    assert own.status == "failed" and own.scoring.scores == {"judge:grader": None}
    assert own.scoring.errors["judge:grader"] == f'no score in judge reply: "{UNSURE}"'
    assert latest[answer_id("grader", 0)].status == "passed", "a null primary score does not fail the answer"

    # The tiny model judges too: it runs, and its gibberish holds no score.
    tiny = [r for case_id, r in latest.items() if case_id.startswith("smol/judge/")]
    assert len(tiny) == 18 and all(r.metrics.gen_tokens for r in tiny)
    nulls = [r for r in tiny if r.scoring.scores["judge:smol"] is None]
    assert len(nulls) >= 15, [r.output for r in tiny]
    assert all(r.scoring.errors["judge:smol"].startswith(("no score in judge reply:", "judge score")) for r in nulls)
    assert all(0 <= (r.scoring.scores["judge:smol"] or 0) <= 1 for r in tiny)


async def test_a_rerun_answer_is_judged_again_and_a_rerun_judge_grades_again(script_models: Path,
                                                                            tmp_path: Path) -> None:
    suite = write_judged_suite(tmp_path, '["judge:grader", "vqa"]', tiny=False, extra="limit = 3")
    log_path = tmp_path / "rerun.jsonl"
    session = prepare_session(suite, log_path=log_path)
    await run(session)
    scheduler = session.scheduler
    wrong = answer_id("oracle", 2)  # graded 0.2: failed by its judge
    judge_id = f"grader/judge/{wrong}"
    assert scheduler.latest()[wrong].status == "failed"

    assert scheduler.rerun([wrong]) == [wrong, judge_id], "its judge is queued after it"
    recorder = await run(session)
    finished = [e.result for e in recorder.of(CaseFinished)]
    assert [(r.case_id, r.attempt) for r in finished][:2] == [(wrong, 2), (judge_id, 2)], "its judge follows it"
    assert finished[1].judged_attempt == 2 and finished[1].scores == {"judge:grader": 0.2}
    assert scheduler.latest()[wrong].status == "failed"

    assert scheduler.rerun([judge_id]) == [judge_id]
    await run(session)
    session.log.close()
    assert [r.attempt for r in scheduler.results[judge_id]] == [1, 2, 3]
    assert scheduler.results[judge_id][-1].judged_attempt == 2, "a rerun judge reads the latest answer"
    data = assert_live_equals_rescored(log_path)
    assert joined_scores(data.latest().values())[wrong].scores["judge:grader"] == 0.2
