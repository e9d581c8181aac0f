"""Where a streamed generation's time goes on a GPU; tells host-bound runs from device-bound ones.

``profile``: the bare runner's wall time, one decode step of the model alone, and a cProfile of one
``generate`` call. ``ab``: in one process, the bare runner (bench/bare.py), vlmtui's transformers
backend called directly, the bare runner with a per-token stopping criterion like the backend's, and
the backend with the worker's memory sampler running beside it, interleaved round by round.

    python bench/gpu_diag.py profile MODEL_DIR [--runs 6] [--max-tokens 32]
    python bench/gpu_diag.py ab MODEL_DIR [--runs 8] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pstats
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bare import transformers_runner
from bench.common import ROOT

PROMPTS = {"text": (None, "What is the capital of France?"),
           "image": (str(ROOT / "sample_images" / "lake.jpg"), "Describe this image in one sentence.")}


def profile(args: argparse.Namespace) -> None:
    import torch
    from transformers import AutoModelForImageTextToText

    run = transformers_runner(args.model_dir)
    prompt = "What is the capital of France?"
    walls, gaps = [], []
    for _ in range(args.runs):
        started = time.perf_counter()
        tokens, stamps = run(None, prompt, args.max_tokens)
        walls.append(time.perf_counter() - started)
        gaps.extend(b - a for a, b in itertools.pairwise(stamps))
    print(f"bare generate: {tokens} tokens, wall median {statistics.median(walls):.3f} s "
          f"(min {min(walls):.3f}, max {max(walls):.3f}); chunks streamed {len(stamps)}, "
          f"gap median {statistics.median(gaps) * 1000 if gaps else float('nan'):.1f} ms", flush=True)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForImageTextToText.from_pretrained(args.model_dir, dtype=dtype).to(device).eval()
    ids = torch.randint(100, 400, (1, 24), device=device)
    with torch.inference_mode():
        out = model(input_ids=ids, use_cache=True)
        cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        steps = []
        for _ in range(20):
            sync()
            t = time.perf_counter()
            out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
            nxt = out.logits[:, -1:].argmax(-1)
            sync()
            steps.append(time.perf_counter() - t)
    print(f"one decode step of the model alone: median {statistics.median(steps) * 1000:.1f} ms "
          f"(min {min(steps) * 1000:.1f})", flush=True)
    # The generate call itself, in this thread so cProfile sees it (a streamer nobody reads just queues).
    from transformers import AutoProcessor, TextIteratorStreamer

    processor = AutoProcessor.from_pretrained(args.model_dir)
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": prompt}]}],
                                         add_generation_prompt=True)
    inputs = processor(text=text, return_tensors="pt").to(device)
    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    profile = cProfile.Profile()
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=args.max_tokens, do_sample=False)
        profile.enable()
        model.generate(**inputs, streamer=streamer, max_new_tokens=args.max_tokens, do_sample=False)
        profile.disable()
    pstats.Stats(profile).sort_stats("tottime").print_stats(20)


def ab(args: argparse.Namespace) -> None:
    import torch
    import transformers

    from vlmtui.wire.spec import ModelSpec
    from vlmtui.worker.backends.base import GenerationRequest
    from vlmtui.worker.backends.transformers import TransformersBackend
    from vlmtui.worker.images import open_image

    bare = transformers_runner(args.model_dir)
    backend = TransformersBackend(ModelSpec(id="m", backend="transformers", path=args.model_dir))
    backend.load()

    class Clock(transformers.StoppingCriteria):  # what the backend's TokenClock does per token
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), False, dtype=torch.bool, device=input_ids.device)

    original = transformers.GenerationMixin.generate

    def with_clock(self: Any, *a: Any, **kw: Any) -> Any:
        kw.setdefault("stopping_criteria", transformers.StoppingCriteriaList([Clock()]))
        return original(self, *a, **kw)

    def run_backend(image: str | None, prompt: str) -> None:
        request = GenerationRequest(case_id="c", prompt=prompt, image=open_image(image) if image else None,
                                    max_tokens=args.max_tokens, temperature=0.0, should_stop=lambda: False)
        backend.generate(request, lambda text: None)

    def run_clock(image: str | None, prompt: str) -> None:
        transformers.GenerationMixin.generate = with_clock  # type: ignore[method-assign]
        try:
            bare(image, prompt, args.max_tokens)
        finally:
            transformers.GenerationMixin.generate = original  # type: ignore[method-assign]

    # The worker's sampler: framework memory every 100 ms from another thread, timed.
    sampling = threading.Event()
    probe_s: list[float] = []

    def sampler() -> None:
        while True:
            sampling.wait()
            started = time.perf_counter()
            backend.framework_memory()
            probe_s.append(time.perf_counter() - started)
            time.sleep(0.1)

    threading.Thread(target=sampler, daemon=True).start()

    def run_sampled(image: str | None, prompt: str) -> None:
        sampling.set()
        try:
            run_backend(image, prompt)
        finally:
            sampling.clear()

    sides = {"bare": lambda i, p: bare(i, p, args.max_tokens), "backend": run_backend, "bare+clock": run_clock,
             "backend+sampler": run_sampled}
    for case, (image, prompt) in PROMPTS.items():
        times: dict[str, list[float]] = {name: [] for name in sides}
        for r in range(args.runs + 1):
            order = list(sides)[r % len(sides):] + list(sides)[:r % len(sides)]
            for name in order:
                started = time.perf_counter()
                sides[name](image, prompt)
                if r:
                    times[name].append(time.perf_counter() - started)
        base = statistics.median(times["bare"])
        print(case, "  ".join(f"{n}: {statistics.median(t):.3f} s ({statistics.median(t) / base:.3f}×, "
                              f"min {min(t):.3f})" for n, t in times.items()), flush=True)
    if probe_s:
        probe_s.sort()
        median = probe_s[len(probe_s) // 2]
        print(f"framework_memory() during generation: {len(probe_s)} calls, median {median * 1e3:.2f} ms,"
              f" p90 {probe_s[int(len(probe_s) * 0.9)] * 1e3:.2f} ms, max {probe_s[-1] * 1e3:.2f} ms", flush=True)



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["profile", "ab"])
    parser.add_argument("model_dir")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    if args.mode == "profile":
        profile(args)
    else:
        ab(args)


if __name__ == "__main__":
    main()
