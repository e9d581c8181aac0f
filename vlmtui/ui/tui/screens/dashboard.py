"""The one screen: header, queue, output, memory, per-model summary and footer, driven by the keyboard."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable

from vlmtui.engine.controls import Controls
from vlmtui.engine.events import (
    CaseFinished,
    CaseStarted,
    Event,
    GuardEvent,
    SessionFinished,
)
from vlmtui.ui.tui.actions import (
    Said,
    abort_running,
    cleanup_now,
    rerun_failed,
    rerun_selected,
    save_session,
    toggle_pause,
)
from vlmtui.ui.tui.bridge import EngineBridge
from vlmtui.ui.tui.keys import DASHBOARD_KEYS, FOOTER_PRIORITY, FOOTER_PRIORITY_RUNNING
from vlmtui.ui.tui.messages import EngineEvent, MemorySampled, TokensStreamed
from vlmtui.ui.tui.presenter import (
    Stopwatch,
    announcement,
    output_content,
    queue_title,
    run_state,
    summary_row,
)
from vlmtui.ui.tui.screens.panes import DashboardPanes, crowded_before_layout
from vlmtui.ui.tui.state import SessionView
from vlmtui.ui.tui.widgets.case_table import CaseTable
from vlmtui.ui.tui.widgets.header import SessionHeader
from vlmtui.ui.tui.widgets.key_bar import KeyBar
from vlmtui.ui.tui.widgets.memory import MemoryPanel
from vlmtui.ui.tui.widgets.output import OutputContent, OutputPane
from vlmtui.ui.tui.widgets.summary import ModelSummaryTable, SummaryRow
from vlmtui.vocab import RunState


class DashboardScreen(DashboardPanes):
    """Everything about the session on one screen; every action is a key."""

    BINDINGS: ClassVar[list[BindingType]] = DASHBOARD_KEYS

    @dataclass
    class QuitRequested(Message):
        """The user asked to quit (and confirmed, if a case was running)."""

        reason: str

    # The screen draws nothing of its own: its reactives feed the widgets bound to them, which redraw
    # themselves. With the default repaint=True each streamed token repainted the whole screen (issue 17).
    run_state: reactive[str] = reactive(RunState.STARTING, repaint=False)
    """What the session is doing (a ``vocab.RunState``)."""
    output: reactive[OutputContent | None] = reactive(None, repaint=False)
    """What the output pane shows."""
    summary_rows: reactive[tuple[SummaryRow, ...]] = reactive((), repaint=False)
    """The per-model summary."""
    filter_text: reactive[str] = reactive("", repaint=False)
    """Words every shown case must match (status, model or id); empty shows all."""
    stopping: reactive[bool] = reactive(False, repaint=False)
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
        self._stopwatch = Stopwatch()

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        screen = DashboardScreen
        # Where the models table goes is known before the first layout (fit_panes checks again on each
        # resize): decided after it, the class change restyled, laid out and drew everything once more.
        self.set_class(crowded_before_layout(self.app.size.height, len(self.view.models)), "-crowded")
        # The header's figures are set on it directly (one widget redrawn); the run state is the screen's too.
        yield SessionHeader(id="header").data_bind(screen.run_state)
        yield CaseTable(id="queue")
        with Horizontal(id="lower"):
            yield OutputPane(id="output").data_bind(content=screen.output)
            # Set directly, not bound to the screen: a memory sample redraws this panel alone.
            yield MemoryPanel(id="memory")
        yield ModelSummaryTable(id="summary").data_bind(rows=screen.summary_rows)
        yield KeyBar(DASHBOARD_KEYS, FOOTER_PRIORITY, FOOTER_PRIORITY_RUNNING, id="keys").data_bind(screen.run_state)

    @property
    def header(self) -> SessionHeader:
        """The session's header line."""
        return self.query_one("#header", SessionHeader)

    @property
    def memory_panel(self) -> MemoryPanel:
        """The memory gauge."""
        return self.query_one("#memory", MemoryPanel)

    @property
    def table(self) -> CaseTable:
        """The queue."""
        return self.query_one("#queue", CaseTable)

    @property
    def output_pane(self) -> OutputPane:
        """The output pane."""
        return self.query_one("#output", OutputPane)

    def on_mount(self) -> None:
        self.table.focus()
        self.refresh_view()
        self.set_interval(1.0, self.tick, name="clock")
        self.run_worker(self.bridge.pump(), name="ui-throttle", group="bridge", exit_on_error=False)

    def on_resize(self) -> None:
        self.call_after_refresh(self.fit_panes)
        self.call_after_refresh(self.refresh_view)

    # ------------------------------------------------------------------ engine messages

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        changed = self.view.apply(event)
        self.refresh_view()
        if isinstance(event, CaseStarted) and self.table.following:
            self.table.select_case(event.case_id)
        self.after_event(isinstance(event, CaseFinished))
        if changed is not None or isinstance(event, CaseFinished):
            self.refresh_output()
        self._announce(event)

    def _announce(self, event: Event) -> None:
        """A notification for what the user should not miss (not in a replay, which has no user)."""
        if isinstance(event, GuardEvent):
            self.memory_panel.last_guard = event
        if not self.controls.live:
            return
        if isinstance(event, SessionFinished) and event.stopped:
            self.run_state = RunState.STOPPING if self.stopping else RunState.DONE
        said = announcement(event)
        if said is not None:
            self.notify(said.message, title=said.title, severity=said.severity, timeout=said.timeout)

    def on_tokens_streamed(self, message: TokensStreamed) -> None:
        self._stream = (message.case_id, message.text)
        self.refresh_output()

    def on_memory_sampled(self, message: MemorySampled) -> None:
        self.view.apply(message.sample)
        panel = self.memory_panel
        panel.show(message.sample, message.history, message.history_times, message.gpu_history,
                   message.power_history)
        self.header.guard_level = message.sample.level

    # ------------------------------------------------------------------ drawing from the view

    def refresh_view(self) -> None:
        """Redraw the queue, header and summary from the session view."""
        view = self.view
        now = self.clock()
        self.table.sync([view.cases[cid] for cid in view.visible(self.filter_text)], now)
        title = queue_title(view, self.filter_text)
        if self.table.border_title != title:  # setting it, even unchanged, redraws the whole queue
            self.table.border_title = title
        header = self.header
        header.suite, header.backend, header.guard_level = view.suite, view.backend_device(), view.guard_level
        header.counts = tuple(view.counts().items())
        self.memory_panel.thresholds, self.memory_panel.budget_source = view.thresholds, view.budget_source
        self.run_state = run_state(view, stopping=self.stopping)
        # A finished run's history stays as it ended: nothing in it moves, so nothing is sent (issue 17).
        self.memory_panel.frozen = self.run_state in (RunState.DONE, RunState.STOPPED)
        self._tick_elapsed(now)
        self.summary_rows = tuple(summary_row(view, summary) for summary in view.summaries())

    def _tick_elapsed(self, now: float) -> None:
        elapsed = self._stopwatch.elapsed(self.view, now)
        if elapsed is not None:
            self.header.elapsed = elapsed

    def tick(self) -> None:
        """Once a second: the clock and the running case's time."""
        now = self.clock()
        self._tick_elapsed(now)
        if self.view.running is not None:
            self.table.sync([self.view.cases[cid] for cid in self.view.visible(self.filter_text)], now)

    def refresh_output(self) -> None:
        """Show the selected case (or the running one) in the output pane."""
        pane = self.output_pane.size
        self.output = output_content(self.view, self.table.selected_case, self._stream, pane.width * pane.height)

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

    def _act(self, act: Callable[[Controls], Said]) -> None:
        """Run one control through the engine and say what came of it (a replay has no engine)."""
        if not self.controls.live:
            self.notify("this is a replay: there is no engine to act on", severity="warning")
            return
        said = act(self.controls)
        if said is not None:
            self.notify(said[0], severity=said[1], timeout=3)

    def action_rerun_selected(self) -> None:
        """Queue a new attempt of the selected case."""
        self._act(lambda controls: rerun_selected(controls, self.view, self.table.selected_case))

    def action_rerun_failed(self) -> None:
        """Queue a new attempt of every failed, crashed and aborted case."""
        self._act(rerun_failed)

    def action_toggle_pause(self) -> None:
        """Pause the queue after the running case, or resume it."""
        self._act(toggle_pause)

    def action_abort(self) -> None:
        """Abort the running case."""
        self._act(abort_running)

    def action_cleanup(self) -> None:
        """Ask the worker to free its caches."""
        self._act(cleanup_now)

    def action_save(self) -> None:
        """Save the session log and a report beside it, off the UI loop."""
        if self.log_path is None:
            self.notify("this session has no log file", severity="warning")
            return
        self.run_worker(self._save(self.log_path), exclusive=True, group="save", exit_on_error=False)

    async def _save(self, log_path: Path) -> None:
        saved, said = await save_session(log_path)
        self.saved_paths = saved or self.saved_paths
        self.notify(said.message, title=said.title, severity=said.severity, timeout=said.timeout)

    def action_filter(self) -> None:
        """Ask for the filter words."""
        statuses = [status for status, n in self.view.counts().items() if n]
        from vlmtui.ui.tui.screens.filter import FilterScreen  # (imported on first use: not in the first frame)

        self.app.push_screen(FilterScreen(self.filter_text, statuses, list(self.view.models)), self._set_filter)

    def _set_filter(self, text: str | None) -> None:
        if text is not None:
            self.filter_text = text

    def action_quit_session(self) -> None:
        """Quit; while a case runs or a model loads, ask first."""
        from vlmtui.ui.tui.screens.confirm_quit import ConfirmQuitScreen, quit_question  # (on first use)

        question = quit_question(self.view)
        if self.controls.live and question is not None:
            self.app.push_screen(ConfirmQuitScreen(question), self._confirmed_quit)
        else:
            self._confirmed_quit(True)

    def _confirmed_quit(self, quit_now: bool | None) -> None:
        if quit_now:
            self.post_message(self.QuitRequested("quit by the user"))

    def replay(self, events: Sequence[Event]) -> None:
        """Feed recorded events through the bridge at once (deterministic drawing for snapshots, no engine)."""
        for event in events:
            self.bridge(event)
        self.bridge.flush()
