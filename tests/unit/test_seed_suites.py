"""suites/seed.toml is the original line-up with the original settings, and seed-tiny.toml has its shape
on tiny models (issue 15); both load and plan as a user's run would."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tests.conftest import ROOT
from vlmtui.engine.plan import plan_cases
from vlmtui.suite.loader import Suite, load_suite
from vlmtui.worker.images import open_image

SEED = ROOT / "suites" / "seed.toml"
SEED_TINY = ROOT / "suites" / "seed-tiny.toml"
PROMPT = "Describe what you see in this image in detail."
TEXT_PROMPTS = [
    "What is the capital of France?",
    "Explain the concept of machine learning in simple terms.",
    "Write a short poem about technology.",
]


def settings(suite: Suite) -> tuple[object, ...]:
    """What the original fixed for every model: prompts, token limit, greedy decoding, image side."""
    return (
        [p.text for p in suite.prompts], [p.text for p in suite.text_prompts], suite.max_tokens, suite.temperature,
        {m.max_image_size for m in suite.models},
    )


def test_seed_is_the_original_five_heaviest_first() -> None:
    suite = load_suite(SEED)
    assert settings(suite) == ([PROMPT], TEXT_PROMPTS, 100, 0.0, {1024})
    assert [(m.backend, m.path) for m in suite.models] == [
        ("mlx-vlm", "mlx-community/Phi-3.5-vision-instruct-4bit"),
        ("mlx-vlm", "mlx-community/llava-v1.6-mistral-7b-4bit"),
        ("mlx-vlm", "vikhyatk/moondream2"),
        ("mlx-vlm", "mlx-community/SmolVLM2-500M-Video-Instruct-mlx"),
        ("openai", "ggml-org/SmolVLM-500M-Instruct-GGUF"),
    ]
    gguf = suite.models[-1]
    assert gguf.options == {"server": "llama.cpp"} and gguf.source.is_hub
    moondream = suite.models[2]
    assert not moondream.capabilities, "vision-only comes from Moondream2's own config, not the suite"
    cases = plan_cases(suite)
    assert len(cases) == 5 * (3 * 1 + 3)  # three sample images and three text prompts per model
    assert [c.model.id for c in cases] == sorted((c.model.id for c in cases), key=[m.id for m in suite.models].index)


def test_seed_tiny_has_seeds_shape_on_tiny_models() -> None:
    seed, tiny = load_suite(SEED), load_suite(SEED_TINY)
    assert settings(tiny) == settings(seed)
    assert (tiny.guard, len(tiny.images)) == (seed.guard, len(seed.images))
    assert [(m.backend, m.path, m.options) for m in tiny.models] == [
        ("mlx-vlm", "tiny:llava-next", {}),
        ("mlx-vlm", "tiny:moondream2", {}),
        ("mlx-vlm", "tiny:smolvlm2", {}),
        ("openai", "tiny:idefics3", {"server": "llama.cpp"}),
    ]
    skipped = [c.case_id for c in plan_cases(tiny) if c.skip_reason and "moondream2" in c.skip_reason]
    assert skipped == [f"moondream2-tiny/text/t{i}" for i in range(3)]


def test_images_are_fitted_with_lanczos(tmp_path: Path) -> None:
    """The original resized to 1024 px on the longest side with Lanczos; so does the worker."""
    image = Image.effect_noise((1600, 900), 60).convert("RGB")
    image.save(tmp_path / "noise.png")
    expected = image.copy()
    expected.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
    fitted = open_image(tmp_path / "noise.png", 1024)
    assert fitted.size == (1024, 576) and fitted.tobytes() == expected.tobytes()
