"""Harness overhead: the same model, images and prompts run by a bare script and through vlmtui, side by side.

(a) bench/bare.py calls the backend library directly (transformers ``generate`` with a streamer;
``mlx_vlm.stream_generate``) in its own process; (b) vlmtui runs the same cases through its scheduler,
worker subprocess, session log and memory watch. Runs are interleaved case by case (which side goes
first alternates), the first round is a warm-up, and each case's medians are compared. Prints the
per-case ratios, saves the result under bench/results/, and ends with ``overhead_ratio=<float>``: the
median over cases of (vlmtui time / bare time).

    python bench/overhead.py [--rounds 7] [--max-tokens 32] [--backends transformers mlx-vlm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, save
from vlmtui.engine.events import CaseFinished, CaseStarted, Event
from vlmtui.engine.plan import Case
from vlmtui.engine.scheduler import Scheduler
from vlmtui.engine.session_log import SessionLog
from vlmtui.suite.loader import GuardConfig
from vlmtui.wire.spec import Expect, ModelSpec

PROMPT = "Describe this image in one sentence."
TEXT_PROMPT = "What is the capital of France?"


def tiny_dir(family: str, backend: str) -> str:
    """Build (or find) the tiny model in a subprocess, so this process never imports a framework."""
    code = f"from vlmtui.worker.demo.tiny import tiny_model_dir; print(tiny_model_dir('tiny:{family}', '{backend}'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return done.stdout.strip().splitlines()[-1]


class Bare:
    """The bare-script process: one job at a time over a pipe."""

    def __init__(self, backend: str, model_dir: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "bare.py"), backend, model_dir],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env,
        )
        assert self.proc.stdout is not None
        while '"ready"' not in (line := self.proc.stdout.readline()):
            if not line:
                raise RuntimeError("the bare runner died while loading")

    def run(self, image: str | None, prompt: str, max_tokens: int) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"image": image, "prompt": prompt, "max_tokens": max_tokens}) + "\n")
        self.proc.stdin.flush()
        result: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return result

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


class Harness:
    """vlmtui's side: a live scheduler (keep-alive) that runs one queued case at a time."""

    def __init__(self, cases: list[Case], log_path: Path, env: dict[str, str], sample_ms: int = 250) -> None:
        self.scheduler = Scheduler(cases, suite_name="overhead", worker_env=env, guard=GuardConfig(sample_ms=sample_ms))
        for case in cases:
            self.scheduler.mark_done(case.case_id, None)
        self.log = SessionLog(log_path)
        self.scheduler.subscribe(self.log)
        self.scheduler.subscribe(self._on_event)
        self._started: dict[str, float] = {}
        self._done: asyncio.Future[tuple[float, dict[str, Any]]] | None = None
        self.task = asyncio.create_task(self.scheduler.run(keep_alive=True))

    def _on_event(self, event: Event) -> None:
        if isinstance(event, CaseStarted):
            self._started[event.case_id] = event.t
        elif isinstance(event, CaseFinished) and self._done is not None and not self._done.done():
            result = event.result
            if result.case_id not in self._started:  # ended before it started: a load failure or a skip
                self._done.set_result((0.0, {"status": f"{result.status} ({result.error})"}))
                return
            wall = result.ended_at - self._started[result.case_id]
            self._done.set_result((wall, {"status": result.status, **result.metrics}))

    async def run(self, case_id: str) -> dict[str, Any]:
        self._done = asyncio.get_running_loop().create_future()
        self.scheduler.rerun([case_id])
        wall, metrics = await self._done
        if metrics["status"] != "passed":
            raise RuntimeError(f"{case_id} ended {metrics['status']}")
        tps = metrics.get("gen_tps")
        return {"wall_s": wall, "tokens": metrics.get("gen_tokens"), "first_s": metrics.get("ttft_s"),
                "chunk_s": 1 / tps if tps else None, "worker_s": metrics.get("total_s")}

    async def close(self) -> None:
        self.scheduler.stop("benchmark done")
        await self.task
        self.log.close()


async def bench_backend(backend: str, rounds: int, max_tokens: int, model_dir: str | None = None,
                        family: str = "idefics3", only: list[str] | None = None,
                        sample_ms: int = 250) -> dict[str, Any]:
    label = f"{family} at {model_dir}" if model_dir else f"tiny:{family}"
    model_dir = model_dir or tiny_dir(family, backend)
    images = sorted(str(p) for p in (ROOT / "sample_images").iterdir())
    model = ModelSpec(id=family, backend=backend, path=model_dir)
    jobs = [(Path(i).name, i, PROMPT) for i in images] + [("text", None, TEXT_PROMPT)]
    jobs = [job for job in jobs if not only or job[0] in only]
    cases = [Case(f"{model.id}/{name}", model, prompt, Path(image) if image else None, 0, max_tokens, 0.0, Expect())
             for name, image, prompt in jobs]
    env = dict(os.environ)
    if "/tiny/" in model_dir:
        # Both sides run a tiny model single-threaded, as vlmtui's backend means to. OpenMP's thread count
        # is per thread, so only the environment makes that hold in the generating thread too; without it
        # two spin-waiting OpenMP threads on 2 cores turn any other process's wake-up into a stall.
        env["OMP_NUM_THREADS"] = "1"
    started = time.perf_counter()
    bare = Bare(backend, model_dir, env)
    print(f"  bare runner ready in {time.perf_counter() - started:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        harness = Harness(cases, Path(tmp) / "log.jsonl", env, sample_ms)
        samples: dict[str, dict[str, list[dict[str, Any]]]] = {c.case_id: {"bare": [], "vlmtui": []} for c in cases}
        for r in range(rounds + 1):
            for i, case in enumerate(cases):
                image = str(case.image) if case.image else None
                order = ("bare", "vlmtui") if (r + i) % 2 == 0 else ("vlmtui", "bare")
                for side in order:
                    if side == "bare":
                        sample = await asyncio.to_thread(bare.run, image, case.prompt, max_tokens)
                    else:
                        sample = await harness.run(case.case_id)
                    detail = ""
                    if sample.get("first_s") is not None and sample.get("chunk_s") is not None:
                        detail = (f" (first chunk {sample['first_s']:.3f} s, "
                                  f"then {sample['chunk_s'] * 1000:.1f} ms a chunk)")
                    print(f"  round {r} {case.case_id} {side}: {sample['wall_s']:.3f} s{detail}", flush=True)
                    if r > 0:  # round 0 warms both sides up
                        samples[case.case_id][side].append(sample)
        await harness.close()
    bare.close()
    per_case = {}
    for case_id, sides in samples.items():
        b = statistics.median(s["wall_s"] for s in sides["bare"])
        v = statistics.median(s["wall_s"] for s in sides["vlmtui"])
        # Throughput the same way on both sides: generated tokens over the case's wall time.
        b_tps = statistics.median(s["tokens"] / s["wall_s"] for s in sides["bare"])
        v_tps = statistics.median(s["tokens"] / s["wall_s"] for s in sides["vlmtui"])
        tokens = {s["tokens"] for s in sides["bare"] + sides["vlmtui"]}
        if len(tokens) != 1:
            raise RuntimeError(f"{case_id}: the two sides generated different token counts {tokens}")
        # The worker's own clock for the same case: vlmtui's time without the two pipe hops (parent →
        # worker → parent) that the wall time above includes and the in-process bare script has none of.
        worker = [s["worker_s"] for s in sides["vlmtui"] if s.get("worker_s")]
        w = statistics.median(worker) if worker else None
        b_min = min(s["wall_s"] for s in sides["bare"])
        v_min = min(s["wall_s"] for s in sides["vlmtui"])
        per_case[case_id] = {
            "bare_s": round(b, 5), "vlmtui_s": round(v, 5), "time_ratio": round(v / b, 4),
            "tps_ratio": round(v_tps / b_tps, 4), "tokens": tokens.pop(),
            # The fastest run of each side: least disturbed by a shared machine's noise.
            "min_time_ratio": round(v_min / b_min, 4),
            "worker_s": round(w, 5) if w else None, "worker_time_ratio": round(w / b, 4) if w else None,
        }
    ratio = statistics.median(c["time_ratio"] for c in per_case.values())
    min_ratio = statistics.median(c["min_time_ratio"] for c in per_case.values())
    worker_ratios = [c["worker_time_ratio"] for c in per_case.values() if c["worker_time_ratio"]]
    worker_ratio = statistics.median(worker_ratios) if worker_ratios else None
    return {"backend": backend, "model": label, "rounds": rounds, "max_tokens": max_tokens, "sample_ms": sample_ms,
            "cases": per_case, "time_ratio": round(ratio, 4), "min_time_ratio": round(min_ratio, 4),
            "worker_time_ratio": round(worker_ratio, 4) if worker_ratio else None,
            "loadavg": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--backends", nargs="+", default=["transformers", "mlx-vlm"])
    parser.add_argument("--model", action="append", default=[], metavar="FAMILY=DIR",
                        help="a real-size model directory instead of the tiny model (transformers only)")
    parser.add_argument("--name", default="overhead-cpu", help="results file prefix")
    parser.add_argument("--only", nargs="+", metavar="CASE", help="only these cases (bicycle.jpg, text, …)")
    parser.add_argument("--sample-ms", type=int, default=250, help="the worker's memory sampling interval")
    args = parser.parse_args()
    runs = [(b, None, "idefics3") for b in args.backends]
    if args.model:
        runs = [("transformers", d, f) for f, d in (m.split("=", 1) for m in args.model)]
    results = []
    for backend, model_dir, family in runs:
        result = asyncio.run(bench_backend(backend, args.rounds, args.max_tokens, model_dir, family,
                                           args.only, args.sample_ms))
        results.append(result)
        print(f"\n{backend} ({result['model']}, {args.max_tokens} tokens, {args.rounds} rounds, medians)")
        print(f"  {'case':<34} {'bare s':>8} {'vlmtui s':>9} {'time ×':>7} {'tok/s ×':>8}")
        for case_id, c in result["cases"].items():
            print(f"  {case_id:<34} {c['bare_s']:>8.4f} {c['vlmtui_s']:>9.4f} {c['time_ratio']:>7.3f} "
                  f"{c['tps_ratio'] if c['tps_ratio'] is not None else '—':>8}")
        if result["worker_time_ratio"]:
            print(f"  by the worker's own clock (no pipe hops): {result['worker_time_ratio']:.3f}")
        print(f"  median time ratio: {result['time_ratio']:.3f} (of the fastest runs: {result['min_time_ratio']:.3f}); "
              f"load average {result['loadavg'][0]:.2f}")
    overall = max(r["time_ratio"] for r in results)
    path = save(args.name, {"results": results, "overhead_ratio": overall})
    print(f"\nsaved {path.relative_to(ROOT)}")
    print(f"overhead_ratio={overall:.4f}")


if __name__ == "__main__":
    main()
