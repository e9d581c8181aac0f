"""A transformers model and processor: the model class that maps a config, remote code, load errors, and
the chat-formatted inputs of a case.

transformers is passed in by the caller or imported inside the function: worker process only.
"""

from __future__ import annotations

import re
from types import TracebackType
from typing import Any

from vlmtui.worker.backends.base import BackendError, GenerationRequest, one_line

FAMILY_CLASSES = {
    "idefics3": "Idefics3ForConditionalGeneration",
    "smolvlm": "SmolVLMForConditionalGeneration",
    "llava": "LlavaForConditionalGeneration",
    "llava_next": "LlavaNextForConditionalGeneration",
    "mllama": "MllamaForConditionalGeneration",
    "paligemma": "PaliGemmaForConditionalGeneration",
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
}
"""Concrete classes tried by ``config.model_type`` when no auto class maps a config."""

MODEL_LOADERS = ("AutoModelForImageTextToText", "AutoModelForVision2Seq", None, "AutoModelForCausalLM")
"""Load order; ``None`` is the family class. AutoModelForVision2Seq is gone in transformers 5."""

_NEEDS_TORCHVISION = re.compile(r"(\w+) requires the Torchvision library")
"""transformers refusing a processor part without torchvision (its message starts with a blank line)."""


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _raised_in_remote_code(exc: BaseException) -> bool:
    """Whether ``exc`` (or a cause) came from a repo's own code or from transformers importing it."""
    for link in _chain(exc):
        tb: TracebackType | None = link.__traceback__
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            # transformers copies a repo's code into HF_MODULES_CACHE/transformers_modules and imports it
            # through dynamic_module_utils (whose check_imports raises for missing packages).
            if "transformers_modules" in filename or filename.endswith("dynamic_module_utils.py"):
                return True
            tb = tb.tb_next
    return False


def own_processor(transformers: Any, processor: Any, source: str, hub_kwargs: dict[str, Any]) -> Any:
    """transformers' own processor class where AutoProcessor returned a foreign one of the same name."""
    cls = type(processor)
    if cls.__module__.startswith(("transformers.", "transformers_modules.")):
        return processor
    # mlx-vlm (0.7) patches AutoProcessor.from_pretrained process-wide once its idefics3/llava_next
    # modules are imported (install_auto_processor_patch); its processors carry no chat template and
    # return MLX arrays. A worker that ran an mlx-vlm model first would hand those to torch.
    own = getattr(transformers, cls.__name__, None)
    return own.from_pretrained(source, **hub_kwargs) if own is not None else processor


def load_model(
    transformers: Any, source: str, config: Any, dtype: Any, hub_kwargs: dict[str, Any], where: str
) -> tuple[Any, str]:
    """The model from the first of ``MODEL_LOADERS`` that maps ``config``, and that loader's name."""
    tried: list[str] = []
    for name in MODEL_LOADERS:
        name = name or FAMILY_CLASSES.get(str(config.model_type))
        loader = getattr(transformers, name, None) if name else None
        if loader is None or name in tried:
            continue
        tried.append(str(name))
        try:
            model = loader.from_pretrained(source, config=config, dtype=dtype, **hub_kwargs)
        except ValueError as exc:
            if "Unrecognized configuration class" in str(exc):
                continue
            raise
        return model, str(name)
    raise BackendError(f"{where}: transformers {transformers.__version__} has no model class "
                       f"for model_type {config.model_type!r} (tried {', '.join(tried)})")


def load_error(exc: Exception, where: str, trust: bool, remote_code: bool, version: str) -> BackendError:
    """The one-line ``BackendError`` for a failed load, with a hint where there is one."""
    if trust and (remote_code or _raised_in_remote_code(exc)):
        verb = "import" if any(isinstance(e, ImportError) for e in _chain(exc)) else "load"
        return BackendError(
            f"remote code of {where} failed to {verb} ({one_line(exc)}); use backend = \"mlx-vlm\" "
            f"or pin revision = \"…\" to a release that supports transformers {version}"
        )
    needs = next((m for link in _chain(exc) if (m := _NEEDS_TORCHVISION.search(str(link)))), None)
    if needs is not None:
        # SmolVLM, Qwen2-VL, LLaVA-OneVision: AutoProcessor builds the video processor even for images.
        return BackendError(f"could not load {where}: transformers {version}'s {needs.group(1)} needs torchvision, "
                            "even for images (huggingface/transformers#48558): install the torchvision build "
                            "that matches your torch")
    if not trust and isinstance(exc, ValueError) and "trust_remote_code" in str(exc):
        return BackendError(f"{where} needs code from its repo: set trust_remote_code = true for it "
                            f"in the suite if you trust that code")
    return BackendError(f"could not load {where}: {one_line(exc)}")


def configure_images(processor: Any, splitting: bool | None, limit: int | None, model_type: str,
                     where: str) -> list[str]:
    """Apply image splitting and the max image size to the image processor; notes where ignored."""
    notes: list[str] = []
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is None:
        return [f"{where} has no image processor: only text-only prompts can run"]
    if splitting is not None:
        if hasattr(image_processor, "do_image_splitting"):
            image_processor.do_image_splitting = splitting
        else:
            notes.append(f"image_splitting is ignored: {model_type} does not split images")
    size = getattr(image_processor, "size", None)
    longest = size.get("longest_edge") if isinstance(size, dict) else getattr(size, "longest_edge", None)
    if limit and longest and limit < longest:
        # SmolVLM/Idefics3: resize to this edge before tiling, so it bounds the number of image tiles.
        image_processor.size = {"longest_edge": limit}
    return notes


def chat_inputs(processor: Any, request: GenerationRequest, where: str, limit: int | None, device: str,
                dtype: Any) -> Any:
    """The processor's tensors for the chat-formatted prompt (and image), on the model's device and dtype."""
    image = request.image
    if image is not None:
        if getattr(processor, "image_processor", None) is None:
            raise BackendError(f"{where} has no image processor, so it cannot take an image")
        if limit and max(image.size) > limit:
            from PIL import Image

            image = image.copy()
            image.thumbnail((limit, limit), Image.Resampling.LANCZOS)
    # A conversation's history goes through the model's own chat template; the image is in turn 1 only.
    messages = [{"role": role, "content": [*([{"type": "image"}] if pic else []), {"type": "text", "text": text}]}
                for role, text, pic in request.messages()]
    try:
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except ValueError as exc:
        if "chat template" not in str(exc).lower():
            raise
        raise BackendError(f"{where} has no chat template; it is probably a base model, "
                           f"not an instruction-tuned one") from None
    if image is not None:
        inputs = processor(text=text, images=[image], return_tensors="pt")
    else:
        inputs = processor(text=text, return_tensors="pt")
    from transformers import BatchFeature

    if isinstance(inputs, BatchFeature):  # a processor's output: cast pixel values to the model's dtype
        return inputs.to(device, dtype=dtype)
    return inputs.to(device)  # a bare tokenizer's BatchEncoding takes no dtype
