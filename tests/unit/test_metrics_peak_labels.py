"""Every peak says what it measured in the reports, compare and the dashboard's formatting helper; peaks of
different kinds are never subtracted from each other."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.test_report import LogBuilder, metrics, planned
from vlmtui.engine.session_log import load_log
from vlmtui.peak_kind import MIXED, format_peak, merged_kind
from vlmtui.reports import tables
from vlmtui.reports.compare import compare_logs
from vlmtui.reports.compare_verdict import regressions
from vlmtui.reports.model import build_report
from vlmtui.reports.report import render_report
from vlmtui.ui.tui.format import size

MiB = 1 << 20
CASES = ["hf/a.png/p0", "mlx/a.png/p0", "mlx/b.png/p0"]


def write_log(path: Path, kinds: dict[str, str | None], peaks: dict[str, int]) -> Path:
    log = LogBuilder(path)
    log.start([planned(c) for c in CASES])
    for i, case_id in enumerate(CASES):
        model = case_id.split("/")[0]
        log.case(case_id, "passed", i + 1, output="ok",
                 metrics={**metrics(1.0, 20.0, peak=peaks[model]), "peak_kind": kinds[model]})
    return log.write()


def test_the_label_helpers() -> None:
    assert format_peak(409 * MiB, "rss") == "409.0 MiB RSS"
    assert format_peak(409 * MiB, "server-rss") == "409.0 MiB server"
    assert format_peak(409 * MiB, None) == "409.0 MiB", "a log from before peak_kind: the size alone"
    assert format_peak(None, "rss") == "—"
    assert size(1.6 * MiB, "mlx-active") == "1.6 MiB MLX" and size(1.6 * MiB) == "1.6 MiB"
    assert merged_kind(["rss", None, "rss"]) == "rss" and merged_kind([None]) is None
    assert merged_kind(["rss", "mlx-active"]) == MIXED


def test_reports_name_each_peaks_kind(tmp_path: Path) -> None:
    records = load_log(write_log(tmp_path / "a.jsonl", {"hf": "rss", "mlx": "mlx-active"},
                                 {"hf": 409 * MiB, "mlx": int(1.6 * MiB)}))
    report = build_report(records)
    summary = tables.summary_table(report)
    peak = [c.name for c in summary.columns].index("peak memory")
    assert {row[0].text: row[peak].text for row in summary.rows} == {"hf": "409.0 MiB RSS", "mlx": "1.6 MiB MLX"}
    cases = tables.cases_table(report)
    peak = [c.name for c in cases.columns].index("peak memory")
    assert [row[peak].text for row in cases.rows] == ["409.0 MiB RSS", "1.6 MiB MLX", "1.6 MiB MLX"]
    compact = tables.compact_summary_table(report.models)
    assert "409.0 MiB RSS" in [cell.text for row in compact.rows for cell in row]
    doc = json.loads(render_report(records, "json"))
    assert {m["model"]: m["peak_kind"] for m in doc["models"]} == {"hf": "rss", "mlx": "mlx-active"}
    assert "409.0 MiB RSS" in render_report(records, "md") and "1.6 MiB MLX" in render_report(records, "html")


def test_compare_never_subtracts_peaks_of_different_kinds(tmp_path: Path) -> None:
    # A: the mlx model measured as MLX active memory; B: the same model's peak as process RSS (another build).
    a = load_log(write_log(tmp_path / "a.jsonl", {"hf": "rss", "mlx": "mlx-active"}, {"hf": 409 * MiB, "mlx": 2 * MiB}))
    b = load_log(write_log(tmp_path / "b.jsonl", {"hf": "rss", "mlx": "rss"}, {"hf": 500 * MiB, "mlx": 420 * MiB}))
    comparison = compare_logs(a, b)
    by_model = {m.model: m for m in comparison.models}
    assert by_model["mlx"].peak_memory.change is None and by_model["mlx"].peak_kinds == ("mlx-active", "rss")
    assert by_model["hf"].peak_memory.change == 91 * MiB, "the same kind compares as before"
    found = [r.subject for r in regressions(comparison, 10.0)]
    assert "hf" in found and "mlx" not in found, "2 MiB of MLX against 420 MiB of RSS is no regression"


def test_the_queue_column_says_in_four_cells_what_each_peak_measured() -> None:
    from vlmtui.ui.tui.widgets.case_table import peak_cell

    assert peak_cell({"peak_memory_bytes": 451_500_000, "peak_kind": "server-rss"}) == "431M srv"
    assert peak_cell({"peak_memory_bytes": 1_153_434, "peak_kind": "mlx-active"}) == "1.1M MLX"
    assert peak_cell({"peak_memory_bytes": 1_153_434}) == "1.1M"
    assert peak_cell({"peak_memory_bytes": 1023 * 2**20, "peak_kind": "cuda-reserved"}) == "1.0G CUDA"
    assert peak_cell({"peak_memory_bytes": 15 * 2**30, "peak_kind": "rss"}) == "15G RSS"
    assert max(len(peak_cell({"peak_memory_bytes": n, "peak_kind": "cuda-reserved"}))
               for n in range(1, 2**40, 2**40 // 997)) <= 10
    assert peak_cell({}) == ""
