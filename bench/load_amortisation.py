"""Load amortisation: reloading the model for every image (the incident's script) against loading it once.

Both strategies run in the same real worker process (``python -m vlmtui.worker``), driven through the
protocol with ``WorkerClient`` directly (no scheduler, which would always load once):

- reload-per-image: for each image ``Load`` → ``Run`` → ``Unload``;
- load-once: ``Load``, then one ``Run`` per image, then ``Unload``.

Each worker first does one untimed ``Load`` → ``Run`` → ``Unload`` so the framework import and first-touch
costs are paid by neither side (the incident's script imported its framework once, too). Rounds
alternate which strategy goes first; the totals are wall time from the first command to the last answer,
and the outputs of the two strategies are compared (greedy decoding, so a reload must give the same text).

    python bench/load_amortisation.py [--n 6] [--rounds 3] [--max-tokens 16] [--real [DIR]]

``--real`` adds a 500M-parameter SmolVLM-shaped model (build it with
``python bench/gpu_models.py /tmp/gpu-models smolvlm-500m``), run with image_splitting off so one image
takes seconds on a CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from bench.common import ROOT, finish
from vlmtui.engine.worker_client import WorkerClient
from vlmtui.wire import protocol as p
from vlmtui.wire.spec import ModelSpec

PROMPT = "Describe this image in one sentence."
REAL_DIR = "/tmp/gpu-models/smolvlm-500m"


class WorkerDriver:
    """One worker, one command at a time: send, then wait for the answer (other events are dropped)."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[p.Event | None] = asyncio.Queue()
        self.client = WorkerClient(self.events.put_nowait, lambda code: self.events.put_nowait(None))
        self.spent: dict[str, float] = {"load": 0.0, "run": 0.0, "unload": 0.0}
        """Round-trip seconds per command kind, as the parent sees them (command sent → answer received)."""

    async def start(self) -> None:
        await self.client.start()
        await self._wait(p.Hello)

    async def _wait(self, *answers: type[p.Event]) -> p.Event:
        while True:
            event = await asyncio.wait_for(self.events.get(), 600)
            if event is None:
                raise RuntimeError("the worker died: " + " | ".join(list(self.client.stderr_tail)[-5:]))
            if isinstance(event, p.LoadFailed):
                raise RuntimeError(f"load failed: {event.error}")
            if isinstance(event, answers):
                return event

    async def load(self, model: ModelSpec) -> p.Loaded:
        started = time.perf_counter()
        self.client.send(p.Load(model=model.to_dict()))
        loaded = await self._wait(p.Loaded)
        self.spent["load"] += time.perf_counter() - started
        assert isinstance(loaded, p.Loaded)
        return loaded

    async def run(self, case_id: str, image: str, max_tokens: int) -> p.Result:
        started = time.perf_counter()
        self.client.send(p.Run(case_id=case_id, prompt=PROMPT, image=image, max_tokens=max_tokens))
        result = await self._wait(p.Result)
        self.spent["run"] += time.perf_counter() - started
        assert isinstance(result, p.Result)
        if result.outcome != "completed":
            raise RuntimeError(f"{case_id} ended {result.outcome}: {result.error}")
        return result

    async def unload(self) -> None:
        started = time.perf_counter()
        self.client.send(p.Unload())
        await self._wait(p.Unloaded)
        self.spent["unload"] += time.perf_counter() - started

    async def stop(self) -> None:
        await self.client.stop()


async def reload_per_image(driver: WorkerDriver, model: ModelSpec, images: list[str], max_tokens: int) -> list[str]:
    outputs = []
    for i, image in enumerate(images):
        await driver.load(model)
        outputs.append((await driver.run(f"reload/{i}", image, max_tokens)).output)
        await driver.unload()
    return outputs


async def load_once(driver: WorkerDriver, model: ModelSpec, images: list[str], max_tokens: int) -> list[str]:
    await driver.load(model)
    outputs = [(await driver.run(f"once/{i}", image, max_tokens)).output for i, image in enumerate(images)]
    await driver.unload()
    return outputs


async def timed(strategy: Any, driver: WorkerDriver, model: ModelSpec, images: list[str],
                max_tokens: int) -> dict[str, Any]:
    """One pass of a strategy: total wall time, and the round trips of its loads, runs and unloads."""
    driver.spent = dict.fromkeys(driver.spent, 0.0)
    started = time.perf_counter()
    outputs = await strategy(driver, model, images, max_tokens)
    wall = time.perf_counter() - started
    return {"wall_s": wall, **{f"{k}_s": v for k, v in driver.spent.items()}, "outputs": outputs}


STRATEGIES = {"reload-per-image": reload_per_image, "load-once": load_once}


async def bench_model(label: str, model: ModelSpec, images: list[str], rounds: int, max_tokens: int) -> dict[str, Any]:
    driver = WorkerDriver()
    await driver.start()
    try:
        started = time.perf_counter()
        loaded = await driver.load(model)
        await driver.run("warmup", images[0], max_tokens)
        await driver.unload()
        print(f"  {label}: warm-up (framework import, first load {loaded.load_s:.2f} s) "
              f"{time.perf_counter() - started:.1f} s on {loaded.device}/{loaded.dtype}", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in STRATEGIES}
        peak_rss = 0
        for r in range(rounds):
            order = list(STRATEGIES) if r % 2 == 0 else list(reversed(STRATEGIES))
            for name in order:
                run = await timed(STRATEGIES[name], driver, model, images, max_tokens)
                runs[name].append(run)
                if driver.client.pid:
                    peak_rss = max(peak_rss, psutil.Process(driver.client.pid).memory_info().rss)
                print(f"  {label} round {r} {name}: {run['wall_s']:.2f} s (loads {run['load_s']:.2f} s, "
                      f"runs {run['run_s']:.2f} s, unloads {run['unload_s']:.2f} s)", flush=True)
    finally:
        await driver.stop()
    reference = runs["load-once"][0]["outputs"]
    same = all(run["outputs"] == reference for rs in runs.values() for run in rs)
    summary = {}
    for name, rs in runs.items():
        summary[name] = {
            **{key: statistics.median(r[key] for r in rs) for key in ("wall_s", "load_s", "run_s", "unload_s")},
            "loads": len(images) if name == "reload-per-image" else 1,
            "rounds_wall_s": [round(r["wall_s"], 4) for r in rs],
        }
    reload_s, once_s = summary["reload-per-image"]["wall_s"], summary["load-once"]["wall_s"]
    return {
        "model": label, "backend": model.backend, "path": model.path, "device": loaded.device,
        "dtype": loaded.dtype, "images": len(images), "max_tokens": max_tokens, "rounds": rounds,
        "strategies": summary, "speedup": reload_s / once_s,
        "per_image_load_s": summary["reload-per-image"]["load_s"] / len(images),
        "per_image_unload_s": summary["reload-per-image"]["unload_s"] / len(images),
        "outputs_identical": same, "worker_peak_rss_mib": peak_rss / 2**20,
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    sample = sorted(str(path) for path in (ROOT / "sample_images").iterdir())
    images = [sample[i % len(sample)] for i in range(args.n)]
    models: list[tuple[str, ModelSpec, int, int]] = [
        ("tiny:idefics3 (transformers)", ModelSpec(id="tiny-hf", backend="transformers", path="tiny:idefics3"),
         args.rounds, args.max_tokens),
        ("tiny:idefics3 (mlx-vlm)", ModelSpec(id="tiny-mlx", backend="mlx-vlm", path="tiny:idefics3"),
         args.rounds, args.max_tokens),
    ]
    if args.real:
        if not (Path(args.real) / "config.json").exists():
            raise SystemExit(f"no model at {args.real}: build it with "
                             f"`python bench/gpu_models.py {Path(args.real).parent} smolvlm-500m`")
        models.append(("SmolVLM-500M-shaped (transformers, random weights)",
                       ModelSpec(id="smolvlm-500m", backend="transformers", path=args.real,
                                 options={"image_splitting": False}),
                       args.real_rounds, args.real_max_tokens))
    load = {"start": os.getloadavg()}
    results = []
    for label, model, rounds, max_tokens in models:
        results.append(await bench_model(label, model, images, rounds, max_tokens))
        load[f"after {model.id}"] = os.getloadavg()
    return {"images": [Path(i).name for i in images], "prompt": PROMPT, "loadavg": load, "results": results}


def report(result: dict[str, Any]) -> None:
    print(f"\nload amortisation over {len(result['images'])} images (medians; total wall time, one worker process)")
    print(f"  {'model':<52} {'reload-per-image':>17} {'load-once':>10} {'speedup':>8} "
          f"{'load':>7} {'unload':>7} {'run':>7} {'same text':>10}")
    print(f"  {'':<52} {'':>17} {'':>10} {'':>8} {'(per image, reload-per-image)':>23}")
    for r in result["results"]:
        s = r["strategies"]
        print(f"  {r['model']:<52} {s['reload-per-image']['wall_s']:>15.2f} s {s['load-once']['wall_s']:>8.2f} s "
              f"{r['speedup']:>7.2f}× {r['per_image_load_s']:>5.3f} s {r['per_image_unload_s']:>5.3f} s "
              f"{s['reload-per-image']['run_s'] / r['images']:>5.3f} s {'yes' if r['outputs_identical'] else 'NO':>10}")
    print("\nload average (1/5/15 min): " + ", ".join(
        f"{k} {v[0]:.2f}/{v[1]:.2f}/{v[2]:.2f}" for k, v in result["loadavg"].items()) + f" on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=6, help="images (the sample images, cycled)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both strategies on the tiny models")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--real", nargs="?", const=REAL_DIR, default=None, metavar="DIR",
                        help=f"also the 500M SmolVLM-shaped model (default {REAL_DIR})")
    parser.add_argument("--real-rounds", type=int, default=1)
    parser.add_argument("--real-max-tokens", type=int, default=4)
    args = parser.parse_args()
    started = time.perf_counter()
    result = asyncio.run(bench(args))
    report(result)
    finish("load-amortisation", result, started)


if __name__ == "__main__":
    main()
