"""A conversation's turns read back from a log the real SessionLog wrote, and listed by every report format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conversation_replay import ABORTED, GUARD, SKIPPED, case_id, write_log
from vlmtui.reports.model import build_report
from vlmtui.reports.records import load_log
from vlmtui.reports.report import render_report
from vlmtui.reports.turns import read_turns, turn_line
from vlmtui.vocab import CaseStatus

FAILED = case_id("smolvlm-500m", "lake")
ABORTED_CASE = case_id("smolvlm-500m", "still-life")
SKIPPING = case_id("moondream2", "bicycle")


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return write_log(tmp_path / "context.jsonl")


def test_turns_are_typed_records_in_order(log: Path) -> None:
    latest = load_log(log).latest()
    failed = latest[FAILED].turns
    assert [t.status for t in failed] == [CaseStatus.PASSED, CaseStatus.FAILED, CaseStatus.PASSED]
    assert [t.number for t in failed] == [1, 2, 3]
    assert failed[1].passed is False and failed[1].reasons == ("expected the output to match (?i)red|blue",)
    assert failed[1].metrics.prompt_tokens == 1151 and failed[1].metrics.gen_tps == 38.5
    # The turn in flight keeps the guard's abort and its partial answer, the next is not run (written "not_run");
    # skipped where the model cannot take history.
    aborted = latest[ABORTED_CASE].turns
    assert [t.status for t in aborted] == [CaseStatus.PASSED, CaseStatus.ABORTED, CaseStatus.NOT_RUN]
    assert aborted[1].output == "Red, white and" and aborted[1].why == GUARD and aborted[2].reason == ABORTED
    assert aborted[2].why == "the conversation ended at turn 2 (aborted)"  # not "not run — not run: …"
    assert [t.status for t in latest[SKIPPING].turns] == [CaseStatus.PASSED, CaseStatus.SKIPPED, CaseStatus.SKIPPED]


def test_malformed_turns_read_as_unknown_not_as_an_error() -> None:
    turns = read_turns([{"index": "x", "prompt": None, "status": "bogus", "metrics": [1], "expect": "yes"}, 7])
    assert len(turns) == 1
    only = turns[0]
    assert (only.index, only.prompt, only.status, only.passed, only.metrics.gen_tps) == (0, "", "failed", None, None)
    assert read_turns(None) == () and read_turns({"index": 0}) == ()


def test_turn_line_says_status_figures_and_why() -> None:
    turn = read_turns([{"index": 1, "prompt": "p", "status": "failed", "output": "Green.",
                        "metrics": {"gen_tps": 38.5, "gen_tokens": 13, "total_s": 0.64, "prompt_tokens": 1151},
                        "expect": {"passed": False, "reasons": ["no match"]}}])[0]
    assert turn_line(turn, 3) == "✗ turn 2/3 fail · 0.64 s · 38.5 tok/s · 13 tok · prompt 1151 tok — no match"


def test_markdown_lists_every_turn_under_its_conversation(log: Path) -> None:
    md = render_report(load_log(log), "md")
    section = md.split("## Conversations", 1)[1].split("## Guard events", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| smolvlm") or line.startswith("| moondream")]
    assert len(rows) == 12  # four conversations of three turns
    failing = next(line for line in rows if line.startswith(f"| {FAILED} | 2 |"))
    assert "failed" in failing and "1151" in failing and "38.5" in failing and "(?i)red" in failing
    assert sum(SKIPPED[:40] in line for line in rows) == 2
    assert sum("not run" in line for line in rows) == 1 and sum("| aborted |" in line for line in rows) == 1


def test_a_log_without_conversations_has_no_conversations_section(tmp_path: Path) -> None:
    from tests.unit.test_report import CASES, LogBuilder, planned

    b = LogBuilder(tmp_path / "plain.jsonl")
    b.start([planned(c) for c in CASES[:1]]).case(CASES[0], "passed", 1, output="a cat")
    data = load_log(b.write())
    assert "Conversations" not in render_report(data, "md") and "Conversations" not in render_report(data, "html")
    assert "turns" not in json.loads(render_report(data, "json"))["cases"][0]


def test_html_shows_turns_with_their_status_colour_and_escaped_text(log: Path) -> None:
    html = render_report(load_log(log), "html")
    section = html.split("<h2>Conversations</h2>", 1)[1].split("<h2>Guard events</h2>", 1)[0]
    assert section.count("<tr>") - 1 == 12
    assert 'class="failed"' in section and 'class="not-run"' in section and 'class="skipped"' in section
    assert "(?i)red|blue" in section and "<script" not in section


def test_json_report_carries_the_turns_as_logged(log: Path) -> None:
    doc = json.loads(render_report(load_log(log), "json"))
    case = next(c for c in doc["cases"] if c["case_id"] == FAILED)
    assert [t["status"] for t in case["turns"]] == ["passed", "failed", "passed"]
    assert case["turns"][1]["expect"] == {"passed": False, "reasons": ["expected the output to match (?i)red|blue"]}
    assert case["turns"][1]["metrics"]["prompt_tokens"] == 1151
    aborted = next(c for c in doc["cases"] if c["case_id"] == ABORTED_CASE)
    assert [t["status"] for t in aborted["turns"]] == ["passed", "aborted", "not_run"]


def test_the_report_model_keeps_turns_at_the_latest_attempt(log: Path) -> None:
    report = build_report(load_log(log))
    assert [row.case_id for row in report.conversations] == [
        case_id("smolvlm-500m", "bicycle"), FAILED, ABORTED_CASE, SKIPPING]
