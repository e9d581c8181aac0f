"""Comparing scored session logs: each model's accuracy delta and the items whose answer flipped right ↔ wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console, Group

from tests.fixtures.scored_log import ANSWERS, ITEMS, answer_results, session_events, write_log, write_scored_log
from tests.unit.test_report import LogBuilder, metrics, planned
from vlmtui.reports.compare import Comparison, compare_logs, comparison_renderables
from vlmtui.reports.compare_verdict import summary_line
from vlmtui.reports.records import load_log

BETTER_SMOL = ("red", "No.", "3 circles", "triangle", "yes", "yellow")
"""smol after a change: "3 circles" is now wrong (0.6 → 0), "yellow" now right (0 → 1)."""


def text(comparison: Comparison) -> str:
    console = Console(width=220, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(Group(*comparison_renderables(comparison)))
    return console.export_text()


@pytest.fixture
def logs(tmp_path: Path) -> tuple[Path, Path]:
    before = write_scored_log(tmp_path / "a.jsonl")
    after = write_scored_log(tmp_path / "b.jsonl", {"smol": BETTER_SMOL, "qwen": ANSWERS["qwen"]})
    return before, after


def test_accuracy_delta_per_model(logs: tuple[Path, Path]) -> None:
    comparison = compare_logs(load_log(logs[0]), load_log(logs[1]))
    smol, qwen = comparison.models
    assert smol.accuracy.a == pytest.approx(4.6 / 6) and smol.accuracy.b == pytest.approx(5.0 / 6)
    assert smol.metric_a == smol.metric_b == "vqa" and comparison.scored
    assert qwen.accuracy.change == pytest.approx(0.0)


def test_items_that_flipped_right_and_wrong(logs: tuple[Path, Path]) -> None:
    comparison = compare_logs(load_log(logs[0]), load_log(logs[1]))
    flips = {flip.case_id: flip for flip in comparison.flips}
    assert list(flips) == ["smol/vqa-sample/2000", "smol/vqa-sample/4001"], "in A's case order, qwen unchanged"
    down, up = flips.values()
    assert (down.score_a, down.score_b, down.now_right) == (pytest.approx(0.6), 0.0, False)
    assert (up.score_a, up.score_b, up.now_right) == (0.0, 1.0, True)
    assert down.item == "vqa-sample/2000" and down.model == "smol"
    shown = text(comparison)
    assert "Flipped right ↔ wrong (2)" in shown and "0.60 → 0.00" in shown and "▼ wrong" in shown
    assert "0.77 → 0.83 vqa" in shown and "+0.07" in shown
    assert summary_line(comparison).endswith("; answers: 1 right → wrong, 1 wrong → right")


def test_right_is_judged_at_each_logs_pass_at(tmp_path: Path) -> None:
    """0.6 is right at pass_at 0.5 and wrong at 0.7: the threshold changed, so the answer flipped."""
    item = ITEMS[2]  # "3" scores 0.6
    a = write_log(tmp_path / "a.jsonl", session_events(answer_results({"smol": ["3"]}, [item])))
    b = write_log(tmp_path / "b.jsonl", session_events(answer_results({"smol": ["3"]}, [item], pass_at=0.7)))
    (flip,) = compare_logs(load_log(a), load_log(b)).flips
    assert flip.now_right is False and flip.score_a == flip.score_b == pytest.approx(0.6)
    c = write_log(tmp_path / "c.jsonl", session_events(answer_results({"smol": ["3"]}, [item], pass_at=None)))
    assert compare_logs(load_log(a), load_log(c)).flips == [], "0.5 where the log does not say"


def test_unscored_answers_do_not_flip(tmp_path: Path) -> None:
    item = ITEMS[0]
    a = write_log(tmp_path / "a.jsonl", session_events(answer_results({"smol": ["red"]}, [item])))
    b = write_log(tmp_path / "b.jsonl", session_events(answer_results({"smol": ["blue"]}, [item], references=False)))
    comparison = compare_logs(load_log(a), load_log(b))
    assert comparison.flips == [] and comparison.models[0].accuracy.b is None


def test_logs_without_scores_compare_as_before(tmp_path: Path) -> None:
    paths = []
    for name, total in (("a", 2.0), ("b", 1.0)):
        b = LogBuilder(tmp_path / f"{name}.jsonl", name)
        b.start([planned("m/text/t0")]).case("m/text/t0", "passed", 1, output="hi", metrics=metrics(total, 10.0))
        paths.append(b.write())
    comparison = compare_logs(load_log(paths[0]), load_log(paths[1]))
    assert not comparison.scored and comparison.flips == []
    shown = text(comparison)
    assert "accuracy" not in shown and "Flipped" not in shown and "answers:" not in summary_line(comparison)
