"""Asks before quitting while a case runs: quitting aborts it and stops the worker."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from vlmtui.text import one_line


class ConfirmQuitScreen(ModalScreen[bool]):
    """``y`` quits (the running case is aborted, the worker stopped); ``n`` or escape goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Quit", tooltip="Abort the running case, stop the worker and quit."),
        Binding("n,escape", "answer(False)", "Stay", tooltip="Go back to the dashboard; nothing stops."),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | y | Abort the running case, stop the worker (and any managed server) and quit. |
    | n, escape | Go back to the dashboard. |
    """

    def __init__(self, running_case: str) -> None:
        super().__init__()
        self.running_case = running_case

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Quit vlmtui?", id="dialog-title")
            yield Static(f"{one_line(self.running_case, 60)} is running; quitting aborts it and stops the "
                         "worker (and any server it started). Its attempt is logged as aborted.",
                         id="dialog-body", markup=False)
            yield Label("[b]y[/] quit   [b]n[/] stay", id="dialog-keys")

    def action_answer(self, quit_now: bool) -> None:
        self.dismiss(quit_now)
