"""The queue policy: which case runs next, which attempt it is, and what each model still allows.

A loaded model's cases go first, so a worker loads a model once for all of them. A rerun queues a new
attempt after what is pending and gives its model another chance to load; a case finished in an earlier
session (``--resume``) leaves the queue keeping its logged result. A pending case starts only once it is
``_ready``: a judge case once no answer of its dataset is pending (so the judge loads after every judged
model has finished and been unloaded), its rubric then written from the judged case's latest answer. A
rerun answer queues its judges again; a judge's grade can pass or fail the judged case again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from vlmtui.engine import grading
from vlmtui.engine.events import CaseResult
from vlmtui.engine.plan import Case, case_info, skip_reason
from vlmtui.vocab import FAILURE_STATUSES, CaseStatus
from vlmtui.wire import protocol as p
from vlmtui.wire.spec import ModelSpec


@dataclass
class ModelRecord:
    """What the session knows about one model: why its cases cannot run, and what its last load found."""

    load_error: str | None = None
    load_status: CaseStatus = CaseStatus.FAILED
    """How the model's cases end while ``load_error`` stands."""
    skip_reason: str | None = None
    loaded: p.Loaded | None = None
    """The worker's last ``Loaded`` for it: its model type and what it can be asked."""

    def unfit(self, case: Case) -> str | None:
        """Why the loaded model cannot be asked this case (as the worker found it at load), or None."""
        found = self.loaded
        return skip_reason(case.model, case.capability, found.model_type or None, found.capabilities) if found else None


class Standing(NamedTuple):
    """A case as counted: its latest attempt's status (``pending`` before one) and whether it warms up."""

    status: str
    warmup: bool


class CaseQueue:
    """The planned cases in order, the pending ones, every attempt's result, and each model's record."""

    def __init__(self, cases: Sequence[Case], done_attempts: Mapping[str, int] | None = None) -> None:
        self.cases: dict[str, Case] = {case.case_id: case for case in cases}
        self.order: list[str] = [case.case_id for case in cases]
        self.results: dict[str, list[CaseResult]] = {case_id: [] for case_id in self.order}
        self.pending: list[str] = list(self.order)
        self.carried: list[str] = []
        """Cases finished in an earlier session, taken out of the queue by ``mark_done``."""
        self._attempt_base = dict(done_attempts or {})
        self._models: dict[str, ModelRecord] = {}
        self._judges: dict[str, list[str]] = {}
        """The judge cases of each judged case."""
        for case in cases:
            if case.judging is not None:
                self._judges.setdefault(case.judging.judged_case_id, []).append(case.case_id)

    def model(self, model_id: str) -> ModelRecord:
        """The record of one model (a fresh one until something happens to it)."""
        return self._models.setdefault(model_id, ModelRecord())

    def _ready(self) -> list[str]:
        """The pending cases that may start now: all but a judge case whose dataset still has answers to give."""
        answering = {case.item.dataset for case in map(self.cases.__getitem__, self.pending)
                     if case.item is not None and case.judging is None}
        return [case_id for case_id in self.pending
                if (case := self.cases[case_id]).judging is None or case.item is None
                or case.item.dataset not in answering]

    def has_ready(self) -> bool:
        """Whether some pending case may start now."""
        return bool(self._ready())

    def take(self, loaded: str | None) -> Case | None:
        """The next case, out of the queue: the loaded model's first, so it is loaded once; None if none is ready.
        A judge case comes with the judged case's latest answer in its prompt."""
        ready = self._ready()
        if not ready:
            return None
        case_id = next((c for c in ready if self.cases[c].model.id == loaded), ready[0]) if loaded else ready[0]
        self.pending.remove(case_id)
        case = self.cases[case_id]
        judged = case.judging.judged_case_id if case.judging is not None else None
        return case if judged is None else grading.prepared(case, self._latest(judged))

    def next_model(self, current: ModelSpec) -> ModelSpec | None:
        """The first model to load after ``current`` with another backend (None when none is ready, or it cannot
        load): its worker can start and import its framework while ``current`` and its backend's models run."""
        ready = [self.cases[case_id] for case_id in self._ready()]
        upcoming = next((case.model for case in ready
                         if case.model.backend != current.backend and case.skip_reason is None), None)
        record = self._models.get(upcoming.id) if upcoming is not None else None
        if upcoming is None or (record is not None and (record.load_error or record.skip_reason)):
            return None
        return upcoming

    def _latest(self, case_id: str) -> CaseResult | None:
        attempts = self.results.get(case_id)
        return attempts[-1] if attempts else None

    def put_back(self, case: Case) -> None:
        """Return a taken case to the head of the queue (it never reached a worker)."""
        self.pending.insert(0, case.case_id)

    def rerun(self, case_ids: Iterable[str], running: str | None) -> list[str]:
        """Queue new attempts of these cases after what is pending (not the running or a queued one); the
        judges of an answer run again, after it."""
        queued = []
        for case_id in [c for asked in case_ids for c in (asked, *self._judges.get(asked, ()))]:
            if case_id not in self.cases or case_id in self.pending or case_id == running:
                continue
            record = self._models.get(self.cases[case_id].model.id)
            if record is not None:
                record.load_error = record.skip_reason = None
            self.pending.append(case_id)
            queued.append(case_id)
        return queued

    def mark_done(self, case_id: str, record: Mapping[str, Any] | None) -> None:
        """Take a case out of the queue as finished earlier (resume), keeping its logged result."""
        if case_id in self.pending:
            self.pending.remove(case_id)
        if case_id in self.cases and case_id not in self.carried:
            self.carried.append(case_id)
        if record is not None:
            fields = CaseResult.__dataclass_fields__
            self.results[case_id].append(CaseResult(**{k: v for k, v in record.items() if k in fields}))
            self._attempt_base[case_id] = self._attempt_base.get(case_id, 0) - 1

    def next_attempt(self, case_id: str) -> int:
        """The number the case's next attempt gets (attempts of earlier sessions counted)."""
        return self._attempt_base.get(case_id, 0) + len(self.results[case_id]) + 1

    def record(self, result: CaseResult) -> list[CaseResult]:
        """Keep one attempt's result; returns it, then the judged case's latest attempt if this judge's grade
        passed or failed it again (it replaces that attempt's result)."""
        judged_id = result.judged_case_id
        judged = self._latest(judged_id) if judged_id is not None else None
        before = [r for j in self._judges.get(judged_id or "", ()) if (r := self._latest(j)) is not None]
        self.results[result.case_id].append(result)
        after = [r for j in self._judges.get(judged_id or "", ()) if (r := self._latest(j)) is not None]
        again = grading.regraded(judged, before, after) if judged is not None else None
        if again is None:
            return [result]
        self.results[again.case_id][-1] = again
        return [result, again]

    def latest(self) -> dict[str, CaseResult]:
        """Each case's latest attempt."""
        return {case_id: attempts[-1] for case_id, attempts in self.results.items() if attempts}

    def failed_case_ids(self) -> list[str]:
        """Cases whose latest attempt failed, crashed or was aborted."""
        return [case_id for case_id in self.order
                if self.results[case_id] and self.results[case_id][-1].status in FAILURE_STATUSES]

    def standing(self) -> list[Standing]:
        """Every case as ``vocab.count_by_status`` counts it, in plan order."""
        return [Standing(self.results[case_id][-1].status if self.results[case_id] else CaseStatus.PENDING,
                         self.cases[case_id].warmup) for case_id in self.order]

    def carried_results(self) -> list[CaseResult]:
        """The logged results of the cases finished in an earlier session, in plan order."""
        return [self.results[case_id][-1] for case_id in self.order
                if case_id in self.carried and self.results[case_id]]

    def planned(self) -> list[dict[str, Any]]:
        """Every planned case as ``SessionStarted`` carries it."""
        return [case_info(self.cases[case_id]) for case_id in self.order]
