"""What the dashboard knows about the session, folded from scheduler events (plain Python, no Textual).

The dashboard reads this to draw the queue, the header and the per-model summary. It is filled from
the same events a replay or the live scheduler emits, so snapshots and the real run draw the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vlmtui.engine.events import (
    BudgetChanged,
    CaseFinished,
    CaseQueued,
    CaseResult,
    CaseStarted,
    DownloadFinished,
    DownloadProgress,
    Event,
    GuardEvent,
    MemoryUpdate,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    QueueChanged,
    ResultsCarried,
    SessionFinished,
    SessionStarted,
    TurnFinished,
    TurnStarted,
)
from vlmtui.reports.case_scores import NO_SCORES, CaseScores
from vlmtui.reports.records import CaseEnd
from vlmtui.reports.summary import ModelSummary, summarise
from vlmtui.ui.download_text import download_brief  # (not download_bar: rich.progress is not drawn here)
from vlmtui.vocab import (
    FAILURE_STATUSES,
    LIVE_STATUSES,
    CaseStatus,
    GuardAction,
    GuardLevel,
    ModelState,
    count_by_status,
    status_look,
)


@dataclass
class CaseView:
    """One row of the queue: the planned case and every attempt so far."""

    case_id: str
    model: str
    backend: str
    image: str | None
    prompt: str
    kind: str
    warmup: bool = False
    attempts: list[CaseResult] = field(default_factory=list)
    queued: bool = False
    """Waiting in the queue (first run or a rerun)."""
    running: bool = False
    started_at: float | None = None
    next_attempt: int = 1
    judges: list[CaseResult] = field(default_factory=list)
    """Judge cases that graded this case's answer (``judged_case_id``), in the order they ended."""
    turn_prompts: tuple[str, ...] = ()
    """A conversation's planned prompts (the plan's ``turns``); empty for other cases."""
    turn_index: int | None = None
    """The running conversation's turn (0-based), from ``TurnStarted``; None between turns and cases."""
    live_turns: list[dict[str, Any]] = field(default_factory=list)
    """The running attempt's finished turns (``TurnFinished``), until its ``case_end`` brings them all."""

    @property
    def turn_total(self) -> int | None:
        """How many turns the conversation has (planned, else as many as the latest attempt logged)."""
        if self.turn_prompts:
            return len(self.turn_prompts)
        latest = self.latest
        return len(latest.turns) if latest is not None and latest.turns else None

    @property
    def progress(self) -> str:
        """``turn 2/4`` while a conversation runs, ``3/3 turns passed`` once it ended; else ``""``."""
        total = self.turn_total
        if self.running and (self.turn_index is not None or self.live_turns):
            current = self.turn_index if self.turn_index is not None else len(self.live_turns)
            return f"turn {current + 1}/{total}" if total else f"turn {current + 1}"
        latest = self.latest
        if latest is not None and latest.turns and not self.queued:
            passed = sum(turn.get("status") == CaseStatus.PASSED for turn in latest.turns)
            return f"{passed}/{len(latest.turns)} turns passed"
        return ""

    @property
    def shown_prompt(self) -> str:
        """The queue's prompt cell: a conversation's progress before its prompt."""
        progress = self.progress
        prompt = self.prompt
        if self.running and self.turn_index is not None and self.turn_index < len(self.turn_prompts):
            prompt = self.turn_prompts[self.turn_index]
        return f"{progress} · {prompt}" if progress else prompt

    @property
    def latest(self) -> CaseResult | None:
        """The latest finished attempt."""
        return self.attempts[-1] if self.attempts else None

    @property
    def scores(self) -> CaseScores:
        """The latest attempt's scores, with the grades of the judges that read that attempt joined in."""
        latest = self.latest
        if latest is None:
            return NO_SCORES
        scores = CaseScores.from_result(latest)
        for judge in self.judges:
            if judge.judged_attempt in (None, latest.attempt):
                scores = scores.with_grades(CaseScores.from_result(judge))
        return scores

    @property
    def status(self) -> str:
        """``running``, ``pending`` (queued), or the latest attempt's status."""
        if self.running:
            return CaseStatus.RUNNING
        if self.queued or not self.attempts:
            return CaseStatus.PENDING
        return self.attempts[-1].status

    @property
    def attempt(self) -> int:
        """The attempt shown: the running or queued one, else the latest finished one."""
        if self.running or self.queued or not self.attempts:
            return self.next_attempt
        return self.attempts[-1].attempt

    @property
    def image_name(self) -> str:
        """The image's file name, or ``text`` for a text-only case."""
        if not self.image:
            return "text"
        return self.image.replace("\\", "/").rsplit("/", 1)[-1]


@dataclass
class ModelView:
    """How a model's load went: backend, device, dtype, and whether it is the one in the worker."""

    model: str
    backend: str
    state: ModelState = ModelState.WAITING
    """Where the model is (a ``vocab.ModelState``)."""
    device: str = ""
    dtype: str = ""
    load_s: float | None = None
    error: str = ""
    trust_remote_code: bool = False
    download: str = ""
    """The hub download before its load, while it runs (``download 45% · 380 KiB/s · ETA 2 s``)."""


@dataclass
class SessionView:
    """The session as the dashboard draws it."""

    suite: str = ""
    session_id: str = ""
    order: list[str] = field(default_factory=list)
    cases: dict[str, CaseView] = field(default_factory=dict)
    models: dict[str, ModelView] = field(default_factory=dict)
    running: str | None = None
    paused: bool = False
    finished: bool = False
    started_at: float | None = None
    budget_bytes: int | None = None
    budget_source: str = ""
    thresholds: tuple[float, float, float] = (75.0, 85.0, 95.0)
    """warn, cleanup and abort, in percent of the budget."""
    guard_level: str = GuardLevel.OK
    last_guard: GuardEvent | None = None
    current_model: str | None = None

    def _add_case(self, case_id: str, model: str, backend: str, image: str | None, prompt: str, kind: str,
                  warmup: bool) -> CaseView:
        row = self.cases.get(case_id)
        if row is None:
            row = CaseView(case_id, model, backend, image, prompt, kind, warmup)
            self.cases[case_id] = row
            self.order.append(case_id)
        self.models.setdefault(model, ModelView(model, backend))
        return row

    # ------------------------------------------------------------------ folding events

    def apply(self, event: Event) -> str | None:
        """Take one event into the view; returns the id of the case whose row changed, if one did."""
        if isinstance(event, SessionStarted):
            self._start(event)
        elif isinstance(event, ResultsCarried):
            self._carry(event)
        elif isinstance(event, CaseQueued):
            row = self.cases.get(event.case_id)
            if row is not None:
                row.queued, row.next_attempt = True, event.attempt
                self.finished = False
                return row.case_id
        elif isinstance(event, CaseStarted):
            row = self.cases.get(event.case_id)
            if row is not None:
                row.queued, row.running, row.started_at, row.next_attempt = False, True, event.t, event.attempt
                row.live_turns = []  # turn_index stays: a conversation's first turn may be announced first
                self.running = row.case_id
                return row.case_id
        elif isinstance(event, TurnStarted | TurnFinished):
            return self._turn(event)
        elif isinstance(event, CaseFinished):
            return self._finish(event.result)
        elif isinstance(event, DownloadProgress):  # a hub model's files, fetched before its load (issue 18)
            model = self.models.setdefault(event.model, ModelView(event.model, ""))
            model.state, model.download = ModelState.LOADING, download_brief(event)
            self.current_model = event.model
        elif isinstance(event, DownloadFinished):
            self.models.setdefault(event.model, ModelView(event.model, "")).download = ""
        elif isinstance(event, ModelLoading):
            model = self.models.setdefault(event.model, ModelView(event.model, event.backend))
            model.state, model.error = ModelState.LOADING, ""
            model.trust_remote_code = event.trust_remote_code
            self._unload_others(event.model)
            self.current_model = event.model
        elif isinstance(event, ModelLoaded):
            model = self.models.setdefault(event.model, ModelView(event.model, ""))
            model.state, model.device, model.dtype = ModelState.LOADED, event.device, event.dtype
            model.load_s = event.load_s
            self.current_model = event.model
        elif isinstance(event, ModelLoadFailed):
            model = self.models.setdefault(event.model, ModelView(event.model, ""))
            model.state, model.error = ModelState.FAILED, event.error
        elif isinstance(event, GuardEvent):
            self.guard_level = event.level
            if event.action != GuardAction.NONE:
                self.last_guard = event
        elif isinstance(event, MemoryUpdate):
            self.guard_level = event.level
            self.budget_bytes = event.budget_bytes
        elif isinstance(event, BudgetChanged):
            self.budget_bytes, self.budget_source = event.budget_bytes, event.source
        elif isinstance(event, QueueChanged):
            self.paused = event.paused
        elif isinstance(event, SessionFinished):
            self.finished = True
            self.running = None
        return None

    def _start(self, event: SessionStarted) -> None:
        self.suite, self.session_id = event.suite, event.session_id
        self.started_at = self.started_at or event.t
        self.finished = False
        info = event.info
        self.budget_bytes = info.get("budget_bytes", self.budget_bytes)
        self.budget_source = str(info.get("budget_source", self.budget_source))
        guard = info.get("guard") or {}
        if guard:
            self.thresholds = (float(guard.get("warn", 75)), float(guard.get("cleanup", 85)),
                               float(guard.get("abort", 95)))
        for case in event.cases:
            known = case["case_id"] in self.cases
            row = self._add_case(case["case_id"], case["model"], case.get("backend", ""), case.get("image"),
                                 case.get("prompt", ""), case.get("kind", "image"), bool(case.get("warmup")))
            self.models[row.model].trust_remote_code = bool(case.get("trust_remote_code"))
            row.turn_prompts = turn_prompts(case.get("turns"))
            if not known:
                row.queued = True

    def _carry(self, event: ResultsCarried) -> None:
        """Cases an earlier session finished: out of the queue, with their logged results."""
        for case_id in event.case_ids:
            row = self.cases.get(case_id)
            if row is not None:
                row.queued = False
        for result in event.results:
            self._finish(result)

    def _finish(self, result: CaseResult) -> str | None:
        row = self.cases.get(result.case_id)
        if row is None:
            return None
        last = row.attempts[-1] if row.attempts else None
        if last is not None and (last.attempt, last.started_at) == (result.attempt, result.started_at):
            row.attempts[-1] = result  # the same attempt passed or failed again by its judge's grade
        else:
            row.attempts.append(result)
        judged = self.cases.get(result.judged_case_id or "")
        if judged is not None:
            judged.judges.append(result)
        row.running = row.queued = False
        row.turn_index, row.live_turns = None, []
        row.next_attempt = result.attempt + 1
        if self.running == result.case_id:
            self.running = None
        return row.case_id

    def _turn(self, event: TurnStarted | TurnFinished) -> str | None:
        """A conversation's turn began or ended: the row's progress moves on."""
        row = self.cases.get(event.case_id)
        if row is None:
            return None
        if isinstance(event, TurnStarted):
            if event.index == 0:
                row.live_turns = []
            row.turn_index = event.index
        else:
            row.live_turns.append(event.turn)
            row.turn_index = None
        return row.case_id

    def _unload_others(self, model: str) -> None:
        for other in self.models.values():
            if other.model != model and other.state in (ModelState.LOADED, ModelState.LOADING):
                other.state = ModelState.UNLOADED

    # ------------------------------------------------------------------ what the widgets read

    @property
    def idle(self) -> bool:
        """Nothing runs and nothing waits: the session is done until a rerun."""
        return self.running is None and not any(row.queued for row in self.cases.values())

    def counts(self) -> dict[str, int]:
        """Cases by shown status (warm-ups left out), in a stable order."""
        return count_by_status(self.cases.values(), zeros=LIVE_STATUSES)

    def backend_device(self) -> str:
        """``transformers · cpu float32``: the current model's backend and device (or the suite's backends)."""
        model = self.models.get(self.current_model or "")
        if model is not None and model.download:
            return f"{model.backend} · {model.download}" if model.backend else model.download
        if model is not None:
            where = " ".join(part for part in (model.device, model.dtype) if part)
            return f"{model.backend} · {where}" if where else model.backend
        backends = sorted({m.backend for m in self.models.values() if m.backend})
        return ", ".join(backends) or "—"

    def summaries(self) -> list[ModelSummary]:
        """One summary per planned model, in plan order, models without results included."""
        latest = [CaseEnd.from_result(row.latest) for row in self.cases.values() if row.latest]
        by_model = {summary.model: summary for summary in summarise(latest)}
        return [by_model.get(name) or ModelSummary(name, model.backend) for name, model in self.models.items()]

    def failed_ids(self) -> list[str]:
        """Cases whose latest attempt failed, crashed or was aborted and that are not queued again."""
        return [cid for cid in self.order if self.cases[cid].status in FAILURE_STATUSES]

    def matches(self, case_id: str, query: str) -> bool:
        """Whether a case passes the filter: every word must match its status, model or case id."""
        row = self.cases[case_id]
        words = query.lower().split()
        haystack = (row.status, status_look(row.status).word, row.model.lower(), row.case_id.lower())
        for word in words:
            if word in ("failures", "failing", "bad"):
                if row.status not in FAILURE_STATUSES:
                    return False
                continue
            if not any(word in item for item in haystack):
                return False
        return True

    def visible(self, query: str) -> list[str]:
        """The case ids the filter keeps, in plan order."""
        return [cid for cid in self.order if self.matches(cid, query)] if query.strip() else list(self.order)


def turn_prompts(planned: object) -> tuple[str, ...]:
    """A planned conversation's prompts: ``turns`` as strings or ``{text = …}`` tables; anything else, none."""
    if not isinstance(planned, list):
        return ()
    return tuple(str(t.get("text", "")) if isinstance(t, dict) else str(t) for t in planned)
