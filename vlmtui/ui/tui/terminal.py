"""What the dashboard asks of the terminal: mouse reports for clicks and the wheel only, no focus reports,
ASCII for a locale that cannot show the glyphs, and no colour codes at all under NO_COLOR."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from rich.cells import cell_len
from rich.segment import Segment
from textual.app import App
from textual.color import Color
from textual.filter import LineFilter, Monochrome, NoColor

from vlmtui.ui.tui.format import ASCII_GLYPHS

_ASCII_TABLE = str.maketrans(ASCII_GLYPHS)
FOCUS_REPORTS_ON = "\x1b[?1004h"
"""What Textual's driver writes at start to have the terminal report focus in and out (mode 1004)."""


@lru_cache(maxsize=4096)
def to_ascii(text: str) -> str:
    """``text`` with every glyph in ASCII, cell for cell (a wide character becomes ``??``)."""
    if text.isascii():
        return text
    mapped = text.translate(_ASCII_TABLE)
    if mapped.isascii():
        return mapped
    return "".join(c if c.isascii() else "?" * max(cell_len(c), 1) for c in mapped)


class AsciiFilter(LineFilter):
    """Every line the screen draws, in ASCII: gauges, sparklines, status marks, borders, model text."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [Segment(to_ascii(text), style, control) if not control else Segment(text, style, control)
                for text, style, control in segments]


def click_mouse_driver() -> type | None:
    """A Linux/macOS driver that asks for clicks and the wheel (1000) in SGR form, never any-motion reports
    (1003): with those, every move of the mouse over the window crosses the SSH link twice (the report, then
    Textual's hover redraw). Nor does it ask for focus reports (1004): with them, every switch of terminal
    window or tmux pane sends a report up the link and Textual answers with a redraw of the whole screen (it
    restyles every widget and takes the focus off the queue on blur, then gives it back), and nothing in the
    dashboard looks at whether the terminal has focus. Without them Textual keeps ``app_focus`` True, as in a
    terminal that cannot report focus. None on Windows (Textual's own driver)."""
    if os.name == "nt":
        return None
    from textual.drivers.linux_driver import LinuxDriver

    class ClickMouseDriver(LinuxDriver):
        def write(self, data: str) -> None:
            # Textual writes the request on its own in start_application_mode; every other write passes.
            if data != FOCUS_REPORTS_ON:
                super().write(data)

        def _enable_mouse_support(self) -> None:
            if not self._mouse:
                return
            self.write("\x1b[?1000h")  # clicks and the wheel
            self.write("\x1b[?1006h")  # SGR coordinates (any column)
            self.flush()

        def _disable_mouse_support(self) -> None:
            if not self._mouse:
                return
            self.write("\x1b[?1000l")
            self.write("\x1b[?1006l")
            self.flush()

    return ClickMouseDriver


def set_filters(app: App[Any], *, ascii_only: bool) -> None:
    """NO_COLOR: no colour at all (Textual's default under NO_COLOR is a grey scale, still colour codes);
    ``ascii_only``: every glyph in ASCII."""
    filters = app._filters
    if app.no_color:
        filters[:] = [NoColor() if isinstance(f, Monochrome) else f for f in filters]
        if not any(isinstance(f, NoColor) for f in filters):
            filters.append(NoColor())
    if ascii_only:
        filters.append(AsciiFilter())
