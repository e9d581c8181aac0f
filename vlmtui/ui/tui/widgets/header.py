"""The one-line header: suite, backend and device, elapsed time, counts by status, guard level."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from vlmtui.ui.tui.format import clock
from vlmtui.vocab import CaseStatus, GuardLevel, RunState, level_look, run_state_look, status_look


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
    """Seconds since the session started, whole: the line is drawn again only when the clock shows a new second."""
    counts: reactive[tuple[tuple[str, int], ...]] = reactive(())
    """Cases by status, as ``(status, n)`` pairs."""
    guard_level: reactive[str] = reactive(GuardLevel.OK)
    """The memory guard's level (a ``vocab.GuardLevel``)."""
    run_state: reactive[str] = reactive(RunState.STARTING)
    """What the session is doing (a ``vocab.RunState``)."""

    def validate_elapsed(self, elapsed: float) -> float:
        return float(int(max(elapsed, 0.0)))

    def render(self) -> Text:
        counts = Text()
        for status, n in self.counts:
            if n or status == CaseStatus.PASSED:
                look = status_look(status)
                counts.append(f"{look.mark}{n} ", style=look.style)
        counts.rstrip()
        brand = Text.assemble((" vlmtui ", "bold reverse"), " ", (self.suite, "bold"))
        guard = Text.assemble("guard ", (self.guard_level, level_look(self.guard_level).style))
        state = Text(self.run_state, style=run_state_look(self.run_state).style)
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
