"""A scored session in the dashboard: a saved log with dataset cases (and a judge) replayed through the
dashboard shows the primary score in the models table, each case's score in the queue, and the
references and every metric in the case details. Sessions without scores keep their snapshots."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from textual.pilot import Pilot
from textual.widgets import Static

from tests.fixtures.scored_log import ANSWERS, answer_results, judge_result, session_events, write_log
from tests.tui.test_snapshots import settle
from vlmtui.engine.events import (
    CaseFinished,
    CaseResult,
    CaseStarted,
    Event,
    SessionFinished,
    SessionStarted,
)
from vlmtui.reports.records import load_log
from vlmtui.ui.tui.app import VlmApp
from vlmtui.ui.tui.screens.case_detail import CaseDetailScreen
from vlmtui.ui.tui.widgets.case_table import CaseTable
from vlmtui.ui.tui.widgets.summary import ModelSummaryTable

RESULT_FIELDS = {f.name for f in dataclasses.fields(CaseResult)}


def replayed_log(path: Path) -> tuple[list[Event], float]:
    """A saved session log as the events the scheduler emitted for it (what resume reads back, replayed)."""
    data = load_log(path)
    start = data.starts[0]
    events: list[Event] = [SessionStarted(start.session_id, start.suite, start.suite_path, dict(start.info),
                                          list(start.line["cases"]), t=start.t or 0.0)]
    for result in data.results:
        live = CaseResult(**{k: v for k, v in result.line.items() if k in RESULT_FIELDS})
        events += [CaseStarted(live.case_id, live.attempt, live.model, t=live.started_at), CaseFinished(live)]
    end = data.ends[-1]
    events.append(SessionFinished(end.counts, end.stopped, t=end.t or 0.0))
    return events, (end.t or 0.0) + 1


def scored_log(tmp_path: Path) -> Path:
    """Both models on the six sample questions; qwen then judges smol's verbose "It is yellow." as right."""
    results = answer_results(ANSWERS)
    verbose = next(r for r in results if r.case_id == "smol/vqa-sample/4001")
    results.append(judge_result("qwen", verbose, 1.0, results[-1].ended_at + 1))
    return write_log(tmp_path / "scored.jsonl", session_events(results))


def text_of(renderable: RenderableType, width: int = 160) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


class TestScoredSession:
    """A finished session of a VQA-format dataset, replayed from its log."""

    async def test_models_table_queue_and_details_show_scores(self, tmp_path: Path) -> None:
        events, now = replayed_log(scored_log(tmp_path))
        app = VlmApp(replay=events, clock=lambda: now, fps=15)
        async with app.run_test(size=(140, 40)) as pilot:
            await settle(pilot)
            summary = app.screen.query_one("#summary", ModelSummaryTable)
            accuracy = {row.model: row.accuracy for row in summary.rows}
            assert accuracy["smol"] is not None and accuracy["smol"].metric == "vqa"
            assert round(accuracy["smol"].summary.mean or 0, 4) == round(4.6 / 6, 4), "the judge's grade is not vqa"
            assert accuracy["qwen"] is not None and accuracy["qwen"].summary.n == 6, "judge cases are not qwen's"
            drawn = text_of(summary.render(), 140)
            assert "vqa" in drawn.splitlines()[0] and "0.77" in drawn and "0.60" in drawn

            table = app.screen.query_one("#queue", CaseTable)
            assert [str(column.label) for column in table.columns.values()][-1] == "score"
            assert str(table.get_cell("smol/vqa-sample/2000", "score")) == "0.60"
            assert str(table.get_cell("qwen/vqa-sample/1001", "score")) == "0.00"
            assert str(table.get_cell("qwen/judge/smol/vqa-sample/4001", "score")) == "1.00"

            await _open_details(pilot, table, "smol/vqa-sample/4001")
            detail = text_of(app.screen.query_one("#detail-body", Static).content)  # type: ignore[arg-type]
            assert "answer" in detail and "It is yellow." in detail
            assert "scores (vqa-sample · item 4001 · other)" in detail
            assert '"yellow" (10 of 10)' in detail
            rows = [line.split(maxsplit=2) for line in detail.splitlines() if line.strip()]
            assert ["vqa", "0.00", "primary: wrong at pass_at 0.5"] in rows
            assert ["relaxed", "1.00"] in rows and ["judge:qwen", "1.00"] in rows

    async def test_an_unscored_answer_says_why(self, tmp_path: Path) -> None:
        results = answer_results({"smol": ANSWERS["smol"]}, references=False)
        events = session_events(results)
        app = VlmApp(replay=events, clock=lambda: results[-1].ended_at + 5, fps=15)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            table = app.screen.query_one("#queue", CaseTable)
            assert str(table.get_cell("smol/vqa-sample/1000", "score")) == "—"
            (row,) = app.screen.query_one("#summary", ModelSummaryTable).rows
            assert row.accuracy is not None and row.accuracy.summary.n == 0 and row.accuracy.text == "—"
            await _open_details(pilot, table, "smol/vqa-sample/1000")
            detail = text_of(app.screen.query_one("#detail-body", Static).content)  # type: ignore[arg-type]
            assert "references (none)" in detail and "no reference answers" in detail


async def _open_details(pilot: Pilot[Any], table: CaseTable, case_id: str) -> None:
    table.select_case(case_id)
    await pilot.pause()
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(pilot.app.screen, CaseDetailScreen)
