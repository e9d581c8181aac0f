"""``vlmtui score`` as a user runs it: a saved log scored again in a subprocess, the new log equal to what a
live run would have written, its reports showing the new scores, and every mistake one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import ROOT
from tests.fixtures.scored_log import (
    ANSWERS,
    ITEMS,
    Item,
    answer_results,
    judge_result,
    session_events,
    write_log,
    write_scored_log,
)
from tests.fixtures.vqa_sample import write_jsonl_sample
from tests.unit.test_report import LogBuilder, metrics, planned
from vlmtui.reports.model import build_report
from vlmtui.reports.records import load_log
from vlmtui.reports.rescore import rescore, suite_items
from vlmtui.suite.datasets import DatasetSource

SUITE = """name = "plain"
text_prompts = ["Hello?"]

[[models]]
id = "smol"
backend = "transformers"
path = "tiny:idefics3"
"""


def vlmtui_score(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vlmtui", "score", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_scoring_again_with_the_same_metrics_gives_the_live_scores(tmp_path: Path) -> None:
    live = write_scored_log(tmp_path / "live.jsonl")
    done = vlmtui_score(str(live))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().endswith(f"scored log: {tmp_path}/live.scored.jsonl")
    assert "Scored 12 answer(s)" in done.stdout and "vqa" in done.stdout
    before, after = lines(live), lines(tmp_path / "live.scored.jsonl")
    assert after[:-1] == before, "the same answers, metrics and references score the same"
    assert after[-1]["event"] == "notice" and f"scored again from {live}" in str(after[-1]["message"])


def test_new_metrics_rescore_and_regrade_each_answer(tmp_path: Path) -> None:
    live = write_scored_log(tmp_path / "live.jsonl")
    original = live.read_bytes()
    new = tmp_path / "relaxed.jsonl"
    done = vlmtui_score(str(live), "--metrics", "relaxed", "exact", "-o", str(new))
    assert done.returncode == 0, done.stderr
    assert live.read_bytes() == original, "the log it scores is never touched"
    rescored = {r.case_id: r for r in load_log(new).results}
    verbose = rescored["smol/vqa-sample/4001"]
    assert verbose.scoring.scores == {"relaxed": 1.0, "exact": 0.0} and verbose.scoring.primary == "relaxed"
    assert (verbose.status, verbose.error) == ("passed", ""), "right under relaxed: no longer failed by its score"
    wrong = rescored["qwen/vqa-sample/1001"]
    assert (wrong.status, wrong.error) == ("failed", "relaxed 0.00 is under pass_at 0.5")
    expected = answer_results(ANSWERS, metrics=("relaxed", "exact"))
    assert {r.case_id: (r.scores, r.status) for r in expected} == {
        case_id: (dict(r.scoring.scores), r.status) for case_id, r in rescored.items()}, "equal to a live run"
    report = subprocess.run([sys.executable, "-m", "vlmtui", "report", str(new)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert "| smol | relaxed | 0.93 | 6 | 40.0 | 2.50 | 1.5 GiB |" in report.stdout


def test_judge_metrics_are_kept_and_said_so(tmp_path: Path) -> None:
    results = answer_results({"smol": ANSWERS["smol"]}, metrics=("judge:qwen", "vqa"))
    verbose = next(r for r in results if r.case_id == "smol/vqa-sample/4001")
    results.append(judge_result("qwen", verbose, 1.0, results[-1].ended_at + 1))
    live = write_log(tmp_path / "judged.jsonl", session_events(results))
    done = vlmtui_score(str(live), "--metrics", "judge:qwen", "relaxed")
    assert done.returncode == 0, done.stderr
    (note,) = [line for line in done.stderr.splitlines() if "note:" in line]
    assert note == ("vlmtui: note: judge:qwen cannot be recomputed offline: the grades of its judge cases in the log "
                    "are kept (run the suite again to judge anew)")
    report = build_report(load_log(tmp_path / "judged.scored.jsonl"))
    rows = {row.case_id: row for row in report.cases}
    assert rows["smol/vqa-sample/4001"].scores.scores == {"relaxed": 1.0, "judge:qwen": 1.0}
    assert rows["smol/vqa-sample/4001"].status == "passed"
    assert rows["smol/vqa-sample/1000"].scores.primary_value is None, "not judged: no primary score"


def test_a_suite_without_datasets_leaves_the_references_to_the_log(tmp_path: Path) -> None:
    live = write_scored_log(tmp_path / "live.jsonl")
    suite = tmp_path / "plain.toml"
    suite.write_text(SUITE, encoding="utf-8")
    done = vlmtui_score(str(live), "--suite", str(suite), "--metrics", "exact")
    assert done.returncode == 0, done.stderr
    assert f"vlmtui: note: {suite} has no [[datasets]]: the references come from the log" in done.stderr
    assert load_log(tmp_path / "live.scored.jsonl").latest()["smol/vqa-sample/1000"].scoring.scores == {"exact": 1.0}


@pytest.mark.parametrize(("args", "message"), [
    (["--metrics", "bleu"], "unknown metric 'bleu' (known: vqa, exact, relaxed, anls, judge:<model-id>)"),
    (["-o", "{log}"], "would overwrite the log it scores; name another file with -o"),
    (["--suite", "{tmp}/missing.toml"], "missing.toml: suite file not found"),
])
def test_mistakes_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    live = write_scored_log(tmp_path / "live.jsonl")
    done = vlmtui_score(str(live), *(a.format(log=live, tmp=tmp_path) for a in args))
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("vlmtui: error: ") and line.endswith(message)


def test_a_log_without_datasets_has_nothing_to_score(tmp_path: Path) -> None:
    b = LogBuilder(tmp_path / "plain.jsonl")
    b.start([planned("m/text/t0")]).case("m/text/t0", "passed", 1, output="hi", metrics=metrics(1, 1))
    done = vlmtui_score(str(b.write()))
    assert done.returncode == 2
    assert done.stderr.strip().endswith("nothing to score: no case has a dataset or reference answers")


def test_corrected_references_come_from_the_suites_datasets(tmp_path: Path) -> None:
    """A suite whose [[datasets]] entry points at the sample's JSONL: its references replace the log's."""
    one_reference = [Item(item.id, item.question, ("red",), item.answer_type) for item in ITEMS]
    live = write_log(tmp_path / "live.jsonl", session_events(answer_results({"smol": ["maroon"] * 6}, one_reference)))
    source = DatasetSource(format="jsonl", path=write_jsonl_sample(tmp_path))
    suite = SimpleNamespace(datasets=[SimpleNamespace(id="vqa-sample", metrics=("vqa", "exact"), pass_at=0.2,
                                                      source=source)])
    result = rescore(live, items=suite_items(suite), suite_name="fake.toml")
    assert result.notes == () and result.answers == 6
    square = result.records.latest()["smol/vqa-sample/1000"]
    assert square.scoring.references == ITEMS[0].references, "the dataset's ten answers, not the log's one"
    assert square.scoring.scores == {"vqa": pytest.approx(0.3), "exact": 1.0}
    assert square.scoring.pass_at == 0.2 and square.status == "passed"


def test_an_item_whose_image_went_missing_after_the_run_keeps_the_suites_references(tmp_path: Path) -> None:
    """The log has an answer for every item; deleting one image since must not drop that item's corrected
    references (the suite's, not the log's) nor call it "not an item of the suite"."""
    one_reference = [Item(item.id, item.question, ("red",), item.answer_type) for item in ITEMS]
    live = write_log(tmp_path / "live.jsonl", session_events(answer_results({"smol": ["maroon"] * 6}, one_reference)))
    data = write_jsonl_sample(tmp_path / "data")
    gone = json.loads(data.read_text(encoding="utf-8").splitlines()[0])
    (data.parent / gone["image"]).unlink()
    suite = tmp_path / "corrected.toml"
    suite.write_text(SUITE + f'\n[[datasets]]\nid = "vqa-sample"\nformat = "jsonl"\npath = "{data}"\n'
                     'metrics = ["vqa", "exact"]\npass_at = 0.2\n', encoding="utf-8")
    done = vlmtui_score(str(live), "--suite", str(suite))
    assert done.returncode == 0, done.stderr
    assert "note:" not in done.stderr, done.stderr
    latest = load_log(tmp_path / "live.scored.jsonl").latest()
    for item in ITEMS:
        scoring = latest[f"smol/vqa-sample/{item.id}"].scoring
        assert scoring.references == item.references, (item.id, "the dataset's ten answers, not the log's one")
    square = latest[f"smol/vqa-sample/{gone['id']}"]
    assert square.scoring.scores == {"vqa": pytest.approx(0.3), "exact": 1.0} and square.status == "passed"
