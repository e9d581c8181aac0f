"""Hub downloads for real (issue 18): the real huggingface_hub client in the hub helper against a local hub.

The fake hub (tests/fixtures/fake_hub.py) serves the tiny idefics3 model's files as ``org/tiny-smol``; the
worker loads it by repo id from the cache the download filled, with HF_HUB_OFFLINE=1 (so a file the
download missed fails the load), while the helper talks to the fake hub (HF_ENDPOINT).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest

from tests.fixtures.fake_hub import FakeHub, FakeRepo, serve_hub
from tests.functional.helpers import Recorder, cases_of, scheduler_for
from vlmtui.engine.downloads import HELPER_ARGV, Downloads, HubHelper, Prepared
from vlmtui.engine.events import CaseFinished, DownloadFinished, DownloadProgress, Notice
from vlmtui.engine.scheduler import Scheduler
from vlmtui.engine.session_log import SessionLog
from vlmtui.memory.budget import Budget
from vlmtui.ui.download_text import download_brief
from vlmtui.wire.spec import ModelSpec
from vlmtui.worker.demo.tiny import tiny_model_dir

MiB = 1024**2

HEAD = """
name = "hub"
text_prompts = ["Hello?"]
max_tokens = 3
"""
MODEL = """
[[models]]
id = "{id}"
backend = "transformers"
path = "{path}"
"""


def suite(**models: str) -> str:
    """A suite of text-only cases on transformers models, ``id = path``."""
    return HEAD + "".join(MODEL.format(id=id_, path=path) for id_, path in models.items())


@pytest.fixture(scope="module")
def tiny_smol() -> Path:
    return tiny_model_dir("tiny:idefics3", "transformers")


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))  # the engine's own cache look-ups (preflight) read the same cache
    return home


@pytest.fixture
def hub(tiny_smol: Path) -> Iterator[FakeHub]:
    repos = {
        "org/tiny-smol": FakeRepo(tiny_smol, bytes_per_s=400_000),  # ~1 MB in ~2.5 s: several progress lines
        "org/gated": FakeRepo(tiny_smol, status=401),
        "org/dropping": FakeRepo(tiny_smol, drop_after=200_000),
        "org/resuming": FakeRepo(tiny_smol, drop_after=400_000),
    }
    with serve_hub(repos) as served:
        yield served


def helper_env(hf_home: Path, endpoint: str) -> dict[str, str]:
    """The hub helper's environment: online (conftest sets HF_HUB_OFFLINE=1 for the whole session)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    return {**env, "HF_ENDPOINT": endpoint, "HF_HOME": str(hf_home)}


def run_suite(tmp_path: Path, body: str, hf_home: Path, endpoint: str, *, budget_mib: int = 4096,
              name: str = "suite.toml", worker_online: bool = False) -> tuple[Scheduler, Recorder]:
    suite = tmp_path / name
    suite.write_text(body)
    cases = cases_of(suite)
    # Offline by default: the cache the download filled, nothing else; online as in a real run when asked.
    worker_env = helper_env(hf_home, endpoint) if worker_online else {**os.environ, "HF_HOME": str(hf_home)}
    scheduler, recorder = scheduler_for(cases, budget=Budget(budget_mib * MiB, f"explicit {budget_mib}MiB"),
                                        worker_env=worker_env)
    scheduler.downloads = Downloads(scheduler.emit, helper_env(hf_home, endpoint))
    return scheduler, recorder


def statuses(recorder: Recorder) -> dict[str, tuple[str, str]]:
    return {e.result.model: (e.result.status, e.result.error) for e in recorder.of(CaseFinished)}


async def test_sizes_come_first_progress_is_logged_and_the_second_run_is_served_from_the_cache(
        tmp_path: Path, hf_home: Path, hub: FakeHub, tiny_smol: Path) -> None:
    body = suite(smol="org/tiny-smol")
    scheduler, recorder = run_suite(tmp_path, body, hf_home, hub.url)
    fetched_at_event: list[tuple[Any, int]] = []
    scheduler.subscribe(lambda e: fetched_at_event.append((e, hub.body_bytes)) if isinstance(
        e, DownloadProgress) else None)
    log = SessionLog(tmp_path / "first.jsonl")
    scheduler.subscribe(log)
    assert await scheduler.run() == {"passed": 1}
    log.close()

    weights = sum(p.stat().st_size for p in tiny_smol.iterdir() if p.is_file() and not p.name.startswith("."))
    first, sent = fetched_at_event[0]
    assert sent == 0 and first.downloaded == 0, "the size is known before a byte is fetched"
    assert first.total is not None and 0.9 * weights < first.total <= weights
    progress = [e for e, _ in fetched_at_event]
    assert len(progress) >= 4 and progress[-1].downloaded == first.total
    assert any(e.rate_bps and e.eta_s is not None for e in progress[1:]), "rate and ETA while it runs"
    done = recorder.of(DownloadFinished)
    assert [(d.from_cache, d.error, d.downloaded) for d in done] == [(False, "", first.total)]
    result = recorder.of(CaseFinished)[0].result
    assert result.metrics["download_s"] == done[0].seconds > 1.0, "the slow link's seconds"
    kinds = [type(e).__name__ for e in recorder.events]
    assert kinds.index("DownloadFinished") < kinds.index("ModelLoading"), "the load (load_s) starts after it"
    lines = (tmp_path / "first.jsonl").read_text().splitlines()
    assert sum('"download_progress"' in line for line in lines) >= 2
    assert sum('"event": "download"' in line for line in lines) == 1

    gets = len(hub.file_gets())
    again, recorder2 = run_suite(tmp_path, body, hf_home, hub.url, name="again.toml")
    assert await again.run() == {"passed": 1}
    assert len(hub.file_gets()) == gets, "no file fetched twice"
    assert [(d.from_cache, d.downloaded) for d in recorder2.of(DownloadFinished)] == [(True, 0)]
    assert not recorder2.of(DownloadProgress)
    assert recorder2.of(CaseFinished)[0].result.metrics["download_s"] == 0.0


async def test_a_model_too_big_for_the_budget_is_skipped_before_a_byte_is_fetched(
        tmp_path: Path, hf_home: Path, hub: FakeHub) -> None:
    scheduler, recorder = run_suite(tmp_path, suite(smol="org/tiny-smol"), hf_home, hub.url,
                                    budget_mib=64)
    assert await scheduler.run() == {"skipped": 1}
    error = statuses(recorder)["smol"][1]
    assert "needs ~" in error and "free under the budget" in error
    assert error.endswith("force = true downloads and loads anyway")
    assert hub.file_gets() == [] and hub.body_bytes == 0
    assert any(path.startswith("/api/models/org/tiny-smol") for _, path in hub.requests), "sized from the hub"
    assert not recorder.of(DownloadProgress)


async def test_each_failure_is_one_line_and_the_queue_goes_on(
        tmp_path: Path, hf_home: Path, hub: FakeHub, tiny_smol: Path) -> None:
    body = suite(gated="org/gated", missing="org/missing", dropped="org/dropping", resumed="org/resuming")
    scheduler, recorder = run_suite(tmp_path, body, hf_home, hub.url)
    assert await scheduler.run() == {"failed": 3, "passed": 1}
    ended = statuses(recorder)
    assert all("\n" not in error for _, error in ended.values())
    assert ended["gated"][1].startswith("the hub refused org/gated (401): Access to model org/gated is restricted")
    assert ended["missing"][1].startswith("the hub refused org/missing (404): Repository org/missing not found")
    # The weights' connection drops 200 kB in, before the first 256 KiB step is written: each of
    # huggingface_hub's five retries starts from zero and drops again, and the helper gives up with its reason.
    assert ended["dropped"][1].startswith("cannot reach the hub for org/dropping: peer closed connection")
    assert sum(path.endswith("model.safetensors") for path in hub.file_gets("org/dropping")) == 6
    assert not list(hf_home.rglob("*.incomplete")), "the partial file is removed"
    # Dropped 400 kB in, after one 256 KiB step: resumed from there with a Range request, and the queue goes on.
    assert ended["resumed"] == ("passed", "")
    assert sum(path.endswith("model.safetensors") for path in hub.file_gets("org/resuming")) == 2
    done = recorder.of(DownloadFinished)
    assert [bool(d.error) for d in done] == [True, True, True, False]
    assert done[-1].downloaded == sum(p.stat().st_size for p in tiny_smol.iterdir() if not p.name.startswith("."))


async def test_an_unreachable_hub_is_one_line_naming_the_offline_switch(
        tmp_path: Path, hf_home: Path, unused_tcp_port: int) -> None:
    scheduler, recorder = run_suite(tmp_path, suite(smol="org/tiny-smol"), hf_home,
                                    f"http://127.0.0.1:{unused_tcp_port}")
    assert await scheduler.run() == {"failed": 1}
    error = statuses(recorder)["smol"][1]
    assert error.startswith("cannot reach the hub for org/tiny-smol: ")
    assert error.endswith("; set HF_HUB_OFFLINE=1 to use the cache only") and "\n" not in error


async def test_stopping_during_a_download_ends_it_and_leaves_no_partial_file(
        tmp_path: Path, hf_home: Path, hub: FakeHub) -> None:
    hub.repos["org/tiny-smol"].bytes_per_s = 20_000  # ~50 s for the whole model: the stop comes first
    scheduler, recorder = run_suite(tmp_path, suite(smol="org/tiny-smol"), hf_home, hub.url)

    def stop_once_bytes_flow(event: object) -> None:
        if isinstance(event, DownloadProgress) and event.downloaded > 0:
            scheduler.stop("stopped by the user")

    scheduler.subscribe(stop_once_bytes_flow)
    counts = await scheduler.run()
    assert counts == {"aborted": 1}
    done = recorder.of(DownloadFinished)
    assert len(done) == 1 and done[0].error == "the download of smol was stopped: stopped by the user"
    assert not list(hf_home.rglob("*.incomplete")), "the partial file is removed"
    assert not any(n.level == "error" for n in recorder.of(Notice))


def spec_of(model_id: str, path: str) -> ModelSpec:
    return ModelSpec(id=model_id, backend="transformers", path=path)


async def test_offline_the_cache_alone_answers_without_a_request(
        tmp_path: Path, hf_home: Path, hub: FakeHub) -> None:
    recorder = Recorder()
    online = Downloads(recorder, helper_env(hf_home, hub.url))
    assert await online.prepare(spec_of("smol", "org/tiny-smol"), 4096 * MiB) == Prepared(download_s=ANY)
    asked = len(hub.requests)
    offline = Downloads(recorder, {**helper_env(hf_home, hub.url), "HF_HUB_OFFLINE": "1"})
    assert await offline.prepare(spec_of("smol", "org/tiny-smol"), 4096 * MiB) == Prepared(download_s=0.0)
    assert len(hub.requests) == asked, "HF_HUB_OFFLINE: not one request"
    missing = await offline.prepare(spec_of("gated", "org/gated"), 4096 * MiB)
    assert missing.error == ("org/gated is not in the Hugging Face cache and HF_HUB_OFFLINE is set; download it "
                             "once online (vlmtui run --download-only SUITE, or unset HF_HUB_OFFLINE)")
    assert len(hub.requests) == asked


# The helper under a 300 kB file-size limit: the weights' write fails part-way as on a full disk (EFBIG
# instead of ENOSPC: the same OSError from the same write, and no filesystem to fill on a shared CI box).
SIZE_LIMITED_HELPER = (
    sys.executable, "-c",
    "import resource, runpy, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000)); "
    "runpy.run_module('vlmtui.worker.hub', run_name='__main__', alter_sys=True)",
)


async def test_a_failed_write_names_the_cache_and_its_free_space_and_removes_the_partial_file(
        tmp_path: Path, hf_home: Path, hub: FakeHub) -> None:
    recorder = Recorder()
    downloads = Downloads(recorder, helper_env(hf_home, hub.url), argv=SIZE_LIMITED_HELPER)
    prepared = await downloads.prepare(spec_of("smol", "org/tiny-smol"), 4096 * MiB)
    assert prepared.status == "failed" and prepared.error is not None
    assert prepared.error.startswith(f"cannot write org/tiny-smol into {hf_home / 'hub'}: File too large (")
    assert prepared.error.endswith(" free there); the partial file was removed")
    assert not list(hf_home.rglob("*.incomplete"))
    assert not list(hf_home.rglob("model.safetensors")), "no half-written weights in the snapshot"
    assert [d.error for d in recorder.of(DownloadFinished)] == [prepared.error]


async def test_an_online_mlx_vlm_worker_loads_what_the_download_fetched_without_fetching_again(
        tmp_path: Path, hf_home: Path) -> None:
    mlx_smol = tiny_model_dir("tiny:idefics3", "mlx-vlm")
    with serve_hub({"org/tiny-smol-mlx": FakeRepo(mlx_smol)}) as hub:
        body = HEAD + MODEL.format(id="smol", path="org/tiny-smol-mlx").replace('"transformers"', '"mlx-vlm"')
        scheduler, recorder = run_suite(tmp_path, body, hf_home, hub.url, worker_online=True)
        assert await scheduler.run() == {"passed": 1}, statuses(recorder)
        gets = hub.file_gets()
    assert len(gets) == len(set(gets)) > 0, "each file fetched once: the worker's own look-up finds them cached"
    assert recorder.of(DownloadFinished)[0].downloaded > 0


async def test_a_stalled_link_shows_as_stalled_rather_than_frozen(
        tmp_path: Path, hf_home: Path, tiny_smol: Path) -> None:
    # 9 s without a byte after 300 kB: the 5 s rate window empties (with 3 s to spare on a busy box) and the
    # clock's reports say so.
    with serve_hub({"org/stalling": FakeRepo(tiny_smol, stall_after=300_000, stall_s=9.0)}) as hub:
        recorder = Recorder()
        prepared = await Downloads(recorder, helper_env(hf_home, hub.url)).prepare(
            spec_of("smol", "org/stalling"), 4096 * MiB)
    assert prepared.error is None
    progress = recorder.of(DownloadProgress)
    stalled = [e for e in progress if e.rate_bps == 0.0 and 0 < e.downloaded < (e.total or 0)]
    assert stalled, [(e.downloaded, e.rate_bps) for e in progress]
    assert stalled[-1].eta_s is None and download_brief(stalled[-1]).endswith(" · stalled")
    assert progress[-1].downloaded == progress[-1].total, "it recovers and finishes"


async def test_the_helper_stops_its_download_when_the_engine_goes(
        tmp_path: Path, hf_home: Path, hub: FakeHub) -> None:
    hub.repos["org/tiny-smol"].bytes_per_s = 20_000
    helper = HubHelper(HELPER_ARGV, helper_env(hf_home, hub.url))
    await helper.start(spec_of("smol", "org/tiny-smol"))
    assert "resolved" in await helper.message()
    helper.send("fetch")
    while (await helper.message()).get("progress", {}).get("downloaded", 0) == 0:
        pass
    assert helper.process is not None and helper.process.stdin is not None
    helper.process.stdin.close()  # what a kill -9 of the vlmtui process does to the pipe
    assert await asyncio.wait_for(helper.message(), 60) == {"error": "stopped"}
    assert await asyncio.wait_for(helper.process.wait(), 60) == 1
    assert not list(hf_home.rglob("*.incomplete"))


async def test_force_downloads_a_model_the_fit_check_refuses_and_a_second_load_asks_nothing(
        tmp_path: Path, hf_home: Path, hub: FakeHub) -> None:
    recorder = Recorder()
    downloads = Downloads(recorder, helper_env(hf_home, hub.url))
    forced = ModelSpec(id="smol", backend="transformers", path="org/tiny-smol", force=True)
    prepared = await downloads.prepare(forced, 64 * MiB)
    assert prepared.skip_reason is None and prepared.error is None and hub.body_bytes > 0
    asked = len(hub.requests)
    assert await downloads.prepare(forced, 64 * MiB) == prepared
    assert len(hub.requests) == asked and len(recorder.of(DownloadFinished)) == 1
