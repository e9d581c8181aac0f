"""Tiny randomly initialised models in the layout ``mlx_vlm.load`` takes, built offline.

Idefics3 and SmolVLM2 are exactly the transformers builds (mlx-vlm reads that layout as it is). LLaVA-NeXT and
LLaVA-1.5 are the transformers builds with the CLIP tower's weights renamed to the hub's key layout.
Moondream2 has no transformers class, so it is built from mlx-vlm's own model classes, with the weights
saved under the names ``Model.parameters()`` gives (mlx-vlm's ``sanitize`` leaves them as they are).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vlmtui.worker.demo import tiny_hf
from vlmtui.worker.demo.tokenizer import build_tokenizer

SEED = 0
WIDTH = 64
LAYERS = 2
HEADS = 4

MOONDREAM_CROP = 378
"""Moondream's crop side: mlx-vlm 0.7.10's Moondream3Processor hard-codes 729 = (378 / 14)² image
placeholder tokens per image, so the tiny vision tower keeps the real crop and patch sizes."""
MOONDREAM_PATCH = 14
MOONDREAM_MAX_CROPS = 4
"""A global crop plus up to 3 local crops (the real model allows 12); enough to run the multi-crop path."""


def build_idefics3(dest: Path) -> None:
    """Write a tiny SmolVLM-layout model into ``dest``: the transformers build, which mlx-vlm loads as is."""
    tiny_hf.build_idefics3(dest)


def build_smolvlm2(dest: Path) -> None:
    """Write a tiny SmolVLM2-layout model (``smolvlm``) into ``dest``: the transformers build, loaded as is."""
    tiny_hf.build_smolvlm2(dest)


def build_llava_next(dest: Path, geometry: tiny_hf.LlavaNextGeometry | None = None) -> None:
    """Write a tiny LLaVA-v1.6-layout model into ``dest``, its CLIP weights under the hub's key names."""
    tiny_hf.build_llava_next(dest, geometry)
    _hub_vision_keys(dest / "model.safetensors")


def build_llava15(dest: Path) -> None:
    """Write a tiny LLaVA-1.5-layout model (CLIP tower, Llama decoder, CLIP image processor) into ``dest``.

    mlx-vlm 0.7.10 runs it with its own ``LlavaProcessor``, which hands tokenizer options (``padding``)
    to the image processor; transformers 5 rejects them, so this is the model that shows the backend's
    workaround for that at work.
    """
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    size = tiny_hf.IMAGE_SIZE
    patch = tiny_hf.PATCH_SIZE
    tokenizer = build_tokenizer(["<image>"], chat_template=tiny_hf.LLAVA_NEXT_TEMPLATE)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    processor = LlavaProcessor(  # type: ignore[no-untyped-call]
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped by the "default" strategy
        chat_template=tiny_hf.LLAVA_NEXT_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=WIDTH,
            intermediate_size=2 * WIDTH,
            num_hidden_layers=LAYERS,
            num_attention_heads=HEADS,
            image_size=size,
            patch_size=patch,
            projection_dim=WIDTH,
        ),
        text_config=LlamaConfig(**tiny_hf._text_config(tokenizer)),
        image_token_index=processor.image_token_id,
        image_seq_length=(size // patch) ** 2,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    tiny_hf._save(dest, LlavaForConditionalGeneration, config, processor, tokenizer)
    _hub_vision_keys(dest / "model.safetensors")


def build_moondream2(dest: Path) -> None:
    """Write a tiny Moondream2 (mlx-vlm's ``moondream2`` classes, random weights) into ``dest``."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_vlm.models.moondream2.config import ModelConfig
    from mlx_vlm.models.moondream2.moondream2 import Model

    # Moondream ships no chat template (mlx-vlm formats its prompts as plain text); with one, mlx-vlm's
    # apply_chat_template would hand the template bare strings and transformers would reject them.
    tokenizer = build_tokenizer()
    tokenizer.chat_template = None
    config: dict[str, Any] = {
        "model_type": "moondream2",
        "architectures": ["HfMoondream"],
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "text_config": {
            "model_type": "moondream2",
            "hidden_size": WIDTH,
            "intermediate_size": 2 * WIDTH,
            "num_hidden_layers": LAYERS,
            "num_attention_heads": HEADS,
            "num_key_value_heads": HEADS,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 2048,
        },
        "vision_config": {
            "model_type": "moondream2_vision",
            "hidden_size": WIDTH,
            "intermediate_size": 2 * WIDTH,
            "num_hidden_layers": LAYERS,
            "num_attention_heads": HEADS,
            "patch_size": MOONDREAM_PATCH,
            "crop_size": MOONDREAM_CROP,
            "max_crops": MOONDREAM_MAX_CROPS,
            "proj_inner_dim": 2 * WIDTH,
            "proj_out_dim": WIDTH,
        },
    }
    model = Model(ModelConfig.from_dict(config))  # type: ignore[no-untyped-call]
    # Initialised as transformers initialises its models (normal(0, 0.02) matrices, zero biases, unit
    # norms) from a fixed key: MLX's own init makes this decoder repeat one token, and draws from the
    # process-wide generator, which a build must leave alone.
    params = tree_flatten(model.parameters())
    keys = mx.random.split(mx.random.key(SEED), len(params))
    weights: dict[str, Any] = {
        name: _hf_init(mx, name, value, key) for (name, value), key in zip(params, keys, strict=True)
    }
    # As in tiny_hf: zero output rows for the special tokens so greedy decoding never ends early.
    special = mx.array(sorted(set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)))
    weights["text.lm_head.weight"][special] = 0.0
    mx.eval(weights)
    dest.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(dest / "model.safetensors"), weights, metadata={"format": "mlx"})
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tokenizer.save_pretrained(dest)


def _hf_init(mx: Any, name: str, value: Any, key: Any) -> Any:
    """A fresh value for parameter ``name``: ones for norm scales, zeros for biases, else normal(0, 0.02)."""
    if name.endswith(("ln.weight", "ln1.weight", "ln2.weight")):
        return mx.ones_like(value)
    if name.endswith("bias"):
        return mx.zeros_like(value)
    return 0.02 * mx.random.normal(value.shape, dtype=value.dtype, key=key)


def _hub_vision_keys(weights_file: Path) -> None:
    """Rename ``vision_tower.*`` to ``vision_tower.vision_model.*``, the layout of hub LLaVA checkpoints.

    transformers 5 saves a CLIP tower without the ``vision_model`` level; mlx-vlm 0.7.10 loads only
    the hub layout (``Received … parameters not in model`` otherwise).
    """
    import mlx.core as mx

    loaded: Any = mx.load(str(weights_file), return_metadata=True)
    weights, metadata = loaded
    renamed = {
        (
            "vision_tower.vision_model." + key.removeprefix("vision_tower.")
            if key.startswith("vision_tower.") and not key.startswith("vision_tower.vision_model.")
            else key
        ): value
        for key, value in weights.items()
    }
    mx.save_safetensors(str(weights_file), renamed, metadata=metadata)
