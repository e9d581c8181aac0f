"""The engine for real: the worker subprocess, tiny transformers models, crashes, aborts and reruns."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.functional.helpers import Recorder, cases_of, scheduler_for, write_suite
from vlmtui.engine.events import CaseFinished, CaseStarted, ModelLoading, TokenReceived, WorkerExited
from vlmtui.engine.session_log import SessionLog, load_log

SMOL = """
prompts = ["Describe this image."]
text_prompts = ["Hello?"]
max_tokens = 6

[[models]]
id = "smol"
backend = "transformers"
path = "tiny:idefics3"
"""


def statuses(recorder: Recorder) -> dict[str, str]:
    return {e.result.case_id: e.result.status for e in recorder.of(CaseFinished)}


async def test_cases_stream_pass_and_are_logged(tmp_path: Path) -> None:
    cases = cases_of(write_suite(tmp_path, SMOL))
    scheduler, recorder = scheduler_for(cases, suite_name="test")
    log = SessionLog(tmp_path / "log.jsonl")
    scheduler.subscribe(log)
    counts = await scheduler.run()
    log.close()
    assert counts == {"passed": 4}
    assert len(recorder.of(ModelLoading)) == 1, "one load for all of a model's cases"
    assert recorder.of(TokenReceived), "tokens stream"
    result = recorder.of(CaseFinished)[0].result
    for key in ("load_s", "ttft_s", "prompt_tokens", "gen_tokens", "gen_tps", "total_s", "peak_memory_bytes"):
        assert result.metrics.get(key) is not None, key
    assert result.metrics["gen_tokens"] == 6
    data = load_log(tmp_path / "log.jsonl")
    assert [r["case_id"] for r in data.results] == [c.case_id for c in cases]
    assert data.starts[0]["schema_version"] == 1 and data.ends[0]["counts"] == {"passed": 4}
    assert data.latest()[cases[0].case_id]["output"] == result.output


@pytest.mark.parametrize("signum", [signal.SIGABRT, signal.SIGKILL], ids=["SIGABRT", "SIGKILL"])
async def test_worker_killed_mid_case_is_crashed_and_the_queue_goes_on(tmp_path: Path, signum: int) -> None:
    cases = cases_of(write_suite(tmp_path, SMOL))
    long_case = cases[0].case_id
    cases[0] = cases[0].__class__(**{**cases[0].__dict__, "max_tokens": 2000})
    scheduler, recorder = scheduler_for(cases)
    killed: list[int] = []

    def kill_on_first_token(event: object) -> None:
        pid = scheduler.worker_pid
        if isinstance(event, TokenReceived) and event.case_id == long_case and pid and not killed:
            killed.append(pid)
            os.kill(pid, signum)

    scheduler.subscribe(kill_on_first_token)
    counts = await scheduler.run()
    result = scheduler.latest()[long_case]
    assert result.status == "crashed"
    assert signal.Signals(signum).name in result.error
    assert result.metrics["returncode"] == -signum
    assert counts == {"crashed": 1, "passed": 3}
    assert len(recorder.of(WorkerExited)) == 1
    assert len(recorder.of(ModelLoading)) == 2, "a fresh worker loads the model again"


async def test_missing_model_fails_each_case_once_loaded(tmp_path: Path) -> None:
    body = SMOL.replace('path = "tiny:idefics3"', f'path = "{tmp_path}/no-such-model"')
    scheduler, recorder = scheduler_for(cases_of(write_suite(tmp_path, body)))
    counts = await scheduler.run()
    assert counts == {"failed": 4}
    assert len(recorder.of(ModelLoading)) == 1
    errors = {e.result.error for e in recorder.of(CaseFinished)}
    assert len(errors) == 1 and "no-such-model" in errors.pop()


async def test_bad_image_fails_its_case_and_the_rest_run(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "empty.jpg").write_bytes(b"")
    (images / "ok.png").write_bytes((ROOT / "sample_images" / "still-life.png").read_bytes())
    scheduler, recorder = scheduler_for(cases_of(write_suite(tmp_path, SMOL, images=f"{images}/*")))
    await scheduler.run()
    result = statuses(recorder)
    assert result == {"smol/empty.jpg/p0": "failed", "smol/ok.png/p0": "passed", "smol/text/t0": "passed"}
    failed = next(e.result for e in recorder.of(CaseFinished) if e.result.status == "failed")
    assert "empty.jpg" in failed.error and "empty file" in failed.error


async def test_abort_then_rerun_appends_an_attempt(tmp_path: Path) -> None:
    cases = cases_of(write_suite(tmp_path, SMOL))[:2]
    first = cases[0].case_id
    cases[0] = cases[0].__class__(**{**cases[0].__dict__, "max_tokens": 2000})
    scheduler, _recorder = scheduler_for(cases)

    def abort_on_first_token(event: object) -> None:
        if isinstance(event, TokenReceived) and event.case_id == first and scheduler.running_case == first:
            scheduler.abort_current("aborted by the user")

    scheduler.subscribe(abort_on_first_token)
    await scheduler.run()
    aborted = scheduler.latest()[first]
    assert aborted.status == "aborted" and aborted.error == "aborted by the user"
    assert aborted.metrics["gen_tokens"] < 2000
    scheduler._subscribers.remove(abort_on_first_token)  # the rerun runs to the end
    assert scheduler.rerun(scheduler.failed_case_ids()) == [first]
    await scheduler.run()
    assert [r.status for r in scheduler.results[first]] == ["aborted", "passed"]
    assert [r.attempt for r in scheduler.results[first]] == [1, 2]


async def test_pause_waits_between_cases(tmp_path: Path) -> None:
    cases = cases_of(write_suite(tmp_path, SMOL))[:3]
    scheduler, recorder = scheduler_for(cases)
    scheduler.subscribe(lambda e: scheduler.pause() if isinstance(e, CaseFinished) and not scheduler.paused
                        and len(recorder.of(CaseFinished)) == 1 else None)
    task = asyncio.create_task(scheduler.run())
    for _ in range(600):
        if recorder.of(CaseFinished):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    assert len(recorder.of(CaseFinished)) == 1 and scheduler.paused
    assert len(recorder.of(CaseStarted)) == 1
    scheduler.resume()
    assert await asyncio.wait_for(task, 120) == {"passed": 3}


def test_worker_exits_when_its_stdin_closes() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "vlmtui.worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    assert proc.stdout is not None and proc.stdin is not None
    assert b'"type":"hello"' in proc.stdout.readline()
    started = time.monotonic()
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
