"""Fitting mlx-vlm's processors to the suite and to this transformers: tiling, image size, Moondream's
crops, the tokenizer options transformers 5 image processors reject (Blaizzy/mlx-vlm#870), and a
conversation's history as mlx-vlm's chat template takes it.

mlx_vlm is imported inside the functions that need it (worker process only).
"""

from __future__ import annotations

import re
from typing import Any

from vlmtui.worker.backends.base import BackendError, GenerationRequest

TEXT_ONLY_KWARGS = frozenset({
    "padding", "padding_side", "truncation", "max_length", "pad_to_multiple_of", "add_special_tokens",
    "return_attention_mask", "return_token_type_ids", "return_overflowing_tokens",
    "return_special_tokens_mask", "return_offsets_mapping", "return_length", "stride", "verbose",
})
"""Tokenizer options an image processor never takes; dropped when it does not declare them."""

LAST_MESSAGE_ONLY = frozenset({"paligemma", "florence2", "falcon_ocr"})
"""Model types whose prompt mlx-vlm 0.7.10's ``apply_chat_template`` cuts to the last message."""
_REJECTED_KWARG = re.compile(r"\b(\w*Kwargs)\.__init__\(\) got an unexpected keyword argument '(\w+)'")


def package_version(dist: str) -> str:
    """The installed version of a distribution, or ``?``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def explain_error(exc: BaseException) -> BackendError | None:
    """A one-line ``BackendError`` for a known library incompatibility behind ``exc``, else ``None``."""
    match = _REJECTED_KWARG.search(str(exc))
    if match is None:
        return None
    kwargs_class, option = match.groups()
    # mlx-vlm 0.7.10 itself requires transformers>=5.14, so "downgrade transformers" alone cannot work.
    return BackendError(
        f"mlx-vlm {package_version('mlx-vlm')} passes the tokenizer option {option!r} to the image processor and "
        f"transformers {package_version('transformers')} rejects it ({kwargs_class}, Blaizzy/mlx-vlm#870); fix: an "
        "mlx-vlm release that filters image-processor options, or transformers 4 with an mlx-vlm that allows it"
    )


def shield_image_processor(processor: Any) -> bool:
    """Make a transformers ≥5 image processor ignore tokenizer options it does not declare.

    mlx-vlm 0.7.10's ``LlavaProcessor.__call__`` (also GOT's, Nemotron-Parse's) forwards every option,
    ``padding=True`` included, to ``image_processor(images, **kwargs)``; transformers 5 validates those
    against the processor's ``valid_kwargs`` TypedDict and raises ``ImagesKwargs.__init__() got an
    unexpected keyword argument 'padding'`` (transformers 4 only warned; Blaizzy/mlx-vlm#870, fixed
    upstream for PaliGemma only). The instance's ``preprocess`` is wrapped, so ``isinstance`` checks and
    every other attribute stay as they were. True when it was wrapped.
    """
    from typing import is_typeddict

    image_processor: Any = getattr(processor, "image_processor", None)
    valid: Any = getattr(image_processor, "valid_kwargs", None)
    preprocess: Any = getattr(image_processor, "preprocess", None)
    if image_processor is None or not is_typeddict(valid) or not callable(preprocess):
        return False
    declared = set(valid.__required_keys__) | set(valid.__optional_keys__)
    dropped = TEXT_ONLY_KWARGS - declared

    def shielded(images: Any, *args: Any, **kwargs: Any) -> Any:
        return preprocess(images, *args, **{k: v for k, v in kwargs.items() if k not in dropped})

    image_processor.preprocess = shielded
    return True


def moondream_processor(model: Any, processor: Any, model_type: str, is_tiny: bool, notes: list[str]) -> Any:
    """The Moondream crop processor, where mlx-vlm 0.7.10 fell back to a bare tokenizer."""
    from mlx_vlm.models.moondream3.processing_moondream3 import TOKENIZER_REPO, Moondream3Processor

    if isinstance(processor, Moondream3Processor):
        return processor
    if not is_tiny:
        raise BackendError(
            f"{model_type} needs the tokenizer {TOKENIZER_REPO} from the Hugging Face hub (mlx-vlm "
            f"{package_version('mlx-vlm')} does not use the checkpoint's own) and it could not be loaded: "
            f"fetch it once online (hf download {TOKENIZER_REPO})"
        )
    vision = model.config.vision_config
    wrapped: Any = Moondream3Processor(  # type: ignore[no-untyped-call]
        processor,
        crop_size=vision.crop_size,
        max_crops=vision.max_crops,
        overlap_margin=vision.overlap_margin,
    )
    wrapped.detokenizer = processor.detokenizer  # set by mlx_vlm.load on the tokenizer it returned
    notes.append(f"{model_type}: the tiny model's own tokenizer stands in for {TOKENIZER_REPO}")
    return wrapped


def apply_image_options(processor: Any, splitting: bool | None, limit: int | None, model_type: str) -> list[str]:
    """Apply ``image_splitting`` and ``max_image_size`` where the processor has a switch for them."""
    notes: list[str] = []
    image_processor: Any = getattr(processor, "image_processor", None)
    if splitting is not None:
        if hasattr(image_processor, "do_image_splitting"):
            image_processor.do_image_splitting = splitting
            notes.append(f"image splitting {'on' if splitting else 'off'}")
        elif hasattr(processor, "max_crops"):
            if not splitting:
                processor.max_crops = 1
            notes.append(f"image splitting {'on' if splitting else 'off (global crop only)'}")
        else:
            notes.append(f"image_splitting does not apply to {model_type or 'this model'}")
    size: Any = getattr(image_processor, "size", None)
    longest = size.get("longest_edge") if hasattr(size, "get") else getattr(size, "longest_edge", None)
    if limit is not None and isinstance(longest, int):
        tile: Any = getattr(image_processor, "max_image_size", None)
        tile_edge = tile.get("longest_edge") if hasattr(tile, "get") else None
        capped = max(min(longest, limit), tile_edge if isinstance(tile_edge, int) else 1)
        image_processor.size = {"longest_edge": capped}
        notes.append(f"images scaled to at most {capped} px on the longest edge")
    return notes


def history_refusal(model_type: str) -> str:
    """Why mlx-vlm cannot give ``model_type`` a conversation's history, or ``""``: a prompt-only message format
    (Moondream2, Florence-2) renders every turn as the user's, and some types keep only the last message."""
    from mlx_vlm.prompt_utils import MODEL_CONFIG, MessageFormat

    if MODEL_CONFIG.get(model_type) == MessageFormat.PROMPT_ONLY or model_type in LAST_MESSAGE_ONLY:
        return (f"{model_type} takes a single prompt in mlx-vlm {package_version('mlx-vlm')} (no chat roles): "
                "a follow-up turn cannot carry the conversation's history")
    return ""


def chat_prompt(request: GenerationRequest) -> str | list[dict[str, Any]]:
    """The prompt for ``apply_chat_template``: the text alone, or a conversation's messages with the image marked
    in the first user message (mlx-vlm puts unmarked images on the last user message)."""
    if not request.history:
        return request.prompt
    return [{"role": role, "content": [{"type": "image"}, {"type": "text", "text": text}] if with_image else text}
            for role, text, with_image in request.messages()]
