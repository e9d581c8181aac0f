"""Asks before quitting while a case runs or a model loads: quitting aborts the case (or drops the load) and
stops the worker."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from vlmtui.text import one_line, plural
from vlmtui.ui.tui.state import SessionView
from vlmtui.vocab import ModelState


def quit_question(view: SessionView) -> str | None:
    """What quitting now would cut short, in a sentence; ``None`` when nothing is running or loading.

    A load counts as much as a case: it can take minutes for a 7B model, and a quit during it leaves every
    case of the queue unrun (exit 130)."""
    if view.running is not None:
        return (f"{one_line(view.running, 60)} is running; quitting aborts it and stops the worker (and any "
                "server it started). Its attempt is logged as aborted.")
    loading = next((m for m in view.models.values() if m.state == ModelState.LOADING), None)
    if loading is not None:
        waiting = sum(1 for row in view.cases.values() if row.queued)
        if loading.download:  # the hub download before the load (issue 18): its partial file is removed
            return (f"{one_line(loading.model, 60)} is downloading ({loading.download}); quitting stops the "
                    f"download and removes its partial file, and {plural(waiting, 'queued case')} will not run.")
        return (f"{one_line(loading.model, 60)} is loading; quitting drops the load and stops the worker, and "
                f"{plural(waiting, 'queued case')} will not run.")
    return None


class ConfirmQuitScreen(ModalScreen[bool]):
    """``y`` quits (the running case is aborted or the load dropped, the worker stopped); ``n`` or escape goes
    back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Quit", tooltip="Abort the running case or load, stop the worker and quit."),
        Binding("n,escape", "answer(False)", "Stay", tooltip="Go back to the dashboard; nothing stops."),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | y | Abort the running case (or drop the load), stop the worker (and any managed server) and quit. |
    | n, escape | Go back to the dashboard. |
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question
        """What quitting would cut short (``quit_question``)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Quit vlmtui?", id="dialog-title")
            yield Static(self.question, id="dialog-body", markup=False)
            yield Label("[b]y[/] quit   [b]n[/] stay", id="dialog-keys")

    def action_answer(self, quit_now: bool) -> None:
        self.dismiss(quit_now)
