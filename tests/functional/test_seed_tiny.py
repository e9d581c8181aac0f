"""suites/seed-tiny.toml run headless through the real CLI, as CI runs it: the original script's failures
do not recur (issue 15). Each model loads exactly once, a vision-only model's text prompts are skipped
and never pass, nothing crashes, and every other case passes; the llama.cpp model runs where llama-server
is found and is otherwise skipped with one line saying how to get it."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import ROOT
from vlmtui.exit_codes import EXIT_OK
from vlmtui.llamacpp import find_llama_server

pytestmark = pytest.mark.slow

SUITE = ROOT / "suites" / "seed-tiny.toml"
VISION_ONLY = "moondream2-tiny"
LLAMA_CPP = "smolvlm-tiny-gguf"


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """``vlmtui run suites/seed-tiny.toml --headless``: its process and its session log's lines."""
    log = tmp_path_factory.mktemp("seed-tiny") / "session.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "vlmtui", "run", str(SUITE), "--headless", "--log", str(log)],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=540, check=False,
    )
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return done, lines


def latest_ends(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each case's result: its last ``case_end`` line."""
    return {line["case_id"]: line for line in lines if line["event"] == "case_end"}


def test_the_run_ends_well_and_nothing_crashes(session: tuple[subprocess.CompletedProcess[str], list[Any]]) -> None:
    done, lines = session
    assert done.returncode == EXIT_OK, done.stderr[-2000:]
    ends = latest_ends(lines)
    planned = next(line for line in lines if line["event"] == "session_start")["cases"]
    assert set(ends) == {case["case_id"] for case in planned}
    assert not [c for c, end in ends.items() if end["status"] == "crashed"]
    assert not [line for line in lines if line["event"] == "worker_exit"]


def test_each_model_loads_exactly_once(session: tuple[subprocess.CompletedProcess[str], list[Any]]) -> None:
    _, lines = session
    loads = collections.Counter(line["model"] for line in lines if line["event"] == "model_loaded")
    served = find_llama_server() is not None
    expected = {"llava-next-tiny": 1, VISION_ONLY: 1, "smolvlm2-tiny": 1} | ({LLAMA_CPP: 1} if served else {})
    assert dict(loads) == expected
    assert not [line for line in lines if line["event"] == "model_load_failed"]


def test_a_vision_only_models_text_prompts_are_skipped_never_passed(
    session: tuple[subprocess.CompletedProcess[str], list[Any]],
) -> None:
    _, lines = session
    ends = latest_ends(lines)
    text = {c: end for c, end in ends.items() if end["model"] == VISION_ONLY and end["kind"] == "text"}
    assert len(text) == 3
    for end in text.values():
        assert end["status"] == "skipped" and "moondream2" in end["error"] and not end.get("output")
    images = [end for end in ends.values() if end["model"] == VISION_ONLY and end["kind"] == "image"]
    assert len(images) == 3 and all(end["status"] == "passed" for end in images)


def test_every_other_case_passes_or_names_the_missing_server(
    session: tuple[subprocess.CompletedProcess[str], list[Any]],
) -> None:
    done, lines = session
    ends = latest_ends(lines)
    others = {c: end for c, end in ends.items() if end["model"] != VISION_ONLY or end["kind"] == "image"}
    served = find_llama_server() is not None
    for case_id, end in others.items():
        if end["model"] == LLAMA_CPP and not served:
            assert end["status"] == "skipped", case_id
            assert end["error"].startswith("llama-server not found: ") and "\n" not in end["error"]
        else:
            assert (end["status"], end["error"]) == ("passed", ""), case_id
            assert end["metrics"]["gen_tokens"] == 100, case_id  # max_tokens of the original
    assert "crashed" not in done.stdout
