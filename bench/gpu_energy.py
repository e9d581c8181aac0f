"""Energy per case on a real GPU: NVML's total-energy counter against integrated power, through vlmtui's telemetry.

    python bench/gpu_energy.py OUT_JSON [--model-dir DIR] [--interval-ms 100]

On an NVIDIA machine with torch: builds the SmolVLM-500M-shaped random model (``gpu_models.py``), then runs
cases — greedy generations of 150–400 tokens (several seconds each, host-bound at batch 1) and two bf16
matmul bursts (the GPU near its power limit) — with idle gaps between them. Each case is measured the way
``engine/case_energy.py`` does it: ``TelemetrySampler.mark()`` at its start and end, ``sample()`` every
interval in between (the guard loop's ticks). The same samples give two figures through ``EnergyMeter``:
the counter's difference (``nvml-counter``) and, with the counter stripped from every sample, the
trapezoid of NVML's power (``nvml-power``, a 1 s average on H100/H200). Prints the ratio per case and
saves both, with the machine, versions and the raw power series, as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, machine
from vlmtui.memory.energy import EnergyMeter
from vlmtui.memory.telemetry import TelemetrySampler
from vlmtui.memory.telemetry_sample import TelemetrySample

GEN_TOKENS = (150, 250, 350, 200, 300, 400)
MATMUL_S = (6.0, 10.0)
GAP_S = 2.0


def _smi() -> dict[str, str]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,power.limit", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        name, driver, limit = (p.strip() for p in out.split(","))
        return {"gpu": name, "driver": driver, "power_limit": limit}
    except (OSError, IndexError, ValueError, subprocess.SubprocessError) as exc:
        return {"error": str(exc)}


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class Ticker:
    """The guard loop's ticks: ``sampler.sample()`` every interval into the running case's list."""

    def __init__(self, sampler: TelemetrySampler, interval_s: float) -> None:
        self.sampler, self.interval_s = sampler, interval_s
        self.samples: list[TelemetrySample] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            current = self.samples
            if current is not None:
                current.append(self.sampler.sample())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def measure(sampler: TelemetrySampler, ticker: Ticker, work: Any) -> dict[str, Any]:
    """Run ``work()`` (returns generated tokens or None) between two marks; both energy readings."""
    samples = [sampler.mark()]
    ticker.samples = samples
    started = time.perf_counter()
    tokens = work()
    elapsed = time.perf_counter() - started
    ticker.samples = None
    samples.append(sampler.mark())
    counter, power = EnergyMeter(), EnergyMeter()
    for s in samples:
        counter.add(s)
        power.add(dataclasses.replace(s, energy_j_counter=None))
    by_counter, by_power = counter.reading(tokens), power.reading(tokens)
    ratio = (by_power.energy_j / by_counter.energy_j
             if by_counter.energy_j and by_power.energy_j is not None else None)
    return {
        "tokens": tokens, "elapsed_s": round(elapsed, 3),
        "counter": by_counter.to_dict(), "integrated": by_power.to_dict(),
        "ratio_integrated_over_counter": ratio,
        "series": [[round(s.t - samples[0].t, 3), s.power_w, s.energy_j_counter] for s in samples],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/gpu-energy-smolvlm"))
    parser.add_argument("--interval-ms", type=int, default=100)
    parser.add_argument("--commit", default=None, help="vlmtui's commit, where the copy has no .git")
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer, Idefics3ForConditionalGeneration

    from bench.gpu_models import build_smolvlm_500m

    if not (args.model_dir / "config.json").exists():
        build_smolvlm_500m(args.model_dir)
    model = Idefics3ForConditionalGeneration.from_pretrained(args.model_dir, dtype=torch.bfloat16).to("cuda").eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    ids = tokenizer("Describe the picture in as much detail as you can, please.", return_tensors="pt")
    ids = {k: v.to("cuda") for k, v in ids.items()}
    with torch.no_grad():  # warm-up, not measured
        model.generate(**ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    torch.cuda.synchronize()

    def generate(n: int) -> Any:
        def work() -> int:
            with torch.no_grad():
                out = model.generate(**ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
            torch.cuda.synchronize()
            return int(out.shape[1] - ids["input_ids"].shape[1])
        return work

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)

    def matmul(seconds: float) -> Any:
        def work() -> None:
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                for _ in range(20):
                    a @ b
                torch.cuda.synchronize()
        return work

    cases: list[tuple[str, Any]] = [(f"generate-{n}", generate(n)) for n in GEN_TOKENS]
    cases[3:3] = [(f"matmul-{s:g}s", matmul(s)) for s in MATMUL_S]
    results = []
    sampler = TelemetrySampler(interval_ms=args.interval_ms).start()
    ticker = Ticker(sampler, args.interval_ms / 1000)
    try:
        for name, work in cases:
            time.sleep(GAP_S)
            row = {"case": name, **measure(sampler, ticker, work)}
            results.append(row)
            c, i = row["counter"], row["integrated"]
            jpt = f"{c['j_per_token']:.3f} J/token" if c["j_per_token"] else ""
            print(f"{name:>14}: {row['elapsed_s']:6.2f} s  counter {c['energy_j']:8.1f} J ({c['source']}) "
                  f" integrated {i['energy_j']:8.1f} J ({i['source']}, {i['samples']} samples)  "
                  f"ratio {row['ratio_integrated_over_counter']:.4f}  {jpt}", flush=True)
    finally:
        ticker.stop()
        sampler.stop()
    ratios = [r["ratio_integrated_over_counter"] for r in results if r["ratio_integrated_over_counter"]]
    summary = {"ratio_min": min(ratios), "ratio_max": max(ratios),
               "within_10_pct": all(abs(r - 1) <= 0.10 for r in ratios)}
    print(f"ratio range {summary['ratio_min']:.4f}..{summary['ratio_max']:.4f}; "
          f"within 10 %: {summary['within_10_pct']}", flush=True)
    info = machine()
    payload = {
        "machine": {**info, **_smi()},
        "vlmtui_commit": args.commit or _commit(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "interval_ms": args.interval_ms, "gap_s": GAP_S,
        "model": "smolvlm-500m shape, random bf16 (bench/gpu_models.py), greedy, text prompt",
        "summary": summary, "cases": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"saved {args.out}", flush=True)


if __name__ == "__main__":
    main()
