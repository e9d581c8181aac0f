"""What one attempt ended as: a ``CaseResult`` graded from the worker's reply, accounted from the worker's
death, or decided before the case reached a worker."""

from __future__ import annotations

import time
from typing import Any

from vlmtui.engine import grading
from vlmtui.engine.events import CaseResult, MemoryUpdate, WorkerExited
from vlmtui.engine.expect import check_expectations
from vlmtui.engine.plan import Case
from vlmtui.engine.worker_session import RunningCase
from vlmtui.vocab import CaseStatus, Outcome
from vlmtui.wire import protocol as p


def ended(case: Case, attempt: int, status: CaseStatus, *, started_at: float | None = None, error: str = "",
          output: str = "", metrics: dict[str, Any] | None = None, detail: str = "",
          turns: list[dict[str, Any]] | None = None) -> CaseResult:
    """The result of one attempt, ending now; a dataset case's scored (``grading``); a conversation's with its
    ``turns``."""
    now = time.time()
    return grading.graded(case, CaseResult(
        case_id=case.case_id, attempt=attempt, model=case.model.id, backend=case.model.backend,
        image=str(case.image) if case.image else None, prompt=case.prompt, kind=case.kind,
        status=status, error=error, output=output, metrics=metrics or {},
        started_at=started_at or now, ended_at=now, warmup=case.warmup, detail=detail, turns=turns or [],
    ))


def from_reply(running: RunningCase, reply: p.Result) -> CaseResult:
    """A case the worker ended: a completed one passes or fails by its expectations."""
    metrics: dict[str, Any] = dict(reply.metrics)
    if reply.outcome == Outcome.COMPLETED:
        failures = check_expectations(running.case.expect, reply.output, metrics)
        status = CaseStatus.FAILED if failures else CaseStatus.PASSED
        error = "; ".join(failures)
    elif reply.outcome == Outcome.ABORTED:
        status, error = CaseStatus.ABORTED, reply.error
        if running.guard_reading is not None:
            metrics["guard_reading"] = running.guard_reading
    else:
        status, error = CaseStatus.FAILED, reply.error
    return ended(running.case, running.attempt, status, started_at=running.started_at, error=error,
                 output=reply.output, metrics=metrics, detail=reply.detail)


def from_exit(running: RunningCase, exited: WorkerExited, last_memory: MemoryUpdate | None,
              grace_s: float) -> CaseResult:
    """A case whose worker died under it: crashed, or aborted when we stopped it ourselves."""
    metrics: dict[str, Any] = {"returncode": exited.returncode}
    if last_memory is not None:
        metrics["last_memory"] = {"guarded_bytes": last_memory.guarded_bytes, "source": last_memory.guarded_source,
                                  "system_available": last_memory.system.get("available")}
    output, detail = "".join(running.tokens), "\n".join(exited.stderr_tail)
    if running.abort_reason is not None:
        # We stopped it ourselves (or it was exiting on SIGTERM): the case was aborted, not crashed.
        how = f"worker killed after {grace_s:g} s" if running.killed else exited.description
        return ended(running.case, running.attempt, CaseStatus.ABORTED, started_at=running.started_at,
                     error=f"{running.abort_reason} ({how})", output=output, metrics=metrics, detail=detail)
    return ended(running.case, running.attempt, CaseStatus.CRASHED, started_at=running.started_at,
                 error=exited.description, output=output, metrics=metrics, detail=detail)
