"""Scores in the log and in every report: the case_end fields read back typed, a judge's grade joined to the
attempt it read, JSON per metric / answer type / dataset, the leaderboard, the scatter, JUnit properties,
and a log without scores rendering exactly as before."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.fixtures.scored_log import (
    ANSWERS,
    ITEMS,
    Item,
    answer_results,
    judge_result,
    scored_result,
    session_events,
    write_log,
    write_scored_log,
)
from tests.unit.test_report import LogBuilder, metrics, planned
from vlmtui.engine.events import SCORING_FIELDS, CaseResult
from vlmtui.reports.case_scores import CaseScores, score_failure, score_status
from vlmtui.reports.model import build_report
from vlmtui.reports.records import load_log
from vlmtui.reports.report import render_report
from vlmtui.reports.tables import leaderboard_table, standings

ROOT = Path(__file__).resolve().parents[2]
YES_NO = tuple(Item(f"yn{i}", f"Is it {i}?", ("yes",) * 10, "yes/no") for i in range(10))
"""Ten yes/no items: enough answers for an interval."""


@pytest.fixture
def scored(tmp_path: Path) -> Path:
    return write_scored_log(tmp_path / "scored.jsonl")


def test_case_end_fields_come_back_typed(scored: Path) -> None:
    results = {r.case_id: r for r in load_log(scored).results}
    partial = results["smol/vqa-sample/2000"].scoring
    assert partial.scores == {"vqa": pytest.approx(0.6), "relaxed": pytest.approx(0.6)}
    assert partial.primary == "vqa" and partial.right is True and partial.threshold == 0.5
    assert partial.dataset == "vqa-sample" and partial.item_id == "2000" and partial.answer_type == "number"
    assert partial.references == ITEMS[2].references and partial.item == "vqa-sample/2000"
    verbose = results["smol/vqa-sample/4001"]
    assert verbose.status == "failed" and verbose.error == "vqa 0.00 is under pass_at 0.5"
    assert verbose.scoring.scores == {"vqa": 0.0, "relaxed": 1.0} and verbose.scoring.right is False


def test_a_case_without_a_dataset_writes_no_scoring_fields() -> None:
    plain = CaseResult("m/text/t0", 1, "m", "openai", None, "Hi", "text", "passed", output="hello")
    assert not set(SCORING_FIELDS) & set(plain.to_dict()), "logs of suites without datasets are unchanged"
    assert CaseScores.from_result(plain).scored is False
    dataset_case = scored_result("m", ITEMS[0], "red", 1.0)
    assert set(SCORING_FIELDS) - set(dataset_case.to_dict()) == {"judged_case_id", "judged_attempt", "score_errors",
                                                                 "turns"}


def test_wrong_types_read_as_unknown_and_the_first_metric_is_primary() -> None:
    odd = CaseScores.from_line({"scores": {"exact": 1, "vqa": "high", "anls": True}, "score_errors": "x",
                                "references": ["a", None, 3], "item_id": 41, "pass_at": "0.9"})
    assert odd.scores == {"exact": 1.0, "vqa": None, "anls": None} and odd.errors == {}
    assert odd.references == ("a", "3") and odd.item_id == "41" and odd.pass_at is None
    assert odd.primary == "exact" and odd.right is True and odd.metrics == ["exact", "vqa", "anls"]
    pending = CaseScores({"vqa": 1.0}, primary_metric="judge:q")
    assert pending.primary == "judge:q" and pending.primary_value is None and pending.right is None
    assert pending.metrics == ["judge:q", "vqa"], "the judge metric shows while its grade is pending"


def test_the_status_a_score_gives() -> None:
    low = CaseScores({"vqa": 0.3}, pass_at=0.5)
    high = CaseScores({"vqa": 0.9}, pass_at=0.5)
    assert score_failure(low) == "vqa 0.30 is under pass_at 0.5" and score_failure(high) is None
    assert score_status("passed", "", CaseScores(), low) == ("failed", "vqa 0.30 is under pass_at 0.5")
    assert score_status("failed", "vqa 0.30 is under pass_at 0.5", low, high) == ("passed", "")
    expectation = "expected the output to mention 'red'"
    assert score_status("failed", expectation, low, high) == ("failed", expectation), "another failure stays"
    assert score_status("crashed", "SIGKILL", low, high) == ("crashed", "SIGKILL")
    assert score_status("passed", "", CaseScores(), CaseScores({"vqa": None})) == ("passed", "")


def test_a_judge_grade_joins_the_attempt_it_read(tmp_path: Path) -> None:
    results = answer_results({"smol": ANSWERS["smol"]})
    verbose = next(r for r in results if r.case_id == "smol/vqa-sample/4001")
    red = results[0]
    t = results[-1].ended_at
    results.append(judge_result("qwen", verbose, 1.0, t + 1))
    results.append(judge_result("qwen", red, None, t + 2, reason='no score in judge reply: "hmm"'))
    rerun = scored_result("smol", ITEMS[0], "maroon", t + 3, attempt=2)  # graded attempt 1, not this one
    report = build_report(load_log(write_log(tmp_path / "judged.jsonl", session_events([*results, rerun]))))
    rows = {row.case_id: row for row in report.cases}
    assert rows["smol/vqa-sample/4001"].scores.scores == {"vqa": 0.0, "relaxed": 1.0, "judge:qwen": 1.0}
    assert "judge:qwen" not in rows["smol/vqa-sample/1000"].scores.scores, "the rerun's answer was not judged"
    judge_row = rows["qwen/judge/smol/vqa-sample/4001"]
    assert judge_row.judging is not None and judge_row.judging.case_id == "smol/vqa-sample/4001"
    smol, qwen = report.models
    assert smol.scores()["judge:qwen"].n == 1 and qwen.scoring == [], "a judge's grades are not its accuracy"
    assert qwen.counts["passed"] == 1 and qwen.counts["failed"] == 1, "its cases still count as its cases"


def test_json_scores_per_metric_answer_type_and_dataset(tmp_path: Path) -> None:
    answers = {"many": ["yes"] * 8 + ["no", "maybe"]}
    results = answer_results(answers, YES_NO, metrics=("exact", "relaxed"))
    doc = json.loads(render_report(load_log(write_log(tmp_path / "yn.jsonl", session_events(results))), "json"))
    (model,) = doc["models"]
    assert model["primary_metric"] == "exact"
    exact = model["scores"]["exact"]
    assert exact["mean"] == pytest.approx(0.8) and exact["n"] == 10
    assert exact["ci95"] == [pytest.approx(0.490, abs=1e-3), pytest.approx(0.943, abs=1e-3)], "Wilson, 8 of 10"
    assert list(model["scores"]) == ["exact", "relaxed"]
    assert model["scores_by_answer_type"]["yes/no"]["exact"] == exact
    assert model["scores_by_dataset"]["vqa-sample"]["relaxed"]["n"] == 10
    case = doc["cases"][0]
    assert case["scores"] == {"exact": 1.0, "relaxed": 1.0} and case["right"] is True
    assert case["references"] == ["yes"] * 10 and case["item_id"] == "yn0"


def test_markdown_and_html_leaderboard_best_first(scored: Path) -> None:
    report = build_report(load_log(scored))
    table = leaderboard_table(report)
    assert [c.name for c in table.columns] == ["model", "metric", "accuracy (95 % CI)", "n", "gen tok/s", "load s",
                                               "peak memory"]
    assert [c.text for c in table.column("model")] == ["smol", "qwen"]
    assert [c.text for c in table.column("accuracy (95 % CI)")] == ["0.77", "0.60"]
    assert [c.text for c in table.column("load s")] == ["2.50", "9.00"]
    md = render_report(load_log(scored), "md")
    assert md.index("## Leaderboard") < md.index("## Per-model summary")
    assert "| smol | vqa | 0.77 | 6 | 40.0 | 2.50 | 1.5 GiB |" in md
    cases = next(line for line in md.splitlines() if line.startswith("| case |"))
    assert "| status | score |" in cases
    page = render_report(load_log(scored), "html")
    assert "<h2>Leaderboard</h2>" in page and "<h2>Accuracy against speed</h2>" in page


def test_a_leaderboard_line_per_dataset_when_there_are_several(tmp_path: Path) -> None:
    results = answer_results({"smol": ANSWERS["smol"]})
    results += answer_results({"smol": ["yes"] * 10}, YES_NO, dataset="yes-no", metrics=("exact",))
    report = build_report(load_log(write_log(tmp_path / "two.jsonl", session_events(results))))
    lines = standings(report)
    assert [(line.dataset, line.accuracy.metric) for line in lines] == [("yes-no", "exact"), ("vqa-sample", "vqa")]
    assert report.models[0].accuracy is not None and report.models[0].accuracy.metric == "primary", "mixed"
    assert [c.name for c in leaderboard_table(report).columns][:3] == ["model", "dataset", "metric"]


def test_scatter_points_sized_by_peak_memory(tmp_path: Path) -> None:
    results = answer_results({"smol": ["yes"] * 10, "qwen": ["yes"] * 9 + ["no"]}, YES_NO)
    page = render_report(load_log(write_log(tmp_path / "yn.jsonl", session_events(results))), "html")
    svg = ET.fromstring(re.findall(r"<svg.*?</svg>", page, re.S)[0])
    ns = "{http://www.w3.org/2000/svg}"
    assert svg.get("aria-label") == "accuracy against generation speed"
    points = svg.findall(f"{ns}g[@class='model-point']")
    assert len(points) == 2
    tips = [p.findtext(f"{ns}title") or "" for p in points]
    assert tips[0].startswith("smol: vqa 1.00 (0.72–1.00) (n 10), 40.0 tok/s, peak 1.5 GiB")
    radius = {tip.split(":")[0]: float(p.find(f"{ns}circle").get("r", "0"))  # type: ignore[union-attr]
              for tip, p in zip(tips, points, strict=True)}
    assert radius["qwen"] == 18.0 and radius["smol"] == pytest.approx(18.0 * (1.5 / 5) ** 0.5, abs=0.05)
    bars = [p.find(f"{ns}line") for p in points]
    assert all(bar is not None for bar in bars), "the 95 % interval as a bar (n = 10)"


def test_junit_scores_as_properties(scored: Path) -> None:
    root = ET.fromstring(render_report(load_log(scored), "junit"))
    case_id = "smol/vqa-sample/2000"
    case = next(c for c in root.iter("testcase") if c.get("name") == case_id)
    # junit-10.xsd allows no <properties> in a <testcase>: a case's scores are its suite's, named after it.
    assert case.find("properties") is None
    props = {p.get("name", "").removeprefix(f"{case_id}:"): p.get("value") for p in root.iter("property")
             if p.get("name", "").startswith(f"{case_id}:")}
    assert props == {"dataset": "vqa-sample", "item_id": "2000", "answer_type": "number",
                     "primary_metric": "vqa", "score.vqa": "0.6", "score.relaxed": "0.6"}
    failed = next(c for c in root.iter("testcase") if c.get("name") == "smol/vqa-sample/4001")
    assert failed.find("failure") is not None


def test_a_log_without_scores_renders_as_before(tmp_path: Path) -> None:
    b = LogBuilder(tmp_path / "plain.jsonl")
    b.start([planned("m/text/t0")]).case("m/text/t0", "passed", 1, output="hi", metrics=metrics(1, 1))
    data = load_log(b.write())
    md, page = render_report(data, "md"), render_report(data, "html")
    assert "Leaderboard" not in md and "| score |" not in md
    assert "Leaderboard" not in page and "model-point" not in page
    assert "<properties>" not in render_report(data, "junit").split("<testcase", 1)[1]
    (model,) = json.loads(render_report(data, "json"))["models"]
    assert model["scores"] == {} and model["primary_metric"] is None


def test_log_format_doc_names_the_score_fields() -> None:
    doc = (ROOT / "docs" / "log-format.md").read_text(encoding="utf-8")
    for name in SCORING_FIELDS:
        assert f"`{name}`" in doc, name
    assert '`kind = "judge"`' in doc
    assert "Where scores show" in (ROOT / "docs" / "scoring.md").read_text(encoding="utf-8")
