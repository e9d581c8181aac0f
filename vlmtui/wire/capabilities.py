"""What a model can be asked, decided by its own config's ``model_type``: one table both processes read.

The vlmtui process reads the type from config.json before a load where it can (a tiny family, a local
directory, the Hugging Face cache); the worker reports it in ``Loaded`` otherwise. A suite's
``capabilities`` overrides both.
"""

from __future__ import annotations

IMAGE = "image"
TEXT = "text"
ALL = frozenset({IMAGE, TEXT})

VISION_ONLY_MODEL_TYPES = frozenset({"moondream1", "moondream2", "moondream3"})
"""Model types that only answer about an image (Moondream's prompt always holds one): a text-only
prompt does not test them. ``moondream1`` is vikhyatk/moondream2's remote-code config; ``moondream2``
and ``moondream3`` are mlx-vlm's."""

TINY_MODEL_TYPES = {
    "idefics3": "idefics3",
    "smolvlm2": "smolvlm",
    "llava-next": "llava_next",
    "moondream2": "moondream2",
    "llava-1.5": "llava",
}
"""The ``model_type`` in each tiny family's config.json (vlmtui.worker.demo writes them), known here
before the model is built; a test checks the built configs against it."""


def capabilities_of(model_type: str) -> frozenset[str]:
    """``image`` and/or ``text``: what a model of this ``model_type`` can be asked."""
    return frozenset({IMAGE}) if model_type.strip().lower() in VISION_ONLY_MODEL_TYPES else ALL
