"""``vlmtui compare`` for scripts (issue 19 item 5), through the real command: text, Markdown and JSON, the
one-line summary, a warning when the logs are of different suites or plans, and --fail-on-regression with
--threshold deciding the exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.unit.test_report import LogBuilder, metrics, planned

CASES = ["smol/a.png/p0", "smol/b.png/p0", "smol/text/t0"]


def write(path: Path, statuses: dict[str, str], tps: float, *, cases: list[str] = CASES) -> Path:
    builder = LogBuilder(path).start([planned(c) for c in cases])
    for i, case_id in enumerate(cases):
        builder.case(case_id, statuses.get(case_id, "passed"), i * 2.0, metrics=metrics(1.0, tps))
    return builder.write()


def compare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vlmtui", "compare", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_summary_formats_and_no_regression(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", {"smol/b.png/p0": "failed"}, 40.0)
    b = write(tmp_path / "b.jsonl", {}, 42.0)
    text = compare(str(a), str(b), "--fail-on-regression")
    assert text.returncode == 0, text.stderr
    summary = "3 cases in both: 1 better, 0 worse, 2 same; pass rate 67% → 100% (+33 pts); tok/s 40.0 → 42.0 (+5.0%)"
    assert text.stdout.strip().splitlines()[-1] == summary
    doc = json.loads(compare(str(a), str(b), "--format", "json").stdout)
    assert doc["summary"] == summary and doc["regressions"] == [] and doc["warnings"] == []
    assert doc["verdicts"]["improved"] == 1 and len(doc["cases"]) == 3
    md = compare(str(a), str(b), "--format", "md").stdout
    assert f"**{summary}**" in md and "| smol/b.png/p0 | failed → passed |" in md


def test_fail_on_regression_exits_1_for_a_case_that_stopped_passing(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", {}, 40.0)
    b = write(tmp_path / "b.jsonl", {"smol/text/t0": "crashed"}, 40.0)
    assert compare(str(a), str(b)).returncode == 0, "without the option a regression is only shown"
    done = compare(str(a), str(b), "--fail-on-regression")
    assert done.returncode == 1
    assert "vlmtui: regression: smol/text/t0: passed → crashed" in done.stderr


def test_a_metric_past_the_threshold_is_a_regression(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", {}, 40.0)
    b = write(tmp_path / "b.jsonl", {}, 34.0)  # -15 %
    done = compare(str(a), str(b), "--fail-on-regression")
    assert done.returncode == 1 and "smol: mean gen tok/s 40.0 tok/s → 34.0 tok/s (-15.0%, past 10%)" in done.stderr
    assert compare(str(a), str(b), "--fail-on-regression", "--threshold", "20").returncode == 0


def test_logs_of_another_suite_or_plan_are_compared_with_a_warning(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", {}, 40.0)
    b = write(tmp_path / "b.jsonl", {}, 40.0, cases=CASES[:2])
    b.write_text(b.read_text().replace('"suite": "unit"', '"suite": "other"'))
    done = compare(str(a), str(b))
    assert done.returncode == 0
    assert "vlmtui: warning: the logs are of different suites ('unit' and 'other')" in done.stderr
    assert "vlmtui: warning: the plans differ: 1 case(s) only in A, 0 only in B" in done.stderr


def test_markdown_cells_take_untrusted_names_as_text(tmp_path: Path) -> None:
    """Model and case ids come from the logs: HTML and table breaks in them stay text, as in ``vlmtui report``."""
    cases = ["m|x/<b>a</b>.png/p0", "m|x/text/t0"]
    a = write(tmp_path / "a.jsonl", {cases[1]: "crashed"}, 40.0, cases=cases)
    b = write(tmp_path / "b.jsonl", {cases[1]: "failed"}, 40.0, cases=cases)
    md = compare(str(a), str(b), "--format", "md").stdout
    assert "| m\\|x/&lt;b&gt;a&lt;/b&gt;.png/p0 | passed |" in md and "| m\\|x | 2 passed" not in md
    assert "| m\\|x | 1 passed, 1 crashed | 1 passed, 1 failed |" in md and "<b>" not in md
    assert "**2 cases in both: 0 better, 0 worse, 1 changed status, 1 same; pass rate 50% → 50%" in md
    assert "\n\n\n" not in md
