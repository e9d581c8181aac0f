"""The filter dialog (``/``): show only cases whose status, model or id match the words typed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


class FilterScreen(ModalScreen[str | None]):
    """Type words (all must match: a status such as ``failed``, part of a model name); enter applies, empty clears."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", tooltip="Keep the current filter."),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | enter | Apply the filter (an empty one shows every case). |
    | escape | Keep the current filter. |
    """

    def __init__(self, current: str, statuses: Sequence[str], models: Sequence[str]) -> None:
        super().__init__()
        self.current = current
        self.statuses = list(statuses)
        self.models = list(models)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Filter the queue by status or model", id="dialog-title")
            yield Input(value=self.current, placeholder="e.g. failed, or smolvlm", id="filter-input")
            yield Static(f"statuses: {', '.join(self.statuses)}, failures", id="filter-statuses", markup=False)
            yield Static(f"models: {', '.join(self.models)}", id="filter-models", markup=False)
            yield Label("[b]enter[/] apply (empty clears)   [b]escape[/] cancel", id="dialog-keys")

    @on(Input.Submitted, "#filter-input")
    def apply(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
