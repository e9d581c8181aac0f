"""What the parent's telemetry sampler costs, and a raw NVML series recorded on a real GPU for the tests' fake.

    python bench/telemetry_cost.py cost [--calls 20000] [--loop-s 10] [--json FILE]
    python bench/telemetry_cost.py record --out FILE [--idle-s 3] [--load-s 10] [--tail-s 4]

``cost``: per call of ``TelemetrySampler.sample()`` (median and p99 of single calls, µs) on each path this
machine can run side by side — the n/a path (no GPU, not macOS), NVML through the recorded fake
(tests/fixtures/fake_pynvml.py), the macOS path with recorded pmset/sysctl runners and no macmon, and real
NVML when pynvml and a GPU are here — then the share of one core a 250 ms sampling thread takes over
``--loop-s`` seconds (the whole process's CPU time over wall time, the sampler's own threads included).

``record`` (an NVIDIA machine with torch): every 250 ms, pynvml's raw answers (utilisation, power in mW,
the total-energy counter in mJ, temperature, clock-event reason bits) while the GPU idles, runs bf16
8192³ matrix products in a child process for ``--load-s``, and idles again; plus the cost of each NVML
call, and the load window's energy by the counter against the trapezoid of power. The output is the
fixture tests/fixtures/nvml_h200_recording.json replays.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

from bench.common import machine
from vlmtui.memory.system import run_sysctl
from vlmtui.memory.telemetry import PRESSURE_EVERY_S, THERMAL_EVERY_S, TelemetrySampler
from vlmtui.memory.telemetry_sample import NA_MACMON, NotAvailable

INTERVAL_S = 0.25

LOAD = """
import sys, time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
end = time.time() + float(sys.argv[1])
n = 0
while time.time() < end:
    for _ in range(20):
        c = a @ b
    torch.cuda.synchronize()
    n += 20
print(n, flush=True)
"""


def per_call_us(fn: Callable[[], object], calls: int) -> dict[str, float]:
    """Median and p99 of single calls, in µs (after 200 warm-up calls)."""
    for _ in range(200):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - start) / 1000)
    times.sort()
    return {"median_us": round(statistics.median(times), 2), "p99_us": round(times[int(len(times) * 0.99)], 2),
            "calls": calls}


def loop_share(sampler: TelemetrySampler, seconds: float) -> dict[str, float]:
    """The share of one core the sampler takes while a thread calls ``sample()`` every 250 ms: this process's
    CPU time over wall time, so the sampler's own threads (NVML, macOS poller, macmon reader) count too."""
    result: dict[str, float] = {}

    def run() -> None:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        n = 0
        while time.perf_counter() - wall0 < seconds:
            sampler.sample()
            n += 1
            time.sleep(INTERVAL_S)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        result.update(samples=n, process_cpu_s=round(cpu, 6), wall_s=round(wall, 3),
                      pct_of_core=round(100 * cpu / wall, 4))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result


def cost(args: argparse.Namespace) -> dict[str, Any]:
    """Per-call cost on each path here, then the 250 ms loop's share of a core on the costliest one."""
    from tests.fixtures import fake_pynvml
    from tests.fixtures.recorded_mac import RecordedRunner

    paths: dict[str, TelemetrySampler] = {
        "default (what this machine has)": TelemetrySampler(),
        "nvml (recorded fake)": TelemetrySampler(nvml=fake_pynvml.replaying(index=40)),
        "macOS, no macmon (recorded runners)": TelemetrySampler(platform="darwin", macmon=NotAvailable(NA_MACMON),
                                                                run=RecordedRunner.mac()),
    }
    try:
        import pynvml  # noqa: F401

        paths["nvml (real)"] = TelemetrySampler()
    except ImportError:
        pass
    out: dict[str, Any] = {"per_call": {}, "mark": {}, "loop_250ms": {}}
    for name, sampler in paths.items():
        sampler.start()
        try:
            out["per_call"][name] = per_call_us(sampler.sample, args.calls)
            out["mark"][name] = per_call_us(sampler.mark, 500)
            out["loop_250ms"][name] = loop_share(sampler, args.loop_s)
        finally:
            sampler.stop()
        print(f"{name:40s} {out['per_call'][name]['median_us']:8.1f} µs/call (p99 "
              f"{out['per_call'][name]['p99_us']:.1f}); 250 ms loop {out['loop_250ms'][name]['pct_of_core']:.3f} % "
              f"of a core; mark() {out['mark'][name]['median_us']:.1f} µs (p99 {out['mark'][name]['p99_us']:.1f})",
              flush=True)
    if sys.platform == "linux" and shutil.which("sysctl"):
        # The macOS poller's real cost is its children: one sysctl a second, one pmset every 5 s. A sysctl
        # child here costs what a fork+exec of a small tool costs, in the parent and the child together.
        calls = 200
        before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(calls):
            run_sysctl(["sysctl", "-n", "kernel.ostype"])
        after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = sum((a.ru_utime + a.ru_stime) - (b.ru_utime + b.ru_stime) for a, b in zip(after, before, strict=True))
        per_child_ms = 1000 * cpu / calls
        share = per_child_ms / 1000 * (1 / PRESSURE_EVERY_S + 1 / THERMAL_EVERY_S) * 100
        out["child_process"] = {"cpu_ms_per_sysctl": round(per_child_ms, 3),
                                "macos_poller_pct_of_core_estimate": round(share, 4)}
        print(f"{'a sysctl child (parent + child CPU)':40s} {per_child_ms:8.2f} ms; the macOS poller's children "
              f"≈ {share:.2f} % of a core", flush=True)
    return out


def record(args: argparse.Namespace) -> dict[str, Any]:
    """A raw NVML series on this GPU: idle, bf16 matrix load in a child, idle; plus NVML's call costs."""
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    reasons_fn = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons",
                         pynvml.nvmlDeviceGetCurrentClocksThrottleReasons)

    def raw() -> dict[str, Any]:
        util = pynvml.nvmlDeviceGetUtilizationRates(handle)
        return {
            "t": round(time.time() - t0, 4),
            "util_gpu": int(util.gpu),
            "util_memory": int(util.memory),
            "power_mw": int(pynvml.nvmlDeviceGetPowerUsage(handle)),
            "energy_mj": int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)),
            "temp_c": int(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)),
            "reasons": int(reasons_fn(handle)),
        }

    def text(v: Any) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
    gpu = {
        "name": text(pynvml.nvmlDeviceGetName(handle)),
        "driver": text(pynvml.nvmlSystemGetDriverVersion()),
        "nvml_py": getattr(pynvml, "__version__", None),
        "memory_total": int(mem.total),
        "power_limit_mw": int(pynvml.nvmlDeviceGetEnforcedPowerLimit(handle)),
        "count": int(pynvml.nvmlDeviceGetCount()),
    }
    calls = {
        "nvmlDeviceGetUtilizationRates": lambda: pynvml.nvmlDeviceGetUtilizationRates(handle),
        "nvmlDeviceGetPowerUsage": lambda: pynvml.nvmlDeviceGetPowerUsage(handle),
        "nvmlDeviceGetTotalEnergyConsumption": lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle),
        "nvmlDeviceGetTemperature": lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
        "clock event reasons": lambda: reasons_fn(handle),
    }
    t0 = time.time()
    samples: list[dict[str, Any]] = []
    phases: list[dict[str, Any]] = []

    def sample_while(done: Callable[[], bool], name: str) -> None:
        start = time.time() - t0
        while not done():
            samples.append(raw())
            time.sleep(INTERVAL_S)
        phases.append({"name": name, "t0": round(start, 4), "t1": round(time.time() - t0, 4)})

    def for_s(seconds: float) -> Callable[[], bool]:
        end = time.time() + seconds
        return lambda: time.time() >= end

    idle_cost = {name: per_call_us(fn, 2000) for name, fn in calls.items()}
    sample_while(for_s(args.idle_s), "idle")
    load = subprocess.Popen([sys.executable, "-c", LOAD, str(args.load_s)], stdout=subprocess.PIPE, text=True)
    sample_while(lambda: load.poll() is not None, "load (torch import, then products)")
    products = load.communicate(timeout=120)[0].strip()
    sample_while(for_s(args.tail_s), "idle")
    pynvml.nvmlShutdown()

    def check(window: list[dict[str, Any]]) -> dict[str, Any]:
        counter_j = (window[-1]["energy_mj"] - window[0]["energy_mj"]) / 1000
        trapezoid_j = sum((a["power_mw"] + b["power_mw"]) / 2000 * (b["t"] - a["t"])
                          for a, b in itertools.pairwise(window))
        return {"t0": window[0]["t"], "t1": window[-1]["t"], "counter_j": round(counter_j, 3),
                "trapezoid_j": round(trapezoid_j, 3),
                "trapezoid_over_counter": round(trapezoid_j / counter_j, 4) if counter_j else None}

    busy = [i for i, s in enumerate(samples) if s["util_gpu"] >= 50]
    return {
        "gpu": gpu,
        "interval_ms": int(INTERVAL_S * 1000),
        "load": f"bf16 8192x8192 @ 8192x8192 in a child process, {products} products in {args.load_s} s",
        "phases": phases,
        "nvml_call_cost_idle": idle_cost,
        "check_whole_series": check(samples),
        "check_busy_span": check(samples[busy[0]: busy[-1] + 1]) if len(busy) > 1 else None,
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cost")
    c.add_argument("--calls", type=int, default=20000)
    c.add_argument("--loop-s", type=float, default=10.0)
    c.add_argument("--json", type=Path)
    r = sub.add_parser("record")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--idle-s", type=float, default=3.0)
    r.add_argument("--load-s", type=float, default=12.0)
    r.add_argument("--tail-s", type=float, default=4.0)
    args = parser.parse_args()
    result = cost(args) if args.command == "cost" else record(args)
    payload = {"machine": machine(), **result}
    target = args.json if args.command == "cost" else args.out
    if target is not None:
        target.write_text(json.dumps(payload, indent=1) + "\n")
        print(f"saved {target}")


if __name__ == "__main__":
    main()
