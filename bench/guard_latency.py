"""Memory guard reaction latency at 50 / 100 / 250 ms sampling, and what sampling costs in CPU and memory.

Latency. The fault-injection model (tests/fixtures/fault_backend.py, ``fault:<step_mib>:<step_ms>``) runs
inside the real worker (``python -m tests.fixtures.fault_worker``) under a real ``Scheduler`` and climbs
at a steady rate (default 4 MiB every 10 ms) past the abort line (80 % of a 512 MiB budget; cleanup is set
equal to abort so no cache release interrupts the climb). Per repetition:

- detection→stop: ``GuardEvent(action="abort").t`` (the time of the parent's sample that saw the
  reading) to the aborted case's ``ended_at`` (the parent has the worker's ``Result``; the worker has
  stopped at the next token and unloaded by then). Split into probe→act (the sample's time to the moment
  the guard's decision reaches subscribers, which is when ``Abort`` is written), act→last token (the
  worker noticing between tokens) and last token→stop (unload and the ``Result``).
- crossing→stop: when the worker's RSS actually crossed the abort threshold, measured, not estimated:
  a separate poller process reads the worker's RSS with psutil (the same quantity the guard thresholds
  on) every ``--poll-ms`` (1 ms); the crossing is the midpoint between the last poll under the threshold
  and the first at or over it (resolution ≈ the poll interval). crossing→detection is the sampling delay.
- overshoot: the highest RSS the poller saw minus the abort threshold (and, beside it, the highest the
  guard itself saw).

Cost. With a tiny transformers model (``tiny:idefics3``) loaded in the real worker and idle (the scheduler
kept alive, nothing queued), the parent's and the worker's CPU time (psutil ``cpu_times``, user+system)
over ``--idle-s`` seconds at each sample_ms, as % of one core, and both processes' RSS. 1000 ms is run as a
reference for the floor.

    python bench/guard_latency.py [--reps 5] [--sample-ms 50 100 250] [--idle-s 10]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from bench.common import ROOT, finish
from vlmtui.engine.events import CaseFinished, Event, GuardEvent, MemoryUpdate, ModelLoaded, TokenReceived
from vlmtui.engine.plan import Case
from vlmtui.engine.scheduler import Scheduler
from vlmtui.memory.budget import Budget
from vlmtui.suite.loader import GuardConfig
from vlmtui.wire.spec import Expect, ModelSpec

MiB = 1024 * 1024
FAULT_WORKER = [sys.executable, "-m", "tests.fixtures.fault_worker"]
WARN_PCT, ABORT_PCT = 50.0, 80.0


def worker_env() -> dict[str, str]:
    """The worker's environment: this one, with the repository on the path for the fault fixture."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


# ----------------------------------------------------------------------------- the RSS poller (child)


def poll_child(interval_ms: float) -> None:
    """``--poll-child``: read a pid on stdin, poll its RSS until it is gone, print ``[[t, rss], …]``."""
    line = sys.stdin.readline().strip()
    if not line:  # the worker never loaded: nothing to watch
        print("[]")
        return
    proc = psutil.Process(int(line))
    interval = interval_ms / 1000
    samples: list[tuple[float, int]] = []
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            rss = proc.memory_info().rss
        except psutil.Error:
            break
        samples.append((time.time(), rss))
        time.sleep(interval)
    json.dump(samples, sys.stdout)


class Poller:
    """An already started poller process, told which pid to watch once the worker exists."""

    def __init__(self, interval_ms: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--poll-child", str(interval_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )

    def watch(self, pid: int) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{pid}\n")
        self.proc.stdin.close()

    def samples(self) -> list[tuple[float, int]]:
        """The samples, once the watched process has gone (the poller gives up after 120 s)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait()
        return [(t, r) for t, r in json.loads(out or "[]")]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ----------------------------------------------------------------------------- latency


class Timeline:
    """Subscriber: the events a repetition needs, with the time each reached the subscriber."""

    def __init__(self, scheduler: Scheduler, poller: Poller) -> None:
        self.scheduler = scheduler
        self.poller = poller
        self.abort: GuardEvent | None = None
        self.abort_seen: float | None = None
        self.last_token: float | None = None
        self.result: Any = None
        self.updates: list[MemoryUpdate] = []
        self.actions: list[str] = []

    def __call__(self, event: Event) -> None:
        now = time.time()
        if isinstance(event, ModelLoaded) and self.scheduler.worker_pid:
            self.poller.watch(self.scheduler.worker_pid)
        elif isinstance(event, GuardEvent):
            self.actions.append(event.action)
            if event.action == "abort" and self.abort is None:
                self.abort, self.abort_seen = event, now
        elif isinstance(event, TokenReceived):
            self.last_token = now
        elif isinstance(event, MemoryUpdate):
            self.updates.append(event)
        elif isinstance(event, CaseFinished):
            self.result = event.result


async def latency_rep(
    sample_ms: int, budget_mib: int, step_mib: float, step_ms: float, poll_ms: float
) -> dict[str, Any]:
    model = ModelSpec(id="eater", backend="fault", path=f"fault:{step_mib:g}:{step_ms:g}")
    steps = int(2 * budget_mib / step_mib)  # if the guard never acted, the climb stops at twice the budget
    case = Case("eater/climb", model, "eat", None, 0, steps, 0.0, Expect())
    guard = GuardConfig(budget=f"{budget_mib}MiB", warn=WARN_PCT, cleanup=ABORT_PCT, abort=ABORT_PCT,
                        sample_ms=sample_ms, on_abort="next-case", grace_s=1.0)
    scheduler = Scheduler([case], guard=guard, budget=Budget(budget_mib * MiB, f"explicit {budget_mib}MiB"),
                          worker_argv=FAULT_WORKER, worker_env=worker_env())
    poller = Poller(poll_ms)
    timeline = Timeline(scheduler, poller)
    scheduler.subscribe(timeline)
    try:
        await scheduler.run()
        samples = await asyncio.to_thread(poller.samples)
    finally:
        poller.close()
    result, abort = timeline.result, timeline.abort
    if result is None or result.status != "aborted" or abort is None:
        raise RuntimeError(f"expected a guard abort, got {result and result.status}: {result and result.error}")
    threshold = scheduler.guard_loop.guard.thresholds.abort_bytes
    index = next((i for i, (_, rss) in enumerate(samples) if rss >= threshold), None)
    if index is None or index == 0:
        raise RuntimeError("the poller did not see the crossing (started too late, or the worker never crossed)")
    t_under, t_over = samples[index - 1][0], samples[index][0]
    crossing = (t_under + t_over) / 2
    # Climb rate over the 300 ms before the crossing, from the poller.
    before = [(t, r) for t, r in samples[: index + 1] if t >= t_over - 0.3]
    rate = (before[-1][1] - before[0][1]) / (before[-1][0] - before[0][0]) / MiB if len(before) > 1 else None
    during = [r for t, r in samples if t <= result.ended_at]
    released = next((t for t, r in samples if t > crossing and r < threshold), None)
    seen = [u.worker_rss for u in timeline.updates if u.worker_rss]
    stamps = [u.t for u in timeline.updates]
    period = statistics.median(b - a for a, b in itertools.pairwise(stamps)) if len(stamps) > 2 else None
    ms = 1000.0
    return {
        "detect_to_stop_ms": (result.ended_at - abort.t) * ms,
        "cross_to_stop_ms": (result.ended_at - crossing) * ms,
        "cross_to_detect_ms": (abort.t - crossing) * ms,
        "probe_to_act_ms": (timeline.abort_seen - abort.t) * ms if timeline.abort_seen else None,
        "act_to_last_token_ms": (timeline.last_token - timeline.abort_seen) * ms
        if timeline.last_token and timeline.abort_seen else None,
        "last_token_to_stop_ms": (result.ended_at - timeline.last_token) * ms if timeline.last_token else None,
        "cross_to_release_ms": (released - crossing) * ms if released else None,
        "overshoot_mib": (max(during) - threshold) / MiB,
        "guard_seen_overshoot_mib": (max(seen) - threshold) / MiB if seen else None,
        "guard_reading_mib": abort.reading.get("guarded_bytes", 0) / MiB,
        "threshold_mib": threshold / MiB,
        "climb_mib_s": rate,
        "poll_interval_ms": (t_over - t_under) * ms,
        "sample_period_ms": period * ms if period else None,
        "actions": timeline.actions,
    }


# ----------------------------------------------------------------------------- sampling cost


async def idle_cost(sample_ms: int, idle_s: float, settle_s: float = 1.5) -> dict[str, Any]:
    model = ModelSpec(id="tiny-idefics3", backend="transformers", path="tiny:idefics3")
    case = Case("tiny-idefics3/text", model, "What is the capital of France?", None, 0, 2, 0.0, Expect())
    guard = GuardConfig(budget="4GiB", sample_ms=sample_ms)
    scheduler = Scheduler([case], guard=guard, budget=Budget(4096 * MiB, "explicit 4GiB"))
    finished = asyncio.Event()
    updates: list[float] = []

    def on_event(event: Event) -> None:
        if isinstance(event, CaseFinished):
            finished.set()
        elif isinstance(event, MemoryUpdate):
            updates.append(event.t)

    scheduler.subscribe(on_event)
    task = asyncio.create_task(scheduler.run(keep_alive=True))
    try:
        await asyncio.wait_for(finished.wait(), 180)
        result = scheduler.latest()[case.case_id]
        if result.status != "passed":
            raise RuntimeError(f"the loading case ended {result.status}: {result.error}")
        await asyncio.sleep(settle_s)
        assert scheduler.worker_pid is not None
        parent, worker = psutil.Process(), psutil.Process(scheduler.worker_pid)
        p0, w0, t0, n0 = parent.cpu_times(), worker.cpu_times(), time.perf_counter(), len(updates)
        await asyncio.sleep(idle_s)
        p1, w1, t1, n1 = parent.cpu_times(), worker.cpu_times(), time.perf_counter(), len(updates)
        wall = t1 - t0
        row = {
            "sample_ms": sample_ms,
            "window_s": wall,
            "samples": n1 - n0,
            "parent_cpu_pct": 100 * ((p1.user - p0.user) + (p1.system - p0.system)) / wall,
            "worker_cpu_pct": 100 * ((w1.user - w0.user) + (w1.system - w0.system)) / wall,
            "parent_rss_mib": parent.memory_info().rss / MiB,
            "worker_rss_mib": worker.memory_info().rss / MiB,
            "parent_threads": parent.num_threads(),
        }
    finally:
        scheduler.stop("benchmark done")
        await task
    return row


# ----------------------------------------------------------------------------- main


def _med(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def _max(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return max(values) if values else None


def _fmt(value: float | None, width: int, spec: str = ".0f") -> str:
    return f"{'—' if value is None else format(value, spec):>{width}}"


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    load_start = os.getloadavg()
    latency: dict[int, list[dict[str, Any]]] = {ms: [] for ms in args.sample_ms}
    for rep in range(args.reps):  # interleaved: one repetition of each rate per round
        for ms in args.sample_ms:
            row = await latency_rep(ms, args.budget_mib, args.step_mib, args.step_ms, args.poll_ms)
            latency[ms].append(row)
            print(f"  rep {rep} sample_ms={ms}: cross→detect {row['cross_to_detect_ms']:.0f} ms, detect→stop "
                  f"{row['detect_to_stop_ms']:.0f} ms, cross→stop {row['cross_to_stop_ms']:.0f} ms, overshoot "
                  f"{row['overshoot_mib']:.1f} MiB (climb {row['climb_mib_s'] or 0:.0f} MiB/s)", flush=True)
    load_mid = os.getloadavg()
    cost = []
    for ms in args.idle_sample_ms:
        row = await idle_cost(ms, args.idle_s)
        cost.append(row)
        print(f"  idle sample_ms={ms}: parent {row['parent_cpu_pct']:.2f} % CPU, worker "
              f"{row['worker_cpu_pct']:.2f} % CPU, parent RSS {row['parent_rss_mib']:.0f} MiB", flush=True)
    load_end = os.getloadavg()
    summary = {
        ms: {key: _med(rows, key) for key in rows[0] if key != "actions"}
        | {"max_cross_to_stop_ms": _max(rows, "cross_to_stop_ms"), "max_overshoot_mib": _max(rows, "overshoot_mib")}
        for ms, rows in latency.items()
    }
    return {
        "config": {"budget_mib": args.budget_mib, "warn_pct": WARN_PCT, "cleanup_pct": ABORT_PCT,
                   "abort_pct": ABORT_PCT, "fault_model": f"fault:{args.step_mib:g}:{args.step_ms:g}",
                   "reps": args.reps, "poll_ms": args.poll_ms, "idle_s": args.idle_s,
                   "idle_model": "tiny:idefics3 (transformers, cpu)"},
        "loadavg": {"start": load_start, "after_latency": load_mid, "end": load_end},
        "latency": {str(ms): {"median": summary[ms], "reps": rows} for ms, rows in latency.items()},
        "cost": cost,
    }


def report(result: dict[str, Any]) -> None:
    config = result["config"]
    print(f"\nguard reaction ({config['fault_model']}, abort at {config['abort_pct']:g}% of "
          f"{config['budget_mib']} MiB; medians of {config['reps']}, worst in brackets)")
    print(f"  {'sample':>6} {'period':>7} {'cross→detect':>13} {'detect→stop':>12} {'cross→stop':>16} "
          f"{'overshoot MiB':>17} {'guard saw':>10} {'climb':>9}")
    for ms, entry in result["latency"].items():
        m = entry["median"]
        print(f"  {ms + ' ms':>6} {_fmt(m['sample_period_ms'], 5)} ms {_fmt(m['cross_to_detect_ms'], 10)} ms "
              f"{_fmt(m['detect_to_stop_ms'], 9)} ms {_fmt(m['cross_to_stop_ms'], 6)} "
              f"({_fmt(m['max_cross_to_stop_ms'], 4)}) ms {_fmt(m['overshoot_mib'], 7, '.1f')} "
              f"({_fmt(m['max_overshoot_mib'], 5, '.1f')}) "
              f"{_fmt(m['guard_seen_overshoot_mib'], 10, '.1f')} {_fmt(m['climb_mib_s'], 4)} MiB/s")
    print("  detect→stop split (medians): " + "; ".join(
        f"{ms} ms: probe→act {e['median']['probe_to_act_ms']:.1f}, act→last token "
        f"{e['median']['act_to_last_token_ms']:.1f}, last token→stop {e['median']['last_token_to_stop_ms']:.1f}"
        for ms, e in result["latency"].items()))
    print(f"\nsampling cost, worker loaded ({config['idle_model']}) and idle, {config['idle_s']:g} s windows")
    print(f"  {'sample':>6} {'samples/s':>10} {'parent CPU':>11} {'worker CPU':>11} {'parent RSS':>11} "
          f"{'worker RSS':>11}")
    for row in result["cost"]:
        print(f"  {str(row['sample_ms']) + ' ms':>6} {row['samples'] / row['window_s']:>10.1f} "
              f"{row['parent_cpu_pct']:>9.2f} % {row['worker_cpu_pct']:>9.2f} % {row['parent_rss_mib']:>7.0f} MiB "
              f"{row['worker_rss_mib']:>7.0f} MiB")
    load = result["loadavg"]
    print("\nload average (1/5/15 min): " + ", ".join(
        f"{k} {v[0]:.2f}/{v[1]:.2f}/{v[2]:.2f}" for k, v in load.items()) + f" on {os.cpu_count()} cores")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--poll-child":
        poll_child(float(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--sample-ms", type=int, nargs="+", default=[50, 100, 250])
    parser.add_argument("--idle-sample-ms", type=int, nargs="+", default=[50, 100, 250, 1000])
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--budget-mib", type=int, default=512)
    parser.add_argument("--step-mib", type=float, default=4.0)
    parser.add_argument("--step-ms", type=float, default=10.0)
    parser.add_argument("--poll-ms", type=float, default=1.0)
    args = parser.parse_args()
    started = time.perf_counter()
    result = asyncio.run(bench(args))
    report(result)
    finish("guard-latency", result, started)


if __name__ == "__main__":
    main()
