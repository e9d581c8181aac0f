"""The one-line header: suite, backend and device, elapsed time, counts by status, guard level."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from vlmtui.ui.tui.format import LEVEL_STYLES, STATUS_LABELS, clock

RUN_STATE_STYLES = {
    "starting": "bright_black",
    "loading": "cyan",
    "running": "bold cyan",
    "paused": "bold yellow",
    "done": "bold green",
    "stopping": "bold red",
}
"""Colour of each run state shown at the header's right."""


class SessionHeader(Widget):
    """What the session is and how it is going, in one line (drops the least useful parts when narrow)."""

    DEFAULT_CSS = """
    SessionHeader {
        height: 1;
        background: $panel;
        color: $foreground;
    }
    """

    suite: reactive[str] = reactive("")
    """The suite's name."""
    backend: reactive[str] = reactive("")
    """Backend and device of the loaded model (``transformers · cpu float32``)."""
    elapsed: reactive[float] = reactive(0.0)
    """Seconds since the session started."""
    counts: reactive[tuple[tuple[str, int], ...]] = reactive(())
    """Cases by status, as ``(status, n)`` pairs."""
    guard_level: reactive[str] = reactive("ok")
    """The memory guard's level: ok, warn, cleanup or abort."""
    run_state: reactive[str] = reactive("starting")
    """starting, loading, running, paused, done or stopping."""

    def render(self) -> Text:
        counts = Text()
        for status, n in self.counts:
            if n or status == "passed":
                mark, _, style = STATUS_LABELS.get(status, ("?", status, "white"))
                counts.append(f"{mark}{n} ", style=style)
        counts.rstrip()
        level_style = LEVEL_STYLES.get(self.guard_level, "white")
        brand = Text.assemble((" vlmtui ", "bold reverse"), " ", (self.suite, "bold"))
        guard = Text.assemble("guard ", (self.guard_level, level_style))
        state = Text(self.run_state, style=RUN_STATE_STYLES.get(self.run_state, "white"))
        backend = Text(self.backend, style="cyan")
        short_backend = Text(self.backend.rsplit(" ", 1)[0] if " · " in self.backend else self.backend,
                             style="cyan")
        elapsed = Text(clock(self.elapsed))
        suite = Text(f" {self.suite}", style="bold")
        # Narrow terminals lose the brand first, then the dtype, the backend and the clock; never the
        # counts, the guard level or the run state.
        candidates = (
            [brand, backend, elapsed, counts, guard, state],
            [suite, backend, elapsed, counts, guard, state],
            [suite, short_backend, elapsed, counts, guard, state],
            [suite, elapsed, counts, guard, state],
            [suite, counts, guard, state],
        )
        width = self.size.width or 80
        separator = Text(" │ ", style="bright_black")
        for parts in candidates:
            line = separator.join(part for part in parts if part.plain)
            if line.cell_len <= width:
                break
        return line
