"""The memory panel: unified memory, swap and the guarded framework memory as gauges, with a sparkline.

The framework gauge is drawn against the guard's budget with the warn, cleanup and abort marks on the
bar; colours follow the guard's level there, and display thresholds (set here, not in the engine)
elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Label, Sparkline

from vlmtui.engine.events import GuardEvent, MemoryUpdate
from vlmtui.ui.tui.format import FRAMEWORK_LABELS, PRESSURE_NAMES, size, size_pair
from vlmtui.ui.tui.widgets.history import MARK_STYLES, MemoryHistory
from vlmtui.ui.tui.widgets.telemetry import telemetry_text
from vlmtui.vocab import GuardLevel, level_look

SYSTEM_WARN_PCT = 80.0
"""Unified memory (or swap) use above which its gauge turns yellow."""
SYSTEM_HIGH_PCT = 92.0
"""… and red."""
MIN_BAR_WITH_NOTE = 16
"""Cells a bar keeps before its gauge drops the note after the numbers."""
_EIGHTHS = " ▏▎▍▌▋▊▉"


@dataclass(frozen=True)
class GaugeReading:
    """One gauge's numbers: used of total, the marks to draw (percent of total), and the colour level."""

    label: str
    used: float | None
    total: float | None
    level: str = GuardLevel.OK
    marks: tuple[float, ...] = ()
    note: str = ""


def _system_level(used: float | None, total: float | None) -> GuardLevel:
    if not used or not total:
        return GuardLevel.OK
    pct = 100 * used / total
    return GuardLevel.ABORT if pct >= SYSTEM_HIGH_PCT else GuardLevel.WARN if pct >= SYSTEM_WARN_PCT else GuardLevel.OK


def render_bar(reading: GaugeReading, width: int) -> Text:
    """A bar ``width`` cells wide, filled to used/total in eighths, with the marks drawn on it."""
    bar = Text()
    if width <= 0:
        return bar
    fill_style = level_look(reading.level).style.replace("bold ", "")
    fraction = 0.0
    if reading.used is not None and reading.total:
        fraction = min(max(reading.used / reading.total, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    marks = {min(int(pct / 100 * width), width - 1): MARK_STYLES[min(i, 2)] for i, pct in enumerate(reading.marks)}
    for cell in range(width):
        mark = marks.get(cell)
        if cell < full:
            bar.append("█" if mark is None else "▐", style=fill_style if mark is None else f"{mark} on {fill_style}")
        elif cell == full and part:
            bar.append(_EIGHTHS[part], style=f"{fill_style} on grey23")
        elif mark is not None:
            bar.append("│", style=f"bold {mark} on grey23")
        else:
            bar.append(" ", style="on grey23")
    return bar


class Gauge(Widget):
    """``RAM ▕█████▌   │  │ │▏ 12.1/16.0 GiB``: one line, the bar takes whatever width is left."""

    DEFAULT_CSS = """
    Gauge {
        height: 1;
        width: 1fr;
    }
    """

    reading: reactive[GaugeReading | None] = reactive(None, repaint=False)
    """The numbers to draw; None draws an empty, unlabelled bar. Redrawn only when the line drawn changes:
    a new sample that moves neither the bar's eighths nor the figures sends nothing to the terminal."""

    _drawn: tuple[object, ...] | None = None

    def watch_reading(self) -> None:
        if self.is_mounted and self._layout()[0] != self._drawn:
            self.refresh()

    def _layout(self) -> tuple[tuple[object, ...], str, str, int]:
        """What the line shows, as a key (label, figures, bar width, eighths filled, colour, marks), and its parts."""
        reading = self.reading or GaugeReading("", None, None)
        value = size_pair(reading.used, reading.total) if reading.total else size(reading.used)
        label = f"{reading.label:<5.5}"
        width = self.size.width or 40
        # The note (MLX cache, "no worker") only when the bar keeps room for its marks.
        if reading.note and width - len(label) - len(value) - len(reading.note) - 2 >= MIN_BAR_WITH_NOTE:
            value = f"{value} {reading.note}"
        bar_width = max(width - len(label) - len(value) - 1, 4)
        fraction = min(max(reading.used / reading.total, 0.0), 1.0) if reading.used is not None and reading.total else 0
        key = (label, value, width, bar_width, round(fraction * bar_width * 8), reading.level, reading.marks)
        return key, label, value, bar_width

    def render(self) -> Text:
        key, label, value, bar_width = self._layout()
        self._drawn = key
        reading = self.reading or GaugeReading("", None, None)
        width = self.size.width or 40
        line = Text(label, style="bold")
        line.append_text(render_bar(reading, bar_width))
        line.append(" " + value)
        line.truncate(width)
        return line


class StatusLine(Widget):
    """Styled text, one line unless its CSS gives it more; redrawn only when the text changes (``Text`` compares
    its characters and styles)."""

    DEFAULT_CSS = """
    StatusLine {
        height: auto;
    }
    """

    text: reactive[Text] = reactive(Text(""))
    """What the line says."""

    def render(self) -> Text:
        return self.text


class MemoryPanel(Vertical):
    """Gauges for unified memory, swap and framework memory; pressure, guard level, GPU telemetry and 60 s
    sparklines (memory; GPU % and watts where measured)."""

    BORDER_TITLE = "memory"

    sample: reactive[MemoryUpdate | None] = reactive(None, repaint=False)
    """The newest memory sample."""
    history: reactive[tuple[float, ...]] = reactive((), repaint=False)
    """Guarded bytes over the last minute, oldest first."""
    gpu_history: reactive[tuple[float, ...]] = reactive((), repaint=False)
    """GPU utilisation (%) over the last minute, where the sampler measures it."""
    power_history: reactive[tuple[float, ...]] = reactive((), repaint=False)
    """GPU power (W) over the last minute, where the sampler measures it."""
    thresholds: reactive[tuple[float, float, float]] = reactive((75.0, 85.0, 95.0), repaint=False)
    """warn, cleanup and abort in percent of the budget."""
    last_guard: reactive[GuardEvent | None] = reactive(None, repaint=False)
    """The guard's latest action (cleanup, abort, recover…), shown under the gauges."""
    budget_source: reactive[str] = reactive("", repaint=False)
    """Where the budget comes from (``metal recommended working set``, ``explicit 12GiB``…)."""

    ram: reactive[GaugeReading | None] = reactive(None, repaint=False)
    """Unified (system) memory: used of total."""
    swap: reactive[GaugeReading | None] = reactive(None, repaint=False)
    """Swap used of total."""
    framework: reactive[GaugeReading | None] = reactive(None, repaint=False)
    """The guarded quantity (MLX active+cache, MPS, CUDA, or the worker's RSS) against the budget."""
    status: reactive[Text] = reactive(Text(""), repaint=False)
    """Pressure level, guard level and the last guard action."""
    telemetry: reactive[Text] = reactive(Text(""), repaint=False)
    """GPU %, watts, temperature and throttling, or why they are n/a (docs/telemetry.md)."""
    notes: reactive[Text] = reactive(Text(""), repaint=False)
    """The budget and where it comes from, the worker's RSS, the minute's peak, the guard's last reason."""

    def compose(self) -> ComposeResult:
        yield Gauge(id="gauge-ram").data_bind(reading=MemoryPanel.ram)
        yield Gauge(id="gauge-swap").data_bind(reading=MemoryPanel.swap)
        yield Gauge(id="gauge-framework").data_bind(reading=MemoryPanel.framework)
        yield StatusLine(id="memory-status").data_bind(text=MemoryPanel.status)
        yield StatusLine(id="telemetry-status").data_bind(text=MemoryPanel.telemetry)
        with Horizontal(id="memory-trend"):
            yield MemoryHistory(id="memory-history")
        with Horizontal(id="gpu-trend", classes="telemetry-trend"):
            yield Label("GPU %", classes="trend-label")
            yield Sparkline(id="gpu-sparkline").data_bind(data=MemoryPanel.gpu_history)
        with Horizontal(id="power-trend", classes="telemetry-trend"):
            yield Label("W    ", classes="trend-label")
            yield Sparkline(id="power-sparkline").data_bind(data=MemoryPanel.power_history)
        yield StatusLine(id="memory-notes").data_bind(text=MemoryPanel.notes)

    frozen: reactive[bool] = reactive(False, repaint=False)
    """The run has ended: the history stops where it is (the gauges stay live)."""

    def show(self, sample: MemoryUpdate, history: tuple[float, ...], times: tuple[float, ...],
             gpu_history: tuple[float, ...] = (), power_history: tuple[float, ...] = ()) -> None:
        """A new sample and the minute behind it. The histories are set first without recomputing the lines
        (setting each reactive recomputes all six: 4 passes a sample before, one now)."""
        self.set_reactive(MemoryPanel.history, history)
        self.set_reactive(MemoryPanel.gpu_history, gpu_history)
        self.set_reactive(MemoryPanel.power_history, power_history)
        self.watch_gpu_history(gpu_history)
        self.watch_power_history(power_history)
        for chart in self.query(MemoryHistory):
            chart.budget = float(sample.budget_bytes or 0)
            if not chart.frozen:
                chart.show(tuple(zip(times, history, strict=False)))
        self.sample = sample

    def watch_thresholds(self, thresholds: tuple[float, float, float]) -> None:
        for chart in self.query(MemoryHistory):
            chart.thresholds = thresholds

    def watch_frozen(self, frozen: bool) -> None:
        for chart in self.query(MemoryHistory):
            chart.frozen = frozen

    def compute_ram(self) -> GaugeReading | None:
        if self.sample is None:
            return GaugeReading("RAM", None, None)
        system = self.sample.system
        total = system.get("total")
        available = system.get("available")
        # On macOS "used" leaves out compressed and cached pages; total − available is what is really gone.
        used = total - available if total is not None and available is not None else system.get("used")
        return GaugeReading("RAM", used, total, _system_level(used, total))

    def compute_swap(self) -> GaugeReading | None:
        if self.sample is None:
            return GaugeReading("swap", None, None)
        total, used = self.sample.system.get("swap_total"), self.sample.system.get("swap_used")
        if not total:
            return GaugeReading("swap", used or 0, None, note="(no swap)")
        return GaugeReading("swap", used, total, _system_level(used, total))

    def compute_framework(self) -> GaugeReading | None:
        sample = self.sample
        if sample is None:
            return GaugeReading("mem", None, None, marks=self.thresholds)
        framework = sample.framework or {}
        source = str(framework.get("framework") or sample.guarded_source or "rss")
        label = FRAMEWORK_LABELS.get(source, source)
        note = ""
        if source == "mlx" and framework.get("cache_bytes") is not None:
            note = f"(cache {size(framework.get('cache_bytes'))})"
        elif sample.guarded_bytes is None:
            note = "(no worker)"
        return GaugeReading(label, sample.guarded_bytes or 0, sample.budget_bytes, sample.level,
                            marks=self.thresholds, note=note)

    def compute_status(self) -> Text:
        sample = self.sample
        text = Text()
        pressure = sample.pressure if sample is not None else None
        if pressure is None and sample is not None and sample.telemetry is not None:
            pressure = sample.telemetry.pressure_level
        if pressure is not None:
            name, style = PRESSURE_NAMES.get(pressure, (str(pressure), "white"))
            text.append("pressure ")
            text.append(name, style=style)
        else:
            text.append("pressure ")
            text.append("n/a", style="bright_black")
        level = sample.level if sample is not None else GuardLevel.OK
        text.append(" · guard ")
        text.append(level, style=level_look(level).style)
        warn, cleanup, abort = self.thresholds
        text.append(f" {warn:g}/{cleanup:g}/{abort:g}%", style="bright_black")
        if self.last_guard is not None:
            text.append(f" · {self.last_guard.action}", style="magenta")
        return text

    def compute_telemetry(self) -> Text:
        return telemetry_text(self.sample.telemetry if self.sample is not None else None)

    def watch_gpu_history(self, history: tuple[float, ...]) -> None:
        for row in self.query("#gpu-trend"):  # a GPU sparkline only where the sampler measures one
            row.display = bool(history)

    def watch_power_history(self, history: tuple[float, ...]) -> None:
        for row in self.query("#power-trend"):
            row.display = bool(history)

    def compute_notes(self) -> Text:
        sample = self.sample
        text = Text(style="bright_black")
        if sample is None:
            return text
        text.append(f"budget {size(sample.budget_bytes)}")
        if self.budget_source:
            text.append(f" ({self.budget_source})")
        if sample.worker_rss:
            text.append(f" · worker RSS {size(sample.worker_rss)}")
        if self.history:
            text.append(f" · 60 s peak {size(max(self.history))}")
        guard = self.last_guard
        if guard is not None:
            text.append(f"\nguard {guard.action}: ", style="magenta")
            text.append(guard.reason)
        return text
