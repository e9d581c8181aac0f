"""A conversation case run turn by turn on the loaded model: the engine drives the turns.

For turn k the worker gets one ``Run`` holding the earlier turns' prompts and answers (``history``) and
turn k's prompt; the image goes with turn 1 only. Each backend renders that history the way its model
takes it (the chat template, or the OpenAI messages array); the worker's backends prefill it again (they keep
no KV cache between requests; llama-server reuses its cached prefix, docs/backends.md), and turn k's
``prompt_tokens`` counts everything before it either way.

Driving the turns here rather than in the worker keeps the worker's one-request-one-result contract (abort,
SIGTERM, crash accounting and the guard work per turn as they do per case) and lets every turn be checked
against its ``expect`` with the same rules as a case (engine/expect.py) before the next one starts.

How a conversation ends:

- every turn passed: ``passed``; a turn whose answer misses its expectations, or whose ``answers`` score
  under ``pass_at`` by the conversation's primary metric, is ``failed`` and the conversation goes on (its
  answer is in the history); the case fails naming the first failing turn;
- a model that cannot take history (``Loaded.no_history``: Moondream2 through mlx-vlm) answers turn 1, and
  its follow-up turns are ``skipped`` with that reason, never answered without their history; the case is
  ``skipped`` unless a turn failed;
- a turn the worker failed (a backend error), aborted (the guard, the user) or died under ends the case
  there with that status, keeping the finished turns; the turn in flight keeps its partial answer and the
  status of the case, the turns after it are ``not_run``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from vlmtui.engine import verdict
from vlmtui.engine.events import CaseResult, CaseStarted, Event, MemoryUpdate, TurnFinished, TurnStarted
from vlmtui.engine.expect import check_expectations
from vlmtui.engine.plan import Case
from vlmtui.engine.worker_session import RunningCase, WorkerSession
from vlmtui.scoring.metrics import score_all
from vlmtui.suite.conversations import Turn
from vlmtui.vocab import CaseStatus, Outcome
from vlmtui.wire import protocol as p

TURN_NOT_RUN = "not_run"
"""A turn after the one that ended the conversation (the event contract's word for it)."""
SUMMED = ("gen_tokens", "total_s")
"""Case metrics that add up over the turns; the rest are the last answered turn's (its ``prompt_tokens`` is
the whole conversation's), ``ttft_s`` the first turn's, and ``peak_memory_bytes`` the highest."""


class ConversationRun:
    """One attempt at one conversation: the turns so far, and the result they add up to."""

    def __init__(self, session: WorkerSession, case: Case, attempt: int, emit: Callable[[Event], None], *,
                 no_history: str, last_memory: Callable[[], MemoryUpdate | None], grace_s: float) -> None:
        self.session, self.case, self.attempt, self.emit = session, case, attempt, emit
        self.no_history = no_history
        self.last_memory = last_memory
        self.grace_s = grace_s
        self.turns: list[dict[str, Any]] = []
        self.started_at = time.time()

    async def run(self) -> tuple[RunningCase | None, CaseResult]:
        """Every turn in order, until one ends the conversation; the last turn as it ran, and the case's result."""
        case = self.case
        history: list[dict[str, str]] = []
        running: RunningCase | None = None
        for index, turn in enumerate(case.turns):
            if index > 0 and self.no_history:
                self._skip_rest(index, self.no_history)
                break
            if index > 0 and self.session.loaded != case.model.id:
                # The guard unloaded the idle model between two turns: nothing to ask the rest of the turns.
                return running, self._ended(CaseStatus.ABORTED, f"turn {index + 1}: the model was unloaded "
                                            "between turns (memory guard)", index)
            if index == 0:  # the case starts, then its first turn: tokens follow TurnStarted
                self.started_at = time.time()
                self.emit(CaseStarted(case.case_id, self.attempt, case.model.id, self.started_at))
            self.emit(TurnStarted(case.case_id, index, turn.text))
            running, reply = await self.session.run(case, self.attempt, prompt=turn.text, history=history,
                                                    announce=False)
            if reply is None:  # the worker died under the turn: crashed, or aborted when we stopped it
                died = verdict.from_exit(running, self.session.take_exit(), self.last_memory(), self.grace_s)
                self._finish_turn(index, CaseStatus(died.status), "".join(running.tokens), died.metrics, died.error)
                return running, self._ended(CaseStatus(died.status), f"turn {index + 1}: {died.error}", index + 1,
                                            detail=died.detail, extra=died.metrics)
            metrics: dict[str, Any] = dict(reply.metrics)
            if reply.outcome != Outcome.COMPLETED:
                status = CaseStatus.ABORTED if reply.outcome == Outcome.ABORTED else CaseStatus.FAILED
                if running.guard_reading is not None:
                    metrics["guard_reading"] = running.guard_reading
                self._finish_turn(index, status, reply.output, metrics, reply.error)
                extra = {"guard_reading": running.guard_reading} if running.guard_reading is not None else {}
                return running, self._ended(status, f"turn {index + 1}: {reply.error}", index + 1,
                                            detail=reply.detail, extra=extra)
            failures = check_expectations(turn.expect, reply.output, metrics)
            scored = score_turn(turn, reply.output)
            below = [scored.pop("below")] if "below" in scored else []
            self._finish_turn(index, CaseStatus.FAILED if failures or below else CaseStatus.PASSED, reply.output,
                              metrics, "; ".join([*failures, *below]), failures, scored)
            history.append({"prompt": turn.text, "output": reply.output})
        return running, self._ended(*self._verdict(), len(self.turns))

    # ------------------------------------------------------------------ turns

    def _finish_turn(self, index: int, status: CaseStatus, output: str, metrics: dict[str, Any], reason: str,
                     failures: list[str] | None = None, scored: dict[str, Any] | None = None) -> None:
        turn = {
            "index": index, "prompt": self.case.turns[index].text, "status": str(status), "output": output,
            # ``failures`` None: the expectations were not checked (no answer to check), so they did not pass.
            "metrics": metrics, "expect": {"passed": failures == [], "reasons": list(failures or [])},
            "reason": reason, **(scored or {}),
        }
        self.turns.append(turn)
        self.emit(TurnFinished(self.case.case_id, index, turn))

    def _skip_rest(self, start: int, reason: str) -> None:
        """The follow-up turns a model without history cannot answer: shown, and skipped with the reason."""
        for index in range(start, len(self.case.turns)):
            self.emit(TurnStarted(self.case.case_id, index, self.case.turns[index].text))
            self._finish_turn(index, CaseStatus.SKIPPED, "", {}, reason)

    def _verdict(self) -> tuple[CaseStatus, str]:
        """A conversation whose every turn was answered or skipped: the first failing turn names the failure."""
        for turn in self.turns:
            if turn["status"] == CaseStatus.FAILED:
                return CaseStatus.FAILED, f"turn {turn['index'] + 1}: {turn['reason']}"
        skipped = [turn for turn in self.turns if turn["status"] == CaseStatus.SKIPPED]
        if skipped:
            first, last = skipped[0]["index"] + 1, skipped[-1]["index"] + 1
            which = f"turn {first}" if first == last else f"turns {first}-{last}"
            return CaseStatus.SKIPPED, f"{which} skipped: {skipped[0]['reason']}"
        return CaseStatus.PASSED, ""

    def _ended(self, status: CaseStatus, error: str, first_not_run: int, *, detail: str = "",
               extra: dict[str, Any] | None = None) -> CaseResult:
        """The case's result: the turns so far, the ones from ``first_not_run`` on marked not run; ``extra``
        metrics say how the turn in flight ended (``returncode``, ``last_memory``, ``guard_reading``)."""
        for index in range(first_not_run, len(self.case.turns)):
            self.turns.append({
                "index": index, "prompt": self.case.turns[index].text, "status": TURN_NOT_RUN, "output": "",
                "metrics": {}, "expect": {"passed": False, "reasons": []},
                "reason": f"not run: the conversation ended at turn {first_not_run} ({status})",
            })
        answered = [turn for turn in self.turns if _answered(turn)]
        last = answered[-1] if answered else None
        return verdict.ended(self.case, self.attempt, status, started_at=self.started_at, error=error,
                             output=last["output"] if last else "",
                             metrics={**case_metrics(self.turns), **(extra or {})}, detail=detail, turns=self.turns)


async def run_attempt(session: WorkerSession, case: Case, attempt: int, emit: Callable[[Event], None],
                      loaded: p.Loaded | None, last_memory: Callable[[], MemoryUpdate | None],
                      grace_s: float) -> tuple[RunningCase | None, CaseResult]:
    """One attempt on the loaded model (``loaded``: its ``Loaded``): a conversation turn by turn, any other case
    in one request; the (last) request as it ran and the attempt's result."""
    if case.turns:
        return await ConversationRun(session, case, attempt, emit, no_history=loaded.no_history if loaded else "",
                                     last_memory=last_memory, grace_s=grace_s).run()
    running, reply = await session.run(case, attempt)
    if reply is None:  # the worker died under the case
        return running, verdict.from_exit(running, session.take_exit(), last_memory(), grace_s)
    return running, verdict.from_reply(running, reply)


def _answered(turn: dict[str, Any]) -> bool:
    """Whether the worker generated for this turn (and timed it), fully or until an abort."""
    return "total_s" in turn["metrics"]


def score_turn(turn: Turn, output: str) -> dict[str, Any]:
    """A turn with ``answers``: its ``references``, ``scores`` (in metric order, the primary first),
    ``score_errors`` and ``primary_metric``; ``below`` when the primary score misses ``pass_at`` (or could not
    be taken). ``{}`` for a turn without answers."""
    if not turn.answers:
        return {}
    scores, errors = score_all(turn.metrics, output, turn.answers)
    primary = turn.metrics[0]
    value = scores.get(primary)
    scored: dict[str, Any] = {"references": list(turn.answers), "scores": scores, "score_errors": errors,
                              "primary_metric": primary, "pass_at": turn.pass_at}
    if value is None:
        scored["below"] = f"{primary}: {errors.get(primary, 'no score')}"
    elif value < turn.pass_at:
        scored["below"] = f"{primary} {value:.2f} < pass_at {turn.pass_at:g}"
    return scored


def case_metrics(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """The conversation's metrics from its turns' (``SUMMED``'s rule), with ``turns_run``."""
    answered = [turn["metrics"] for turn in turns if _answered(turn)]
    if not answered:
        return {}
    metrics = dict(answered[-1])
    for name in SUMMED:
        values = [m[name] for m in answered if isinstance(m.get(name), int | float)]
        metrics[name] = round(sum(values), 5) if values else None
    metrics["ttft_s"] = answered[0].get("ttft_s")
    peaks = [m["peak_memory_bytes"] for m in answered if isinstance(m.get("peak_memory_bytes"), int)]
    metrics["peak_memory_bytes"] = max(peaks) if peaks else None
    metrics["turns_run"] = len(answered)
    return metrics
