"""`vlmtui compare` on two logs with conversations: turn by turn, status changes, tok/s deltas, changed answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console, Group

from tests.conversation_replay import case_id, write_log
from vlmtui.cli import main
from vlmtui.reports.compare import compare_logs, comparison_renderables
from vlmtui.reports.compare_turns import turn_changes
from vlmtui.reports.model import build_report
from vlmtui.reports.records import load_log
from vlmtui.vocab import CaseStatus

LAKE = case_id("smolvlm-500m", "lake")
BICYCLE = case_id("smolvlm-500m", "bicycle")


def _after(before: Path, after: Path) -> Path:
    """Log B: the lake conversation's turn 2 now names red and passes (its turn 3 answers otherwise), and the
    bicycle conversation's turn 2 runs at half the speed with the same answer."""
    lines = []
    for raw in before.read_text(encoding="utf-8").splitlines():
        line = json.loads(raw)
        if line.get("event") == "case_end" and line["case_id"] == LAKE:
            line["status"], line["error"] = "passed", ""
            turn = line["turns"][1]
            turn.update(status="passed", output="Red and blue.", expect={"passed": True, "reasons": []})
            line["turns"][2]["output"] = "A red boat on a lake."
        if line.get("event") == "case_end" and line["case_id"] == BICYCLE:
            line["turns"][1]["metrics"]["gen_tps"] = 19.5
        lines.append(json.dumps(line))
    after.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return after


@pytest.fixture
def logs(tmp_path: Path) -> tuple[Path, Path]:
    a = write_log(tmp_path / "a.jsonl")
    return a, _after(a, tmp_path / "b.jsonl")


def test_turn_changes_pair_turns_by_index(logs: tuple[Path, Path]) -> None:
    changes = turn_changes(build_report(load_log(logs[0])), build_report(load_log(logs[1])))
    assert len(changes) == 12
    lake = [c for c in changes if c.case_id == LAKE]
    assert [(c.status_a, c.status_b) for c in lake] == [
        (CaseStatus.PASSED, CaseStatus.PASSED), (CaseStatus.FAILED, CaseStatus.PASSED),
        (CaseStatus.PASSED, CaseStatus.PASSED)]
    assert [c.output_changed for c in lake] == [False, True, True]
    slower = next(c for c in changes if c.case_id == BICYCLE and c.number == 2)
    assert (slower.gen_tps.a, slower.gen_tps.b, slower.output_changed) == (39.0, 19.5, False)
    assert slower.gen_tps.pct == pytest.approx(-50.0)


def test_compare_prints_the_turn_table(logs: tuple[Path, Path]) -> None:
    console = Console(width=200, record=True, color_system=None)
    console.print(Group(*comparison_renderables(compare_logs(load_log(logs[0]), load_log(logs[1])))))
    out = console.export_text()
    assert "Conversations turn by turn (A → B)" in out
    lake_turn2 = next(line for line in out.splitlines() if LAKE in line and "changed (first)" in line)
    assert "failed → passed" in lake_turn2 and "│    2 │" in lake_turn2
    bike_turn2 = next(line for line in out.splitlines() if BICYCLE in line and "39.0 → 19.5" in line)
    assert "-19.5 tok/s (-50.0%)" in bike_turn2 and "same" in bike_turn2
    assert "12 turns in both: 1 now pass, 0 no longer pass, 2 answers changed" in out


def test_compare_command_with_conversations(logs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(logs[0]), str(logs[1])]) == 0
    assert "turn by turn" in capsys.readouterr().out


def test_logs_without_conversations_show_no_turn_table(tmp_path: Path) -> None:
    from tests.unit.test_report import CASES, LogBuilder, planned

    b = LogBuilder(tmp_path / "plain.jsonl")
    path = b.start([planned(c) for c in CASES[:1]]).case(CASES[0], "passed", 1, output="a cat").write()
    console = Console(width=200, record=True, color_system=None)
    console.print(Group(*comparison_renderables(compare_logs(load_log(path), load_log(path)))))
    assert "turn by turn" not in console.export_text()
