"""The output pane: the running case's text as it streams, or a finished case's output, metrics and error."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from vlmtui.tui.format import printable, rate, seconds, size, status_label, status_mark


@dataclass(frozen=True)
class OutputContent:
    """What the pane shows: one case's text, and the lines that say how it went."""

    case_id: str
    status: str
    attempt: int = 1
    text: str = ""
    error: str = ""
    metrics: tuple[tuple[str, str], ...] = ()
    """Label and formatted value pairs (``total 0.26 s``)."""
    streaming: bool = False
    note: str = ""


def metric_pairs(metrics: dict[str, object]) -> tuple[tuple[str, str], ...]:
    """The metrics worth a glance, formatted with units."""

    def num(key: str) -> float | None:
        value = metrics.get(key)
        return float(value) if isinstance(value, int | float) else None

    pairs = [
        ("total", f"{seconds(num('total_s'))} s"),
        ("ttft", f"{seconds(num('ttft_s'))} s"),
        ("gen", f"{rate(num('gen_tps'))} tok/s"),
        ("tokens", str(metrics.get("gen_tokens") if metrics.get("gen_tokens") is not None else "—")),
        ("peak", size(num("peak_memory_bytes"))),
        ("load", f"{seconds(num('load_s'))} s"),
    ]
    return tuple(pairs) if metrics else ()


class OutputPane(VerticalScroll, can_focus=False):
    """Scrollable text of one case; follows the end while a case streams."""

    DEFAULT_CSS = """
    OutputPane > #output-body {
        width: 1fr;
        height: auto;
    }
    """

    content: reactive[OutputContent | None] = reactive(None)
    """The case shown, or None before anything ran."""

    def compose(self) -> ComposeResult:
        yield Static("waiting for the first case…", id="output-body", markup=False)

    def watch_content(self, content: OutputContent | None) -> None:
        body = self.query_one("#output-body", Static)
        if content is None:
            body.update("waiting for the first case…")
            self.border_subtitle = ""
            return
        mark, style = status_mark(content.status)
        self.border_subtitle = f"{mark} {content.case_id}"
        text = Text()
        text.append(status_label(content.status, content.attempt), style=style)
        for label, value in content.metrics:
            # No-break spaces keep each "label value unit" together when the line wraps.
            text.append(f"  {label}\u00a0", style="bright_black")
            text.append(value.replace(" ", "\u00a0"))
        if content.note:
            text.append(f"\n{content.note}", style="italic bright_black")
        if content.error:
            text.append("\n")
            text.append(printable(content.error), style="red")
        if content.text or content.streaming:
            text.append("\n")
            text.append(printable(content.text))
            if content.streaming:
                text.append("▌", style="blink cyan")
        body.update(text)
        if content.streaming:
            self.scroll_end(animate=False, immediate=False)
