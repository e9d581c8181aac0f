"""Comparing two hand-built session logs: status changes, deltas, cases in only one log."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console, Group

from tests.unit.test_report import GiB, LogBuilder, metrics, planned
from vlmtui.cli import main
from vlmtui.engine.session_log import load_log
from vlmtui.reports.compare import Delta, compare_logs, comparison_renderables


@pytest.fixture
def logs(tmp_path: Path) -> tuple[Path, Path]:
    """Before: a crash and a slow case. After: the crash fixed, the slow case twice as fast."""
    a = LogBuilder(tmp_path / "a.jsonl", "before")
    a.start([planned(c) for c in ("smol/a.png/p0", "smol/b.png/p0", "smol/c.png/p0", "llava/a.png/p0")])
    a.case("smol/a.png/p0", "passed", 1, output="a bike", metrics=metrics(2.0, 10.0, peak=GiB))
    a.case("smol/b.png/p0", "crashed", 2, error="the worker was killed by SIGABRT: Metal ran out of GPU memory")
    a.case("smol/c.png/p0", "passed", 3, output="only before", metrics=metrics(1.0, 10.0))
    a.case("llava/a.png/p0", "passed", 4, output="x", metrics=metrics(4.0, 5.0, peak=6 * GiB))
    b = LogBuilder(tmp_path / "b.jsonl", "after")
    b.start([planned(c) for c in ("smol/a.png/p0#w0", "smol/a.png/p0", "smol/b.png/p0", "smol/d.png/p0",
                                  "llava/a.png/p0")])
    b.case("smol/a.png/p0#w0", "passed", 0.5, output="warm", metrics=metrics(9.0, 1.0), warmup=True)
    b.case("smol/a.png/p0", "passed", 1, output="a bike", metrics=metrics(1.0, 20.0, peak=GiB // 2))
    b.case("smol/b.png/p0", "crashed", 2, error="first try")
    b.case("smol/b.png/p0", "passed", 3, attempt=2, output="ok", metrics=metrics(1.5, 12.0))
    b.case("smol/d.png/p0", "failed", 4, output="dog", error="expected the output to contain 'cat'",
           metrics=metrics(1.0, 10.0))
    b.case("llava/a.png/p0", "failed", 5, output="", error="the model produced no output",
           metrics=metrics(4.1, 5.0, peak=6 * GiB))
    return a.write(), b.write()


def test_delta_absolute_and_percent() -> None:
    assert Delta(2.0, 1.0).change == -1.0 and Delta(2.0, 1.0).pct == -50.0
    assert Delta(None, 1.0).change is None and Delta(0.0, 1.0).pct is None


def test_compare_logs_matches_cases_and_models(logs: tuple[Path, Path]) -> None:
    comparison = compare_logs(load_log(logs[0]), load_log(logs[1]))
    cases = {c.case_id: c for c in comparison.cases}
    assert list(cases) == ["smol/a.png/p0", "smol/b.png/p0", "llava/a.png/p0"], "warm-ups are left out"
    assert cases["smol/b.png/p0"].verdict == "improved"
    assert (cases["smol/b.png/p0"].status_a, cases["smol/b.png/p0"].status_b) == ("crashed", "passed")
    assert cases["llava/a.png/p0"].verdict == "regressed"
    fast = cases["smol/a.png/p0"]
    assert fast.total_s.pct == -50.0 and fast.gen_tps.pct == 100.0 and fast.peak_memory.change == -GiB / 2
    assert [r.case_id for r in comparison.only_a] == ["smol/c.png/p0"]
    assert [r.case_id for r in comparison.only_b] == ["smol/d.png/p0"]
    assert comparison.verdicts() == {"improved": 1, "regressed": 1, "changed": 0, "same": 1}
    smol = next(m for m in comparison.models if m.model == "smol")
    assert smol.counts_a == {"passed": 2, "crashed": 1}
    assert smol.counts_b == {"passed": 2, "failed": 1}
    assert smol.total_s.a == pytest.approx(1.5) and smol.total_s.b == pytest.approx((1.0 + 1.5 + 1.0) / 3)


def test_print_comparison_shows_status_changes_and_deltas(logs: tuple[Path, Path]) -> None:
    console = Console(record=True, width=220, color_system=None)
    console.print(Group(*comparison_renderables(compare_logs(load_log(logs[0]), load_log(logs[1])))))
    text = console.export_text()
    assert "Per model (A → B)" in text and "Cases of smol" in text and "Cases of llava" in text
    assert "crashed → passed ▲" in text and "passed → failed ▼" in text
    assert "2.00 → 1.00" in text and "-1.00 s (-50.0%)" in text
    assert "+10.0 tok/s (+100.0%)" in text and "-512.0 MiB (-50.0%)" in text
    assert "Only in A (1):" in text and "smol/c.png/p0" in text
    assert "Only in B (1):" in text and "smol/d.png/p0  failed  expected the output to contain 'cat'" in text
    assert "in both" not in text, "the one summary line is compare_verdict.summary_line, printed after these"
    assert text.rstrip().endswith("smol/d.png/p0  failed  expected the output to contain 'cat'")


def test_compare_command(logs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(logs[0]), str(logs[1])]) == 0
    out = capsys.readouterr().out
    assert "crashed → passed" in out
    summary = ("3 cases in both: 1 better, 1 worse, 1 same; pass rate 75% → 50% (-25 pts); "
               "tok/s 7.5 → 12.5 (+66.7%)")
    assert [line for line in out.splitlines() if "in both" in line] == [summary], "one summary line, the verdict's"
    assert main(["compare", str(logs[0]), str(tmp_path / "missing.jsonl")]) == 2
    assert "session log not found" in capsys.readouterr().err
