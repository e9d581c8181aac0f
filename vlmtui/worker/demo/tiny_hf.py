"""Tiny randomly initialised Hugging Face VLMs (Idefics3/SmolVLM, SmolVLM2, LLaVA-v1.6 layouts), built offline.

Each builder writes a complete checkpoint (config, safetensors weights, processor, tokenizer, chat
template) that ``AutoProcessor`` and ``AutoModelForImageTextToText`` load like a real one. Images are
~32 px, the towers have 2 layers of width 64, so a model is under 1 MB and streams a token in about a
millisecond on a CPU. The output is gibberish of exactly ``max_new_tokens`` tokens under greedy decoding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vlmtui.worker.demo.tokenizer import build_tokenizer

SEED = 0
WIDTH = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2
IMAGE_SIZE = 32
PATCH_SIZE = 8
MAX_POSITIONS = 4096

IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}"
    "{% else %}{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
"""SmolVLM-Instruct's chat template (``User:<image>…<end_of_utterance>\\nAssistant:``)."""

LLAVA_NEXT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '<image>\n' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}{{ ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{% if message['content'] is string %}{{ ' ' + message['content'] }}"
    "{% else %}{% for part in message['content'] %}{{ ' ' + part['text'] }}{% endfor %}{% endif %}"
    "{{ eos_token }}{% endif %}{% endfor %}"
)
"""llava-v1.6-mistral-7b-hf's Mistral ``[INST] <image>\\n… [/INST]`` template."""


LlavaNextGeometry = tuple[int, int, tuple[tuple[int, int], ...]]
"""A LLaVA-NeXT tile side, patch side and the (height, width) grids its images are fitted to."""
TINY_PINPOINTS = ((IMAGE_SIZE, IMAGE_SIZE), (IMAGE_SIZE, 2 * IMAGE_SIZE), (2 * IMAGE_SIZE, IMAGE_SIZE))
HUB_LLAVA_NEXT: LlavaNextGeometry = (336, 14, ((336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008)))
"""llava-hf/llava-v1.6-mistral-7b-hf's geometry: 336 px tiles, 14 px patches, five grids."""


def build_idefics3(dest: Path) -> None:
    """Write a tiny SmolVLM-layout model (Idefics3ForConditionalGeneration) into ``dest``."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    tokenizer = _idefics3_tokenizer()
    image_processor = Idefics3ImageProcessorPil(**_IDEFICS3_IMAGES)
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=_IDEFICS3_SEQ_LEN,
        chat_template=IDEFICS3_TEMPLATE,
    )
    config = Idefics3Config(**_idefics3_config(tokenizer), image_token_id=processor.image_token_id)
    _save(dest, Idefics3ForConditionalGeneration, config, processor, tokenizer)


def build_smolvlm2(dest: Path) -> None:
    """Write a tiny SmolVLM2-layout model (``smolvlm``: SmolVLMForConditionalGeneration) into ``dest``.

    transformers 5.24's ``SmolVLMProcessor`` cannot be built without torchvision (its video processor
    needs it even for images, huggingface/transformers#48558), so its files are written piece by piece:
    the image processor and tokenizer as usual, ``processor_config.json`` and the chat template by hand,
    as SmolVLM2-500M-Video-Instruct ships them. mlx-vlm reads them with its own ``SmolVLMProcessor``.
    """
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    tokenizer = _idefics3_tokenizer()
    config = SmolVLMConfig(
        **_idefics3_config(tokenizer), image_token_id=tokenizer.convert_tokens_to_ids("<image>")
    )
    _save_model(dest, SmolVLMForConditionalGeneration, config, tokenizer)
    SmolVLMImageProcessorPil(**_IDEFICS3_IMAGES).save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    processor_config = {"image_seq_len": _IDEFICS3_SEQ_LEN, "processor_class": "SmolVLMProcessor"}
    (dest / "processor_config.json").write_text(json.dumps(processor_config, indent=2) + "\n")
    (dest / "chat_template.jinja").write_text(IDEFICS3_TEMPLATE)


_SCALE_FACTOR = 2
_IDEFICS3_SEQ_LEN = (IMAGE_SIZE // PATCH_SIZE) ** 2 // _SCALE_FACTOR**2
"""Tokens per tile after the pixel shuffle (``image_seq_len``)."""
_IDEFICS3_IMAGES: dict[str, Any] = {
    "size": {"longest_edge": 2 * IMAGE_SIZE},
    "max_image_size": {"longest_edge": IMAGE_SIZE},
    "do_image_splitting": True,
}
"""The image is resized to ``size``'s longest edge, then cut into ``max_image_size`` tiles (2 × 2 here)
plus a global view."""


def _idefics3_tokenizer() -> Any:
    """The tokenizer of the Idefics3 and SmolVLM layouts: image, tile-position and end-of-turn tokens."""
    grid = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    image_tokens = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", *grid]
    tokenizer = build_tokenizer(image_tokens, chat_template=IDEFICS3_TEMPLATE)
    tokenizer.eos_token = "<end_of_utterance>"  # SmolVLM-Instruct ends turns (and generation) with it
    return tokenizer


def _idefics3_config(tokenizer: Any) -> dict[str, Any]:
    """The Idefics3/SmolVLM config's towers: a SigLIP-style vision model, a Llama decoder."""
    return {
        "vision_config": {
            "hidden_size": WIDTH,
            "intermediate_size": 2 * WIDTH,
            "num_hidden_layers": LAYERS,
            "num_attention_heads": HEADS,
            "image_size": IMAGE_SIZE,
            "patch_size": PATCH_SIZE,
        },
        "text_config": {"model_type": "llama", **_text_config(tokenizer)},
        "scale_factor": _SCALE_FACTOR,
    }


def build_llava_next(dest: Path, geometry: LlavaNextGeometry | None = None) -> None:
    """Write a tiny LLaVA-v1.6-layout model (CLIP vision tower, Mistral text model) into ``dest``.

    ``geometry`` sets the tile, patch and grid sizes (default: 32 px tiles of 8 px patches, three grids);
    ``HUB_LLAVA_NEXT`` is llava-v1.6-mistral-7b-hf's, for tests of the shapes a real one sees.
    """
    from transformers import (
        CLIPVisionConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextProcessor,
        MistralConfig,
    )
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    tile, patch, pinpoints = geometry or (IMAGE_SIZE, PATCH_SIZE, TINY_PINPOINTS)
    tokenizer = build_tokenizer(["<image>"], chat_template=LLAVA_NEXT_TEMPLATE)
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": tile},
        crop_size={"height": tile, "width": tile},
        image_grid_pinpoints=[list(grid) for grid in pinpoints],
    )
    processor_class: Any = LlavaNextProcessor  # its __init__ is untyped in transformers 5.24
    processor = processor_class(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped by the "default" strategy
        chat_template=LLAVA_NEXT_TEMPLATE,
    )
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=WIDTH,
            intermediate_size=2 * WIDTH,
            num_hidden_layers=LAYERS,
            num_attention_heads=HEADS,
            image_size=tile,
            patch_size=patch,
            projection_dim=WIDTH,
        ),
        text_config=MistralConfig(**_text_config(tokenizer), sliding_window=None),
        image_token_index=processor.image_token_id,
        image_grid_pinpoints=[list(grid) for grid in pinpoints],
        image_seq_length=(tile // patch) ** 2,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    _save(dest, LlavaNextForConditionalGeneration, config, processor, tokenizer)


def _text_config(tokenizer: Any) -> dict[str, Any]:
    """The tiny decoder's settings, with the token ids taken from ``tokenizer``."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": WIDTH,
        "intermediate_size": 2 * WIDTH,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "max_position_embeddings": MAX_POSITIONS,
        "tie_word_embeddings": False,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _save(dest: Path, model_class: Any, config: Any, processor: Any, tokenizer: Any) -> None:
    """Save the model (see ``_save_model``) and its processor to ``dest``."""
    _save_model(dest, model_class, config, tokenizer)
    processor.save_pretrained(dest)


def _save_model(dest: Path, model_class: Any, config: Any, tokenizer: Any) -> None:
    """Initialise ``model_class`` from a fixed seed, mute the special tokens, save the weights to ``dest``."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = model_class(config).eval()
    # A zero output row gives a token logit 0 while the ~470 ordinary tokens get random logits of both
    # signs, so greedy decoding never picks eos, <image> or the other specials: every run produces
    # exactly max_new_tokens of plain-text gibberish, like a real model asked for a long answer.
    special_ids = sorted(set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder))
    with torch.no_grad():
        model.get_output_embeddings().weight[special_ids] = 0.0
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
