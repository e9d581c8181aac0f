"""Real-size, randomly initialised VLMs for the GPU benchmark, built offline from published dimensions.

``smolvlm-500m``: Idefics3 with SmolVLM-500M-Instruct's shape (SigLIP-B/16 at 512 px, 12 layers of
768; SmolLM2-360M decoder, 32 layers of 960, 15 heads, 5 KV heads; pixel shuffle 4; 64 tokens a tile).
``llava-v1.6-mistral-7b``: LLaVA-NeXT with LLaVA-v1.6-Mistral-7B's shape (CLIP ViT-L/14 at 336 px;
Mistral-7B decoder, 32 layers of 4096, 14336 MLP, 32 heads, 8 KV heads; anyres pinpoints up to 672 px).
Weights are random (bf16); the tokenizer is the demo's small BPE grown with made-up words up to
the published vocabulary size, so every id the model can emit decodes and answers stream word by word.
Gibberish, real-size compute.

    python bench/gpu_models.py OUT_DIR [smolvlm-500m] [llava-v1.6-mistral-7b]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vlmtui.worker.demo.tiny_hf import IDEFICS3_TEMPLATE, LLAVA_NEXT_TEMPLATE
from vlmtui.worker.demo.tokenizer import build_tokenizer


def _words(count: int) -> list[str]:
    """``count`` distinct made-up words (``ba``, ``be``, …, ``baba``…), deterministic."""
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]
    words = []
    for i in range(count):
        parts = [syllables[i % len(syllables)]]
        i //= len(syllables)
        while i:
            parts.append(syllables[i % len(syllables)])
            i //= len(syllables)
        words.append("".join(parts))
    return words


def _pad_vocab(tokenizer: Any, size: int) -> Any:
    """Grow the BPE vocabulary itself to ``size`` with space-led made-up words.

    Ordinary vocabulary entries, not added tokens: a random model's output then decodes to words with
    spaces between them, so ``TextIteratorStreamer`` streams it word by word as it does a real model's
    (added ``<pad_N>`` tokens decode without spaces, and the streamer would hold the whole answer back).
    """
    import json

    from tokenizers import Tokenizer

    data = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = data["model"]["vocab"]
    start = len(tokenizer)
    fresh = (w for w in ("\u0120" + word for word in _words(2 * size)) if w not in vocab)  # Ġ: a leading space
    for index in range(start, size):
        vocab[next(fresh)] = index
    tokenizer._tokenizer = Tokenizer.from_str(json.dumps(data))  # keeps the wrapper's special tokens and template
    if len(tokenizer) != max(size, start):
        raise RuntimeError(f"padded vocabulary has {len(tokenizer)} entries, wanted {size}")
    return tokenizer


def _text(tokenizer: Any, **dims: Any) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
        **dims,
    }


def _save(dest: Path, model_class: Any, config: Any, processor: Any, tokenizer: Any) -> None:
    import torch

    started = time.perf_counter()
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = model_class(config).eval()
    finally:
        torch.set_default_dtype(default)
    special = sorted(set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder))
    with torch.no_grad():
        model.get_output_embeddings().weight[special] = 0.0  # greedy decoding never ends early
    params = sum(p.numel() for p in model.parameters())
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    processor.save_pretrained(dest)
    print(f"{dest.name}: {params / 1e9:.3f} B parameters, built and saved in {time.perf_counter() - started:.1f} s",
          flush=True)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()


def build_smolvlm_500m(dest: Path) -> None:
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    grid = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    tokenizer = build_tokenizer(["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", *grid],
                                chat_template=IDEFICS3_TEMPLATE)
    tokenizer.eos_token = "<end_of_utterance>"
    _pad_vocab(tokenizer, 49280)
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(size={"longest_edge": 2048}, max_image_size={"longest_edge": 512},
                                                  do_image_splitting=True),
        tokenizer=tokenizer, image_seq_len=64, chat_template=IDEFICS3_TEMPLATE,
    )
    config = Idefics3Config(
        vision_config={"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                       "num_attention_heads": 12, "image_size": 512, "patch_size": 16},
        text_config={"model_type": "llama", **_text(
            tokenizer, hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
            num_key_value_heads=5, max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5)},
        scale_factor=4, image_token_id=processor.image_token_id,
    )
    _save(dest, Idefics3ForConditionalGeneration, config, processor, tokenizer)


def build_llava_v16_mistral_7b(dest: Path) -> None:
    from transformers import (
        CLIPVisionConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextProcessor,
        MistralConfig,
    )
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    tokenizer = _pad_vocab(build_tokenizer(["<image>"], chat_template=LLAVA_NEXT_TEMPLATE), 32064)
    pinpoints = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
    processor_class: Any = LlavaNextProcessor
    processor = processor_class(
        image_processor=LlavaNextImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
                                                   image_grid_pinpoints=pinpoints),
        tokenizer=tokenizer, patch_size=14, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=LLAVA_NEXT_TEMPLATE,
    )
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                       num_attention_heads=16, image_size=336, patch_size=14, projection_dim=768),
        text_config=MistralConfig(**_text(
            tokenizer, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
            num_key_value_heads=8, max_position_embeddings=32768, rope_theta=1000000.0, sliding_window=None)),
        image_token_index=processor.image_token_id, image_grid_pinpoints=pinpoints, image_seq_length=576,
        vision_feature_layer=-2, vision_feature_select_strategy="default",
    )
    _save(dest, LlavaNextForConditionalGeneration, config, processor, tokenizer)


BUILDERS = {"smolvlm-500m": build_smolvlm_500m, "llava-v1.6-mistral-7b": build_llava_v16_mistral_7b}

if __name__ == "__main__":
    out = Path(sys.argv[1])
    for name in sys.argv[2:] or list(BUILDERS):
        if not (out / name / "config.json").exists():
            BUILDERS[name](out / name)
