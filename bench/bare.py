"""The baseline for bench/overhead.py: the backend library called directly, as a user's own script would.

Run as a subprocess: loads the model once, then for each JSON line on stdin
(``{"image": path|null, "prompt": str, "max_tokens": int}``) generates with streaming and prints
``{"wall_s", "tokens"}``. No vlmtui code runs in the timed path.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from typing import Any

from PIL import Image


def transformers_runner(model_dir: str) -> Any:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, TextIteratorStreamer

    # The same device and dtype vlmtui's backend chooses by default: bf16 on CUDA, fp32 on the CPU.
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    if device == "cpu" and "/tiny/" in model_dir:
        torch.set_num_threads(1)  # as vlmtui's backend does for tiny models (see its load())
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype).to(device).eval()

    def run(image_path: str | None, prompt: str, max_tokens: int) -> tuple[int, list[float]]:
        content: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
        images = None
        if image_path:
            images = [Image.open(image_path).convert("RGB")]
            content.insert(0, {"type": "image"})
        text = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
        inputs = processor(text=text, images=images, return_tensors="pt").to(device, dtype=dtype)
        streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(inputs, streamer=streamer, max_new_tokens=max_tokens, do_sample=False)
        output: list[Any] = []
        def generate() -> None:
            with torch.inference_mode():
                output.append(model.generate(**kwargs))

        thread = threading.Thread(target=generate)
        thread.start()
        stamps = [time.perf_counter() for chunk in streamer if chunk]
        thread.join()
        return int(output[0].shape[-1] - inputs["input_ids"].shape[-1]), stamps

    return run


def mlx_runner(model_dir: str) -> Any:
    from mlx_vlm import load, stream_generate
    from mlx_vlm.prompt_utils import apply_chat_template

    model, processor = load(model_dir)
    config = model.config

    def run(image_path: str | None, prompt: str, max_tokens: int) -> tuple[int, list[float]]:
        images = [Image.open(image_path).convert("RGB")] if image_path else None
        formatted = apply_chat_template(processor, config, prompt, num_images=1 if images else 0)
        stamps: list[float] = []
        tokens = 0
        for chunk in stream_generate(model, processor, formatted, image=images, max_tokens=max_tokens):
            stamps.append(time.perf_counter())
            tokens = chunk.generation_tokens
        return tokens, stamps

    return run


def main() -> None:
    backend, model_dir = sys.argv[1], sys.argv[2]
    run = transformers_runner(model_dir) if backend == "transformers" else mlx_runner(model_dir)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        started = time.perf_counter()
        tokens, stamps = run(job["image"], job["prompt"], job["max_tokens"])
        wall = time.perf_counter() - started
        # Where the time goes: to the first streamed chunk (image preparation and prefill), then per chunk.
        gaps = sorted(b - a for a, b in itertools.pairwise(stamps))
        print(json.dumps({"wall_s": wall, "tokens": tokens, "first_s": stamps[0] - started if stamps else None,
                          "chunk_s": gaps[len(gaps) // 2] if gaps else None}), flush=True)


if __name__ == "__main__":
    main()
