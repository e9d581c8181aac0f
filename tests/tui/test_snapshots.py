"""Snapshots of the dashboard at 80×24 and 120×40, running and finished, drawn from recorded events.

Deterministic: the clock is fixed, the events and memory samples are recorded values (``replay.py``),
and no engine runs (the Pilot tests drive the real one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.replay import finished_session, running_session
from vlmtui.engine.events import Event
from vlmtui.ui.tui.app import VlmApp

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


def replay_app(recorded: tuple[list[Event], float]) -> VlmApp:
    events, now = recorded
    return VlmApp(replay=events, clock=lambda: now, fps=15)


async def settle(pilot: Pilot[Any]) -> None:
    """Let the replayed messages through and the layout settle."""
    await pilot.pause()
    await pilot.pause(0.2)
    await pilot.wait_for_scheduled_animations()


class TestRunningSession:
    """Mid-run: a case streaming, memory past the warn mark, memory pressure at warning."""

    @pytest.mark.parametrize("size", SIZES)
    def test_dashboard(self, snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
        assert snap_compare(replay_app(running_session()), terminal_size=size, run_before=settle)

    def test_details_of_the_failed_case(self, snap_compare: Callable[..., bool]) -> None:
        async def open_details(pilot: Pilot[Any]) -> None:
            await settle(pilot)
            await pilot.press("k", "k", "k", "k", "enter")
            await settle(pilot)

        assert snap_compare(replay_app(running_session()), terminal_size=(80, 24), run_before=open_details)


class TestFinishedSession:
    """After the run: every status, a load failure, a rerun that passed on its second attempt."""

    @pytest.mark.parametrize("size", SIZES)
    def test_dashboard(self, snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
        assert snap_compare(replay_app(finished_session()), terminal_size=size, run_before=settle)

    def test_help(self, snap_compare: Callable[..., bool]) -> None:
        async def open_help(pilot: Pilot[Any]) -> None:
            await settle(pilot)
            await pilot.press("question_mark")
            await settle(pilot)

        assert snap_compare(replay_app(finished_session()), terminal_size=(80, 24), run_before=open_help)
