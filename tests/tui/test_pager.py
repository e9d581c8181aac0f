"""One answer full screen (o), handed to $PAGER (o there, or O from the dashboard), and copied to the local
clipboard (y, OSC 52)."""

from __future__ import annotations

import base64
import shlex
import sys
from pathlib import Path

import pytest
from textual.drivers.headless_driver import HeadlessDriver
from textual.widgets import Static

from tests.tui.replay import OUTPUTS, finished_session
from tests.tui.test_snapshots import replay_app, settle
from vlmtui.ui.tui.app import VlmApp
from vlmtui.ui.tui.screens.dashboard import DashboardScreen
from vlmtui.ui.tui.screens.help import HelpScreen
from vlmtui.ui.tui.screens.pager import PagerScreen, pager_argv

FIRST = "smolvlm-500m/bicycle.jpg/p0"


def osc52(text: str) -> str:
    return "\x1b]52;c;" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "\a"


def record_writes(app: VlmApp) -> list[str]:
    """What the app writes to its terminal from now on (the headless driver's own write still runs)."""
    driver = app._driver
    assert driver is not None
    written: list[str] = []
    real_write = driver.write

    def write(data: str) -> None:
        written.append(data)
        real_write(data)

    driver.write = write  # type: ignore[method-assign]
    return written


@pytest.fixture
def received(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where a real $PAGER command writes what it was handed (the file is absent until it runs)."""
    paged = tmp_path / "paged.txt"
    script = f"import sys, pathlib; pathlib.Path({str(paged)!r}).write_text(sys.stdin.read())"
    monkeypatch.setenv("PAGER", shlex.join([sys.executable, "-c", script]))
    # A headless test has no terminal to hand over; a real one (Linux, macOS) can be suspended.
    monkeypatch.setattr(HeadlessDriver, "can_suspend", property(lambda self: True), raising=False)
    return paged


class TestPager:
    async def test_o_shows_the_whole_answer_and_escape_goes_back(self) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(60, 20)) as pilot:
            await settle(pilot)
            await pilot.press("g", "o")
            await settle(pilot)
            assert isinstance(app.screen, PagerScreen)
            shown = app.screen.query_one("#pager-text", Static).render()
            assert OUTPUTS["bicycle.jpg"] in str(shown)
            assert FIRST in app.screen.title_text
            await pilot.press("G", "j", "k", "space", "g")  # scrolling keys do not leave the pager
            assert isinstance(app.screen, PagerScreen)
            await pilot.press("escape")
            assert isinstance(app.screen, DashboardScreen)

    async def test_a_crash_shows_its_error_before_its_partial_answer(self) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("o")  # the cursor is on the first failure, a crash
            await settle(pilot)
            assert isinstance(app.screen, PagerScreen)
            text = str(app.screen.query_one("#pager-text", Static).render())
            assert text.index("Insufficient Memory") < text.index("A calm mountain")

    async def test_o_in_the_pager_hands_the_answer_to_PAGER(self, received: Path) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("g", "o", "o")
            await settle(pilot)
            assert received.read_text() == OUTPUTS["bicycle.jpg"]
            assert isinstance(app.screen, PagerScreen), "back in the pager afterwards"

    @pytest.mark.parametrize(("keys", "said", "screen"), [
        (("o", "o"), "$PAGER is not set: this screen is the pager (q goes back)", PagerScreen),
        (("O",), "$PAGER is not set: o reads it full screen", DashboardScreen),
    ], ids=["o-in-the-pager", "O-on-the-dashboard"])
    async def test_without_PAGER_one_line_says_where_to_read_it(self, monkeypatch: pytest.MonkeyPatch,
                                                                 keys: tuple[str, ...], said: str,
                                                                 screen: type) -> None:
        monkeypatch.delenv("PAGER", raising=False)
        app = replay_app(finished_session())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press(*keys)
            await settle(pilot)
            assert isinstance(app.screen, screen)
            assert any(str(n.message) == said for n in app._notifications)

    async def test_O_on_the_dashboard_hands_the_answer_straight_to_PAGER(self, received: Path) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("g", "j", "O")
            await settle(pilot)
            assert received.read_text() == OUTPUTS["lake.jpg"]
            assert isinstance(app.screen, DashboardScreen), "one key there and back: no pager screen between"
            received.unlink()
            await pilot.press("G", "O")  # llava failed to load: no answer to page
            await settle(pilot)
            assert not received.exists()
            assert any("nothing to page" in str(n.message) for n in app._notifications)

    async def test_help_lists_O(self) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("question_mark")
            await settle(pilot)
            assert isinstance(app.screen, HelpScreen)
            assert ("O", "Hand the selected case's output straight to $PAGER.") \
                in app.screen.keys

    def test_pager_argv(self) -> None:
        assert pager_argv({"PAGER": "less -R"}) == ["less", "-R"]
        assert pager_argv({"PAGER": ""}) is None and pager_argv({}) is None
        assert pager_argv({"PAGER": "less '"}) is None, "an unbalanced quote is no command"


class TestCopy:
    async def test_y_copies_the_selected_answer_over_osc52(self) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            written = record_writes(app)
            await pilot.press("g", "y")
            assert app.clipboard == OUTPUTS["bicycle.jpg"]
            assert osc52(OUTPUTS["bicycle.jpg"]) in "".join(written)

    async def test_y_in_the_pager_copies_its_answer(self) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("g", "j", "o")
            await settle(pilot)
            written = record_writes(app)
            await pilot.press("y")
            assert osc52(OUTPUTS["lake.jpg"]) in "".join(written)

    async def test_y_on_a_case_without_output_copies_nothing(self) -> None:
        app = replay_app(finished_session())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            written = record_writes(app)
            await pilot.press("G", "y")  # llava failed to load: no answer
            assert "\x1b]52" not in "".join(written)
            assert any("nothing to copy" in str(n.message) for n in app._notifications)
