"""The one screen: header, queue, output, memory, per-model summary and footer, driven by the keyboard."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from vlmtui.engine.controls import Controls
from vlmtui.engine.events import (
    CaseFinished,
    CaseStarted,
    Event,
    GuardEvent,
    MemoryUpdate,
    ModelLoadFailed,
    Notice,
    SessionFinished,
    WorkerExited,
)
from vlmtui.reports.summary import ModelSummary
from vlmtui.text import one_line
from vlmtui.ui.tui.bridge import EngineBridge
from vlmtui.ui.tui.format import size
from vlmtui.ui.tui.messages import EngineEvent, MemorySampled, TokensStreamed
from vlmtui.ui.tui.screens.case_detail import CaseDetailScreen
from vlmtui.ui.tui.screens.confirm_quit import ConfirmQuitScreen
from vlmtui.ui.tui.screens.filter import FilterScreen
from vlmtui.ui.tui.screens.help import HelpScreen
from vlmtui.ui.tui.state import SessionView
from vlmtui.ui.tui.widgets.case_table import CaseTable
from vlmtui.ui.tui.widgets.header import SessionHeader
from vlmtui.ui.tui.widgets.memory import MemoryPanel
from vlmtui.ui.tui.widgets.output import OutputContent, OutputPane, metric_pairs
from vlmtui.ui.tui.widgets.summary import ModelSummaryTable, SummaryRow
from vlmtui.vocab import RESULT_STATUSES, CaseStatus, GuardAction, GuardLevel, ModelState, RunState

FINISHED_OUTPUT_CHARS = 6000
"""How much of a finished case's output the pane shows (the details dialog shows it all)."""
NOTICE_SEVERITY: dict[str, SeverityLevel] = {"error": "error", "warning": "warning"}
"""Engine notice levels as Textual notification severities (anything else is ``information``)."""


def save_report(log_path: Path) -> Path:
    """Write a Markdown report next to the session log (blocking: run it off the UI loop)."""
    try:
        from vlmtui.reports.report import write_report
    except ImportError as exc:
        raise RuntimeError(f"the report writer is not available in this installation ({exc})") from None
    return write_report(log_path, "md", log_path.with_suffix(".md"))


class DashboardScreen(Screen[None]):
    """Everything about the session on one screen; every action is a key."""

    BINDINGS: ClassVar[list[BindingType]] = [
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

    @dataclass
    class QuitRequested(Message):
        """The user asked to quit (and confirmed, if a case was running)."""

        reason: str

    suite: reactive[str] = reactive("")
    """The suite's name."""
    backend: reactive[str] = reactive("")
    """Backend and device of the model in the worker."""
    elapsed: reactive[float] = reactive(0.0)
    """Seconds since the session started (stops while idle)."""
    counts: reactive[tuple[tuple[str, int], ...]] = reactive(())
    """Cases by status."""
    guard_level: reactive[str] = reactive(GuardLevel.OK)
    """The memory guard's level."""
    run_state: reactive[str] = reactive(RunState.STARTING)
    """What the session is doing (a ``vocab.RunState``)."""
    memory: reactive[MemoryUpdate | None] = reactive(None)
    """The newest memory sample (throttled)."""
    history: reactive[tuple[float, ...]] = reactive(())
    """Guarded bytes over the last minute."""
    gpu_history: reactive[tuple[float, ...]] = reactive(())
    """GPU utilisation (%) over the last minute, where measured."""
    power_history: reactive[tuple[float, ...]] = reactive(())
    """GPU power (W) over the last minute, where measured."""
    thresholds: reactive[tuple[float, float, float]] = reactive((75.0, 85.0, 95.0))
    """The guard's warn, cleanup and abort percentages."""
    last_guard: reactive[GuardEvent | None] = reactive(None)
    """The guard's latest action."""
    budget_source: reactive[str] = reactive("")
    """Where the memory budget comes from."""
    output: reactive[OutputContent | None] = reactive(None)
    """What the output pane shows."""
    summary_rows: reactive[tuple[SummaryRow, ...]] = reactive(())
    """The per-model summary."""
    filter_text: reactive[str] = reactive("")
    """Words every shown case must match (status, model or id); empty shows all."""
    stopping: reactive[bool] = reactive(False)
    """Set while quitting: the worker is being stopped."""

    def __init__(self, view: SessionView, *, controls: Controls, log_path: Path | None,
                 clock: Callable[[], float], fps: float) -> None:
        super().__init__()
        self.view = view
        self.controls = controls
        self.log_path = log_path
        self.clock = clock
        self.bridge = EngineBridge(self, fps)
        self.saved_paths: tuple[Path, Path] | None = None
        """The log and report written by the latest ``s``."""
        self._stream: tuple[str, str] = ("", "")
        self._idle_since: float | None = None
        self.set_reactive(DashboardScreen.suite, view.suite)
        self.set_reactive(DashboardScreen.thresholds, view.thresholds)

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        screen = DashboardScreen
        yield SessionHeader(id="header").data_bind(screen.suite, screen.backend, screen.elapsed, screen.counts,
                                                  screen.guard_level, screen.run_state)
        yield CaseTable(id="queue")
        with Horizontal(id="lower"):
            yield OutputPane(id="output").data_bind(content=screen.output)
            yield MemoryPanel(id="memory").data_bind(sample=screen.memory, history=screen.history,
                                                     gpu_history=screen.gpu_history,
                                                     power_history=screen.power_history,
                                                     thresholds=screen.thresholds, last_guard=screen.last_guard,
                                                     budget_source=screen.budget_source)
        yield ModelSummaryTable(id="summary").data_bind(rows=screen.summary_rows)
        yield Footer(show_command_palette=False, compact=True)

    @property
    def table(self) -> CaseTable:
        """The queue."""
        return self.query_one("#queue", CaseTable)

    @property
    def output_pane(self) -> OutputPane:
        """The output pane."""
        return self.query_one("#output", OutputPane)

    def on_mount(self) -> None:
        self.table.border_title = "queue"
        self.output_pane.border_title = "output"
        self.query_one("#memory", MemoryPanel).border_title = "memory"
        self.query_one("#summary", ModelSummaryTable).border_title = "models"
        self.table.focus()
        self.refresh_view()
        self.set_interval(1.0, self.tick, name="clock")
        self.run_worker(self.bridge.pump(), name="ui-throttle", group="bridge", exit_on_error=False)

    def on_resize(self) -> None:
        self.call_after_refresh(self.refresh_view)

    # ------------------------------------------------------------------ engine messages

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        changed = self.view.apply(event)
        self.refresh_view()
        if isinstance(event, CaseStarted) and self.table.following:
            self.table.select_case(event.case_id)
        if changed is not None or isinstance(event, CaseFinished):
            self.refresh_output()
        self._announce(event)

    def _announce(self, event: Event) -> None:
        """A notification for what the user should not miss (not in a replay, which has no user)."""
        if isinstance(event, GuardEvent):
            self.last_guard = event
        if not self.controls.live:
            return
        if isinstance(event, Notice):
            self.notify(event.message, severity=NOTICE_SEVERITY.get(event.level, "information"), timeout=5)
        elif isinstance(event, ModelLoadFailed):
            self.notify(one_line(event.error, 160), title=f"cannot load {event.model}", severity="error",
                        timeout=6)
        elif isinstance(event, WorkerExited):
            self.notify(f"worker exited: {event.description}", severity="error", timeout=8)
        elif isinstance(event, GuardEvent):
            if event.action == GuardAction.CLEANED:
                self.notify(f"cleanup freed {size(event.freed_bytes or 0)}", timeout=4)
            elif event.action in (GuardAction.CLEANUP, GuardAction.ABORT):
                self.notify(f"memory guard {event.action}: {event.reason}", severity="warning", timeout=8)
        elif isinstance(event, SessionFinished) and event.stopped:
            self.run_state = RunState.STOPPING if self.stopping else RunState.DONE

    def on_tokens_streamed(self, message: TokensStreamed) -> None:
        self._stream = (message.case_id, message.text)
        self.refresh_output()

    def on_memory_sampled(self, message: MemorySampled) -> None:
        self.view.apply(message.sample)
        self.memory = message.sample
        self.history = message.history
        self.gpu_history = message.gpu_history
        self.power_history = message.power_history
        self.guard_level = message.sample.level

    # ------------------------------------------------------------------ drawing from the view

    def refresh_view(self) -> None:
        """Redraw the queue, header and summary from the session view."""
        view = self.view
        now = self.clock()
        self.table.sync([view.cases[cid] for cid in view.visible(self.filter_text)], now)
        self._update_queue_title()
        self.suite = view.suite
        self.backend = view.backend_device()
        self.counts = tuple(view.counts().items())
        self.guard_level = view.guard_level
        self.thresholds = view.thresholds
        self.budget_source = view.budget_source
        self.run_state = self._run_state()
        self._tick_elapsed(now)
        self.summary_rows = tuple(self._summary_row(summary) for summary in view.summaries())

    def _summary_row(self, summary: ModelSummary) -> SummaryRow:
        model = self.view.models.get(summary.model)
        passed, failed, crashed, aborted, skipped = (summary.counts.get(k, 0) for k in RESULT_STATUSES)
        return SummaryRow(summary.model, model.state if model else ModelState.WAITING,
                          (passed, failed, crashed, aborted, skipped), summary.mean_total_s, summary.mean_gen_tps,
                          summary.peak_memory_bytes, model.trust_remote_code if model else False, summary.accuracy,
                          summary.mean_j_per_token)

    def _update_queue_title(self) -> None:
        shown, total = len(self.view.visible(self.filter_text)), len(self.view.order)
        title = f"queue · {total} cases"
        if self.filter_text:
            title = f"queue · filter “{self.filter_text}”: {shown} of {total}"
        self.table.border_title = title

    def _run_state(self) -> RunState:
        view = self.view
        if self.stopping:
            return RunState.STOPPING
        if view.paused:
            return RunState.PAUSING if view.running else RunState.PAUSED
        if view.running:
            return RunState.RUNNING
        current = view.models.get(view.current_model or "")
        if current is not None and current.state == ModelState.LOADING:
            return RunState.LOADING
        if view.started_at is not None and view.idle:
            return RunState.DONE
        return RunState.STARTING if view.started_at is None else RunState.RUNNING

    def _tick_elapsed(self, now: float) -> None:
        if self.view.started_at is None:
            return
        if self.view.idle:
            self._idle_since = self._idle_since or now
        else:
            self._idle_since = None
        self.elapsed = (self._idle_since or now) - self.view.started_at

    def tick(self) -> None:
        """Once a second: the clock and the running case's time."""
        now = self.clock()
        self._tick_elapsed(now)
        if self.view.running is not None:
            self.table.sync([self.view.cases[cid] for cid in self.view.visible(self.filter_text)], now)

    def refresh_output(self) -> None:
        """Show the selected case (or the running one) in the output pane."""
        self.output = self._output_content()

    def _output_content(self) -> OutputContent | None:
        view = self.view
        selected = self.table.selected_case or view.running
        row = view.cases.get(selected or "")
        if row is None:
            return None
        note = ""
        if row.queued and not row.running and view.running is not None:
            note = f"{row.case_id} is queued; showing the running case"
            row = view.cases[view.running]
        if row.running:
            text = self._stream[1] if self._stream[0] == row.case_id else ""
            # Only the tail that can be on screen: re-wrapping all of a long answer 20 times a
            # second would stall the loop the engine runs on (enter shows everything).
            pane = self.output_pane.size
            tail = max(pane.width * pane.height * 2, 800)
            if len(text) > tail:
                text = "…" + text[-tail:]
            return OutputContent(row.case_id, CaseStatus.RUNNING, row.attempt, text, streaming=True, note=note)
        latest = row.latest
        if latest is None:
            return OutputContent(row.case_id, CaseStatus.PENDING, row.attempt, note="waiting in the queue")
        if row.queued:
            note = f"attempt {row.attempt} is queued; showing attempt {latest.attempt}"
        output = latest.output
        if len(output) > FINISHED_OUTPUT_CHARS:
            output = output[:FINISHED_OUTPUT_CHARS] + f"… ({len(output)} characters: enter shows all)"
        return OutputContent(row.case_id, latest.status, latest.attempt, output, latest.error,
                             metric_pairs(latest.metrics), note=note)

    @on(CaseTable.CaseHighlighted)
    def _case_highlighted(self, message: CaseTable.CaseHighlighted) -> None:
        if message.by_user:
            self.table.following = message.case_id == self.view.running
        self.refresh_output()

    @on(DataTable.RowSelected, "#queue")
    def _row_selected(self) -> None:
        self.action_details()

    def validate_filter_text(self, text: str) -> str:
        return " ".join(text.split())

    def watch_filter_text(self) -> None:
        if self.is_mounted:
            self.refresh_view()
            self.refresh_output()

    def watch_stopping(self, stopping: bool) -> None:
        if stopping:
            self.run_state = RunState.STOPPING

    # ------------------------------------------------------------------ actions

    def _engine(self) -> Controls | None:
        if not self.controls.live:
            self.notify("this is a replay: there is no engine to act on", severity="warning")
            return None
        return self.controls

    def action_details(self) -> None:
        """Show the selected case in full."""
        row = self.view.cases.get(self.table.selected_case or "")
        if row is not None:
            streamed = self._stream[1] if self._stream[0] == row.case_id else ""
            model = self.view.models.get(row.model)
            trust = model.trust_remote_code if model is not None else False
            self.app.push_screen(CaseDetailScreen(row, streamed, trust_remote_code=trust))

    def action_rerun_selected(self) -> None:
        """Queue a new attempt of the selected case."""
        controls = self._engine()
        case_id = self.table.selected_case
        if controls is None or case_id is None:
            return
        row = self.view.cases[case_id]
        if row.running or row.queued:
            self.notify(f"{case_id} is already {'running' if row.running else 'queued'}", severity="warning", timeout=3)
            return
        if controls.rerun([case_id]):
            self.notify(f"rerun queued: {case_id} (attempt {self.view.cases[case_id].next_attempt})", timeout=3)

    def action_rerun_failed(self) -> None:
        """Queue a new attempt of every failed, crashed and aborted case."""
        controls = self._engine()
        if controls is None:
            return
        queued = controls.rerun_failed()
        if queued:
            plural = "s" if len(queued) > 1 else ""
            self.notify(f"rerun queued: {len(queued)} failed, crashed or aborted case{plural}", timeout=3)
        else:
            self.notify("nothing to rerun: no case failed, crashed or was aborted (or they are queued)", timeout=3)

    def action_toggle_pause(self) -> None:
        """Pause the queue after the running case, or resume it."""
        controls = self._engine()
        if controls is not None:
            paused = controls.toggle_pause()
            self.notify("paused: the running case finishes, then the queue waits" if paused else "resumed", timeout=3)

    def action_abort(self) -> None:
        """Abort the running case."""
        controls = self._engine()
        if controls is None:
            return
        running = controls.abort_current("aborted by the user")
        if running is not None:
            self.notify(f"aborting {running}", timeout=3)
        else:
            self.notify("nothing is running to abort", timeout=3)

    def action_cleanup(self) -> None:
        """Ask the worker to free its caches."""
        controls = self._engine()
        if controls is None:
            return
        if not controls.cleanup_now("requested by the user"):
            self.notify("no worker is running: nothing to clean up", timeout=3)
            return
        self.notify("cleanup requested", timeout=3)

    def action_save(self) -> None:
        """Save the session log and a report beside it, off the UI loop."""
        if self.log_path is None:
            self.notify("this session has no log file", severity="warning")
            return
        self._save(self.log_path)

    @work(exclusive=True, group="save", exit_on_error=False)
    async def _save(self, log_path: Path) -> None:
        try:
            report = await asyncio.to_thread(save_report, log_path)
        except Exception as exc:
            self.notify(f"session log: {log_path}\nreport not written: {exc}", severity="error", timeout=12)
            return
        self.saved_paths = (log_path, report)
        self.notify(f"session log: {log_path}\nreport: {report}", title="saved", timeout=12)

    def action_filter(self) -> None:
        """Ask for the filter words."""
        statuses = [status for status, n in self.view.counts().items() if n]
        self.app.push_screen(FilterScreen(self.filter_text, statuses, list(self.view.models)), self._set_filter)

    def _set_filter(self, text: str | None) -> None:
        if text is not None:
            self.filter_text = text

    def action_help(self) -> None:
        """Show every key."""
        self.app.push_screen(HelpScreen(self.key_help()))

    def key_help(self) -> Sequence[tuple[str, str]]:
        """The keys and what they do, from the bindings' tooltips."""
        keys: list[tuple[str, str]] = [("↑ ↓  j k", "Select a case.")]
        for binding in self.BINDINGS:
            if isinstance(binding, Binding):
                name = {"enter": "enter", "space": "space"}.get(binding.key, binding.key_display or binding.key)
                keys.append((name, binding.tooltip))
        keys.append(("ctrl+q", "Quit at once (the worker is still stopped cleanly)."))
        return keys

    def action_quit_session(self) -> None:
        """Quit; while a case runs, ask first."""
        running = self.view.running
        if self.controls.live and running is not None:
            self.app.push_screen(ConfirmQuitScreen(running), self._confirmed_quit)
        else:
            self.post_message(self.QuitRequested("quit by the user"))

    def _confirmed_quit(self, quit_now: bool | None) -> None:
        if quit_now:
            self.post_message(self.QuitRequested("quit by the user"))

    # ------------------------------------------------------------------ replay (snapshots)

    def replay(self, events: Sequence[Event]) -> None:
        """Feed recorded events through the bridge at once (deterministic drawing, no engine)."""
        for event in events:
            self.bridge(event)
        self.bridge.flush()
