"""A conversation through the real scheduler, worker and a tiny model, in the dashboard: the stream the user
watched reads as the finished transcript, the queue showed the turn under way, the details show every turn."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from textual.message_pump import MessagePump

from tests.conftest import SAMPLE_IMAGES
from tests.tui.helpers import driven, idle, until
from tests.tui.test_bridge import Collector
from vlmtui.engine.events import Event, TurnStarted
from vlmtui.engine.plan import plan_cases
from vlmtui.engine.scheduler import Scheduler
from vlmtui.engine.session_log import SessionLog
from vlmtui.reports.records import load_log
from vlmtui.reports.report import render_report
from vlmtui.reports.turns import read_turns
from vlmtui.suite.loader import load_suite
from vlmtui.ui.tui.app import VlmApp
from vlmtui.ui.tui.bridge import EngineBridge
from vlmtui.ui.tui.conversation import transcript
from vlmtui.ui.tui.messages import TokensStreamed

SUITE = f"""
name = "context"
max_tokens = 6

[[models]]
id = "smol"
backend = "transformers"
path = "tiny:idefics3"

[[conversations]]
id = "context"
images = ["{SAMPLE_IMAGES}/bicycle.jpg"]
turns = [
  "Describe this image in detail.",
  "What were the most prominent colours?",
  {{ text = "Summarise the main subject in one sentence.", expect = {{ min_tokens = 1 }} }},
]
"""


async def test_a_conversation_streams_turn_by_turn_and_reads_the_same_after(tmp_path: Path) -> None:
    suite_path = tmp_path / "context.toml"
    suite_path.write_text(SUITE, encoding="utf-8")
    suite = load_suite(suite_path)
    scheduler = Scheduler(plan_cases(suite), suite_name=suite.name, suite_path=str(suite_path), guard=suite.guard)
    log = SessionLog(tmp_path / "session.jsonl")
    scheduler.subscribe(log)
    # A second bridge on the same events keeps every text the dashboard was sent, to read the stream back.
    collector = Collector()
    watcher = EngineBridge(cast(MessagePump, collector), 15)
    progress: list[str] = []
    app = VlmApp(scheduler, log_path=log.path, fps=20)

    def on_event(event: Event) -> None:
        watcher(event)
        if isinstance(event, TurnStarted) and app.dashboard.view.cases:
            progress.append(app.dashboard.view.cases[event.case_id].shown_prompt)

    scheduler.subscribe(on_event)
    async with driven(app) as pilot:
        await until(pilot, lambda: idle(app), "the conversation to finish", timeout=300)
        row = app.dashboard.view.cases["smol/context/bicycle"]
        result = row.latest
        assert result is not None and [t["status"] for t in result.turns] == ["passed"] * 3, result.error
        finished = app.dashboard.output
        assert finished is not None and not finished.streaming
        turns = read_turns(result.turns)
        assert finished.text == transcript(turns, 3)
    watcher.flush()
    streamed = [m.text for m in collector.messages if isinstance(m, TokensStreamed)][-1]
    # The user watched the same conversation the pane shows once it ended: prompts, answers, outcomes in order.
    assert streamed == finished.text
    assert streamed.index("› 2/3 What were the most prominent colours?") > streamed.index("✓ turn 1/3 pass")
    # The queue's prompt cell moved through the turns (each seen as its TurnStarted came in; the view lags by
    # the one event the dashboard had not yet drawn, so the last is the turn before).
    assert any(p.startswith("turn 2/3 · ") for p in progress), progress
    # The log the run wrote lists the same turns in the report, with the prompt tokens growing with the history.
    logged = load_log(log.path).latest()["smol/context/bicycle"].turns
    assert [t.output for t in logged] == [t.output for t in turns]
    prompt_tokens = [t.metrics.prompt_tokens or 0 for t in logged]
    assert prompt_tokens == sorted(prompt_tokens) and prompt_tokens[0] < prompt_tokens[2], prompt_tokens
    md = render_report(load_log(log.path), "md")
    assert md.count("| smol/context/bicycle | ") == 1 + 3  # the case, and its three turns under Conversations
