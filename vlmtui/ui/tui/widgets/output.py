"""The output pane: the running case's text as it streams, or a finished case's output, metrics and error."""

from __future__ import annotations

from dataclasses import dataclass, replace

from rich.text import Text
from textual.geometry import Region
from textual.reactive import reactive
from textual.widget import Widget

from vlmtui.text import printable
from vlmtui.ui.tui.format import rate, seconds, size, status_label, status_mark


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
        ("peak", size(num("peak_memory_bytes"), kind if isinstance(kind := metrics.get("peak_kind"), str) else None)),
        ("load", f"{seconds(num('load_s'))} s"),
    ]
    return tuple(pairs) if metrics else ()


def head_lines(content: OutputContent, width: int) -> list[Text]:
    """The status and its metrics, packed into lines of ``width`` without splitting a metric."""
    _, style = status_mark(content.status)
    lines = [Text.assemble((status_label(content.status, content.attempt), style))]
    for label, value in content.metrics:
        piece = Text.assemble((label, "bright_black"), " ", value)
        if lines[-1].cell_len + 2 + piece.cell_len > width and lines[-1].plain:
            lines.append(piece)
        else:
            lines[-1].append("  ")
            lines[-1].append_text(piece)
    if content.note:
        lines.append(Text(content.note, style="italic bright_black"))
    return lines


def body_text(content: OutputContent) -> Text:
    """The error (if any), then the model's text, made safe for the terminal."""
    body = Text()
    if content.error:
        body.append(printable(content.error), style="red")
        body.append("\n")
    body.append(printable(content.text))
    if content.streaming:
        body.append("▌", style="cyan")
    return body


class OutputPane(Widget):
    """One case's text, drawn into a fixed box: a streaming case shows its newest lines, a finished one its
    first lines (enter shows everything). Nothing here changes the layout, so an update repaints only
    this box, however fast tokens arrive."""

    BORDER_TITLE = "output"

    DEFAULT_CSS = """
    OutputPane {
        height: 1fr;
    }
    """

    content: reactive[OutputContent | None] = reactive(None, repaint=False)
    """The case shown, or None before anything ran. Only the lines that change are drawn again: a token
    appended to the last line sends that line, not the box (issue 17: 93 KB/s while streaming at 80×24)."""

    _drawn: list[Text] | None = None
    line_redraws = 0
    """Lines sent again since mount (tests count them)."""

    def append(self, text: str) -> None:
        """Add streamed text to the case shown (a case that streams; one is made if nothing is shown)."""
        content = self.content or OutputContent(case_id="", status="running", streaming=True)
        self.content = replace(content, text=content.text + text)

    def clear(self) -> None:
        """Show nothing (``waiting for the first case…``)."""
        self.content = None

    def watch_content(self, content: OutputContent | None) -> None:
        subtitle = "" if content is None else f"{status_mark(content.status)[0]} {content.case_id}"
        if self.border_subtitle != subtitle:
            self.border_subtitle = subtitle
        if not self.is_mounted:
            return
        lines = self._lines()
        drawn = self._drawn
        if drawn is None or len(drawn) != len(lines):
            self.refresh()
            return
        width = self.content_size.width
        changed = [Region(0, y, width, 1) for y, (old, new) in enumerate(zip(drawn, lines, strict=True)) if old != new]
        if changed:
            self.line_redraws += len(changed)
            self.refresh(*changed)

    def on_resize(self) -> None:
        self._drawn = None

    def render(self) -> Text:
        self._drawn = self._lines()
        return Text("\n", no_wrap=True, overflow="crop").join(self._drawn)

    _memo: tuple[OutputContent | None, tuple[int, int], list[Text]] | None = None

    def _lines(self) -> list[Text]:
        """The box's lines; wrapped once per content and size (the change check and the draw both ask)."""
        size = (self.content_size.width, self.content_size.height)
        memo = self._memo
        if memo is not None and memo[0] is self.content and memo[1] == size:
            return memo[2]
        lines = self._wrap()
        self._memo = (self.content, size, lines)
        return lines

    def _wrap(self) -> list[Text]:
        width, height = max(self.content_size.width, 1), max(self.content_size.height, 1)
        console = self.app.console
        content = self.content
        if content is None:
            return [Text("waiting for the first case…", style="bright_black")]
        head = [line for text in head_lines(content, width) for line in text.wrap(console, width)]
        body = body_text(content)
        body_lines = list(body.wrap(console, width)) if body.plain else []
        room = max(height - len(head), 0)
        if content.streaming:
            body_lines = body_lines[-room:] if room else []
        elif len(body_lines) > room:
            more = Text("… (enter shows all)", style="italic bright_black")
            body_lines = [*body_lines[: max(room - 1, 0)], more]
        lines = (head + body_lines)[:height]
        return lines + [Text()] * (height - len(lines))
