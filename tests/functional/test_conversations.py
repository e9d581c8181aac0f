"""Conversations through the real worker: tiny transformers and mlx-vlm models take the history through their
chat templates, a model without one gets its follow-ups skipped, a failing turn fails the case naming it, and
the memory guard's abort mid-conversation keeps the finished turns."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, SAMPLE_IMAGES
from tests.functional.helpers import Recorder, scheduler_for
from vlmtui.engine.events import CaseFinished, CaseResult, CaseStarted, TokenReceived, TurnFinished, TurnStarted
from vlmtui.engine.plan import Case, plan_cases
from vlmtui.engine.session_log import SessionLog, load_log
from vlmtui.memory.budget import Budget
from vlmtui.suite.conversations import Turn
from vlmtui.suite.loader import GuardConfig, load_suite
from vlmtui.wire.spec import Expect, ModelSpec

MiB = 1024 * 1024
TURNS = """
turns = [
  "Describe this image in detail.",
  "What were the most prominent colours?",
  { text = "Summarise the main subject in one sentence.", expect = { min_tokens = 1 } },
]
"""


def conversation_suite(tmp_path: Path, models: str, *, turns: str = TURNS, images: bool = True,
                       max_tokens: int = 6) -> list[Case]:
    """The planned cases of a suite with one conversation (on bicycle.jpg, or text-only) and ``models``."""
    image_line = f'images = ["{SAMPLE_IMAGES}/bicycle.jpg"]' if images else ""
    path = tmp_path / "suite.toml"
    path.write_text(f'name = "chat"\nmax_tokens = {max_tokens}\n\n[[conversations]]\nid = "context"\n'
                    f"{image_line}\n{turns}\n{models}", encoding="utf-8")
    return plan_cases(load_suite(path))


def model(model_id: str, backend: str, path: str) -> str:
    return f'[[models]]\nid = "{model_id}"\nbackend = "{backend}"\npath = "{path}"\n'


async def run_logged(cases: list[Case], tmp_path: Path, **kwargs: Any) -> tuple[Recorder, list[CaseResult]]:
    scheduler, recorder = scheduler_for(cases, **kwargs)
    log = SessionLog(tmp_path / "log.jsonl")
    scheduler.subscribe(log)
    await scheduler.run()
    log.close()
    return recorder, [event.result for event in recorder.of(CaseFinished)]


def assert_history_reached_the_template(result: CaseResult) -> None:
    """Each follow-up's prompt holds everything before it: the earlier prompts, answers and the template's roles."""
    turns = result.turns
    for before, after in itertools.pairwise(turns):
        grown = before["metrics"]["prompt_tokens"] + before["metrics"]["gen_tokens"]
        assert after["metrics"]["prompt_tokens"] > grown, (before["metrics"], after["metrics"])


@pytest.mark.parametrize("backend", ["transformers", "mlx-vlm"])
async def test_a_conversation_runs_turn_by_turn_with_its_history(tmp_path: Path, backend: str) -> None:
    cases = conversation_suite(tmp_path, model("smol", backend, "tiny:idefics3"))
    assert [(c.case_id, c.kind) for c in cases] == [("smol/context/bicycle", "conversation")]
    recorder, results = await run_logged(cases, tmp_path)
    result = results[0]
    assert result.status == "passed", (result.error, result.turns)
    assert [t["status"] for t in result.turns] == ["passed"] * 3
    assert [t["index"] for t in result.turns] == [0, 1, 2]
    assert all(t["output"] and t["expect"] == {"passed": True, "reasons": []} for t in result.turns)
    for turn in result.turns:
        for key in ("prompt_tokens", "ttft_s", "gen_tokens", "total_s"):
            assert turn["metrics"].get(key) is not None, (key, turn["metrics"])
    assert_history_reached_the_template(result)
    print(f"\n{backend}: prompt tokens per turn {[t['metrics']['prompt_tokens'] for t in result.turns]}, "
          f"answer tokens {[t['metrics']['gen_tokens'] for t in result.turns]}, "
          f"ttft {[t['metrics']['ttft_s'] for t in result.turns]}")
    # The case adds its turns up: one CaseStarted, tokens between each turn's start and end.
    assert len(recorder.of(CaseStarted)) == 1
    assert result.metrics["gen_tokens"] == sum(t["metrics"]["gen_tokens"] for t in result.turns)
    assert result.metrics["prompt_tokens"] == result.turns[-1]["metrics"]["prompt_tokens"]
    assert result.output == result.turns[-1]["output"] and result.prompt == result.turns[0]["prompt"]
    order = [e for e in recorder.events if isinstance(e, CaseStarted | TurnStarted | TurnFinished | TokenReceived)]
    assert isinstance(order[0], CaseStarted) and isinstance(order[1], TurnStarted), "the case, then its first turn"
    order = order[1:]
    streamed: dict[int, str] = {}
    current = None
    for event in order:
        if isinstance(event, TurnStarted):
            current = event.index
        elif isinstance(event, TokenReceived):
            assert current is not None, "a token before any turn started"
            streamed[current] = streamed.get(current, "") + event.text
        else:
            assert isinstance(event, TurnFinished) and event.index == current, "one CaseStarted, then turns only"
            current = None
    assert streamed == {t["index"]: t["output"] for t in result.turns}
    # The log keeps every turn as it ends and the whole conversation in case_end.
    lines = load_log_lines(tmp_path / "log.jsonl")
    assert [line["index"] for line in lines if line["event"] == "turn_end"] == [0, 1, 2]
    logged = load_log(tmp_path / "log.jsonl").latest()["smol/context/bicycle"]
    assert logged["kind"] == "conversation"


def load_log_lines(path: Path) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


async def test_a_model_without_chat_roles_answers_turn_one_and_skips_the_follow_ups(tmp_path: Path) -> None:
    cases = conversation_suite(tmp_path, model("moon", "mlx-vlm", "tiny:moondream2"))
    _, results = await run_logged(cases, tmp_path)
    result = results[0]
    assert [t["status"] for t in result.turns] == ["passed", "skipped", "skipped"]
    assert result.turns[0]["output"] and not result.turns[1]["output"]
    assert "moondream2 takes a single prompt" in result.turns[1]["reason"]
    assert result.status == "skipped" and result.error.startswith("turns 2-3 skipped: moondream2")


async def test_a_text_only_conversation(tmp_path: Path) -> None:
    turns = 'turns = ["Hello, who are you?", "And what did you just say?"]'
    cases = conversation_suite(tmp_path, model("smol", "transformers", "tiny:idefics3"), turns=turns, images=False)
    assert [c.case_id for c in cases] == ["smol/context"] and cases[0].image is None
    _, results = await run_logged(cases, tmp_path)
    assert results[0].status == "passed", results[0].error
    assert_history_reached_the_template(results[0])


async def test_a_turn_that_misses_its_expectation_fails_the_case_naming_it(tmp_path: Path) -> None:
    turns = """turns = [
      "Describe this image.",
      { text = "What colours?", expect = { contains = ["no tiny model says this"] } },
      "And in one sentence?",
    ]"""
    cases = conversation_suite(tmp_path, model("smol", "transformers", "tiny:idefics3"), turns=turns)
    _, results = await run_logged(cases, tmp_path)
    result = results[0]
    assert result.status == "failed"
    assert result.error == "turn 2: expected the output to contain 'no tiny model says this'"
    assert [t["status"] for t in result.turns] == ["passed", "failed", "passed"], "the conversation goes on"
    assert result.turns[1]["expect"] == {"passed": False,
                                         "reasons": ["expected the output to contain 'no tiny model says this'"]}


CHAT_FAULT_WORKER = [sys.executable, "-m", "tests.fixtures.chat_fault_worker"]


async def test_a_guard_abort_on_turn_two_keeps_turn_one(tmp_path: Path) -> None:
    budget_mib = 400
    eater = ModelSpec(id="eater", backend="chat-fault", path="fault:4:25")
    turns = (Turn("hello", Expect()), Turn("eat", Expect()), Turn("after", Expect()))
    cases = [Case("eater/context", eater, "hello", None, 0, 3, 0.0, Expect(), turns=turns)]
    guard = GuardConfig(budget=f"{budget_mib}MiB", warn=50, cleanup=60, abort=80, sample_ms=50, grace_s=1.0,
                        term_grace_s=0.5, log_every_ms=50)
    recorder, results = await run_logged(
        cases, tmp_path, guard=guard, budget=Budget(budget_mib * MiB, f"explicit {budget_mib}MiB"),
        worker_argv=CHAT_FAULT_WORKER, worker_env={**os.environ, "PYTHONPATH": str(ROOT)})
    result = results[0]
    assert result.status == "aborted" and result.error.startswith("turn 2: memory guard"), result.error
    first, second, third = result.turns
    assert first["status"] == "passed" and first["output"] == "h0 t0 t1 t2 "
    assert second["status"] == "aborted" and second["output"].startswith("h1 t0 "), "turn 2 had turn 1's history"
    assert 0 < second["metrics"]["gen_tokens"] < 400
    assert third["status"] == "not_run" and third["reason"].startswith("not run: the conversation ended at turn 2")
    assert "guard_reading" in result.metrics and result.metrics["turns_run"] == 2
    assert [e.index for e in recorder.of(TurnStarted)] == [0, 1]
    assert [e.index for e in recorder.of(TurnFinished)] == [0, 1]


async def test_a_rerun_runs_the_whole_conversation_again_from_turn_one(tmp_path: Path) -> None:
    turns = 'turns = ["Hello, who are you?", "And what did you just say?"]'
    cases = conversation_suite(tmp_path, model("smol", "transformers", "tiny:idefics3"), turns=turns, images=False)
    scheduler, recorder = scheduler_for(cases)

    def rerun_once(event: object) -> None:
        if isinstance(event, CaseFinished):
            if event.result.attempt == 1:
                assert scheduler.rerun([event.result.case_id]) == ["smol/context"]
            else:
                scheduler.stop("done", abort_running=False)

    scheduler.subscribe(rerun_once)
    await asyncio.wait_for(scheduler.run(keep_alive=True), timeout=600)
    first, second = (event.result for event in recorder.of(CaseFinished))
    assert (first.attempt, second.attempt) == (1, 2)
    assert [e.index for e in recorder.of(TurnStarted)] == [0, 1, 0, 1]
    # The rerun starts a fresh conversation: its turn 1 carries no history from the first attempt.
    tokens = [[t["metrics"]["prompt_tokens"] for t in r.turns] for r in (first, second)]
    assert tokens[0][0] == tokens[1][0] and tokens[0][1] == tokens[1][1], tokens


async def test_turns_with_answers_are_scored_and_one_under_pass_at_fails_the_case(tmp_path: Path) -> None:
    calm = ModelSpec(id="calm", backend="chat-fault", path="fault:0.01:1")
    turns = (Turn("hello", Expect()),
             Turn("again", Expect(), answers=("h1 t0 t1",), metrics=("exact", "anls"), pass_at=0.5),
             Turn("colour?", Expect(), answers=("blue",), metrics=("exact",), pass_at=0.5))
    cases = [Case("calm/context", calm, "hello", None, 0, 2, 0.0, Expect(), turns=turns)]
    _, results = await run_logged(cases, tmp_path, worker_argv=CHAT_FAULT_WORKER,
                                  worker_env={**os.environ, "PYTHONPATH": str(ROOT)})
    result = results[0]
    first, second, third = result.turns
    assert "scores" not in first, "a turn without answers is not scored"
    assert second["output"] == "h1 t0 t1 " and second["status"] == "passed"
    assert second["scores"] == {"exact": 1.0, "anls": 1.0} and second["references"] == ["h1 t0 t1"]
    assert second["primary_metric"] == "exact" and second["pass_at"] == 0.5
    assert third["status"] == "failed" and third["scores"] == {"exact": 0.0}
    assert third["expect"] == {"passed": True, "reasons": []}, "its expectations held; its score did not"
    assert result.status == "failed" and result.error == "turn 3: exact 0.00 < pass_at 0.5"
    logged = load_log_lines(tmp_path / "log.jsonl")
    end = next(line for line in logged if line["event"] == "case_end")
    assert end["turns"][2]["scores"] == {"exact": 0.0}


async def test_a_worker_killed_under_turn_two_crashes_the_case_keeping_turn_one(tmp_path: Path) -> None:
    eater = ModelSpec(id="eater", backend="chat-fault", path="fault:0.01:25")
    turns = (Turn("hello", Expect()), Turn("eat", Expect()), Turn("after", Expect()))
    cases = [Case("eater/context", eater, "hello", None, 0, 3, 0.0, Expect(), turns=turns)]
    scheduler, recorder = scheduler_for(cases, worker_argv=CHAT_FAULT_WORKER,
                                        worker_env={**os.environ, "PYTHONPATH": str(ROOT)})
    turn: list[int] = []

    def kill_in_turn_two(event: object) -> None:
        if isinstance(event, TurnStarted):
            turn.append(event.index)
        elif isinstance(event, TokenReceived) and turn == [0, 1] and scheduler.worker_pid is not None:
            os.kill(scheduler.worker_pid, signal.SIGKILL)
            turn.append(-1)  # once

    scheduler.subscribe(kill_in_turn_two)
    await asyncio.wait_for(scheduler.run(), timeout=300)
    result = recorder.of(CaseFinished)[0].result
    assert result.status == "crashed" and result.error.startswith("turn 2: the worker was killed by SIGKILL")
    assert [t["status"] for t in result.turns] == ["passed", "crashed", "not_run"]
    assert result.turns[0]["output"] == "h0 t0 t1 t2 " and result.turns[1]["output"].startswith("h1")
    assert result.metrics["returncode"] == -signal.SIGKILL and result.metrics["turns_run"] == 1


def test_the_worker_refuses_a_follow_up_for_a_backend_without_history() -> None:
    """The engine skips such turns; the worker still never answers one that reaches it without its history."""
    from tests.functional.worker_driver import WorkerDriver
    from vlmtui.wire import protocol as p

    driver = WorkerDriver([sys.executable, "-m", "tests.fixtures.fault_worker"],
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        driver.wait_for(p.Hello)
        driver.send(p.Load(model=ModelSpec(id="plain", backend="fault", path="fault:0.01:1").to_dict()))
        loaded = driver.wait_for(p.Loaded, p.LoadFailed)
        assert loaded.no_history == "the fault backend does not send a conversation's history"
        driver.send(p.Run(case_id="c", prompt="b?", max_tokens=2, history=[{"prompt": "a?", "output": "A."}]))
        refused = driver.wait_for(p.Result)
        assert (refused.outcome, refused.error) == ("failed", loaded.no_history) and not driver.tokens["c"]
        driver.send(p.Run(case_id="d", prompt="b?", max_tokens=2))
        assert driver.wait_for(p.Result).outcome == "completed", "a single prompt still runs"
    finally:
        driver.close()
