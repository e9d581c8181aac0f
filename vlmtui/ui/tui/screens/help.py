"""The key reference (``?``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class HelpScreen(ModalScreen[None]):
    """Every key of the dashboard with what it does; any of escape, ? or q closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close", tooltip="Back to the dashboard."),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | escape, ?, q | Back to the dashboard. |
    """

    def __init__(self, keys: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = list(keys)

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, text in self.keys:
            table.add_row(key, text)
        with VerticalScroll(id="dialog"):
            yield Label("Keys", id="dialog-title")
            yield Static(table, id="help-keys")
            yield Label("Everything works from the keyboard; nothing needs a mouse or hover.",
                        id="dialog-keys")

    def action_close(self) -> None:
        self.dismiss(None)
