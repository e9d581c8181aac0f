"""Workers warmed ahead (issue 17): a multi-model tiny suite's wall time against the sum of its loads and cases,
with and without the next model's worker importing its framework while the current model runs.

The suite: tiny Idefics3 and LLaVA-NeXT on transformers and on mlx-vlm (CPU here), each model with every
sample image and one text prompt, in the demo's order (``--order grouped``: a framework's models together) or
switching framework at every model (``--order alternating``). It runs in the real engine with the real workers, ``off``
and ``on`` alternated (``--rounds`` of each, ABAB, so a busy machine's drift falls on both alike):

- ``off``: one worker loads model after model; a framework is imported inside the first load that needs it.
- ``on``: when a model's cases are taken, the next model's worker starts and imports its framework; it gets
  its ``Load`` only after the current worker has unloaded and exited.

Per run: the wall time of ``Scheduler.run``; Σ load_s (the worker's ``Loaded``: imports that were not done yet
included) and Σ total_s of the cases; the rest is the overhead (worker starts and exits, unloads, the engine).
``on`` also gives each spare's import time (its warm-up notice) and how much of it the next load still had to
wait for: the notice's time minus that model's ``ModelLoading`` time, when positive. Hidden = 1 - waited /
imported. Memory: the highest worker RSS, guarded bytes and system used the parent sampled, and the highest
per-case ``peak_memory_bytes`` (its ``peak_kind``), so a warm-up that put two models in memory would show.

    python bench/warm_workers.py [--rounds 2] [--max-tokens 24] [--order grouped|alternating]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, finish
from vlmtui.engine.events import CaseFinished, Event, MemoryUpdate, ModelLoaded, ModelLoading, Notice
from vlmtui.engine.plan import Case
from vlmtui.engine.scheduler import Scheduler
from vlmtui.suite.loader import GuardConfig
from vlmtui.wire.spec import Expect, ModelSpec

SUITES = {
    # The demo's order: a framework's models together, so a worker imports each framework once either way.
    "grouped": [("tf-idefics3", "transformers", "tiny:idefics3"), ("tf-llava-next", "transformers", "tiny:llava-next"),
                ("mlx-idefics3", "mlx-vlm", "tiny:idefics3"), ("mlx-llava-next", "mlx-vlm", "tiny:llava-next")],
    # The worst order for spares: every switch changes framework, so each spare imports again what the one
    # worker of the baseline had imported already.
    "alternating": [("tf-idefics3", "transformers", "tiny:idefics3"), ("mlx-idefics3", "mlx-vlm", "tiny:idefics3"),
                    ("tf-llava-next", "transformers", "tiny:llava-next"),
                    ("mlx-llava-next", "mlx-vlm", "tiny:llava-next")],
}
WARMED = re.compile(r"warmed (\S+): imported .* in ([0-9.]+) s")


def suite(models: list[tuple[str, str, str]], max_tokens: int) -> list[Case]:
    """Every model × (every sample image, one text prompt)."""
    images = sorted((ROOT / "sample_images").glob("*"))
    cases = []
    for model_id, backend, path in models:
        model = ModelSpec(id=model_id, backend=backend, path=path)
        for image in images:
            cases.append(Case(f"{model_id}/{image.name}", model, "Describe this image in one sentence.", image, 0,
                              max_tokens, 0.0, Expect()))
        cases.append(Case(f"{model_id}/text", model, "What is the capital of France?", None, 0, max_tokens, 0.0,
                          Expect()))
    return cases


async def one_run(models: list[tuple[str, str, str]], warm: bool, max_tokens: int) -> dict[str, Any]:
    """One pass of the suite; what it took and what memory it reached."""
    scheduler = Scheduler(suite(models, max_tokens), suite_name="warm-workers", guard=GuardConfig(budget="90%"))
    scheduler.session.spares.enabled = warm  # whatever the machine's default (VLMTUI_WARM_WORKERS, its cores)
    events: list[tuple[float, Event]] = []
    scheduler.subscribe(lambda event: events.append((time.time(), event)))
    started, cpu_before = time.perf_counter(), os.times()
    counts = await scheduler.run()
    wall = time.perf_counter() - started
    cpu_after = os.times()  # the workers are this process's children, reaped by the end of the run
    cpu = {"parent_s": round(cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system, 2),
           "workers_s": round(cpu_after.children_user + cpu_after.children_system
                              - cpu_before.children_user - cpu_before.children_system, 2)}
    loads = {e.model: e.load_s for _, e in events if isinstance(e, ModelLoaded)}
    loading_at = {e.model: t for t, e in events if isinstance(e, ModelLoading)}
    cases = [e.result for _, e in events if isinstance(e, CaseFinished)]
    case_s = sum(float(r.metrics.get("total_s") or 0) for r in cases)
    memory = [e for _, e in events if isinstance(e, MemoryUpdate)]
    imports = []
    for t, e in events:
        match = WARMED.search(e.message) if isinstance(e, Notice) else None
        if match is None:
            continue
        backend, seconds = match.group(1), float(match.group(2))
        # The model this spare was for: the first model of that backend loading after the notice's spare began.
        model = next((m for m, b, _ in models if b == backend and loading_at.get(m, 0) > t - seconds), None)
        waited = max(0.0, t - loading_at[model]) if model in loading_at else None
        imports.append({"backend": backend, "model": model, "import_s": seconds, "load_waited_s": waited})
    peaks = [(int(r.metrics["peak_memory_bytes"]), str(r.metrics.get("peak_kind"))) for r in cases
             if r.metrics.get("peak_memory_bytes")]
    return {
        "warm": warm, "counts": counts, "wall_s": round(wall, 3), "sum_load_s": round(sum(loads.values()), 3),
        "sum_case_s": round(case_s, 3), "overhead_s": round(wall - sum(loads.values()) - case_s, 3),
        "load_s": {m: round(s, 3) for m, s in loads.items()}, "imports": imports,
        # Loads after the first model's: what a warm-up can shorten (the first worker imports in its load either way).
        "switch_load_s": round(sum(s for m, s in loads.items() if m != models[0][0]), 3), "cpu": cpu,
        "max_worker_rss": max((u.worker_rss or 0 for u in memory), default=0),
        "max_guarded_bytes": max((u.guarded_bytes or 0 for u in memory), default=0),
        "max_system_used": max((int(u.system.get("used", 0)) for u in memory), default=0),
        "max_case_peak": max(peaks, default=None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--order", choices=sorted(SUITES), default="grouped")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    models = SUITES[args.order]
    asyncio.run(one_run(models, False, args.max_tokens))  # builds the tiny models, fills the disk cache; not counted
    runs = []
    for _ in range(args.rounds):
        for warm in (False, True):
            run = asyncio.run(one_run(models, warm, args.max_tokens))
            runs.append(run)
            print(f"warm={'on ' if warm else 'off'} wall {run['wall_s']:6.2f} s = loads {run['sum_load_s']:6.2f} + "
                  f"cases {run['sum_case_s']:5.2f} + overhead {run['overhead_s']:5.2f}; switch loads "
                  f"{run['switch_load_s']:.2f} s; worker CPU {run['cpu']['workers_s']:.1f} s; "
                  f"imports {run['imports']}; "
                  f"max worker RSS {run['max_worker_rss'] / 2**20:.0f} MiB, system used "
                  f"{run['max_system_used'] / 2**20:.0f} MiB")
    off = [r for r in runs if not r["warm"]]
    on = [r for r in runs if r["warm"]]
    imported = sum(i["import_s"] for r in on for i in r["imports"])
    waited = sum(i["load_waited_s"] or 0 for r in on for i in r["imports"])
    summary = {
        "wall_off_s": statistics.median(r["wall_s"] for r in off),
        "wall_on_s": statistics.median(r["wall_s"] for r in on),
        "sum_load_off_s": statistics.median(r["sum_load_s"] for r in off),
        "sum_load_on_s": statistics.median(r["sum_load_s"] for r in on),
        "switch_load_off_s": statistics.median(r["switch_load_s"] for r in off),
        "switch_load_on_s": statistics.median(r["switch_load_s"] for r in on),
        "worker_cpu_off_s": statistics.median(r["cpu"]["workers_s"] for r in off),
        "worker_cpu_on_s": statistics.median(r["cpu"]["workers_s"] for r in on),
        "import_s_total": round(imported, 3), "load_waited_s_total": round(waited, 3),
        "hidden_fraction": round(1 - waited / imported, 3) if imported else None,
        "max_worker_rss_off": max(r["max_worker_rss"] for r in off),
        "max_worker_rss_on": max(r["max_worker_rss"] for r in on),
        "max_system_used_off": max(r["max_system_used"] for r in off),
        "max_system_used_on": max(r["max_system_used"] for r in on),
    }
    print(summary)
    finish(f"warm-workers-{args.order}", {"args": vars(args), "models": models, "runs": runs, "summary": summary},
           started)
    print(f"hidden_fraction={summary['hidden_fraction']}")


if __name__ == "__main__":
    main()
