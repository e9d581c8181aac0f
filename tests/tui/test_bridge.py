"""The bridge from scheduler events to Textual messages: throttling, collapsing, ordering, the fps setting."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest
from textual.message import Message
from textual.message_pump import MessagePump

from tests.tui.replay import finished_session
from vlmtui.engine.events import CaseFinished, CaseResult, CaseStarted, MemoryUpdate, TokenReceived
from vlmtui.ui.tui.bridge import DEFAULT_FPS, SSH_FPS, EngineBridge, ui_fps
from vlmtui.ui.tui.messages import EngineEvent, MemorySampled, TokensStreamed
from vlmtui.ui.tui.state import SessionView


class Collector:
    """Stands in for the screen: keeps what is posted."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def post_message(self, message: Message) -> bool:
        self.messages.append(message)
        return True


def bridge_to(collector: Collector, fps: float) -> EngineBridge:
    return EngineBridge(cast(MessagePump, collector), fps)


@pytest.mark.parametrize(("env", "fps"), [
    ({}, DEFAULT_FPS),
    ({"SSH_CONNECTION": "10.0.0.2 50000 10.0.0.1 22"}, SSH_FPS),
    ({"SSH_CONNECTION": "x", "VLMTUI_FPS": "4"}, 4.0),
    ({"VLMTUI_FPS": "500"}, 60.0),
    ({"VLMTUI_FPS": "0"}, 1.0),
    ({"VLMTUI_FPS": "fast"}, DEFAULT_FPS),
])
def test_fps_setting(env: dict[str, str], fps: float) -> None:
    assert ui_fps(env) == fps
    assert SSH_FPS < DEFAULT_FPS


def test_newer_messages_replace_older_ones_of_the_same_kind() -> None:
    sample = finished_session()[0][-2]
    assert isinstance(sample, MemoryUpdate)
    assert TokensStreamed("a", "x").can_replace(TokensStreamed("a", "xy"))
    assert not TokensStreamed("a", "x").can_replace(TokensStreamed("b", "x"))
    assert MemorySampled(sample, ()).can_replace(MemorySampled(sample, (1.0,)))
    assert not MemorySampled(sample, ()).can_replace(TokensStreamed("a", "x"))


async def test_a_token_burst_becomes_a_few_cumulative_updates() -> None:
    collector = Collector()
    bridge = bridge_to(collector, fps=10)
    pump = asyncio.create_task(bridge.pump())
    started = time.monotonic()
    bridge(CaseStarted("c1", 1, "m"))
    words = [f"w{i} " for i in range(500)]
    for word in words:
        bridge(TokenReceived("c1", word))
        await asyncio.sleep(0.001)
    elapsed = time.monotonic() - started
    await asyncio.sleep(0.15)
    result = CaseResult("c1", 1, "m", "transformers", None, "p", "text", "passed", output="".join(words))
    bridge(CaseFinished(result))
    bridge.close()
    await pump
    texts = [m for m in collector.messages if isinstance(m, TokensStreamed)]
    assert len(texts) <= 10 * elapsed + 2, f"{len(texts)} updates in {elapsed:.2f} s at 10 fps"
    assert texts[-1].text == "".join(words), "nothing is lost: the text is cumulative"
    assert isinstance(collector.messages[-1], EngineEvent)


def test_the_last_text_of_a_case_goes_out_before_its_end() -> None:
    collector = Collector()
    bridge = bridge_to(collector, fps=1)
    bridge(CaseStarted("c1", 1, "m"))
    bridge(TokenReceived("c1", "Paris"))
    result = CaseResult("c1", 1, "m", "transformers", None, "p", "text", "passed", output="Paris")
    bridge(CaseFinished(result))
    kinds: list[Any] = [type(m) for m in collector.messages]
    assert kinds == [EngineEvent, TokensStreamed, EngineEvent]
    text = collector.messages[1]
    assert isinstance(text, TokensStreamed) and text.text == "Paris"


def test_session_view_folds_a_recorded_session() -> None:
    view = SessionView()
    for event in finished_session()[0]:
        view.apply(event)
    counts = {k: v for k, v in view.counts().items() if v}
    assert counts == {"passed": 5, "failed": 4, "crashed": 1, "aborted": 1, "skipped": 1}
    rerun = view.cases["smolvlm-500m/lake.jpg/p0"]
    assert [r.attempt for r in rerun.attempts] == [1, 2] and rerun.status == "passed"
    assert view.idle and view.guard_level == "ok"
    assert [s.model for s in view.summaries()] == ["smolvlm-500m", "moondream2", "llava-1.6-7b"]
    assert view.visible("crash") == ["moondream2/lake.jpg/p0"]
    assert view.visible("llava fail") == [cid for cid in view.order if cid.startswith("llava")]
    assert len(view.visible("failures")) == 6
