"""The report's tables, each built once and rendered to every format (``table.to_markdown`` and friends)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from vlmtui.reports.accuracy import Accuracy, primary_accuracy
from vlmtui.reports.model import Report, SessionRow
from vlmtui.reports.summary import ModelSummary
from vlmtui.reports.table import MISSING, Cell, Column, Table, format_time
from vlmtui.reports.turns import TURNS_NOTE as TURNS_NOTE
from vlmtui.vocab import RESULT_STATUSES, CaseStatus, counts_text

REPEATS_NOTE = "Mean ± standard deviation over each case's repeats (warm-ups left out)."
NO_GUARD_EVENTS = "None: memory stayed under the warn threshold."
LEADERBOARD_NOTE = ("Primary score: the mean over scored answers, with its 95 % interval (Wilson for 0/1 scores, "
                    "else Student's t) from 10 answers on; best first.")
CASE = Column("case", limit=120)
MODEL = Column("model")


def _numbers(*names: str) -> tuple[Column, ...]:
    return tuple(Column(name, numeric=True) for name in names)


@dataclass(frozen=True)
class Standing:
    """One line of the leaderboard: a model (on one dataset, when the log has several) and what it costs."""

    model: str
    dataset: str | None
    accuracy: Accuracy
    gen_tps: float | None
    load_s: float | None
    peak_memory_bytes: int | None


def standings(report: Report) -> list[Standing]:
    """The scored models, best primary accuracy first; one line per model and dataset if there are several."""
    loads = {load.model: load.load_s for load in report.loads if not load.failed}
    datasets = {case.dataset for s in report.models for case in s.scoring}
    out: list[Standing] = []
    for s in report.models:
        groups = sorted({case.dataset or "" for case in s.scoring}) if len(datasets) > 1 else [None]
        for dataset in groups:
            cases = [c for c in s.scoring if dataset is None or (c.dataset or "") == dataset]
            found = primary_accuracy(cases)
            if found is not None:
                out.append(Standing(s.model, dataset, found, s.mean_gen_tps, loads.get(s.model),
                                    s.peak_memory_bytes))
    return sorted(out, key=lambda row: -1.0 if row.accuracy.summary.mean is None else -row.accuracy.summary.mean)


def leaderboard_table(report: Report) -> Table:
    """Per scored model: primary accuracy with its 95 % interval beside speed, load time and peak memory."""
    rows_in = standings(report)
    by_dataset = any(row.dataset is not None for row in rows_in)
    columns = (MODEL, *((Column("dataset"),) if by_dataset else ()), Column("metric"),
               *_numbers("accuracy (95 % CI)", "n", "gen tok/s", "load s", "peak memory"))
    rows = tuple((
        Cell(r.model), *((Cell(r.dataset or MISSING),) if by_dataset else ()), Cell(r.accuracy.metric),
        Cell(r.accuracy.text, r.accuracy.summary.mean), Cell.count(r.accuracy.summary.n),
        Cell.decimal(r.gen_tps, 1), Cell.decimal(r.load_s), Cell.size(r.peak_memory_bytes),
    ) for r in rows_in)
    return Table(columns, rows, "Leaderboard")


def has_energy(report: Report) -> bool:
    """Whether some case of the log has an energy figure (the energy columns appear only then)."""
    return any(row.metrics.energy_j is not None for row in report.cases)


def _throttled_note(count: int) -> str:
    return f"{count} throttled: tok/s not comparable" if count else ""


def summary_table(report: Report) -> Table:
    """Per model: counts by status (and not run, when some are), time and speed as mean ± std, J/token where
    measured, peak memory."""
    has_not_run, energy = bool(report.not_run), has_energy(report)
    columns = (MODEL, Column("backend"), *_numbers(*RESULT_STATUSES), *(_numbers("not run") if has_not_run else ()),
               *_numbers("total s (mean ± std)", "gen tok/s (mean ± std)"),
               *(_numbers("J/token (mean ± std)", "energy J") if energy else ()), *_numbers("peak memory"))
    rows = tuple((
        Cell(s.model), Cell(s.backend), *(Cell.count(s.counts.get(k, 0)) for k in RESULT_STATUSES),
        *((Cell.count(report.not_run.get(s.model, 0)),) if has_not_run else ()),
        Cell.stat(s.total_stat, 2), replace(Cell.stat(s.gen_tps_stat, 1), note=_throttled_note(s.throttled)),
        *((Cell.stat(s.j_per_token_stat, 3), Cell.decimal(s.energy_j, 1)) if energy else ()),
        Cell.size(s.peak_memory_bytes, s.peak_kind),
    ) for s in report.models)
    return Table(columns, rows, "Per-model summary")


def repeats_table(report: Report) -> Table:
    """Per repeated case: mean ± standard deviation over its repeats."""
    columns = (CASE, MODEL, *_numbers("n", "total s", "TTFT s", "prompt tok/s", "gen tok/s", "peak memory"))
    rows = tuple((
        Cell(r.case_id), Cell(r.model), Cell.count(r.n), Cell.stat(r.total_s, 2), Cell.stat(r.ttft_s, 3),
        Cell.stat(r.prompt_tps, 1), Cell.stat(r.gen_tps, 1), Cell.size(r.peak_memory_bytes),
    ) for r in report.repeats)
    return Table(columns, rows, "Repeats")


def cases_table(report: Report) -> Table:
    """Every planned case at its latest attempt: status, (primary score,) attempts, metrics, output, error."""
    scored, energy = report.scored, has_energy(report)
    columns = (CASE, Column("status"), *(_numbers("score") if scored else ()),
               *_numbers("attempts", "load s", "TTFT s", "prompt tok", "gen tok", "gen tok/s", "total s"),
               *(_numbers("energy J", "J/token") if energy else ()), *_numbers("peak memory"),
               Column("output", limit=60, html_limit=120, title_limit=2000, code=True),
               Column("error", limit=120, html_limit=300, code=True))
    rows = []
    for row in report.cases:
        m = row.metrics
        rows.append((
            Cell(row.case_id, note="warm-up" if row.warmup else ""), Cell(row.status, status=row.status),
            *((Cell.score(row.scores.primary_value),) if scored else ()), Cell.count(row.attempts),
            Cell.decimal(m.load_s), Cell.decimal(m.ttft_s, 3), Cell.count(m.prompt_tokens),
            Cell.count(m.gen_tokens), replace(Cell.decimal(m.gen_tps, 1), note=_throttled_note(m.throttled)),
            Cell.decimal(m.total_s),
            *((Cell.decimal(m.energy_j, 1), Cell.decimal(m.j_per_token, 3)) if energy else ()),
            Cell.size(m.peak_memory_bytes, m.raw.get("peak_kind")), Cell(row.output), Cell(row.error),
        ))
    return Table(columns, tuple(rows), "Cases")


TURN_COLUMNS = (CASE, Column("turn", numeric=True), Column("status"),
                *_numbers("prompt tok", "gen tok", "TTFT s", "gen tok/s", "total s"),
                Column("prompt", limit=60, html_limit=200, title_limit=2000),
                Column("output", limit=60, html_limit=120, title_limit=2000, code=True),
                Column("why", limit=120, html_limit=300))


def turns_table(report: Report) -> Table:
    """Every turn of every conversation, in case order: its status, figures, prompt, answer and why it failed,
    was skipped or did not run."""
    rows = []
    for case in report.conversations:
        for turn in case.turns:
            m = turn.metrics
            rows.append((
                Cell(case.case_id), Cell.count(turn.number), Cell(turn.status, status=turn.status),
                Cell.count(m.prompt_tokens), Cell.count(m.gen_tokens), Cell.decimal(m.ttft_s, 3),
                Cell.decimal(m.gen_tps, 1), Cell.decimal(m.total_s), Cell(turn.prompt), Cell(turn.output),
                Cell(turn.why),
            ))
    return Table(TURN_COLUMNS, tuple(rows), "Conversations")


def guard_table(report: Report) -> Table:
    """Each time the guard acted: when, at which level, what it did, during which case, and why."""
    columns = (Column("time"), Column("level"), Column("action"), Column("case", limit=120),
               Column("reason", limit=200))
    rows = tuple((Cell.when(g.t), Cell(g.level), Cell(g.action), Cell(g.case_id or MISSING), Cell(g.reason))
                 for g in report.guard_actions)
    return Table(columns, rows, "Guard events")


def loads_table(report: Report) -> Table:
    """Each model's latest load: device, dtype, time and versions, or why it failed."""
    columns = (MODEL, Column("device"), Column("dtype"), Column("load s", numeric=True),
               Column("versions", limit=200, html_limit=300), Column("notes", limit=200))
    rows = []
    for load in report.loads:
        if load.failed:
            rows.append((Cell(load.model), Cell(MISSING), Cell(MISSING), Cell(MISSING),
                         Cell(f"load failed: {load.error}", status=CaseStatus.FAILED), Cell("")))
            continue
        versions = ", ".join(f"{k} {v}" for k, v in load.versions.items())
        rows.append((Cell(load.model), Cell(load.device), Cell(load.dtype), Cell.decimal(load.load_s),
                     Cell(versions), Cell("; ".join(load.notes))))
    return Table(columns, tuple(rows), "Model loads")


WIDE_ENOUGH_FOR_INTERVALS = 100
"""Terminal columns from which the compact summary shows the score's interval: at 80 it would take the
model names' room (the reports always show it)."""


def compact_summary_table(summaries: Sequence[ModelSummary], title: str = "Per-model summary", *,
                          intervals: bool = True) -> Table:
    """The per-model summary in 80 columns, for the end of a headless run: counts, mean s, tok/s, peak, and
    the primary score (mean, with its 95 % interval from n ≥ 10 if ``intervals``) when some case has scores."""
    accuracies = [s.accuracy for s in summaries]
    scored = any(found is not None for found in accuracies)
    columns = (MODEL, *_numbers(*(status.look.word for status in RESULT_STATUSES), "mean s", "tok/s", "peak",
                                *((score_heading(accuracies),) if scored else ())))
    rows = tuple((
        Cell(s.model), *(Cell.count(s.counts.get(k, 0)) for k in RESULT_STATUSES),
        Cell.decimal(s.mean_total_s, 2), Cell.decimal(s.mean_gen_tps, 0), Cell.size(s.peak_memory_bytes, s.peak_kind),
        *((Cell.accuracy(found, interval=intervals),) if scored else ()),
    ) for s, found in zip(summaries, accuracies, strict=True))
    return Table(columns, rows, title)


def score_heading(accuracies: Sequence[Accuracy | None]) -> str:
    """The primary score's column heading: its metric when every model shares one (``vqa``), else ``score``."""
    metrics = {found.metric for found in accuracies if found is not None}
    return metrics.pop() if len(metrics) == 1 else "score"



def session_line(session: SessionRow) -> str:
    """One line per run: id, schema, start, host, and how it ended (or that it never did)."""
    end = ("no session_end: the run was killed or cut off" if session.counts is None else
           f"{'stopped' if session.stopped else 'finished'} {format_time(session.ended_at)}: "
           f"{counts_text(session.counts)}" + (f" ({session.reason})" if session.reason else ""))
    return (f"session {session.session_id} (schema {session.schema_version}) started {format_time(session.started_at)} "
            f"on {session.info.get('host', '?')} — {end}")


def thresholds_text(report: Report) -> str:
    """``warn 75 % · cleanup 85 % · abort 95 %``."""
    return " · ".join(f"{k} {v:g} %" for k, v in report.thresholds.items())
