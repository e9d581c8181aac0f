"""A suite turned into cases: model × image × prompt, and model × text prompt, with capability skips.

A case a model cannot do is planned as skipped with its reason, so it can never be reported as passed
(the seed script once reported a vision-only model's text-only test as a success).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vlmtui.suite.loader import Suite
from vlmtui.wire.spec import Expect, ModelSpec

# Families whose models only answer about an image: a text-only prompt is not a test of them.
VISION_ONLY_FAMILIES = ("moondream",)


@dataclass(frozen=True)
class Case:
    """One unit of work: one prompt (with or without an image) on one model."""

    case_id: str
    model: ModelSpec
    prompt: str
    image: Path | None
    prompt_index: int
    max_tokens: int
    temperature: float
    expect: Expect
    repeat_index: int = 0
    warmup: bool = False
    skip_reason: str | None = None
    """Set when the case cannot run on this model; it ends ``skipped`` without reaching a worker."""

    @property
    def kind(self) -> str:
        """``image`` or ``text``."""
        return "text" if self.image is None else "image"

    @property
    def image_name(self) -> str:
        """The image's file name, or ``—`` for a text-only case."""
        return self.image.name if self.image else "—"


def model_capabilities(model: ModelSpec) -> frozenset[str]:
    """What the model can be asked: ``image`` and/or ``text`` (an explicit list wins over the family)."""
    if model.capabilities:
        caps = set(model.capabilities)
        if "vision-only" in caps:
            return frozenset({"image"})
        return frozenset(caps)
    family = model.path.lower()
    if any(name in family for name in VISION_ONLY_FAMILIES):
        return frozenset({"image"})
    return frozenset({"image", "text"})


def _skip_reason(model: ModelSpec, kind: str) -> str | None:
    caps = model_capabilities(model)
    if kind == "text" and "text" not in caps:
        return f"{model.id} is vision-only: a text-only prompt does not test it"
    if kind == "image" and "image" not in caps:
        return f"{model.id} is text-only: it cannot see images"
    return None


def plan_cases(suite: Suite) -> list[Case]:
    """Every case of the suite, grouped by model in suite order (warm-ups first within a model)."""
    cases: list[Case] = []
    for model in suite.models:
        max_tokens = model.max_tokens or suite.max_tokens
        temperature = model.temperature if model.temperature is not None else suite.temperature
        work: list[tuple[str, Path | None, int, str, Expect]] = []
        for image_path in suite.images:
            for i, prompt in enumerate(suite.prompts):
                work.append((f"{model.id}/{image_path.name}/p{i}", image_path, i, prompt.text,
                             model.expect.merged(prompt.expect)))
        for i, prompt in enumerate(suite.text_prompts):
            work.append((f"{model.id}/text/t{i}", None, i, prompt.text, model.expect.merged(prompt.expect)))
        for base_id, image, index, text, expect in work:
            skip = _skip_reason(model, "text" if image is None else "image")
            runs = [(f"{base_id}#w{w}", w, True) for w in range(suite.warmup)] if skip is None else []
            runs += [
                (base_id if suite.repeat == 1 else f"{base_id}#r{r}", r, False) for r in range(suite.repeat)
            ]
            for case_id, rep, warm in runs:
                cases.append(Case(case_id, model, text, image, index, max_tokens, temperature, expect,
                                  repeat_index=rep, warmup=warm, skip_reason=skip))
    return cases
