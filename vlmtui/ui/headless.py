"""The plain mode: a Rich progress bar, one line per finished case (with its score when it has one), and a
per-model summary (with the primary score when some case has one)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vlmtui.engine.events import (
    CaseFinished,
    CaseQueued,
    CaseStarted,
    Event,
    GuardEvent,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    Notice,
    SessionFinished,
    SessionStarted,
)
from vlmtui.reports.case_scores import value_text
from vlmtui.reports.records import CaseEnd
from vlmtui.reports.summary import ModelSummary, summarise
from vlmtui.reports.table import to_rich
from vlmtui.reports.tables import WIDE_ENOUGH_FOR_INTERVALS, compact_summary_table
from vlmtui.text import excerpt
from vlmtui.units import format_bytes
from vlmtui.vocab import GuardAction, RunState, counts_text, status_look


def summary_table(summaries: Sequence[ModelSummary], title: str = "Per-model summary", *,
                  width: int = WIDE_ENOUGH_FOR_INTERVALS) -> Table:
    """The per-model summary as a Rich table: counts, mean time, mean gen tok/s, peak memory, and the primary
    score when some case has one, its interval too on a terminal ``width`` that has room (fits 80 columns)."""
    return to_rich(compact_summary_table(summaries, title, intervals=width >= WIDE_ENOUGH_FOR_INTERVALS))


class HeadlessPrinter:
    """A scheduler subscriber that prints progress to the terminal (or a pipe)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[current]}"), console=self.console, transient=True,
        )
        self._task = self.progress.add_task("cases", total=0, current="")
        self._results: dict[str, CaseEnd] = {}

    def __call__(self, event: Event) -> None:
        out = self.progress.console
        if isinstance(event, SessionStarted):
            total = sum(1 for c in event.cases if not c.get("warmup"))
            self.progress.update(self._task, total=total, description=event.suite)
            self.progress.start()
            out.print(f"[bold]vlmtui[/] {escape(event.suite)}: {total} cases · budget "
                      f"{format_bytes(event.info.get('budget_bytes'))} ({event.info.get('budget_source')})")
        elif isinstance(event, CaseQueued):
            self.progress.update(self._task, total=(self.progress.tasks[0].total or 0) + 1)
        elif isinstance(event, CaseStarted):
            self.progress.update(self._task, current=escape(event.case_id))
        elif isinstance(event, ModelLoading):
            trust = " [yellow](trust_remote_code)[/]" if event.trust_remote_code else ""
            out.print(f"  loading [bold]{escape(event.model)}[/] ({event.backend}: {escape(event.path)}){trust}")
        elif isinstance(event, ModelLoaded):
            out.print(f"  loaded {escape(event.model)} on {escape(event.device)} {event.dtype} "
                      f"in {event.load_s:.2f} s")
            for note in event.notes:
                out.print(f"  [yellow]note:[/] {escape(note)}")
        elif isinstance(event, ModelLoadFailed):
            out.print(f"  [red]cannot load {escape(event.model)}:[/] {escape(event.error)}")
        elif isinstance(event, CaseFinished):
            self._case_line(event)
        elif isinstance(event, GuardEvent):
            if event.action != GuardAction.NONE:
                out.print(f"  [magenta]guard {event.action}[/] ({event.level}): {escape(event.reason)}")
        elif isinstance(event, Notice):
            style = {"error": "red", "warning": "yellow"}.get(event.level, "dim")
            out.print(f"  [{style}]{escape(event.message)}[/]")
        elif isinstance(event, SessionFinished):
            self.progress.stop()
            self.console.print(summary_table(summarise(self._results.values()), width=self.console.width))
            state = RunState.STOPPED if event.stopped else RunState.DONE
            self.console.print(f"{state}: {counts_text(event.counts, '')}")

    def _case_line(self, event: CaseFinished) -> None:
        result = event.result
        record = CaseEnd.from_result(result)
        self._results[result.case_id] = record
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
                stats += f" {format_bytes(m['peak_memory_bytes'])}"
        scores = record.scoring
        if scores.scored:
            stats += f" {scores.primary} {value_text(scores.primary_value)}"
        attempt = f" (attempt {result.attempt})" if result.attempt > 1 else ""
        warm = " [dim](warm-up)[/]" if result.warmup else ""
        tail = excerpt(result.error or result.output, 100)
        self.progress.console.print(
            f"[{look.style}]{look.mark} {result.status:<7}[/] {escape(result.case_id)}{attempt}{warm}{stats}"
            f" [dim]│[/] {escape(tail)}", overflow="fold",
        )
