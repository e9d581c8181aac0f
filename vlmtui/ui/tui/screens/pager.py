"""One case's answer full screen, scrollable; ``o`` hands it to ``$PAGER`` (``O`` on the dashboard does at
once), ``y`` copies it (OSC 52)."""

from __future__ import annotations

import os
import shlex
import subprocess
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Label, Static

from vlmtui.text import clean, printable
from vlmtui.ui.tui.widgets.key_bar import KeyBar

PAGER_KEYS: list[BindingType] = [
    Binding("j,down", "scroll('down')", "down", show=False, tooltip="Scroll down a line."),
    Binding("k,up", "scroll('up')", "up", show=False, tooltip="Scroll up a line."),
    Binding("space,pagedown", "scroll('page_down')", "page", key_display="␣", tooltip="Scroll down a page."),
    Binding("b,pageup", "scroll('page_up')", "back", show=False, tooltip="Scroll up a page."),
    Binding("g,home", "scroll('home')", "top", show=False, tooltip="Go to the top."),
    Binding("G,end", "scroll('end')", "end", show=False, tooltip="Go to the end."),
    Binding("o", "external_pager", "$PAGER", tooltip="Open the text in $PAGER (the terminal is handed over)."),
    Binding("y", "copy", "copy", tooltip="Copy the text to your clipboard (OSC 52, works over SSH)."),
    Binding("escape,q", "close", "back", key_display="q", tooltip="Back to the dashboard."),
]
"""
| Key(s) | Description |
| :- | :- |
| j/k, ↑/↓ | Scroll a line. |
| space/b, pagedown/pageup | Scroll a page. |
| g/G, home/end | Go to the top or the end. |
| o | Open the text in $PAGER. |
| y | Copy the text to the clipboard (OSC 52). |
| escape, q | Back to the dashboard. |
"""


def pager_argv(environ: dict[str, str] | os._Environ[str] = os.environ) -> list[str] | None:
    """``$PAGER`` as an argv list (``less -R`` → ``["less", "-R"]``), or None when it is unset or empty."""
    try:
        argv = shlex.split(environ.get("PAGER", ""))
    except ValueError:
        return None
    return argv or None


def copy_text(app: App[object], text: str, what: str) -> None:
    """Put ``text`` on the local clipboard through the terminal (OSC 52: over SSH it reaches the laptop)."""
    if not text:
        app.notify(f"nothing to copy: {what} has no output yet", severity="warning", timeout=3)
        return
    app.copy_to_clipboard(clean(text))
    app.notify(f"copied {len(text)} characters of {what} (OSC 52: your terminal must allow it)", timeout=3)


def open_in_pager(app: App[object], text: str, what: str, *, unset: str = "this screen is the pager (q goes back)"
                  ) -> None:
    """Hand the terminal to ``$PAGER`` with ``text`` on its input, then take it back; one line if it cannot
    (``unset`` says where else to read it when ``$PAGER`` is not set)."""
    argv = pager_argv()
    if argv is None:
        app.notify(f"$PAGER is not set: {unset}", severity="warning", timeout=4)
        return
    if not text:
        app.notify(f"nothing to page: {what} has no output yet", severity="warning", timeout=3)
        return
    try:
        with app.suspend():
            subprocess.run(argv, input=clean(text).encode("utf-8"), check=False)
    except SuspendNotSupported:
        app.notify("this terminal cannot be handed to $PAGER", severity="warning", timeout=4)
    except OSError as exc:
        app.notify(f"cannot run $PAGER ({argv[0]}): {exc.strerror or exc}", severity="error", timeout=6)
    else:
        app.refresh(layout=True)


class PageScreen(Screen[None]):
    """A full-screen page: a title line (class ``page-title``) over a scrolled body (``page-body``) and a key
    bar; the pager and the side-by-side view are two."""

    DEFAULT_CSS = """
    PageScreen .page-title {
        height: 1;
        width: 1fr;
        background: $panel;
        text-style: bold;
        padding: 0 1;
    }
    PageScreen .page-body {
        height: 1fr;
        padding: 0 1;
        scrollbar-size-vertical: 1;
    }
    """


class PagerScreen(PageScreen):
    """The whole answer of one case (its error first, if any), scrolled with the keys of ``less``."""

    BINDINGS: ClassVar[list[BindingType]] = PAGER_KEYS

    def __init__(self, title: str, text: str, error: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.text = text
        self.error = error

    def compose(self) -> ComposeResult:
        body = Text()
        if self.error:
            body.append(printable(self.error) + "\n\n", style="red")
        body.append(printable(self.text) if self.text else "(no output)")
        yield Label(Text(self.title_text, no_wrap=True, overflow="ellipsis"), id="pager-title", classes="page-title")
        with VerticalScroll(id="pager-body", classes="page-body", can_focus=True):
            yield Static(body, id="pager-text")
        yield KeyBar(PAGER_KEYS, ("escape,q", "o", "y", "space,pagedown"), id="pager-keys")

    def on_mount(self) -> None:
        self.query_one("#pager-body").focus()

    def action_scroll(self, where: str) -> None:
        """Scroll the text a line, a page, or to either end."""
        body = self.query_one("#pager-body", VerticalScroll)
        {"down": body.scroll_down, "up": body.scroll_up, "page_down": body.scroll_page_down,
         "page_up": body.scroll_page_up, "home": body.scroll_home, "end": body.scroll_end}[where](animate=False)

    def action_external_pager(self) -> None:
        """Open the text in $PAGER."""
        open_in_pager(self.app, self.text, self.title_text)

    def action_copy(self) -> None:
        """Copy the text to the clipboard."""
        copy_text(self.app, self.text, self.title_text)

    def action_close(self) -> None:
        """Back to the dashboard."""
        self.dismiss(None)
