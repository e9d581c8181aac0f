"""LLaVA-NeXT takes the photos the original script fed it without a shape error (issue 15): a 3088×2316
photo, a 960×1707 portrait, a 336×336 square and a 4000×300 panorama, on mlx-vlm and transformers, in the
real worker. Twice per backend: ``tiny:llava-next`` (32 px tiles) and a tiny model with
llava-v1.6-mistral-7b-hf's own geometry (336 px tiles, 14 px patches, its five grids), where the grid
choice, the unpadding and the image-token count are those of the real model.

What reaches the model: the worker first fits the longest side within ``max_image_size`` (Lanczos),
the suite's default 2048 px when unset: 3088×2316 → 2048×1536, 4000×300 → 2048×154; the portrait and
the square arrive as they are. The processor then fits each to one of the model's grids.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.functional.worker_driver import WorkerDriver
from vlmtui.wire import protocol as p
from vlmtui.wire.spec import ModelSpec
from vlmtui.worker.images import DEFAULT_MAX_SIDE, open_image

pytestmark = pytest.mark.slow

SIZES = ((3088, 2316), (960, 1707), (336, 336), (4000, 300))
REACHING = {(3088, 2316): (2048, 1536), (960, 1707): (960, 1707), (336, 336): (336, 336), (4000, 300): (2048, 154)}
"""The size each image has when the model gets it, under the suite's default ``max_image_size``."""


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, int], Path]:
    """JPEG photos of each size: a gradient with some structure, made here."""
    folder = tmp_path_factory.mktemp("photos")
    made = {}
    for width, height in SIZES:
        gradient = Image.linear_gradient("L").resize((width, height))
        rings = Image.radial_gradient("L").resize((width, height))
        image = Image.merge("RGB", (gradient, rings, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
        made[(width, height)] = folder / f"photo-{width}x{height}.jpg"
        image.save(made[(width, height)], quality=85)
    return made


@pytest.fixture(scope="module")
def hub_geometry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny LLaVA-NeXT models with the hub model's geometry, for each backend's layout."""
    from vlmtui.worker.demo import tiny_hf, tiny_mlx

    folder = tmp_path_factory.mktemp("llava-next-hub-geometry")
    tiny_hf.build_llava_next(folder / "hf", tiny_hf.HUB_LLAVA_NEXT)
    tiny_mlx.build_llava_next(folder / "mlx", tiny_hf.HUB_LLAVA_NEXT)
    return {"transformers": folder / "hf", "mlx-vlm": folder / "mlx"}


def test_the_worker_hands_the_model_these_sizes(photos: dict[tuple[int, int], Path]) -> None:
    assert DEFAULT_MAX_SIDE == 2048
    assert {size: open_image(path).size for size, path in photos.items()} == REACHING


def run_all(worker: WorkerDriver, model: ModelSpec, photos: dict[tuple[int, int], Path]) -> dict[tuple[int, int], int]:
    """Load ``model``, run every photo, unload; each photo's prompt token count."""
    worker.send(p.Load(model=model.to_dict(), sample_ms=500))
    loaded = worker.wait_for(p.Loaded, p.LoadFailed, timeout_s=300)
    assert isinstance(loaded, p.Loaded), loaded
    assert loaded.model_type == "llava_next"
    tokens: dict[tuple[int, int], int] = {}
    for size, path in photos.items():
        case_id = f"{model.id}-{size[0]}x{size[1]}"
        worker.send(p.Run(case_id=case_id, prompt="Describe this image.", image=str(path), max_tokens=3))
        result: p.Result = worker.wait_for(p.Result, timeout_s=180)
        assert (result.outcome, result.error) == ("completed", ""), (size, result.detail[-2000:])
        assert worker.tokens[case_id] and result.metrics["gen_tokens"] == 3
        prompt_tokens = result.metrics["prompt_tokens"]
        assert isinstance(prompt_tokens, int)
        tokens[size] = prompt_tokens
    worker.send(p.Unload())
    worker.wait_for(p.Unloaded, timeout_s=60)
    return tokens


@pytest.mark.parametrize("backend", ["mlx-vlm", "transformers"])
def test_llava_next_takes_photo_portrait_square_and_panorama(
    backend: str, worker: WorkerDriver, photos: dict[tuple[int, int], Path], hub_geometry: dict[str, Path]
) -> None:
    tiny = run_all(worker, ModelSpec(id="tiny", backend=backend, path="tiny:llava-next"), photos)
    capped = run_all(worker, ModelSpec(id="tiny-1024", backend=backend, path="tiny:llava-next",
                                       max_image_size=1024), photos)
    hub = run_all(worker, ModelSpec(id="hub", backend=backend, path=str(hub_geometry[backend])), photos)
    assert set(tiny) == set(capped) == set(hub) == set(SIZES)
    # On the hub geometry the square is the base view plus its 2 × 2 grid, the panorama a 1 × 3 grid
    # cut down to the rows the image fills, the photo a 2 × 2 grid: the counts a real model sees.
    assert hub[(336, 336)] > hub[(4000, 300)]
    assert hub[(3088, 2316)] > hub[(960, 1707)] > hub[(336, 336)]
    print(f"\n{backend} prompt tokens: tiny {tiny}, tiny at 1024 px {capped}, hub geometry {hub}")
