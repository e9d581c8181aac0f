"""What the scheduler tells its subscribers (session log, headless printer, TUI): frozen dataclasses.

Every event is plain data; a subscriber is a callable taking one event. The engine imports no UI.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from vlmtui.memory.telemetry_sample import TelemetrySample


@dataclass(frozen=True)
class CaseResult:
    """The end of one attempt at one case; what the log keeps and the reports read."""

    case_id: str
    attempt: int
    model: str
    backend: str
    image: str | None
    prompt: str
    kind: str
    status: str
    """A ``vocab.CaseStatus`` value (one of ``vocab.RESULT_STATUSES``)."""
    error: str = ""
    output: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0
    ended_at: float = 0.0
    warmup: bool = False
    detail: str = ""
    """A traceback or the worker's stderr tail; kept in the log, not shown as the error."""
    # A dataset case's scoring (docs/log-format.md, "Scores"); left out of the log while at their defaults.
    scores: dict[str, float | None] = field(default_factory=dict)
    """Per metric, in the dataset's metric order: a score in [0, 1], or None (``score_errors`` says why)."""
    score_errors: dict[str, str] = field(default_factory=dict)
    primary_metric: str | None = None
    """The metric that decides ``passed``/``failed`` and leads the leaderboard (the dataset's first)."""
    pass_at: float | None = None
    references: list[str] = field(default_factory=list)
    dataset: str | None = None
    item_id: str | None = None
    answer_type: str | None = None
    judged_case_id: str | None = None
    """A judge case (``kind`` ``judge``): the case whose answer it graded; its ``scores`` are that case's."""
    judged_attempt: int | None = None
    turns: list[dict[str, Any]] = field(default_factory=list)
    """A conversation's turns (issue 14): ``{index, prompt, status, output, metrics, expect: {passed, reasons},
    reason}`` each, in order; empty for every other kind of case."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the log (scoring fields only where a dataset case set them)."""
        data = asdict(self)
        for name in SCORING_FIELDS:
            if data[name] in (None, {}, []):
                del data[name]
        return data


SCORING_FIELDS = ("turns", "scores", "score_errors", "primary_metric", "pass_at", "references", "dataset", "item_id",
                  "answer_type", "judged_case_id", "judged_attempt")
"""``CaseResult`` fields a case without a dataset leaves out of its ``case_end`` line."""


@dataclass(frozen=True)
class SessionStarted:
    """A session began: the suite, the planned cases, machine and versions."""

    session_id: str
    suite: str
    suite_path: str
    info: dict[str, Any]
    cases: list[dict[str, Any]]
    t: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ResultsCarried:
    """Planned cases this session does not run again (``--resume``, ``--rerun-failed``), right after
    ``SessionStarted``; only where there are some."""

    case_ids: list[str]
    results: list[CaseResult]
    """Their latest results from the earlier log, where it has one (plan order)."""


@dataclass(frozen=True)
class CaseQueued:
    """A case was put in the queue (at start, or again for a rerun)."""

    case_id: str
    attempt: int
    t: float = field(default_factory=time.time)


@dataclass(frozen=True)
class CaseStarted:
    """A case was sent to the worker."""

    case_id: str
    attempt: int
    model: str
    t: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TokenReceived:
    """Text streamed for the running case."""

    case_id: str
    text: str


@dataclass(frozen=True)
class TurnStarted:
    """A conversation's turn begins: the prompt is sent with the whole history (tokens that follow are its)."""

    case_id: str
    index: int
    """0-based turn index."""
    prompt: str
    t: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TurnFinished:
    """A conversation's turn ended; ``turn`` is the dict that ``CaseResult.turns`` will hold for it."""

    case_id: str
    index: int
    turn: dict[str, Any]
    t: float = field(default_factory=time.time)


@dataclass(frozen=True)
class DownloadProgress:
    """Bytes of a model's hub download so far (issue 18); ``total`` None when the hub did not say."""

    model: str
    downloaded: int
    total: int | None
    rate_bps: float | None
    eta_s: float | None
    t: float = field(default_factory=time.time)


@dataclass(frozen=True)
class DownloadFinished:
    """A model's files are on disk: fetched (``from_cache`` False) or already cached; ``error`` when it failed."""

    model: str
    downloaded: int
    seconds: float
    from_cache: bool
    error: str = ""
    t: float = field(default_factory=time.time)


@dataclass(frozen=True)
class CaseFinished:
    """A case attempt ended (any status)."""

    result: CaseResult


@dataclass(frozen=True)
class ModelLoading:
    """A worker starts loading a model."""

    model: str
    backend: str
    path: str
    trust_remote_code: bool
    t: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ModelLoaded:
    """The model is loaded; its cases follow."""

    model: str
    load_s: float
    device: str
    dtype: str
    versions: dict[str, str]
    notes: list[str]
    t: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ModelLoadFailed:
    """The model could not be loaded; its cases fail with ``error``."""

    model: str
    error: str
    detail: str = ""
    t: float = field(default_factory=time.time)


@dataclass(frozen=True)
class WorkerExited:
    """The worker process ended unexpectedly."""

    pid: int
    returncode: int | None
    description: str
    stderr_tail: list[str]
    t: float = field(default_factory=time.time)


@dataclass(frozen=True)
class MemoryUpdate:
    """One combined memory sample: the system (parent's probe) and the worker's own view."""

    t: float
    system: dict[str, Any]
    worker_rss: int | None
    framework: dict[str, Any] | None
    guarded_bytes: int | None
    guarded_source: str
    budget_bytes: int
    level: str
    """A ``vocab.GuardLevel`` value."""
    pressure: int | None = None
    telemetry: TelemetrySample | None = None
    """GPU load, power, thermal state (docs/telemetry.md), sampled in the parent; None when nothing sampled it."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the log's ``memory`` line (the telemetry as ``TelemetrySample.to_dict`` writes it)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["telemetry"] = self.telemetry.to_dict() if self.telemetry is not None else None
        return data


@dataclass(frozen=True)
class BudgetChanged:
    """The memory budget changed: an "auto" budget sized from the device the worker reported."""

    budget_bytes: int
    source: str
    """Where it comes from (``metal recommended working set``, ``cuda total``, …)."""


@dataclass(frozen=True)
class GuardEvent:
    """The guard changed level or acted (warn, cleanup, abort, recover)."""

    t: float
    level: str
    """A ``vocab.GuardLevel`` value, as is ``previous``."""
    previous: str
    action: str
    """A ``vocab.GuardAction`` value."""
    reason: str
    case_id: str | None
    reading: dict[str, Any]
    freed_bytes: int | None = None


@dataclass(frozen=True)
class QueueChanged:
    """Paused or resumed, or a rerun added cases."""

    paused: bool
    pending: int


@dataclass(frozen=True)
class Notice:
    """A line for the user (a skipped model, a worker restart, a saved report)."""

    level: str
    message: str
    t: float = field(default_factory=time.time)


@dataclass(frozen=True)
class SessionFinished:
    """The queue is done (or stopped); counts by status over each case's latest attempt."""

    counts: dict[str, int]
    stopped: bool
    reason: str = ""
    t: float = field(default_factory=time.time)


Event = (
    SessionStarted | ResultsCarried | CaseQueued | CaseStarted | TokenReceived | TurnStarted | TurnFinished
    | DownloadProgress | DownloadFinished | CaseFinished | ModelLoading
    | ModelLoaded | ModelLoadFailed | WorkerExited | MemoryUpdate | BudgetChanged | GuardEvent | QueueChanged
    | Notice | SessionFinished
)
