"""From a suite and the command line's choices to an engine with its session log attached.

Everything a user can get wrong is checked here, before any dashboard starts; the scheduler itself is
built when the engine first runs (engine/deferred.py), so the dashboard's first frame waits for none of
the engine's imports.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vlmtui.engine.deferred import DeferredEngine
from vlmtui.engine.events import SessionStarted
from vlmtui.engine.guard_info import guard_info
from vlmtui.engine.log_target import log_target
from vlmtui.engine.plan import Case, case_info, plan_cases
from vlmtui.engine.selection import select_models
from vlmtui.engine.session_log import SessionLog, default_log_path
from vlmtui.memory.budget import Budget, resolve_budget
from vlmtui.memory.system import probe_system
from vlmtui.reports.records import CaseEnd, SessionRecords, load_log
from vlmtui.suite.datasets import DatasetError
from vlmtui.suite.loader import GuardConfig, Suite, SuiteError, load_suite
from vlmtui.text import and_more
from vlmtui.units import format_bytes

if TYPE_CHECKING:
    from vlmtui.engine.scheduler import Scheduler


@dataclass(frozen=True)
class GuardOverrides:
    """``--budget``, ``--warn``, ``--cleanup``, ``--abort`` and ``--sample-ms`` from the command line."""

    budget: str | None = None
    warn: float | None = None
    cleanup: float | None = None
    abort: float | None = None
    sample_ms: int | None = None

    def apply(self, guard: GuardConfig) -> GuardConfig:
        """The suite's guard with the overrides on top; SuiteError when they do not make sense."""
        changes = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        merged = dataclasses.replace(guard, **changes)
        if not merged.warn <= merged.cleanup <= merged.abort:
            raise SuiteError(f"thresholds must rise: warn {merged.warn:g} ≤ cleanup {merged.cleanup:g} "
                             f"≤ abort {merged.abort:g}")
        if merged.sample_ms < 10:
            raise SuiteError("--sample-ms must be at least 10")
        return merged


@dataclass
class Session:
    """A ready-to-run engine and the log it writes."""

    suite: Suite
    engine: DeferredEngine
    log: SessionLog

    @property
    def scheduler(self) -> Scheduler:
        """The engine's scheduler (built now if it was not yet)."""
        return self.engine.scheduler


def _select(cases: list[Case], previous: SessionRecords | None,
            rerun_failed: bool) -> tuple[list[Case], list[Case]]:
    """Split planned cases into (to run, already finished) for --resume and --rerun-failed; a judge case
    runs again when the answer it graded is run again or is no longer the latest (its grade is stale)."""
    if previous is None:
        return cases, []
    latest = previous.latest()
    if rerun_failed:
        wanted = {cid for cid, r in latest.items() if r.status.is_failure}
    else:
        wanted = {c.case_id for c in cases if c.case_id not in latest}
    wanted |= {c.case_id for c in cases if c.judging is not None
               and _stale(latest.get(c.case_id), c.judging.judged_case_id, latest, wanted)}
    return [c for c in cases if c.case_id in wanted], [c for c in cases if c.case_id not in wanted]


def _stale(grade: CaseEnd | None, judged_id: str, latest: dict[str, CaseEnd], wanted: set[str]) -> bool:
    """Whether a judge case must grade again: it has no grade, its answer runs again, or it read an earlier
    attempt than the answer's latest."""
    if grade is None or judged_id in wanted:
        return True
    judged = latest.get(judged_id)
    return judged is not None and grade.judging is not None and grade.judging.attempt not in (None, judged.attempt)


def _left_out(suite: Suite, skip_missing: bool) -> tuple[str, ...]:
    """The notes on dataset items whose image is missing; without ``--skip-missing`` the first is an error."""
    notes = []
    for entry in suite.datasets:
        missing = entry.dataset.missing
        if not missing:
            continue
        if not skip_missing:
            try:
                entry.dataset.require_images()
            except DatasetError as exc:
                raise SuiteError(f"dataset {entry.id!r}: {exc}") from None
        notes.append(f"dataset {entry.id!r}: {len(missing)} item(s) left out (--skip-missing): "
                     f"{missing[0].message()}{and_more(len(missing))}")
    return tuple(notes)


def refuse_oversized_budget(budget: Budget, system_total: int, force: bool) -> None:
    """A budget above the machine's memory (``--budget 1TB`` on 24 GB) guards nothing: a ``SuiteError``
    unless ``force``."""
    if budget.bytes > system_total and not force:
        raise SuiteError(f"--budget: {budget} is more than this machine's {format_bytes(system_total)} of memory, "
                         "so the guard would never act; lower it, or add --force")


def _attempts_so_far(previous: SessionRecords) -> dict[str, int]:
    """Attempts already made per case: ended ones, plus the one a kill cut short (it counts too)."""
    attempts = previous.attempts()
    for case_id in previous.running:
        attempts[case_id] = attempts.get(case_id, 0) + 1
    return attempts


def prepare_session(
    suite_path: str | Path | None,
    *,
    overrides: GuardOverrides | None = None,
    log_path: str | Path | None = None,
    resume: str | Path | None = None,
    rerun_failed: str | Path | None = None,
    worker_argv: list[str] | None = None,
    skip_missing: bool = False,
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    force: bool = False,
) -> Session:
    """Load and plan the suite, apply overrides, pick up a previous log, and attach the session log.

    A dataset item whose image is missing is a ``SuiteError`` before anything loads, unless ``skip_missing``.
    ``only``/``skip`` pick the suite's models. The log goes only where ``log_target`` allows (a new file, a
    directory, this suite's own log) and a budget above the machine's memory is refused, unless ``force``.
    The scheduler is built on the engine's first run: it verifies every image of the plan first (an
    unreadable one fails its cases unloaded) and writes a resumed log's results into a new log file.
    """
    previous_path = resume or rerun_failed
    previous = load_log(previous_path) if previous_path else None
    if suite_path is None:
        if previous is None or not previous.suite_path:
            raise SuiteError("name a suite file (or a log that records one)")
        suite_path = previous.suite_path
    suite = select_models(load_suite(suite_path), only, skip)
    notes = _left_out(suite, skip_missing)
    guard = (overrides or GuardOverrides()).apply(suite.guard)
    suite = dataclasses.replace(suite, guard=guard)
    cases = plan_cases(suite)
    to_run, finished = _select(cases, previous, rerun_failed is not None)
    system_total = probe_system().total
    try:
        # "auto" starts at system RAM and is refined when the worker reports the device (scheduler).
        budget = resolve_budget(guard.budget, {}, system_total)
    except ValueError as exc:
        raise SuiteError(f"--budget: {exc}") from None
    refuse_oversized_budget(budget, system_total, force)
    ids = [c.case_id for c in cases]
    if previous_path and log_path:  # resuming into another file: the log read must be this suite's too
        log_target(previous_path, suite_name=suite.name, case_ids=ids, force=force)
    chosen = log_path or previous_path
    path = default_log_path(suite.name) if not chosen else log_target(
        chosen, suite_name=suite.name, case_ids=ids, force=force)
    log = SessionLog(path, memory_every_s=guard.log_every_ms / 1000)
    session_id = (previous.starts[0].session_id or None) if previous else None
    session_id = session_id or uuid.uuid4().hex[:12]
    planned = to_run + finished

    def build() -> Scheduler:
        from vlmtui.engine.image_check import check_images, unreadable_note
        from vlmtui.engine.scheduler import Scheduler

        scheduler = Scheduler(planned, suite_name=suite.name, suite_path=str(suite.path), guard=guard,
                              budget=budget, worker_argv=worker_argv, session_id=session_id,
                              done_attempts=_attempts_so_far(previous) if previous else None, notices=notes)
        # Finished cases stay in the plan (for the queue's view) but are not run again.
        logged = previous.latest() if previous else {}
        for case in finished:
            record = logged.get(case.case_id)
            scheduler.mark_done(case.case_id, dict(record) if record is not None else None)
        if previous_path and path.resolve() != Path(previous_path).resolve():
            # Into another file: the cases not run again keep their results there too.
            log.carry([logged[c.case_id] for c in finished if c.case_id in logged], previous_path)
        scheduler.subscribe(log)
        scheduler.image_problems = check_images([c.image for c in planned if c.image is not None])
        scheduler.notices += unreadable_note(scheduler.image_problems)
        return scheduler

    preview = SessionStarted(session_id=session_id, suite=suite.name, suite_path=str(suite.path),
                             info=guard_info(guard, budget), cases=[case_info(c) for c in planned])
    return Session(suite, DeferredEngine(build, preview), log)
