"""The dashboard's keys: one table, shown by the footer, the help screen and the README."""

from __future__ import annotations

from collections.abc import Sequence

from textual.binding import Binding, BindingType

DASHBOARD_KEYS: list[BindingType] = [
    Binding("enter", "details", "details", key_display="⏎",
            tooltip="Show the selected case in full: every attempt, output, metrics, error."),
    Binding("o", "pager", "pager", tooltip="Read the selected case's output full screen (o there: $PAGER)."),
    Binding("O", "external_pager", "$PAGER",
            tooltip="Hand the selected case's output straight to $PAGER."),
    Binding("v", "side_by_side", "side by side",
            tooltip="Every model's answer to the selected case's image and prompt, next to each other."),
    Binding("y", "copy_output", "copy", tooltip="Copy the selected case's output to your clipboard (OSC 52)."),
    Binding("n", "next_failure", "failures", key_display="n/N",
            tooltip="Select the next failed, crashed or aborted case."),
    Binding("N", "previous_failure", "previous failure", show=False,
            tooltip="Select the previous failed, crashed or aborted case."),
    Binding("r", "rerun_selected", "rerun", tooltip="Rerun the selected case (a new attempt is logged)."),
    Binding("f", "rerun_failed", "rerun failed", tooltip="Rerun every failed, crashed and aborted case."),
    Binding("space", "toggle_pause", "pause", key_display="␣",
            tooltip="Pause the queue after the running case, or resume it."),
    Binding("a", "abort", "abort", tooltip="Abort the running case (its worker stays if it answers)."),
    Binding("c", "cleanup", "cleanup", tooltip="Ask the worker to free its caches now."),
    Binding("s", "save", "save", tooltip="Save the session log and a Markdown report; shows the paths."),
    Binding("slash", "filter", "filter", key_display="/", tooltip="Show only cases of a status or model."),
    Binding("m", "toggle_models", "models",
            tooltip="Show or hide the models table (hidden under 32 rows, so the queue gets them)."),
    Binding("z", "zoom", "zoom", tooltip="Zoom the queue, then the output pane, then back to every pane."),
    Binding("question_mark", "help", "help", key_display="?", tooltip="List every key."),
    Binding("q", "quit_session", "quit",
            tooltip="Quit (asks first while a case runs); stops the worker and any managed server."),
]
"""
| Key(s) | Description |
| :- | :- |
| ↑/↓, j/k | Select a case. |
| g/G, home/end | Select the first or last case. |
| enter | Show the selected case in full. |
| o | Read the selected output full screen; o again hands it to $PAGER. |
| O | Hand the selected output straight to $PAGER. |
| v | Every model's answer to the same image and prompt, side by side. |
| y | Copy the selected output to the local clipboard (OSC 52, works over SSH). |
| n/N | Select the next or previous failed, crashed or aborted case. |
| r | Rerun the selected case. |
| f | Rerun every failed, crashed and aborted case. |
| space | Pause or resume the queue. |
| a | Abort the running case. |
| c | Free the worker's caches now. |
| s | Save the session log and a report. |
| / | Filter the queue by status or model. |
| m | Show or hide the models table. |
| z | Zoom the queue, then the output, then back. |
| ? | Help. |
| q | Quit, asking first while a case runs. |
"""

FOOTER_PRIORITY = ("question_mark", "q", "m", "z", "v", "o", "n", "r", "f", "space", "a", "slash", "s", "enter",
                   "c", "y", "O")
"""Which keys the footer keeps when it cannot show them all: the first first (help and quit always)."""
FOOTER_PRIORITY_RUNNING = ("question_mark", "q", "a", "space", "m", "z", "v", "n", "r", "o", "c", "f", "slash",
                           "s", "enter", "y", "O")
"""… while a case runs or a model loads: abort and pause come before the views."""


def key_help(bindings: Sequence[BindingType]) -> list[tuple[str, str]]:
    """The keys and what they do, from the bindings' tooltips."""
    keys: list[tuple[str, str]] = [("↑ ↓  j k", "Select a case."), ("g G  home end", "Select the first or last case.")]
    for binding in bindings:
        if isinstance(binding, Binding):
            name = {"enter": "enter", "space": "space", "n": "n"}.get(binding.key, binding.key_display or binding.key)
            keys.append((name, binding.tooltip))
    keys.append(("ctrl+q", "Quit at once (the worker is still stopped cleanly)."))
    return keys
