"""What the dashboard shows, worked out from the session view and the events: no widgets in here."""

from __future__ import annotations

from dataclasses import dataclass

from textual.notifications import SeverityLevel

from vlmtui.engine.events import Event, GuardEvent, ModelLoadFailed, Notice, WorkerExited
from vlmtui.reports.summary import ModelSummary
from vlmtui.reports.turns import read_turns
from vlmtui.text import one_line, plural
from vlmtui.ui.tui.conversation import transcript
from vlmtui.ui.tui.format import size
from vlmtui.ui.tui.state import SessionView
from vlmtui.ui.tui.widgets.output import OutputContent, metric_pairs
from vlmtui.ui.tui.widgets.summary import SummaryRow
from vlmtui.vocab import RESULT_STATUSES, CaseStatus, GuardAction, ModelState, RunState

FINISHED_OUTPUT_CHARS = 6000
"""How much of a finished case's output the pane shows (the details dialog shows it all)."""
NOTICE_SEVERITY: dict[str, SeverityLevel] = {"error": "error", "warning": "warning"}
"""Engine notice levels as Textual notification severities (anything else is ``information``)."""


@dataclass(frozen=True)
class Announcement:
    """A notification the user should not miss."""

    message: str
    severity: SeverityLevel = "information"
    timeout: float = 4
    title: str = ""


def announcement(event: Event) -> Announcement | None:
    """What to tell the user about an engine event, if anything."""
    if isinstance(event, Notice):
        return Announcement(event.message, NOTICE_SEVERITY.get(event.level, "information"), 5)
    if isinstance(event, ModelLoadFailed):
        return Announcement(one_line(event.error, 160), "error", 6, f"cannot load {event.model}")
    if isinstance(event, WorkerExited):
        return Announcement(f"worker exited: {event.description}", "error", 8)
    if isinstance(event, GuardEvent):
        if event.action == GuardAction.CLEANED:
            return Announcement(f"cleanup freed {size(event.freed_bytes or 0)}", timeout=4)
        if event.action in (GuardAction.CLEANUP, GuardAction.ABORT):
            return Announcement(f"memory guard {event.action}: {event.reason}", "warning", 8)
    return None


class Stopwatch:
    """The session's elapsed time, which stops while the queue is idle."""

    def __init__(self) -> None:
        self._idle_since: float | None = None

    def elapsed(self, view: SessionView, now: float) -> float | None:
        """Seconds since the session started, not counting an idle spell now under way."""
        if view.started_at is None:
            return None
        if view.idle:
            self._idle_since = self._idle_since or now
        else:
            self._idle_since = None
        return (self._idle_since or now) - view.started_at


def output_content(view: SessionView, selected: str | None, stream: tuple[str, str],
                   pane_cells: int) -> OutputContent | None:
    """The selected case (or the running one) for the output pane; ``stream`` is the running case's text."""
    selected = selected or view.running
    row = view.cases.get(selected or "")
    if row is None:
        return None
    note = ""
    if row.queued and not row.running and view.running is not None:
        note = f"{row.case_id} is queued; showing the running case"
        row = view.cases[view.running]
    if row.running:
        text = stream[1] if stream[0] == row.case_id else ""
        # Only the tail that can be on screen: re-wrapping all of a long answer 20 times a
        # second would stall the loop the engine runs on (enter shows everything).
        # The cut moves a whole ``tail`` at a time: cut afresh for each token, every wrapped line would shift
        # and the pane would send all its lines again instead of the last one (issue 17).
        tail = max(pane_cells * 2, 800)
        if len(text) > 2 * tail:
            text = "…" + text[(len(text) // tail - 1) * tail:]
        return OutputContent(row.case_id, CaseStatus.RUNNING, row.attempt, text, streaming=True, note=note)
    latest = row.latest
    if latest is None:
        return OutputContent(row.case_id, CaseStatus.PENDING, row.attempt, note="waiting in the queue")
    if row.queued:
        note = f"attempt {row.attempt} is queued; showing attempt {latest.attempt}"
    # A conversation shows every turn's prompt above its answer, as it streamed.
    output = transcript(read_turns(latest.turns), row.turn_total) if latest.turns else latest.output
    if len(output) > FINISHED_OUTPUT_CHARS:
        output = output[:FINISHED_OUTPUT_CHARS] + f"… ({len(output)} characters: enter shows all)"
    return OutputContent(row.case_id, latest.status, latest.attempt, output, latest.error,
                         metric_pairs(latest.metrics), note=note)


def run_state(view: SessionView, *, stopping: bool) -> RunState:
    """What the session is doing, for the header."""
    if stopping:
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


def summary_row(view: SessionView, summary: ModelSummary) -> SummaryRow:
    """One model's row of the models table."""
    model = view.models.get(summary.model)
    passed, failed, crashed, aborted, skipped = (summary.counts.get(k, 0) for k in RESULT_STATUSES)
    return SummaryRow(summary.model, model.state if model else ModelState.WAITING,
                      (passed, failed, crashed, aborted, skipped), summary.mean_total_s, summary.mean_gen_tps,
                      summary.peak_memory_bytes, model.trust_remote_code if model else False, summary.accuracy,
                      summary.mean_j_per_token, model.download if model else "", summary.peak_kind)


def queue_title(view: SessionView, filter_text: str) -> str:
    """The queue's border title: how many cases, and how many the filter shows."""
    shown, total = len(view.visible(filter_text)), len(view.order)
    if filter_text:
        return f"queue · filter “{filter_text}”: {shown} of {total}"
    return f"queue · {plural(total, 'case')}"
