"""A hub download in the dashboard (issue 18): the real scheduler and hub helper against the local hub, slowly.

The header and the model's row say how far the download is, how fast and how long is left; ``q`` during it
asks as during a load, and a confirmed quit stops the download, removes its partial file and exits 130.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.fake_hub import FakeRepo, serve_hub
from tests.functional.helpers import cases_of
from tests.functional.test_hub_download import helper_env, suite
from tests.tui.helpers import driven, until
from vlmtui.engine.downloads import Downloads
from vlmtui.engine.scheduler import Scheduler
from vlmtui.engine.session_log import SessionLog
from vlmtui.exit_codes import EXIT_INTERRUPTED
from vlmtui.ui.tui.app import VlmApp
from vlmtui.ui.tui.screens.confirm_quit import ConfirmQuitScreen
from vlmtui.worker.demo.tiny import tiny_model_dir


async def test_the_header_and_the_models_row_show_the_download_and_q_stops_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hf_home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    tiny = tiny_model_dir("tiny:idefics3", "transformers")
    with serve_hub({"org/tiny-smol": FakeRepo(tiny, bytes_per_s=20_000)}) as hub:  # ~50 s: q comes first
        path = tmp_path / "suite.toml"
        path.write_text(suite(smol="org/tiny-smol"))
        scheduler = Scheduler(cases_of(path), suite_name="hub", suite_path=str(path))
        scheduler.downloads = Downloads(scheduler.emit, helper_env(hf_home, hub.url))
        log = SessionLog(tmp_path / "session.jsonl")
        scheduler.subscribe(log)
        app = VlmApp(scheduler, log_path=log.path, fps=20)
        async with driven(app, size=(120, 30)) as pilot:
            dashboard = app.dashboard
            await until(pilot, lambda: "%" in dashboard.header.backend and "/s" in dashboard.header.backend,
                        "the download's rate in the header")
            assert dashboard.header.backend.startswith("transformers · download ")
            assert "ETA " in dashboard.header.backend
            row = dashboard.summary_rows[0]
            assert row.model == "smol" and row.download.startswith("download ") and row.state == "loading"
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, ConfirmQuitScreen), "the quit question")
            question = app.screen.question  # type: ignore[attr-defined]
            assert question.startswith("smol is downloading (download "), question
            assert "stops the download and removes its partial file" in question
            await pilot.press("y")
            await until(pilot, lambda: app.return_code is not None, "the app to exit", timeout=60)
        log.close()
    assert app.return_code == EXIT_INTERRUPTED
    lines = [json.loads(line) for line in (tmp_path / "session.jsonl").read_text().splitlines()]
    (download,) = [line for line in lines if line["event"] == "download"]
    assert download["error"].startswith("the download of smol was stopped: ")
    assert [line["status"] for line in lines if line["event"] == "case_end"] == ["aborted"]
    assert not list(hf_home.rglob("*.incomplete")), "the partial file is removed"
