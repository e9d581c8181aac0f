"""The words the processes share — case status, worker outcome, guard level and action, run and model
state — and how each is shown: one table of marks, words, terminal styles and report colours.

Every enum is a ``StrEnum``: a member is the very string the log, the wire and the events hold, so it
compares, hashes, formats and serialises as that string. Imports nothing from vlmtui (the worker, the
wire and the UI all read it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol


class CaseStatus(StrEnum):
    """Where one case stands: how its latest attempt ended, or why it has none."""

    PASSED = "passed"
    FAILED = "failed"
    CRASHED = "crashed"
    ABORTED = "aborted"
    SKIPPED = "skipped"
    RUNNING = "running"
    """Live only: sent to the worker, not yet ended."""
    PENDING = "pending"
    """Live only: waiting in the queue (first run or a rerun)."""
    INTERRUPTED = "interrupted"
    """Read back: started, and the log ends before it did (the run was killed under it)."""
    NOT_RUN = "not run"
    """Read back: planned, and the session ended before it started."""

    @classmethod
    def parse(cls, value: object) -> CaseStatus:
        """The status a log line holds; a missing or unknown one counts as ``failed``, as the reports always did."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.FAILED

    @property
    def is_failure(self) -> bool:
        """Failed, crashed or aborted: rerun by ``f`` and ``--rerun-failed``, and a non-zero exit."""
        return self in FAILURE_STATUSES

    @property
    def css_class(self) -> str:
        """The HTML class of a cell holding this status (``not-run``)."""
        return self.value.replace(" ", "-")

    @property
    def look(self) -> Look:
        """How this status is shown."""
        return STATUS_LOOKS[self]


RESULT_STATUSES: tuple[CaseStatus, ...] = (
    CaseStatus.PASSED, CaseStatus.FAILED, CaseStatus.CRASHED, CaseStatus.ABORTED, CaseStatus.SKIPPED,
)
"""How an attempt can end: what a ``case_end`` line holds, in the order summaries show them."""
FAILURE_STATUSES: tuple[CaseStatus, ...] = (CaseStatus.FAILED, CaseStatus.CRASHED, CaseStatus.ABORTED)
"""The statuses a rerun of failures picks up."""
LIVE_STATUSES: tuple[CaseStatus, ...] = (*RESULT_STATUSES, CaseStatus.RUNNING, CaseStatus.PENDING)
"""What the dashboard counts, in its header's order."""


class Outcome(StrEnum):
    """How the worker ended a case (``result.outcome``); the engine grades ``completed`` into passed or failed."""

    COMPLETED = "completed"
    ABORTED = "aborted"
    FAILED = "failed"


class GuardLevel(StrEnum):
    """The memory guard's level, as the log and the UI name it (``memory.guard`` orders them)."""

    OK = "ok"
    WARN = "warn"
    CLEANUP = "cleanup"
    ABORT = "abort"

    @property
    def look(self) -> Look:
        """How this level is shown."""
        return LEVEL_LOOKS[self]


THRESHOLD_LEVELS: tuple[GuardLevel, ...] = (GuardLevel.WARN, GuardLevel.CLEANUP, GuardLevel.ABORT)
"""The levels that have a threshold (percent of the budget)."""


class GuardAction(StrEnum):
    """What the guard did: a step up (warn, cleanup, abort), a step down, or the worker's cleanup report."""

    NONE = "none"
    WARN = "warn"
    CLEANUP = "cleanup"
    ABORT = "abort"
    RECOVER = "recover"
    CLEANED = "cleaned"
    """The worker freed its caches (``freed_bytes``)."""


class RunState(StrEnum):
    """What the session as a whole is doing, as the dashboard's header and the headless printer say it."""

    STARTING = "starting"
    LOADING = "loading"
    RUNNING = "running"
    PAUSING = "pausing"
    """Paused while a case still runs to its end."""
    PAUSED = "paused"
    DONE = "done"
    STOPPING = "stopping"
    STOPPED = "stopped"

    @property
    def look(self) -> Look:
        """How this state is shown."""
        return RUN_STATE_LOOKS[self]


class ModelState(StrEnum):
    """Where a model of the suite is: not yet loaded, loading, in the worker, failed to load, or unloaded."""

    WAITING = "waiting"
    LOADING = "loading"
    LOADED = "loaded"
    FAILED = "failed"
    UNLOADED = "unloaded"

    @property
    def look(self) -> Look:
        """How this state is shown beside the model's name."""
        return MODEL_STATE_LOOKS[self]


# ----------------------------------------------------------------------------- counting


class Counted(Protocol):
    """A case as counted: its shown status (its latest attempt's, or running/pending) and whether it warms up."""

    @property
    def status(self) -> str: ...

    @property
    def warmup(self) -> bool: ...


def count_by_status(cases: Iterable[Counted], *, zeros: Iterable[str] = ()) -> dict[str, int]:
    """Cases by status, warm-ups left out; ``zeros`` come first (at 0 when absent), others in the order met."""
    counts = dict.fromkeys(zeros, 0)
    for case in cases:
        if not case.warmup:
            counts[case.status] = counts.get(case.status, 0) + 1
    return counts


def counts_text(counts: Mapping[str, int], empty: str = "no cases") -> str:
    """``3 passed, 1 failed``: the statuses that occur, in the counts' order."""
    return ", ".join(f"{n} {status}" for status, n in counts.items() if n) or empty


# ----------------------------------------------------------------------------- how each word is shown


@dataclass(frozen=True)
class Look:
    """How one word is shown: a one-cell mark, a short word, a Rich style, and a colour for HTML and SVG."""

    mark: str
    word: str
    style: str
    colour: str


STATUS_LOOKS: dict[str, Look] = {
    CaseStatus.PASSED: Look("✓", "pass", "green", "#1a7f37"),
    CaseStatus.FAILED: Look("✗", "fail", "red", "#cf222e"),
    CaseStatus.CRASHED: Look("☠", "crash", "bold red", "#a40e26"),
    CaseStatus.ABORTED: Look("■", "abort", "yellow", "#9a6700"),
    CaseStatus.SKIPPED: Look("–", "skip", "bright_black", "#6e7781"),
    CaseStatus.RUNNING: Look("▶", "run", "bold cyan", "#0969da"),
    CaseStatus.PENDING: Look("·", "queued", "bright_black", "#6e7781"),
    CaseStatus.INTERRUPTED: Look("✗", "interrupted", "red", "#a40e26"),
    CaseStatus.NOT_RUN: Look("·", "not run", "bright_black", "#6e7781"),
}
LEVEL_LOOKS: dict[str, Look] = {
    GuardLevel.OK: Look("●", "ok", "green", "#1a7f37"),
    GuardLevel.WARN: Look("●", "warn", "yellow", "#bf8700"),
    GuardLevel.CLEANUP: Look("●", "cleanup", "dark_orange", "#d1242f"),
    GuardLevel.ABORT: Look("●", "abort", "bold red", "#82071e"),
}
RUN_STATE_LOOKS: dict[str, Look] = {
    RunState.STARTING: Look("·", "starting", "bright_black", "#6e7781"),
    RunState.LOADING: Look("◌", "loading", "cyan", "#0969da"),
    RunState.RUNNING: Look("▶", "running", "bold cyan", "#0969da"),
    RunState.PAUSING: Look("‖", "pausing", "yellow", "#9a6700"),
    RunState.PAUSED: Look("‖", "paused", "bold yellow", "#9a6700"),
    RunState.DONE: Look("✓", "done", "bold green", "#1a7f37"),
    RunState.STOPPING: Look("■", "stopping", "bold red", "#cf222e"),
    RunState.STOPPED: Look("■", "stopped", "bold red", "#cf222e"),
}
MODEL_STATE_LOOKS: dict[str, Look] = {
    ModelState.WAITING: Look(" ", "waiting", "", "#6e7781"),
    ModelState.LOADING: Look("◌", "loading", "cyan", "#0969da"),
    ModelState.LOADED: Look("▶", "loaded", "bold cyan", "#0969da"),
    ModelState.FAILED: Look("✗", "failed", "red", "#cf222e"),
    ModelState.UNLOADED: Look(" ", "unloaded", "", "#6e7781"),
}
UNKNOWN_LOOK = Look("?", "?", "white", "#57606a")
"""A word none of the tables knows (a newer log, a typo in a hand-written one)."""


def _look(table: Mapping[str, Look], word: str) -> Look:
    look = table.get(word)
    return look if look is not None else replace(UNKNOWN_LOOK, word=word)


def status_look(status: str) -> Look:
    """The look of a status given as a string; an unknown one keeps its own word."""
    return _look(STATUS_LOOKS, status)


def level_look(level: str) -> Look:
    """The look of a guard level given as a string."""
    return _look(LEVEL_LOOKS, level)


def run_state_look(state: str) -> Look:
    """The look of a run state given as a string."""
    return _look(RUN_STATE_LOOKS, state)
