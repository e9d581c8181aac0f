"""Recorded sessions for the snapshots: fixed times, sizes and text, as the scheduler emits them.

The memory numbers are those of a 16 GiB Apple Silicon Mac running SmolVLM under MLX (unified memory,
Metal recommended working set 10.7 GiB as the budget), scaled down where the demo models are tiny.
"""

from __future__ import annotations

from vlmtui.engine.events import (
    CaseFinished,
    CaseQueued,
    CaseResult,
    CaseStarted,
    Event,
    GuardEvent,
    MemoryUpdate,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    SessionStarted,
    TokenReceived,
)

T0 = 1_764_000_000.0
"""When the recorded session started (a fixed wall-clock time)."""
GIB = 1024**3
MIB = 1024**2
BUDGET = int(10.7 * GIB)
IMAGES = ("bicycle.jpg", "lake.jpg", "still-life.png")
MODELS = (
    ("smolvlm-500m", "mlx-vlm", "mlx-community/SmolVLM-500M-Instruct-bf16"),
    ("moondream2", "transformers", "vikhyatk/moondream2"),
    ("llava-1.6-7b", "mlx-vlm", "mlx-community/llava-v1.6-mistral-7b-4bit"),
)
PROMPT = "Describe this image in one sentence."
TEXT_PROMPT = "What is the capital of France?"
OUTPUTS = {
    "bicycle.jpg": "A red bicycle leans against a white brick wall on a sunny street.",
    "lake.jpg": "A calm mountain lake reflects pine trees under a pale blue sky.",
    "still-life.png": "A bowl of lemons and a blue jug stand on a wooden table.",
    "text": "The capital of France is Paris.",
}


def _case_id(model: str, image: str | None) -> str:
    return f"{model}/{image}/p0" if image else f"{model}/text/t0"


def _planned() -> list[dict[str, object]]:
    cases: list[dict[str, object]] = []
    for model, backend, _ in MODELS:
        for image in (*IMAGES, None):
            skip = "moondream2 is vision-only: a text-only prompt does not test it" \
                if model == "moondream2" and image is None else None
            cases.append({
                "case_id": _case_id(model, image), "model": model, "backend": backend,
                "image": f"/Users/me/vlm/sample_images/{image}" if image else None,
                "prompt": PROMPT if image else TEXT_PROMPT, "kind": "image" if image else "text",
                "warmup": False, "skip_reason": skip, "trust_remote_code": model == "moondream2",
            })
    return cases


def _result(case: dict[str, object], status: str, t: float, *, attempt: int = 1, error: str = "",
            output: str | None = None, total_s: float = 1.8, tps: float = 41.5,
            peak: int = int(1.42 * GIB), ran: bool = True) -> CaseResult:
    image = case["image"]
    key = str(image).rsplit("/", 1)[-1] if image else "text"
    metrics: dict[str, object] = {}
    if ran and status in ("passed", "failed", "aborted"):
        metrics = {"load_s": 3.21, "ttft_s": 0.412, "prompt_tokens": 1120, "gen_tokens": 24,
                   "gen_tps": tps, "total_s": total_s, "peak_memory_bytes": peak}
    return CaseResult(
        case_id=str(case["case_id"]), attempt=attempt, model=str(case["model"]), backend=str(case["backend"]),
        image=str(image) if image else None, prompt=str(case["prompt"]), kind=str(case["kind"]),
        status=status, error=error, output=OUTPUTS[key] if output is None else output,
        metrics=metrics, started_at=t - total_s, ended_at=t,
    )


def _memory(t: float, guarded: int, *, level: str = "ok", pressure: int = 1,
            swap_used: int = int(0.6 * GIB)) -> MemoryUpdate:
    total = 16 * GIB
    available = total - int(4.6 * GIB) - guarded
    return MemoryUpdate(
        t=t,
        system={"t": t, "total": total, "available": available, "used": total - available,
                "percent": round(100 * (total - available) / total, 1), "swap_total": 2 * GIB,
                "swap_used": swap_used},
        worker_rss=guarded + 310 * MIB,
        framework={"framework": "mlx", "device": "gpu", "guarded_bytes": guarded,
                   "active_bytes": int(guarded * 0.8), "cache_bytes": guarded - int(guarded * 0.8),
                   "peak_bytes": guarded, "limit_bytes": BUDGET},
        guarded_bytes=guarded, guarded_source="mlx", budget_bytes=BUDGET, level=level, pressure=pressure,
    )


def _memory_ramp(start: float, seconds: float, low: int, high: int, **kwargs: object) -> list[MemoryUpdate]:
    """A sample every 0.5 s rising from ``low`` to ``high`` with a saw-tooth of per-image peaks."""
    samples = []
    steps = int(seconds * 2)
    for i in range(steps):
        base = low + (high - low) * i / max(steps - 1, 1)
        tooth = (i % 8) / 8 * 0.12 * GIB
        samples.append(_memory(start + i * 0.5, int(base + tooth), **kwargs))  # type: ignore[arg-type]
    return samples


def _start() -> list[Event]:
    return [SessionStarted(
        session_id="a1b2c3d4e5f6", suite="mac-trio", suite_path="/Users/me/vlm/suites/mac-trio.toml",
        info={"budget_bytes": BUDGET, "budget_source": "metal recommended working set",
              "guard": {"warn": 75, "cleanup": 85, "abort": 95, "on_abort": "next-case", "sample_ms": 250}},
        cases=_planned(), t=T0,
    )]


def _first_model(t: float) -> tuple[list[Event], float]:
    """SmolVLM: two passes, one failed expectation, and its text prompt passed."""
    cases = _planned()
    events: list[Event] = [
        ModelLoading("smolvlm-500m", "mlx-vlm", MODELS[0][2], False, t=t),
        ModelLoaded("smolvlm-500m", 3.21, "gpu", "bfloat16", {"mlx": "0.29.1"}, [], t=t + 3.2),
    ]
    t += 3.2
    for i, case in enumerate(cases[:4]):
        events.append(CaseStarted(str(case["case_id"]), 1, "smolvlm-500m", t=t))
        t += 1.8 + 0.1 * i
        if i == 1:
            result = _result(case, "failed", t, error="expected the output to mention 'water'",
                             total_s=1.9, tps=39.8)
        else:
            result = _result(case, "passed", t, total_s=1.8 + 0.1 * i, tps=41.5 - i)
        events.append(CaseFinished(result))
    return events, t


def _second_model(t: float, *, finish: bool) -> tuple[list[Event], float]:
    """moondream2: one crash (Metal out of memory), then the rest; its text prompt is skipped."""
    cases = _planned()[4:8]
    events: list[Event] = [
        ModelLoading("moondream2", "transformers", MODELS[1][2], True, t=t),
        ModelLoaded("moondream2", 5.02, "mps", "float16", {"torch": "2.9.0"}, [], t=t + 5.0),
    ]
    t += 5.0
    events.append(CaseStarted(str(cases[0]["case_id"]), 1, "moondream2", t=t))
    t += 2.4
    events.append(CaseFinished(_result(cases[0], "passed", t, total_s=2.4, tps=18.2, peak=int(3.9 * GIB))))
    events.append(CaseStarted(str(cases[1]["case_id"]), 1, "moondream2", t=t))
    if not finish:
        words = OUTPUTS["lake.jpg"].split(" ")
        events += [TokenReceived(str(cases[1]["case_id"]), w + " ") for w in words[:7]]
        return events, t + 1.3
    t += 1.1
    events.append(CaseFinished(_result(
        cases[1], "crashed", t, output="A calm mountain",
        error="the worker was killed by SIGABRT: [METAL] Command buffer execution failed: Insufficient "
              "Memory (kIOGPUCommandBufferCallbackErrorOutOfMemory)")))
    events.append(CaseStarted(str(cases[2]["case_id"]), 1, "moondream2", t=t))
    t += 2.2
    events.append(CaseFinished(_result(cases[2], "aborted", t, output="A bowl of",
                                       error="aborted by the user", total_s=2.2, tps=17.6)))
    events.append(CaseFinished(_result(cases[3], "skipped", t,
                                       error=str(cases[3]["skip_reason"]), output="")))
    return events, t


def running_session() -> tuple[list[Event], float]:
    """A session in its second model: a case streaming, memory past the warn mark, pressure warning."""
    events = _start()
    first, t = _first_model(T0 + 0.5)
    second, t = _second_model(t, finish=False)
    events += first + second
    events += _memory_ramp(t - 60, 60, int(1.1 * GIB), int(8.3 * GIB), level="warn", pressure=2)
    events.append(GuardEvent(t=t - 1, level="warn", previous="ok", action="warn",
                             reason="MLX active+cache 8.1 GiB ≥ warn 75% of 10.7 GiB",
                             case_id="moondream2/lake.jpg/p0", reading={}))
    return events, t + 0.4


def finished_session() -> tuple[list[Event], float]:
    """The whole run over: a load failure, a crash, an abort, a skip, and a rerun that passed."""
    events = _start()
    first, t = _first_model(T0 + 0.5)
    second, t = _second_model(t, finish=True)
    events += first + second
    llava = _planned()[8:]
    events.append(ModelLoading("llava-1.6-7b", "mlx-vlm", MODELS[2][2], False, t=t))
    error = "cannot load llava-1.6-7b: mlx-community/llava-v1.6-mistral-7b-4bit is not in the local cache"
    events.append(ModelLoadFailed("llava-1.6-7b", error, t=t + 0.3))
    for case in llava:
        events.append(CaseFinished(_result(case, "failed", t + 0.3, error=error, output="", ran=False)))
    # A rerun of the failed SmolVLM case, which passed on its second attempt.
    rerun = _planned()[1]
    t += 1.0
    events += [
        CaseQueued(str(rerun["case_id"]), 2, t=t),
        ModelLoading("smolvlm-500m", "mlx-vlm", MODELS[0][2], False, t=t),
        ModelLoaded("smolvlm-500m", 3.02, "gpu", "bfloat16", {"mlx": "0.29.1"}, [], t=t + 3.0),
        CaseStarted(str(rerun["case_id"]), 2, "smolvlm-500m", t=t + 3.0),
        CaseFinished(_result(rerun, "passed", t + 4.9, attempt=2, total_s=1.9, tps=40.2)),
    ]
    t += 4.9
    events += _memory_ramp(t - 60, 60, int(4.2 * GIB), int(1.3 * GIB), level="ok", pressure=1)
    events.append(GuardEvent(t=t - 20, level="ok", previous="warn", action="recover",
                             reason="MLX active+cache 3.0 GiB < 70% of 10.7 GiB", case_id=None, reading={}))
    return events, t + 2.0
