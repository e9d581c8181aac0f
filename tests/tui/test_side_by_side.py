"""Answers side by side (issue 17): every model's answer to one image × prompt, keyed by what the case asked,
stepped through with ←/→; snapshots and Pilot over recorded events."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.replay import OUTPUTS, finished_session, running_session
from tests.tui.test_scores import replayed_log, scored_log
from tests.tui.test_snapshots import replay_app, settle
from vlmtui.engine.events import SessionStarted
from vlmtui.ui.tui.answers import answer_groups
from vlmtui.ui.tui.app import VlmApp
from vlmtui.ui.tui.screens.dashboard import DashboardScreen
from vlmtui.ui.tui.screens.side_by_side import AnswersGrid, SideBySideScreen
from vlmtui.ui.tui.state import SessionView


def grid_text(screen: SideBySideScreen) -> str:
    grid = screen.query_one(AnswersGrid)
    lines = screen.app.console.render_lines(grid.render(), screen.app.console.options.update_width(grid.size.width))
    return "\n".join("".join(segment.text for segment in line) for line in lines)


class TestSnapshots:
    @pytest.mark.parametrize("size", [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")])
    def test_the_lake_answers(self, snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
        async def open_view(pilot: Pilot[Any]) -> None:
            await settle(pilot)
            await pilot.press("v")  # on the first failure: moondream2's crash on lake.jpg
            await settle(pilot)

        assert snap_compare(replay_app(finished_session()), terminal_size=size, run_before=open_view)


class TestGroups:
    def test_groups_are_keyed_by_image_and_prompt_across_models(self) -> None:
        view = SessionView()
        events, _ = finished_session()
        for event in events:
            view.apply(event)
        groups = answer_groups(view)
        assert [g.key for g in groups] == ["bicycle.jpg/p0", "lake.jpg/p0", "still-life.png/p0", "text/t0"]
        for group in groups:
            assert [row.model for row in group.rows] == ["smolvlm-500m", "moondream2", "llava-1.6-7b"]
            assert len({row.prompt for row in group.rows}) == 1

    def test_warmups_and_judges_are_left_out(self) -> None:
        view = SessionView()
        cases: list[dict[str, object]] = [
            {"case_id": "a/x.png/p0#w0", "model": "a", "image": "x.png", "prompt": "p", "warmup": True},
            {"case_id": "a/x.png/p0", "model": "a", "image": "x.png", "prompt": "p"},
            {"case_id": "b/x.png/p0", "model": "b", "image": "x.png", "prompt": "p"},
            {"case_id": "j/judge/a/vqa/1", "model": "j", "image": None, "prompt": "rubric", "kind": "judge"},
        ]
        view.apply(SessionStarted(session_id="s", suite="t", suite_path="t.toml", info={}, cases=cases, t=0.0))
        (group,) = answer_groups(view)
        assert group.key == "x.png/p0" and [row.case_id for row in group.rows] == ["a/x.png/p0", "b/x.png/p0"]


class TestKeys:
    async def test_v_opens_on_the_selected_case_and_steps_between_groups(self) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await pilot.press("g", "v")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, SideBySideScreen)
            assert screen.groups[screen.index].key == "bicycle.jpg/p0"
            text = grid_text(screen)
            for model in ("smolvlm-500m", "moondream2", "llava-1.6-7b"):
                assert model in text
            assert "41.5 tok/s" in text and "18.2 tok/s" in text and "peak 3.9 GiB" in text
            assert text.count("A red bicycle leans") == 2, "both answers, next to each other"
            assert "not in the local cache" in text, "the model that failed says why"
            await pilot.press("right")
            assert screen.groups[screen.index].key == "lake.jpg/p0"
            assert "Insufficient Memory" in grid_text(screen)
            await pilot.press("left", "left")
            assert screen.groups[screen.index].key == "text/t0", "← wraps around"
            assert OUTPUTS["text"] in grid_text(screen)
            await pilot.press("escape")
            assert isinstance(app.screen, DashboardScreen)

    async def test_a_streaming_answer_shows_and_queued_ones_wait(self) -> None:
        app = replay_app(running_session())
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            app.dashboard._stream = ("moondream2/lake.jpg/p0", "A calm mountain lake reflects")
            await pilot.press("v")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, SideBySideScreen)
            text = grid_text(screen)
            assert "A calm mountain lake reflects" in text and "▶ run" in text
            assert "· queued" in text and "(no answer)" in text

    async def test_a_dataset_item_shows_each_models_score(self, tmp_path: Path) -> None:
        events, now = replayed_log(scored_log(tmp_path))
        app = VlmApp(replay=events, clock=lambda: now, fps=15)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            app.dashboard.table.select_case("smol/vqa-sample/2000")
            await pilot.pause()
            await pilot.press("v")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, SideBySideScreen)
            group = screen.groups[screen.index]
            assert group.key == "vqa-sample/2000" and [row.model for row in group.rows] == ["smol", "qwen"]
            assert all(not key.startswith("judge/") for key in (g.key for g in screen.groups))
            assert "score 0.60" in grid_text(screen)
