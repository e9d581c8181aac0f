"""kill -9 of vlmtui in the middle of a conversation, then ``--resume``: the conversation runs again, once,
from its first turn; the finished case is not run again. Through the real ``vlmtui`` command and worker."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_IMAGES
from tests.functional.test_sessions import count, records, run_vlmtui, start_vlmtui, wait_for, wait_gone, workers_of
from vlmtui.engine.session_log import load_log

pytestmark = pytest.mark.slow

# Turn 2 is slow on purpose (200 tokens of the tiny LLaVA-NeXT, seconds on CPU): the run is killed under it.
SUITE = f"""
name = "resume-chat"
text_prompts = ["Hello?"]
max_tokens = 4

[[conversations]]
id = "context"
images = ["{SAMPLE_IMAGES}/bicycle.jpg"]
max_tokens = 200
turns = ["Describe this image in detail.", "What were the most prominent colours?", "Summarise it."]

[[models]]
id = "llava"
backend = "transformers"
path = "tiny:llava-next"
"""
CHAT = "llava/context/bicycle"


def test_kill_9_mid_conversation_then_resume_reruns_it_once(tmp_path: Path) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE, encoding="utf-8")
    log = tmp_path / "session.jsonl"
    proc = start_vlmtui(tmp_path, "run", str(suite), "--headless", "--log", str(log))
    try:
        wait_for(log, proc, lambda rs: any(r.get("event") == "turn_end" and r["case_id"] == CHAT for r in rs),
                 timeout=300)
        workers = workers_of(proc.pid)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not wait_gone(workers), "the worker exits on its own when vlmtui dies"
    killed = records(log)
    assert count(killed, "case_end") == {"llava/text/t0": 1}, "killed under the conversation's second turn"
    assert [r["index"] for r in killed if r.get("event") == "turn_end"] == [0]
    assert CHAT in load_log(log).running

    resumed = run_vlmtui("run", str(suite), "--headless", "--resume", str(log), timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    lines = records(log)
    assert count(lines, "case_start") == {"llava/text/t0": 1, CHAT: 2}, "the conversation runs once more"
    assert count(lines, "case_end") == {"llava/text/t0": 1, CHAT: 1}
    assert [r["index"] for r in lines if r.get("event") == "turn_end"] == [0, 0, 1, 2], "from its first turn"
    end = load_log(log).latest()[CHAT]
    assert end["status"] == "passed" and end["attempt"] == 2
    assert [turn["status"] for turn in end["turns"]] == ["passed"] * 3
