"""Energy in the reports and compare: J per case and per model beside tok/s, only when the log measured it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console, Group

from tests.unit.test_report import LogBuilder, metrics, planned
from vlmtui.engine.session_log import load_log
from vlmtui.reports import tables
from vlmtui.reports.compare import compare_logs, comparison_renderables
from vlmtui.reports.model import build_report
from vlmtui.reports.report import render_report

CASES = ["smol/a.png/p0", "smol/b.png/p0", "big/a.png/p0"]


def energy(joules: float | None, tokens: int = 16, *, throttled: bool = False) -> dict[str, Any]:
    """A case_end's energy metrics as the engine writes them (docs/log-format.md)."""
    return {"energy_j": joules, "j_per_token": None if joules is None else joules / tokens,
            "energy_source": "nvml-counter" if joules is not None else None, "throttled": throttled,
            "throttle_reasons": ["hw_thermal"] if throttled else []}


def write_log(path: Path, joules: tuple[float | None, ...], session: str = "s1") -> Path:
    log = LogBuilder(path, session)
    log.start([planned(c) for c in CASES])
    for i, (case_id, j) in enumerate(zip(CASES, joules, strict=True)):
        log.case(case_id, "passed", i + 1, output="ok",
                 metrics={**metrics(1.0, 20.0), **energy(j, throttled=case_id == "big/a.png/p0")})
    return log.write()


def test_the_tables_show_energy_per_case_and_per_model(tmp_path: Path) -> None:
    records = load_log(write_log(tmp_path / "a.jsonl", (32.0, 48.0, 160.0)))
    report = build_report(records)
    assert tables.has_energy(report)
    summary = tables.summary_table(report)
    names = [c.name for c in summary.columns]
    assert names.index("J/token (mean ± std)") == names.index("gen tok/s (mean ± std)") + 1
    smol = next(row for row in summary.rows if row[0].text == "smol")
    assert smol[names.index("J/token (mean ± std)")].number == 2.5  # (2 + 3) / 2
    assert smol[names.index("energy J")].number == 80.0
    big = next(row for row in summary.rows if row[0].text == "big")
    assert "throttled" in big[names.index("gen tok/s (mean ± std)")].note
    cases = tables.cases_table(report)
    case_names = [c.name for c in cases.columns]
    assert [row[case_names.index("J/token")].number for row in cases.rows] == [2.0, 3.0, 10.0]
    doc = json.loads(render_report(records, "json"))
    by_model = {m["model"]: m for m in doc["models"]}
    assert by_model["smol"]["energy_j"] == 80.0 and by_model["smol"]["j_per_token"]["mean"] == 2.5
    assert by_model["big"]["throttled_cases"] == 1
    markdown = render_report(records, "md")
    assert "J/token (mean ± std)" in markdown and "1 throttled: tok/s not comparable" in markdown


def test_without_energy_the_tables_are_unchanged(tmp_path: Path) -> None:
    report = build_report(load_log(write_log(tmp_path / "a.jsonl", (None, None, None))))
    assert not tables.has_energy(report)
    assert not any("J" in c.name for c in tables.summary_table(report).columns)
    assert not any("J" in c.name for c in tables.cases_table(report).columns)


def test_compare_shows_j_per_token_deltas(tmp_path: Path) -> None:
    a = load_log(write_log(tmp_path / "a.jsonl", (32.0, 48.0, 160.0), "before"))
    b = load_log(write_log(tmp_path / "b.jsonl", (16.0, 24.0, 160.0), "after"))
    comparison = compare_logs(a, b)
    assert comparison.has_energy
    smol = next(m for m in comparison.models if m.model == "smol")
    assert (smol.j_per_token.a, smol.j_per_token.b) == (2.5, 1.25)
    console = Console(record=True, width=260, color_system=None)
    console.print(Group(*comparison_renderables(comparison)))
    text = console.export_text()
    assert "Δ J/token" in text and "2.500 → 1.250" in text and "-1.250 J/tok (-50.0%)" in text
    plain = compare_logs(load_log(write_log(tmp_path / "c.jsonl", (None,) * 3)),
                         load_log(write_log(tmp_path / "d.jsonl", (None,) * 3)))
    assert not plain.has_energy


def test_the_html_chart_draws_gpu_percent_and_watts_with_case_boundaries(tmp_path: Path) -> None:
    log = LogBuilder(tmp_path / "a.jsonl")
    log.start([planned(c) for c in CASES])
    for i in range(12):  # memory lines as the engine logs them: telemetry from the recorded H200's range
        telemetry = {"t": 1.0, "gpu_util_pct": 0.0 if i < 3 else 100.0, "power_w": 80.0 if i < 3 else 690.0,
                     "sources": {"power_w": "nvml"}, "unavailable": {}}
        log.event("memory", i * 0.5, system={"used": 2**30}, guarded_bytes=2**29, budget_bytes=2**33, level="ok",
                  telemetry=telemetry)
    for i, case_id in enumerate(CASES):
        log.case(case_id, "passed", 1 + i, output="ok", metrics={**metrics(1.0, 20.0), **energy(32.0)})
    records = load_log(log.write())
    html = render_report(records, "html")
    assert "GPU % (right)" in html and "GPU W (right)" in html
    assert all(f"{case_id} started" in html for case_id in CASES)
    plain = render_report(load_log(write_log(tmp_path / "b.jsonl", (None,) * 3)), "html")
    assert "GPU % (right)" not in plain
