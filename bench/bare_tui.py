"""The first-frame baseline for bench/tui_bytes.py: the smallest Textual app, one Static showing the text the
bench waits for (the queue's border title), so exec → first frame measures Python and Textual alone."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Static


class Bare(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("queue · 1 case")


if __name__ == "__main__":
    Bare().run()
