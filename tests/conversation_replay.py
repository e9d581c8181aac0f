"""A recorded conversation session, as the scheduler emits it under the events contract (engine/events.py):
``TurnStarted``, the turn's tokens, ``TurnFinished`` for each turn, then the case's ``CaseFinished`` with its
``turns``. The dashboard tests replay it; the report tests write it through the real ``SessionLog``.

Three conversations of suites/context.toml's shape on SmolVLM: one passes every turn, one fails turn 2's
expectation, one is aborted by the guard during turn 2 (turn 1 kept, turn 2 aborted with its partial answer,
turn 3 not run); moondream2 (mlx-vlm cannot take its history) answers turn 1 and skips the follow-ups, so its
case is skipped. Shapes as engine/conversation.py writes them; figures are a 16 GiB Mac's under MLX.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlmtui.engine.events import (
    CaseFinished,
    CaseResult,
    CaseStarted,
    Event,
    ModelLoaded,
    ModelLoading,
    SessionFinished,
    SessionStarted,
    TokenReceived,
    TurnFinished,
    TurnStarted,
)
from vlmtui.engine.session_log import SessionLog

T0 = 1_764_000_000.0
PROMPTS = ("Describe this image in detail.", "What were the most prominent colours?",
           "Summarise the main subject in one sentence.")
ANSWERS = {
    "bicycle": ("A red bicycle leans against a white brick wall.", "Red and white.",
                "A red bicycle against a wall."),
    "lake": ("A calm lake under pine trees.", "Green and grey.", "A quiet mountain lake in the morning."),
}
SKIPPED = "mlx-vlm cannot carry moondream2's history: its chat template takes one turn"
ABORTED = "not run: the conversation ended at turn 2 (aborted)"
GUARD = "aborted by the memory guard: MLX active+cache 10.2 GiB ≥ abort 95% of 10.7 GiB"
MODELS = (("smolvlm-500m", "mlx-vlm"), ("moondream2", "mlx-vlm"))


def case_id(model: str, image: str) -> str:
    return f"{model}/context/{image}"


def planned() -> list[dict[str, Any]]:
    """The plan: SmolVLM on two images (and a third, aborted), moondream2 on one."""
    cases = []
    for model, backend, image in (("smolvlm-500m", "mlx-vlm", "bicycle"), ("smolvlm-500m", "mlx-vlm", "lake"),
                                  ("smolvlm-500m", "mlx-vlm", "still-life"), ("moondream2", "mlx-vlm", "bicycle")):
        cases.append({"case_id": case_id(model, image), "model": model, "backend": backend,
                      "image": f"/Users/me/vlm/sample_images/{image}.jpg", "prompt": PROMPTS[0],
                      "kind": "conversation", "warmup": False, "skip_reason": None, "trust_remote_code": False,
                      "turns": list(PROMPTS)})
    return cases


def turn(index: int, status: str, output: str = "", *, tps: float = 40.0, prompt_tokens: int = 0,
         reasons: tuple[str, ...] = (), reason: str = "", passed: bool | None = None) -> dict[str, Any]:
    """One entry of ``CaseResult.turns``; a turn that ran has its figures, one that did not has none."""
    ran = status in ("passed", "failed", "aborted")
    metrics = {"ttft_s": 0.21 + 0.1 * index, "prompt_tokens": prompt_tokens, "gen_tokens": 12 + index,
               "gen_tps": tps, "total_s": round(0.3 + (12 + index) / tps, 3)} if ran else {}
    return {"index": index, "prompt": PROMPTS[index], "status": status, "output": output, "metrics": metrics,
            "expect": {"passed": passed if passed is not None else status == "passed", "reasons": list(reasons)},
            "reason": reason}


def _turns(image: str, model: str) -> tuple[str, list[dict[str, Any]], str]:
    """The case's status, its turns, and its error."""
    answers = ANSWERS.get(image, ANSWERS["bicycle"])
    if model == "moondream2":
        return "skipped", [turn(0, "passed", answers[0], tps=18.2, prompt_tokens=760),
                           turn(1, "skipped", reason=SKIPPED), turn(2, "skipped", reason=SKIPPED)], \
            f"turns 2-3 skipped: {SKIPPED}"
    if image == "still-life":
        return "aborted", [turn(0, "passed", answers[0], tps=39.1, prompt_tokens=1120),
                           turn(1, "aborted", "Red, white and", tps=36.0, prompt_tokens=1154, reason=GUARD),
                           turn(2, "not_run", reason=ABORTED)], GUARD
    if image == "lake":
        why = "expected the output to match (?i)red|blue"
        return "failed", [turn(0, "passed", answers[0], tps=41.0, prompt_tokens=1120),
                          turn(1, "failed", answers[1], tps=38.5, prompt_tokens=1151, reasons=(why,), reason=why),
                          turn(2, "passed", answers[2], tps=37.9, prompt_tokens=1180)], f"turn 2: {why}"
    return "passed", [turn(0, "passed", answers[0], tps=41.5, prompt_tokens=1120),
                      turn(1, "passed", answers[1], tps=39.0, prompt_tokens=1154),
                      turn(2, "passed", answers[2], tps=38.2, prompt_tokens=1178)], ""


def _case_events(case: dict[str, Any], t: float, *, stop_in_turn: int | None = None) -> tuple[list[Event], float]:
    """One conversation: its turns streamed word by word; ``stop_in_turn`` leaves it running mid-turn."""
    cid, model = str(case["case_id"]), str(case["model"])
    image = cid.rsplit("/", 1)[-1]
    status, turns, error = _turns(image, model)
    events: list[Event] = []
    start = t
    for entry in turns:
        if entry["status"] == "not_run":  # written into the result only, after the turn the case ended in
            continue
        events.append(TurnStarted(cid, entry["index"], entry["prompt"], t=t))
        if entry["index"] == 0:  # the engine announces the first turn, then sends it (and the case starts)
            events.append(CaseStarted(cid, 1, model, t=t))
        if entry["status"] == "skipped":
            events.append(TurnFinished(cid, entry["index"], entry, t=t))
            continue
        words = str(entry["output"]).split(" ")
        if stop_in_turn == entry["index"]:
            events += [TokenReceived(cid, w + " ") for w in words[:3]]
            return events, t + 0.4
        events += [TokenReceived(cid, w + " ") for w in words[:-1]] + [TokenReceived(cid, words[-1])]
        t += float(entry["metrics"]["total_s"])
        events.append(TurnFinished(cid, entry["index"], entry, t=t))
    last = next((e["output"] for e in reversed(turns) if e["output"]), "")
    metrics = {"load_s": 3.21, "ttft_s": turns[0]["metrics"].get("ttft_s"),
               "prompt_tokens": sum(e["metrics"].get("prompt_tokens", 0) for e in turns),
               "gen_tokens": sum(e["metrics"].get("gen_tokens", 0) for e in turns),
               "gen_tps": turns[0]["metrics"].get("gen_tps"), "total_s": round(t - start, 3),
               "peak_memory_bytes": int(1.42 * 1024**3)}
    result = CaseResult(case_id=cid, attempt=1, model=model, backend=str(case["backend"]), image=case["image"],
                        prompt=str(case["prompt"]), kind="conversation", status=status, error=error, output=last,
                        metrics=metrics, started_at=start, ended_at=t, turns=turns)
    return [*events, CaseFinished(result)], t


def _start() -> list[Event]:
    return [SessionStarted(session_id="c0ffee000001", suite="context", suite_path="/Users/me/vlm/suites/context.toml",
                           info={"budget_bytes": int(10.7 * 1024**3), "budget_source": "metal recommended working set",
                                 "host": "mac-studio"}, cases=planned(), t=T0)]


def _load(model: str, backend: str, t: float) -> list[Event]:
    return [ModelLoading(model, backend, f"mlx-community/{model}", False, t=t),
            ModelLoaded(model, 3.21, "gpu", "bfloat16", {"mlx": "0.29.1"}, [], t=t + 3.2)]


def streaming_session() -> tuple[list[Event], float]:
    """SmolVLM's first conversation passed; the second is in turn 2, three words into its answer."""
    cases = planned()
    events = _start() + _load("smolvlm-500m", "mlx-vlm", T0 + 0.5)
    first, t = _case_events(cases[0], T0 + 3.7)
    second, t = _case_events(cases[1], t, stop_in_turn=1)
    return events + first + second, t


def finished_session() -> tuple[list[Event], float]:
    """Every conversation over: passed, failed on turn 2, aborted in turn 2, and moondream2's skipped turns."""
    cases = planned()
    events = _start() + _load("smolvlm-500m", "mlx-vlm", T0 + 0.5)
    t = T0 + 3.7
    for case in cases[:3]:
        more, t = _case_events(case, t)
        events += more
    events += _load("moondream2", "mlx-vlm", t)
    more, t = _case_events(cases[3], t + 3.2)
    events += more
    events.append(SessionFinished({"passed": 1, "failed": 1, "aborted": 1, "skipped": 1}, False, t=t))
    return events, t + 1


def write_log(path: Path, events: list[Event] | None = None) -> Path:
    """The session's log as the real ``SessionLog`` writes it."""
    log = SessionLog(path)
    for event in events if events is not None else finished_session()[0]:
        log(event)
    log.close()
    return path
