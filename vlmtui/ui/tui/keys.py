"""The dashboard's keys: one table, shown by the footer, the help screen and the README."""

from __future__ import annotations

from collections.abc import Sequence

from textual.binding import Binding, BindingType

DASHBOARD_KEYS: list[BindingType] = [
    Binding("enter", "details", "details", key_display="⏎",
            tooltip="Show the selected case in full: every attempt, output, metrics, error."),
    Binding("r", "rerun_selected", "rerun", tooltip="Rerun the selected case (a new attempt is logged)."),
    Binding("f", "rerun_failed", "rerun failed", tooltip="Rerun every failed, crashed and aborted case."),
    Binding("space", "toggle_pause", "pause", key_display="␣",
            tooltip="Pause the queue after the running case, or resume it."),
    Binding("a", "abort", "abort", tooltip="Abort the running case (its worker stays if it answers)."),
    Binding("c", "cleanup", "cleanup", tooltip="Ask the worker to free its caches now."),
    Binding("s", "save", "save", tooltip="Save the session log and a Markdown report; shows the paths."),
    Binding("slash", "filter", "filter", key_display="/", tooltip="Show only cases of a status or model."),
    Binding("question_mark", "help", "help", key_display="?", tooltip="List every key."),
    Binding("q", "quit_session", "quit",
            tooltip="Quit (asks first while a case runs); stops the worker and any managed server."),
]
"""
| Key(s) | Description |
| :- | :- |
| ↑/↓, j/k | Select a case. |
| enter | Show the selected case in full. |
| r | Rerun the selected case. |
| f | Rerun every failed, crashed and aborted case. |
| space | Pause or resume the queue. |
| a | Abort the running case. |
| c | Free the worker's caches now. |
| s | Save the session log and a report. |
| / | Filter the queue by status or model. |
| ? | Help. |
| q | Quit, asking first while a case runs. |
"""


def key_help(bindings: Sequence[BindingType]) -> list[tuple[str, str]]:
    """The keys and what they do, from the bindings' tooltips."""
    keys: list[tuple[str, str]] = [("↑ ↓  j k", "Select a case.")]
    for binding in bindings:
        if isinstance(binding, Binding):
            name = {"enter": "enter", "space": "space"}.get(binding.key, binding.key_display or binding.key)
            keys.append((name, binding.tooltip))
    keys.append(("ctrl+q", "Quit at once (the worker is still stopped cleanly)."))
    return keys
