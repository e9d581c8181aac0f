"""The footer: the keys that fit in one line, most useful first, never cut mid-key.

Textual's Footer lays every shown binding out in a row and crops what does not fit, so at 60 columns
``? help`` and ``q quit`` were the ones lost. This bar keeps keys by a priority (``keys.FOOTER_PRIORITY``),
shows them in the table's order, and says with ``…`` that ``?`` lists the rest. A click on a key runs it.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.widget import Widget

from vlmtui.vocab import RunState

GAP = 1
"""Cells between two keys."""
BUSY_STATES = frozenset({RunState.RUNNING, RunState.PAUSING, RunState.LOADING})
"""Run states in which the bar follows its busy priority."""


def key_label(binding: Binding) -> str:
    """What the bar shows for a key: its display form (``␣``, ``/``) or the key itself."""
    return binding.key_display or binding.key


def fit_keys(bindings: Sequence[BindingType], priority: Sequence[str], width: int) -> list[Binding]:
    """The shown bindings that fit in ``width`` cells, chosen in ``priority`` order, kept in table order."""
    shown = [b for b in bindings if isinstance(b, Binding) and b.show]
    rank = {key: i for i, key in enumerate(priority)}
    chosen: set[str] = set()
    used = 0
    for binding in sorted(shown, key=lambda b: rank.get(b.key, len(rank))):
        cost = len(key_label(binding)) + 1 + len(binding.description) + GAP
        if used + cost > width - 2:  # room for the " …" that says some keys are left out
            continue
        chosen.add(binding.key)
        used += cost
    return [binding for binding in shown if binding.key in chosen]


class KeyBar(Widget):
    """One line of keys for the screen it is on, fitted to the terminal's width."""

    DEFAULT_CSS = """
    KeyBar {
        height: 1;
        dock: bottom;
        background: $panel;
    }
    """

    run_state: reactive[str] = reactive("")
    """The session's run state (bound by the dashboard): while busy, ``busy_priority`` picks the keys."""

    def __init__(self, bindings: Sequence[BindingType], priority: Sequence[str],
                 busy_priority: Sequence[str] = (), *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.bindings = list(bindings)
        self.priority = tuple(priority)
        self.busy_priority = tuple(busy_priority) or self.priority
        self._spans: list[tuple[int, int, str]] = []
        """Where each key was drawn (start, end, action), for clicks."""

    def render(self) -> Text:
        busy = self.run_state in BUSY_STATES
        keys = fit_keys(self.bindings, self.busy_priority if busy else self.priority, self.size.width)
        line = Text(no_wrap=True, overflow="crop")
        self._spans = []
        for binding in keys:
            start = line.cell_len
            line.append(key_label(binding), style="bold cyan")
            line.append(f" {binding.description}", style="")
            self._spans.append((start, line.cell_len, binding.action))
            line.append(" " * GAP)
        if len(keys) < sum(1 for b in self.bindings if isinstance(b, Binding) and b.show):
            line.append("…", style="bright_black")
        return line

    async def on_click(self, event: events.Click) -> None:
        for start, end, action in self._spans:
            if start <= event.x < end:
                await self.screen.run_action(action)
                return
