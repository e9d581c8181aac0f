"""A hub download on screen (issue 18): the headless lines, the dashboard's header and model row, and the log."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from vlmtui.engine.events import DownloadFinished, DownloadProgress, ModelLoadFailed, SessionStarted
from vlmtui.engine.session_log import SessionLog
from vlmtui.ui.download_bar import DownloadBar
from vlmtui.ui.download_text import download_brief, download_line, download_status
from vlmtui.ui.headless import HeadlessPrinter
from vlmtui.ui.tui.presenter import summary_row
from vlmtui.ui.tui.state import SessionView
from vlmtui.vocab import ModelState

MiB = 1024**2
HALF = DownloadProgress("smol", 512 * MiB, 1024 * MiB, rate_bps=8 * MiB, eta_s=64.0, t=100.0)


def started() -> SessionStarted:
    case = {"case_id": "smol/hello", "model": "smol", "backend": "transformers", "prompt": "Hello?", "kind": "text"}
    return SessionStarted(session_id="s", suite="hub", suite_path="", info={"budget_bytes": 8 << 30}, cases=[case])


def test_the_texts_say_bytes_rate_and_time_left() -> None:
    assert download_brief(HALF) == "download 50% · 8.0 MiB/s · ETA 1 min 04 s"
    assert download_status(HALF) == "download smol 512.0 MiB of 1.0 GiB · 8.0 MiB/s · ETA 1 min 04 s"
    assert download_brief(DownloadProgress("smol", 3 * MiB, None, None, None)) == "download 3.0 MiB"
    assert download_line(DownloadFinished("smol", 1024 * MiB, 128.0, from_cache=False)) == (
        "  downloaded smol: 1.0 GiB in 128.0 s (8.0 MiB/s)")
    assert download_line(DownloadFinished("smol", 0, 0.0, from_cache=True)) == (
        "  smol: all files in the Hugging Face cache")
    assert "failed:[/] the hub refused" in download_line(DownloadFinished("smol", 0, 0.2, False, "the hub refused"))


def test_the_dashboard_shows_the_download_in_the_header_and_the_model_row_until_it_ends() -> None:
    view = SessionView()
    view.apply(started())
    view.apply(HALF)
    assert view.backend_device() == "transformers · download 50% · 8.0 MiB/s · ETA 1 min 04 s"
    row = summary_row(view, view.summaries()[0])
    assert row.state == ModelState.LOADING and row.download == "download 50% · 8.0 MiB/s · ETA 1 min 04 s"
    view.apply(DownloadFinished("smol", 1024 * MiB, 128.0, from_cache=False, error="cannot reach the hub"))
    view.apply(ModelLoadFailed("smol", "cannot reach the hub", ""))
    assert view.backend_device() == "transformers"
    assert summary_row(view, view.summaries()[0]).download == ""
    assert view.models["smol"].state == ModelState.FAILED


def test_headless_output_to_a_pipe_has_one_line_per_download() -> None:
    out = io.StringIO()
    printer = HeadlessPrinter(Console(file=out, width=200, highlight=False))
    printer(started())
    printer(HALF)
    printer(DownloadFinished("smol", 1024 * MiB, 128.0, from_cache=False))
    lines = out.getvalue().splitlines()
    assert lines[-1] == "  downloaded smol: 1.0 GiB in 128.0 s (8.0 MiB/s)"
    assert not any("50%" in line or "512 MiB" in line for line in lines), "no progress lines in a pipe"


def test_the_download_only_bar_prints_the_start_and_the_end_off_a_terminal() -> None:
    out = io.StringIO()
    bar = DownloadBar(Console(file=out, width=200, highlight=False))
    bar(DownloadProgress("smol", 0, 1024 * MiB, None, None))
    bar(HALF)
    bar(DownloadFinished("smol", 1024 * MiB, 128.0, from_cache=False))
    assert out.getvalue().splitlines() == ["  downloading smol: 1.0 GiB",
                                           "  downloaded smol: 1.0 GiB in 128.0 s (8.0 MiB/s)"]


def test_the_log_keeps_a_progress_line_a_second_and_every_download_end(tmp_path: Path) -> None:
    log = SessionLog(tmp_path / "log.jsonl")
    for i in range(12):  # the helper's 4 reports a second for 3 s
        log(DownloadProgress("smol", i * MiB, 12 * MiB, MiB * 4.0, 1.0, t=1000.0 + i * 0.25))
    log(DownloadFinished("smol", 12 * MiB, 3.0, from_cache=False, t=1003.0))
    log.close()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    progress = [r for r in records if r["event"] == "download_progress"]
    assert [r["downloaded"] for r in progress] == [0, 4 * MiB, 8 * MiB]
    assert records[-1]["event"] == "download" and records[-1]["seconds"] == 3.0
    assert records[-1]["from_cache"] is False and records[-1]["error"] == ""


def test_a_failed_download_is_said_once_in_headless_output() -> None:
    out = io.StringIO()
    printer = HeadlessPrinter(Console(file=out, width=200, highlight=False))
    printer(started())
    printer(DownloadFinished("smol", 0, 0.4, from_cache=False, error="cannot reach the hub for org/smol: DNS"))
    printer(ModelLoadFailed("smol", "cannot reach the hub for org/smol: DNS", ""))
    assert out.getvalue().count("cannot reach the hub") == 1
