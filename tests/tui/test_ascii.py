"""Plain terminals: ASCII for a locale that cannot show the glyphs, no colour codes under NO_COLOR, mouse reports
for clicks and the wheel only, no focus reports."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot

from tests.tui.replay import running_session
from tests.tui.test_snapshots import replay_app, settle
from vlmtui.cli import build_parser
from vlmtui.ui.tui.app import VlmApp
from vlmtui.ui.tui.format import locale_draws_glyphs
from vlmtui.ui.tui.terminal import click_mouse_driver, to_ascii

COLOUR_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def colour_codes(ansi: str) -> list[str]:
    """The SGR parameters that set a colour (3x/4x/9x/10x, 38;…/48;…), not the defaults 39/49."""
    found = []
    for params in COLOUR_SGR.findall(ansi):
        parts = params.split(";")
        i = 0
        while i < len(parts):
            p = parts[i]
            if p in ("38", "48"):
                found.append(";".join(parts[i:i + 3]))
                i += 5 if parts[i + 1:i + 2] == ["2"] else 3
                continue
            if p and (30 <= int(p) <= 37 or 40 <= int(p) <= 47 or 90 <= int(p) <= 97 or 100 <= int(p) <= 107):
                found.append(p)
            i += 1
    return found


async def screen_ansi(app: VlmApp, size: tuple[int, int] = (80, 24)) -> str:
    """The whole screen as the terminal would get it (ANSI codes included)."""
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        update = app.screen._compositor.render_update(full=True)
        out = io.StringIO()
        Console(file=out, force_terminal=True, color_system="truecolor", width=size[0]).print(update, end="")
        return out.getvalue()


@pytest.mark.parametrize(("environ", "unicode"), [
    ({"LANG": "en_GB.UTF-8"}, True),
    ({"LANG": "C"}, False),
    ({"LANG": "C", "LC_CTYPE": "C.UTF-8"}, False),  # what Python's PEP 538 coercion leaves behind
    ({"LANG": "C", "LC_ALL": "en_US.utf8"}, True),
    ({"LC_ALL": "POSIX", "LANG": "en_US.UTF-8"}, False),
    ({"LANG": "de_DE.ISO-8859-1"}, False),
    ({}, False),
])
def test_the_locale_decides_whether_glyphs_are_drawn(environ: dict[str, str], unicode: bool) -> None:
    assert locale_draws_glyphs(environ) is unicode


def test_ascii_keeps_every_cell() -> None:
    assert to_ascii("✓ pass ▶ run █▉▌▏│ 中") == "+ pass > run ##=-| ??"


async def test_ascii_draws_the_whole_dashboard_in_ascii() -> None:
    events, now = running_session()
    unicode = await screen_ansi(VlmApp(replay=events, clock=lambda: now, fps=15))
    plain = await screen_ansi(VlmApp(replay=events, clock=lambda: now, fps=15, ascii_only=True))
    assert not unicode.isascii()  # the test can fail: the same screen draws glyphs without --ascii
    assert plain.isascii()
    text = COLOUR_SGR.sub("", plain)
    assert "RAM  #####" in text and "60 s" in text and "+ pass" in text


def test_ascii_snapshot(snap_compare: Callable[..., bool]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)

    events, now = running_session()
    app = VlmApp(replay=events, clock=lambda: now, fps=15, ascii_only=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


async def test_no_color_sends_no_colour_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    coloured = await screen_ansi(replay_app(running_session()))
    assert colour_codes(coloured)  # the test can fail: colours are there without NO_COLOR
    monkeypatch.setenv("NO_COLOR", "1")
    plain = await screen_ansi(replay_app(running_session()))
    assert colour_codes(plain) == []
    assert "RAM" in COLOUR_SGR.sub("", plain)


async def test_mouse_reports_clicks_and_the_wheel_only() -> None:
    driver_class = click_mouse_driver()
    assert driver_class is not None
    written: list[str] = []
    driver = driver_class(VlmApp(), mouse=True)
    driver.write = written.append  # type: ignore[method-assign]
    driver.flush = lambda: None  # type: ignore[method-assign]
    driver._enable_mouse_support()
    assert "\x1b[?1000h" in written and "\x1b[?1006h" in written
    assert not any("1003" in w or "1002" in w for w in written)  # no any-motion, no drag-motion reports
    silent: list[str] = []
    off = driver_class(VlmApp(), mouse=False)
    off.write = silent.append  # type: ignore[method-assign]
    off._enable_mouse_support()
    assert silent == []


QUICK_APP = """
from textual.app import App
from textual.widgets import Label
from vlmtui.ui.tui.terminal import click_mouse_driver

class Quick(App[None]):
    def compose(self):
        yield Label("ready")

    def on_mount(self) -> None:
        self.call_after_refresh(self.exit)

Quick(driver_class=click_mouse_driver()).run()
"""
"""An app that draws one frame through the dashboard's driver and exits."""


def terminal_bytes(script: str, timeout: float = 120.0) -> bytes:
    """Everything ``script`` (run by this Python) writes to a real 80×24 pseudo-terminal until it exits."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    seen = b""
    try:
        child = subprocess.Popen([sys.executable, "-c", script], stdin=secondary, stdout=secondary,
                                 stderr=secondary, env={**os.environ, "TERM": "xterm-256color"})
        os.close(secondary)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the child is gone and the terminal closed
                break
            if not chunk:
                break
            seen += chunk
        assert child.wait(timeout=30) == 0, seen.decode("utf-8", "replace")[-2000:]
    finally:
        os.close(primary)
    return seen


def test_the_driver_asks_for_no_focus_reports() -> None:
    # Focus reports (mode 1004) cost a report and a whole-screen redraw on every switch of window or tmux pane.
    written = terminal_bytes(QUICK_APP)
    assert b"\x1b[?1000h" in written and b"ready" in written, "the app started and drew through the driver"
    assert b"\x1b[?1004h" not in written


def test_the_flags_parse() -> None:
    args = build_parser().parse_args(["demo", "--ascii", "--no-mouse"])
    assert args.ascii is True and args.no_mouse is True
    args = build_parser().parse_args(["run", "suite.toml"])
    assert args.ascii is None and args.no_mouse is False  # None: decided by the locale
