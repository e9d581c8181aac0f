"""The plain mode: a Rich progress bar, one line per finished case (with its score when it has one), and a
per-model summary (with the primary score when some case has one)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from vlmtui.engine.events import (
    CaseFinished,
    CaseQueued,
    CaseStarted,
    DownloadFinished,
    DownloadProgress,
    Event,
    GuardEvent,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    Notice,
    SessionFinished,
    SessionStarted,
)
from vlmtui.peak_kind import format_peak
from vlmtui.reports.case_scores import CaseScores, joined_scores, value_text
from vlmtui.reports.records import CaseEnd
from vlmtui.reports.summary import ModelSummary, summarise
from vlmtui.reports.table import to_rich
from vlmtui.reports.tables import WIDE_ENOUGH_FOR_INTERVALS, compact_summary_table
from vlmtui.reports.turns import turn_line
from vlmtui.scoring.metrics import parse_metric
from vlmtui.text import excerpt, one_line, plural
from vlmtui.ui.download_text import download_line, download_status
from vlmtui.units import format_bytes
from vlmtui.vocab import GuardAction, RunState, counts_text, status_look


def summary_table(summaries: Sequence[ModelSummary], title: str = "Per-model summary", *,
                  width: int = WIDE_ENOUGH_FOR_INTERVALS) -> Table:
    """The per-model summary as a Rich table: counts, mean time, mean gen tok/s, peak memory, and the primary
    score when some case has one, its interval too on a terminal ``width`` that has room (fits 80 columns)."""
    return to_rich(compact_summary_table(summaries, title, intervals=width >= WIDE_ENOUGH_FOR_INTERVALS))


class HeadlessPrinter:
    """A scheduler subscriber that prints progress to the terminal (or a pipe).

    On a terminal: a progress bar and lines folded to its width. To a pipe or a file: no bar, and each line
    whole however long (a script reads one record per line; Rich would wrap at 80 columns otherwise).
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.live = self.console.is_terminal
        """A terminal: draw the progress bar and fold long lines."""
        if not self.live and console is None:
            # Tables sized for a wide paste, never wrapped to the 80 columns Rich assumes for a pipe.
            self.console = Console(highlight=False, width=PIPE_WIDTH, soft_wrap=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[current]}"), console=self.console,
            transient=True,
        )
        self._task = self.progress.add_task("cases", total=0, current="")
        self._results: dict[str, CaseEnd] = {}
        self._judges: dict[str, list[str]] = {}
        """The judge cases that graded each answer, by the answer's case id."""

    def _print(self, text: str) -> None:
        self.console.print(text, soft_wrap=not self.live, overflow="fold")

    def __call__(self, event: Event) -> None:
        out = self._print
        if isinstance(event, SessionStarted):
            total = sum(1 for c in event.cases if not c.get("warmup"))
            self.progress.update(self._task, total=total, description=event.suite)
            if self.live:
                self.progress.start()
            out(f"[bold]vlmtui[/] {escape(event.suite)}: {plural(total, 'case')} · budget "
                f"{format_bytes(event.info.get('budget_bytes'))} ({event.info.get('budget_source')})")
        elif isinstance(event, CaseQueued):
            self.progress.update(self._task, total=(self.progress.tasks[0].total or 0) + 1)
        elif isinstance(event, CaseStarted):
            self.progress.update(self._task, current=escape(event.case_id))
        elif isinstance(event, ModelLoading):
            trust = " [yellow](trust_remote_code)[/]" if event.trust_remote_code else ""
            out(f"  loading [bold]{escape(event.model)}[/] ({event.backend}: {escape(event.path)}){trust}")
        elif isinstance(event, ModelLoaded):
            out(f"  loaded {escape(event.model)} on {escape(event.device)} {event.dtype} in {event.load_s:.2f} s")
            for note in event.notes:
                out(f"  [yellow]note:[/] {escape(note)}")
        elif isinstance(event, ModelLoadFailed):
            out(f"  [red]cannot load {escape(event.model)}:[/] {escape(event.error)}")
        elif isinstance(event, CaseFinished):
            self._case_line(event)
        elif isinstance(event, GuardEvent):
            if event.action != GuardAction.NONE:
                out(f"  [magenta]guard {event.action}[/] ({event.level}): {escape(event.reason)}")
        elif isinstance(event, DownloadProgress):  # a hub download before a load: bytes, rate, ETA on the bar
            self.progress.update(self._task, current=escape(download_status(event)))
        elif isinstance(event, DownloadFinished):
            self.progress.update(self._task, current="")
            if not event.error:  # a failed one is said once, by the model_load_failed that follows it
                out(download_line(event))
        elif isinstance(event, Notice):
            style = {"error": "red", "warning": "yellow"}.get(event.level, "dim")
            out(f"  [{style}]{escape(event.message)}[/]")
        elif isinstance(event, SessionFinished):
            if self.live:
                self.progress.stop()
            self.console.print(summary_table(summarise(self._results.values()), width=self.console.width))
            state = RunState.STOPPED if event.stopped else RunState.DONE
            self.console.print(f"{state}: {counts_text(event.counts, '')}")

    def _case_line(self, event: CaseFinished) -> None:
        result = event.result
        record = CaseEnd.from_result(result)
        earlier = self._results.get(result.case_id)
        self._results[result.case_id] = record
        if record.judging is not None:
            judges = self._judges.setdefault(record.judging.case_id, [])
            judges += [] if result.case_id in judges else [result.case_id]
        if earlier is not None and earlier.attempt == record.attempt:  # the same answer passed or failed by its grade
            self._grade_line(earlier, record)
            return
        if not result.warmup:
            self.progress.advance(self._task)
        look = status_look(result.status)
        m = result.metrics
        stats = ""
        if m.get("total_s") is not None:
            stats = f" {m['total_s']:.2f} s"
            if m.get("gen_tps"):
                stats += f" {m['gen_tps']:.1f} tok/s"
            if m.get("peak_memory_bytes"):
                stats += f" {format_peak(m['peak_memory_bytes'], m.get('peak_kind'))}"  # what it measured, too
        scores = record.scoring
        if scores.scored:
            stats += f" {scores.primary} {_awaiting(scores) or value_text(scores.primary_value)}"
        attempt = f" (attempt {result.attempt})" if result.attempt > 1 else ""
        warm = " [dim](warm-up)[/]" if result.warmup else ""
        tail = excerpt(result.error or result.output, 100)
        self._print(f"[{look.style}]{look.mark} {result.status:<7}[/] {escape(result.case_id)}{attempt}{warm}{stats}"
                    f" [dim]│[/] {escape(tail)}")
        for turn in record.turns:  # a conversation: one line per turn under its case, with its answer's start
            answer = f" [dim]│[/] {escape(excerpt(turn.output, 80))}" if turn.output else ""
            self._print(f"    {escape(turn_line(turn, len(record.turns)))}{answer}")

    def _grade_line(self, before: CaseEnd, after: CaseEnd) -> None:
        """A judged answer passed or failed by the grade that just came in: one line under the judge's, marked as
        the grade, not the answer's case line again (its time, speed and answer were printed when it ended)."""
        look = status_look(after.status)
        change = after.status if before.status == after.status else f"{before.status} → {after.status}"
        judges = [self._results[judge_id] for judge_id in self._judges.get(after.case_id, ())]
        scores = joined_scores([after, *judges])[after.case_id]
        why = after.error or f"{scores.primary} {value_text(scores.primary_value)}"
        self._print(f"  [{look.style}]{look.mark} graded[/] {escape(after.case_id)}: {change} [dim]│[/] "
                    f"{escape(excerpt(why, 100))}")


def _awaiting(scores: CaseScores) -> str:
    """``awaiting its judge`` for an answer whose primary metric is a judge's grade not given yet, else ``""``."""
    primary = scores.primary
    if primary is None or scores.primary_value is not None or primary in scores.errors:
        return ""
    return "awaiting its judge" if parse_metric(primary).is_judge else ""


class JsonlPrinter:
    """``--format jsonl``: each ended case as one JSON line on ``stream``, exactly the log's ``case_end`` line;
    what a person reads (loads, notices, the counts) goes to ``notes`` (stderr) as plain lines."""

    def __init__(self, stream: TextIO, notes: TextIO) -> None:
        self.stream = stream
        self.notes = notes
        self.session_id = ""

    def _note(self, text: str) -> None:
        self.notes.write(text + "\n")
        self.notes.flush()

    def __call__(self, event: Event) -> None:
        if isinstance(event, SessionStarted):
            self.session_id = event.session_id
        elif isinstance(event, CaseFinished):
            result = event.result
            record = {"event": "case_end", "t": result.ended_at, "session_id": self.session_id, **result.to_dict()}
            self.stream.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            self.stream.flush()
        elif isinstance(event, ModelLoadFailed):
            self._note(f"vlmtui: cannot load {event.model}: {one_line(event.error, 400)}")
        elif isinstance(event, Notice) and event.level in ("error", "warning"):
            self._note(f"vlmtui: {event.level}: {one_line(event.message, 400)}")
        elif isinstance(event, SessionFinished):
            state = RunState.STOPPED if event.stopped else RunState.DONE
            self._note(f"vlmtui: {state}: {counts_text(event.counts, 'no cases')}")


PIPE_WIDTH = 200
"""Columns the summary table may take when stdout is not a terminal."""


