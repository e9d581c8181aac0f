"""A conversation in the dashboard: streamed turn by turn (each prompt above its answer, then its outcome), its
progress in the queue, the whole conversation in the output pane and the details dialog once it ended.

Drawn from the recorded session in tests/conversation_replay.py (the events contract); snapshots at 80×24.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from textual.message_pump import MessagePump
from textual.pilot import Pilot

from tests.conversation_replay import (
    ABORTED,
    GUARD,
    PROMPTS,
    SKIPPED,
    case_id,
    finished_session,
    streaming_session,
)
from tests.tui.test_bridge import Collector
from tests.tui.test_snapshots import replay_app, settle
from vlmtui.engine.events import CaseStarted, Event, TokenReceived, TurnStarted
from vlmtui.ui.tui.app import VlmApp
from vlmtui.ui.tui.bridge import EngineBridge
from vlmtui.ui.tui.messages import EngineEvent, TokensStreamed
from vlmtui.ui.tui.screens.case_detail import describe_case
from vlmtui.ui.tui.screens.dashboard import DashboardScreen
from vlmtui.ui.tui.state import SessionView

BICYCLE = case_id("smolvlm-500m", "bicycle")
LAKE = case_id("smolvlm-500m", "lake")
STILL_LIFE = case_id("smolvlm-500m", "still-life")
MOONDREAM = case_id("moondream2", "bicycle")


def _view(events: list[Event]) -> SessionView:
    view = SessionView()
    for event in events:
        view.apply(event)
    return view


def _streamed(events: list[Event]) -> str:
    """The last text the bridge posted for the running case, as the dashboard would hold it."""
    collector = Collector()
    bridge = EngineBridge(cast(MessagePump, collector), 15)
    for event in events:
        bridge(event)
    bridge.flush()
    texts = [m.text for m in collector.messages if isinstance(m, TokensStreamed) and m.case_id == LAKE]
    return texts[-1]


def test_the_stream_puts_each_prompt_above_its_answer_and_the_outcome_under_it() -> None:
    text = _streamed(streaming_session()[0])
    assert text == (f"› 1/3 {PROMPTS[0]}\nA calm lake under pine trees.\n"
                    "✓ turn 1/3 pass · 0.59 s · 41.0 tok/s · 12 tok · prompt 1120 tok\n\n"
                    f"› 2/3 {PROMPTS[1]}\nGreen and grey. ")


def test_a_prompt_goes_out_before_the_event_that_starts_its_turn() -> None:
    """So the pane never shows an answer's first tokens under the previous turn's outcome."""
    collector = Collector()
    bridge = EngineBridge(cast(MessagePump, collector), 15)
    for event in streaming_session()[0]:
        bridge(event)
    started = [i for i, m in enumerate(collector.messages) if isinstance(m, EngineEvent)
               and isinstance(m.event, TurnStarted) and m.event.case_id == LAKE]
    before = collector.messages[started[1] - 1]
    assert isinstance(before, TokensStreamed) and before.text.endswith(f"› 2/3 {PROMPTS[1]}\n")


def test_the_first_prompt_stays_whether_the_case_starts_before_or_after_it() -> None:
    """The engine announces turn 1 before the case's ``CaseStarted``; the other order must read the same."""
    events = streaming_session()[0]
    swapped = list(events)
    first = next(i for i, e in enumerate(swapped) if isinstance(e, TurnStarted) and e.case_id == LAKE)
    assert isinstance(swapped[first + 1], CaseStarted)
    swapped[first], swapped[first + 1] = swapped[first + 1], swapped[first]
    assert _streamed(swapped) == _streamed(events)
    assert _view(swapped).cases[LAKE].shown_prompt == _view(events).cases[LAKE].shown_prompt


def test_a_rerun_starts_a_fresh_stream() -> None:
    events = streaming_session()[0]
    rerun = [CaseStarted(BICYCLE, 2, "smolvlm-500m"), TurnStarted(BICYCLE, 0, PROMPTS[0]),
             TokenReceived(BICYCLE, "Again.")]
    collector = Collector()
    bridge = EngineBridge(cast(MessagePump, collector), 15)
    for event in [*events, *rerun]:
        bridge(event)
    bridge.flush()
    texts = [m.text for m in collector.messages if isinstance(m, TokensStreamed) and m.case_id == BICYCLE]
    assert texts[-1] == f"› 1/3 {PROMPTS[0]}\nAgain."


def test_skipped_turns_stream_their_prompt_with_their_reason() -> None:
    events = [e for e in finished_session()[0] if type(e).__name__ != "CaseFinished"]
    collector = Collector()
    bridge = EngineBridge(cast(MessagePump, collector), 15)
    for event in events:
        bridge(event)
    moondream = [m.text for m in collector.messages if isinstance(m, TokensStreamed) and m.case_id == MOONDREAM][-1]
    assert f"› 2/3 {PROMPTS[1]}\n– turn 2/3 skip — {SKIPPED}\n\n› 3/3 {PROMPTS[2]}\n– turn 3/3 skip" in moondream


def test_the_queue_shows_the_turn_a_conversation_is_in_then_how_its_turns_went() -> None:
    view = _view(streaming_session()[0])
    assert view.cases[LAKE].progress == "turn 2/3"
    assert view.cases[LAKE].shown_prompt == f"turn 2/3 · {PROMPTS[1]}"
    assert view.cases[BICYCLE].shown_prompt == f"3/3 turns passed · {PROMPTS[0]}"
    done = _view(finished_session()[0])
    assert [done.cases[c].progress for c in (LAKE, STILL_LIFE, MOONDREAM)] == [
        "2/3 turns passed", "1/3 turns passed", "1/3 turns passed"]
    assert done.cases[LAKE].live_turns == [] and done.cases[LAKE].turn_index is None


def test_the_details_show_the_whole_conversation() -> None:
    from rich.console import Console

    view = _view(finished_session()[0])
    console = Console(width=100, record=True, color_system=None)
    console.print(describe_case(view.cases[STILL_LIFE]))
    text = console.export_text()
    assert "turns  3, each sent with the whole conversation before it; the image with turn 1" in text
    order = [text.index(s) for s in (f"› turn 1/3  {PROMPTS[0]}", "A red bicycle", "✓ passed", "ttft 0.21 s",
                                     "prompt 1120 tok", f"› turn 2/3  {PROMPTS[1]}", "Red, white and",
                                     "■ aborted", "36.0 tok/s", GUARD, f"› turn 3/3  {PROMPTS[2]}", "· not run",
                                     ABORTED.removeprefix("not run: "))]
    assert order == sorted(order)
    console = Console(width=100, record=True, color_system=None)
    console.print(describe_case(view.cases[LAKE]))
    assert "expected the output to match (?i)red|blue" in console.export_text()


async def test_streaming_a_conversation_in_the_dashboard() -> None:
    events, now = streaming_session()
    app = VlmApp(replay=events, clock=lambda: now, fps=15)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = cast(DashboardScreen, app.screen)
        content = screen.output
        assert content is not None and content.case_id == LAKE and content.streaming
        assert content.text.index(f"› 2/3 {PROMPTS[1]}") > content.text.index("✓ turn 1/3 pass")
        await pilot.press("k")  # the finished conversation above it
        await settle(pilot)
        finished = screen.output
        assert finished is not None and finished.case_id == BICYCLE and not finished.streaming
        assert finished.text.count("› ") == 3 and finished.text.count("✓ turn") == 3


def test_snapshot_streaming_conversation(snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(replay_app(streaming_session()), terminal_size=(80, 24), run_before=settle)


def test_snapshot_conversation_details(snap_compare: Callable[..., bool]) -> None:
    async def open_details(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        cast(DashboardScreen, pilot.app.screen).table.select_case(LAKE)  # the conversation that failed turn 2
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press(*"j" * 10)  # down to turn 2's failure and turn 3
        await settle(pilot)

    assert snap_compare(replay_app(finished_session()), terminal_size=(80, 24), run_before=open_details)
