"""A session log read back as typed records; the table model that every report format renders."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_report import CASES, GiB, LogBuilder, metrics, planned
from vlmtui.engine.events import CaseResult
from vlmtui.reports.model import build_report
from vlmtui.reports.records import CaseEnd, LogError, Metrics, SessionStart, load_log
from vlmtui.reports.table import Cell, to_html, to_markdown
from vlmtui.reports.tables import cases_table, summary_table
from vlmtui.vocab import CaseStatus


@pytest.fixture
def log(tmp_path: Path) -> Path:
    b = LogBuilder(tmp_path / "log.jsonl")
    b.start([planned(c) for c in CASES[:3]])
    b.event("memory", 0.5, system={"used": 4 * GiB}, guarded_bytes=GiB, guarded_source="mlx", budget_bytes=8 * GiB,
            level="ok")
    b.case("smol/a.png/p0", "passed", 1, output="a cat", metrics=metrics(1.5, 20.0))
    b.case("smol/b.png/p0", "crashed", 2, error="SIGABRT", metrics={"returncode": -6})
    b.event("guard", 2.5, level="warn", previous="ok", action="warn", reason="high", case_id=None,
            reading={}, freed_bytes=None)
    b.raw({"event": "case_end", "t": 1.0})  # no case id: unreadable, not fatal
    b.event("model_load_failed", 3, model="big", error="not cached")
    b.case("smol/text/t0", "", 4, end=False)
    return b.write(torn='{"event": "case_e')


def test_lines_come_back_typed(log: Path) -> None:
    data = load_log(log)
    (start,) = data.starts
    assert isinstance(start, SessionStart) and start.budget_bytes == 8 * GiB
    assert start.thresholds == {"warn": 75.0, "cleanup": 85.0, "abort": 95.0}
    assert [c.case_id for c in start.cases] == CASES[:3]
    passed, crashed = data.results
    assert passed.status is CaseStatus.PASSED and passed.metrics.gen_tps == 20.0 and passed.metrics.gen_tokens == 16
    assert crashed.status is CaseStatus.CRASHED and crashed.metrics.total_s is None
    assert crashed.metrics.to_dict() == {"returncode": -6}, "every metric as logged stays readable"
    assert data.memory[0].guarded_bytes == GiB and data.memory[0].system_used == 4 * GiB
    assert data.guard[0].action == "warn" and data.guard[0].case_id is None
    (load,) = data.loads
    assert load.failed and load.error == "not cached" and load.versions == {}
    assert list(data.running) == ["smol/text/t0"] and data.bad_lines == 2


def test_a_record_also_reads_as_its_json_line(log: Path) -> None:
    result = load_log(log).latest()["smol/a.png/p0"]
    assert result["status"] == "passed" and result.get("carried_from") is None and "carried_from" not in result
    assert dict(result)["event"] == "case_end", "resume copies the line verbatim"


def test_a_live_result_becomes_the_record_the_log_will_hold() -> None:
    result = CaseResult("m/text/t0", 2, "m", "openai", None, "Hi", "text", "aborted", metrics={"total_s": 3})
    record = CaseEnd.from_result(result)
    assert record.status is CaseStatus.ABORTED and record.attempt == 2 and record.metrics.total_s == 3.0
    assert Metrics.from_dict({"gen_tokens": True}).gen_tokens is None, "a bool is not a count"


def test_a_file_without_a_session_start_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"event": "memory"}\n', encoding="utf-8")
    with pytest.raises(LogError, match="not a vlmtui session log"):
        load_log(path)


def test_one_table_two_formats(log: Path) -> None:
    report = build_report(load_log(log))
    table = cases_table(report)
    assert [c.text for c in table.column("status")] == ["passed", "crashed", "interrupted"]
    assert [c.number for c in table.column("gen tok/s")] == [20.0, None, None]
    assert [c.text for c in table.column("gen tok/s")] == ["20.0", "—", "—"]
    md, page = to_markdown(table), to_html(table)
    assert len(md) == 2 + len(table.rows) and len(page) == 2 + len(table.rows)
    assert '<td class="crashed">crashed</td>' in page[2] and "| smol/b.png/p0 | crashed | 1 |" in md[3]
    summary = summary_table(report)
    assert [c.name for c in summary.columns][2:7] == ["passed", "failed", "crashed", "aborted", "skipped"]
    assert Cell.size(GiB).text == "1.0 GiB" and Cell.decimal(None).text == "—"
