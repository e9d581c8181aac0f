"""The real-size GPU run: harness overhead, the CUDA memory gauge against nvidia-smi, and the guard
aborting a case cleanly when the budget is below what a large image needs.

Runs on a machine with an NVIDIA GPU and no network: the models are built here with random weights
(bench/gpu_models.py). Each step writes its own result to bench/results/ (``overhead-smolvlm-gpu-``,
``overhead-llava-gpu-``, ``gpu-gauge-``, ``gpu-guard-<date>.json``), so a run can be split over several
calls; with ``--out DIR``, copies of them plus the session logs go there too.

    python bench/gpu_run.py --models /tmp/models [--out DIR] [--rounds 3] [--max-tokens 32] [--steps ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, ROOT, save
from vlmtui.engine.session_log import load_log

MiB = 1024 * 1024
GiB = 1024 * MiB
SMOL, LLAVA = "smolvlm-500m", "llava-v1.6-mistral-7b"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def nvidia_smi(*query: str) -> str:
    return subprocess.run(["nvidia-smi", *query], capture_output=True, text=True, check=False).stdout.strip()


class SmiPoller:
    """Polls nvidia-smi's per-process used memory every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []  # (time, pid, used bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.time()
            text = nvidia_smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
            for line in text.splitlines():
                pid, used = (part.strip() for part in line.split(","))
                if pid.isdigit() and used.isdigit():
                    self.samples.append((t, int(pid), int(used) * MiB))
            self._stop.wait(self.interval)

    def __enter__(self) -> SmiPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def write_suite(path: Path, model_dir: Path, *, images: list[Path], text: bool, max_tokens: int,
                force: bool, budget: str = "auto", on_abort: str = "next-case") -> Path:
    image_list = ", ".join(f'"{p}"' for p in images)
    path.write_text(f"""
name = "{path.stem}"
images = [{image_list}]
prompts = ["Describe this image in one sentence."]
text_prompts = {'["What is the capital of France?"]' if text else '[]'}
max_tokens = {max_tokens}

[guard]
budget = "{budget}"
sample_ms = 100
log_every_ms = 100
on_abort = "{on_abort}"

[[models]]
id = "{model_dir.name}"
backend = "transformers"
path = "{model_dir}"
force = {'true' if force else 'false'}
""")
    return path


def run_vlmtui(suite: Path, log_path: Path, timeout: float = 400) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "vlmtui", "run", str(suite), "--headless", "--log", str(log_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout, check=False)
    return done.returncode, done.stdout[-4000:] + done.stderr[-2000:]


def gauge_vs_smi(model_dir: Path, work: Path, max_tokens: int) -> dict[str, Any]:
    """vlmtui's CUDA gauge (torch reserved, sampled in the worker) beside nvidia-smi's per-process figure."""
    images = sorted((ROOT / "sample_images").iterdir())
    suite = write_suite(work / "gauge.toml", model_dir, images=images, text=True, max_tokens=max_tokens, force=True)
    log_path = work / "gauge.jsonl"
    with SmiPoller() as smi:
        code, output = run_vlmtui(suite, log_path)
    data = load_log(log_path)
    pairs = []
    for sample in data.memory:
        framework = sample.get("framework") or {}
        if framework.get("framework") != "torch-cuda":
            continue
        near = [s for s in smi.samples if abs(s[0] - sample["t"]) < 0.15]
        if near:
            closest = min(near, key=lambda s: abs(s[0] - sample["t"]))
            pairs.append((framework["guarded_bytes"], framework.get("active_bytes") or 0, closest[2]))
    diffs = [smi_used - reserved for reserved, _, smi_used in pairs]
    return {
        "exit_code": code, "statuses": [r["status"] for r in data.latest().values()],
        "paired_samples": len(pairs),
        "reserved_max_gib": round(max(p[0] for p in pairs) / GiB, 3) if pairs else None,
        "smi_max_gib": round(max(p[2] for p in pairs) / GiB, 3) if pairs else None,
        "smi_minus_reserved_median_mib": round(statistics.median(diffs) / MiB, 1) if diffs else None,
        "smi_minus_reserved_range_mib": [round(min(diffs) / MiB, 1), round(max(diffs) / MiB, 1)] if diffs else None,
        "note": "nvidia-smi counts the CUDA context and cuBLAS workspaces on top of torch's reserved pool",
        "output_tail": output[-1500:] if code not in (0, 1) else "",
    }


def big_image(path: Path) -> Path:
    from PIL import Image

    Image.effect_noise((4032, 3024), 64).convert("RGB").save(path, quality=90)
    return path


def guard_abort(model_dir: Path, work: Path, max_tokens: int) -> dict[str, Any]:
    """Measure what a large image needs, then set the budget below it: preflight skip, then a clean abort."""
    image = big_image(work / "large-photo.jpg")
    # 1. Generous budget: how much does the large image need on top of the loaded model?
    suite = write_suite(work / "measure.toml", model_dir, images=[image], text=False, max_tokens=max_tokens,
                        force=True)
    code, output = run_vlmtui(suite, work / "measure.jsonl")
    data = load_log(work / "measure.jsonl")
    case = next(iter(data.latest().values()))
    started = data.results[0]["started_at"]
    # The model's own footprint: the most torch held before the case began, or, where no sample shows
    # it (the case starts the moment the load ends), the weight files' size.
    before = [m["framework"]["guarded_bytes"] for m in data.memory if m.get("framework") and m["t"] <= started]
    weights = sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))
    base = max(before) if before else weights
    sampled_peak = max((m["framework"]["guarded_bytes"] for m in data.memory
                        if m.get("framework") and m["t"] >= started), default=0)
    peak = max(case["metrics"].get("peak_memory_bytes") or 0, sampled_peak)
    result: dict[str, Any] = {"measure": {"exit_code": code, "status": case["status"],
                                          "after_load_gib": round(base / GiB, 3) if base else None,
                                          "after_load_from": "memory samples" if before else "weight files",
                                          "case_peak_gib": round(peak / GiB, 3)}}
    if base is None or peak <= base:
        result["error"] = "could not measure the activation peak"
        result["output_tail"] = output[-2000:]
        return result
    abort_at = base + (peak - base) * 0.5
    budget = int(abort_at / 0.95)
    result["budget_gib"] = round(budget / GiB, 3)
    result["abort_threshold_gib"] = round(abort_at / GiB, 3)
    # 2. Without force: the preflight estimate from the weight files refuses the load.
    suite = write_suite(work / "preflight.toml", model_dir, images=[image], text=False, max_tokens=max_tokens,
                        force=False, budget=f"{budget}")
    code, _ = run_vlmtui(suite, work / "preflight.jsonl")
    pre = next(iter(load_log(work / "preflight.jsonl").latest().values()))
    result["preflight"] = {"exit_code": code, "status": pre["status"], "error": pre["error"]}
    # 3. With force: the large image is aborted (guard or the allocator's hard cap), and the text prompt
    # after it passes (LLaVA-NeXT tiles any image of 672 px or more alike, so a text prompt is the case
    # that needs less).
    suite = write_suite(work / "abort.toml", model_dir, images=[image], text=True, max_tokens=max_tokens,
                        force=True, budget=f"{budget}")
    code, output = run_vlmtui(suite, work / "abort.jsonl")
    data = load_log(work / "abort.jsonl")
    result["abort"] = {
        "exit_code": code,
        "cases": {cid: {"status": r["status"], "error": r["error"][:300]} for cid, r in data.latest().items()},
        "guard_events": [{"action": g["action"], "reason": g["reason"]} for g in data.guard],
        "crashed": sum(r["status"] == "crashed" for r in data.results),
        "traceback_in_output": "Traceback" in output,
    }
    return result


STEPS = ("build", "overhead-smolvlm", "overhead-llava", "gauge", "guard")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, default=Path("/tmp/models"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS),
                        help="each step saves its own result file, so the run can be split over several calls")
    args = parser.parse_args()
    work = Path("/tmp/vlmtui-gpu-run")
    work.mkdir(parents=True, exist_ok=True)
    gpu = nvidia_smi("--query-gpu=name,memory.total,driver_version", "--format=csv,noheader")
    log(f"GPU: {gpu}")
    saved: list[Path] = []
    if "build" in args.steps:
        started = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_models.py"), str(args.models), SMOL, LLAVA],
                       check=True, cwd=ROOT)
        log(f"models ready in {time.perf_counter() - started:.1f} s")
    for step, family, name in (("overhead-smolvlm", "idefics3", SMOL), ("overhead-llava", "llava-next", LLAVA)):
        if step in args.steps:
            # Streams its rounds as they run; saves bench/results/<step>-gpu-<date>.json itself.
            subprocess.run([sys.executable, str(ROOT / "bench" / "overhead.py"), "--name", f"{step}-gpu",
                            "--rounds", str(args.rounds), "--max-tokens", str(args.max_tokens),
                            "--model", f"{family}={args.models / name}"], check=False, cwd=ROOT)
            saved.extend(RESULTS.glob(f"{step}-gpu-*.json"))
    if "gauge" in args.steps:
        log("gauge: vlmtui's CUDA gauge beside nvidia-smi")
        gauge = gauge_vs_smi(args.models / LLAVA, work, args.max_tokens)
        log(f"gauge: {json.dumps(gauge)[:800]}")
        saved.append(save("gpu-gauge", {"gpu": gpu, "model": LLAVA, "gauge": gauge}))
    if "guard" in args.steps:
        log("guard: preflight skip and guard abort on a 4032x3024 image")
        guard = guard_abort(args.models / LLAVA, work, args.max_tokens)
        log(f"guard: {json.dumps(guard)[:1500]}")
        saved.append(save("gpu-guard", {"gpu": gpu, "model": LLAVA, "guard": guard}))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for item in saved:
            shutil.copy(item, args.out / item.name)
        for name in ("gauge.jsonl", "abort.jsonl", "measure.jsonl"):
            if (work / name).exists():
                shutil.copy(work / name, args.out / name)
    log(f"saved {', '.join(p.name for p in saved) or 'nothing'}")


if __name__ == "__main__":
    main()
