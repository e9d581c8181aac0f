"""The mlx-vlm backend in-process with the real tiny Idefics3, LLaVA-NeXT, LLaVA-1.5 and Moondream2 models:
streaming, aborting through ``emit``, memory probes, suite options, and the errors a user can cause."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.functional.helpers import model_spec
from vlmtui.wire.spec import ModelSpec
from vlmtui.worker.backends.base import BackendError, GenerationRequest, GenerationStats, OutOfMemoryError
from vlmtui.worker.backends.mlx_vlm import MlxVlmBackend, explain_error, is_mlx_out_of_memory

FAMILIES = ("idefics3", "llava-next", "moondream2")
TEXT_FAMILIES = ("idefics3", "llava-next")


@pytest.fixture(scope="module", params=FAMILIES)
def loaded(request: pytest.FixtureRequest) -> Iterator[MlxVlmBackend]:
    """A tiny model of each family, loaded once for the module."""
    backend = MlxVlmBackend(spec(f"tiny:{request.param}"))
    backend.load()
    yield backend
    backend.unload()


@pytest.fixture(scope="module")
def llava15_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LLaVA-1.5 (the family whose mlx-vlm processor passes ``padding`` to the image processor)."""
    from vlmtui.worker.demo.tiny_mlx import build_llava15

    dest = tmp_path_factory.mktemp("llava15")
    build_llava15(dest)
    return dest


def spec(path: str, **overrides: object) -> ModelSpec:
    values: dict[str, object] = {"id": "m", "backend": "mlx-vlm", "path": path}
    values.update(overrides)
    return model_spec(**values)


def photo(width: int = 48, height: int = 32) -> Image.Image:
    """A small RGB gradient: a real image with structure, made here."""
    image = Image.new("RGB", (width, height))
    image.putdata([(x * 255 // width, y * 255 // height, 128) for y in range(height) for x in range(width)])
    return image


def ask(image: Image.Image | None, max_tokens: int = 12, should_stop: object = None) -> GenerationRequest:
    return GenerationRequest(
        case_id="c1",
        prompt="Describe this image in one sentence.",
        image=image,
        max_tokens=max_tokens,
        temperature=0.0,
        should_stop=should_stop or (lambda: False),  # type: ignore[arg-type]
    )


def run(backend: MlxVlmBackend, request: GenerationRequest) -> tuple[list[str], GenerationStats]:
    chunks: list[str] = []
    stats = backend.generate(request, chunks.append)
    return chunks, stats


# ----------------------------------------------------------------------------- generation


def test_image_case_streams_tokens_with_metrics(loaded: MlxVlmBackend) -> None:
    loaded.reset_peak_memory()
    chunks, stats = run(loaded, ask(photo()))
    assert chunks and "".join(chunks).strip()
    # The tiny models never pick a special token, so greedy decoding runs to max_tokens.
    assert stats.gen_tokens == 12
    assert stats.prompt_tokens is not None and stats.prompt_tokens > 12  # image tokens + prompt
    assert stats.prompt_tps and stats.prompt_tps > 0
    assert stats.gen_tps and stats.gen_tps > 0
    assert stats.peak_memory_bytes and stats.peak_memory_bytes > 0


def test_text_only_case_streams_tokens(loaded: MlxVlmBackend) -> None:
    if loaded.model_type.startswith("moondream"):
        with pytest.raises(BackendError, match="vision-only"):
            run(loaded, ask(None))
        return
    chunks, stats = run(loaded, ask(None))
    assert "".join(chunks).strip()
    assert stats.gen_tokens == 12


def test_greedy_output_is_deterministic(loaded: MlxVlmBackend) -> None:
    first, _ = run(loaded, ask(photo(), max_tokens=6))
    second, _ = run(loaded, ask(photo(), max_tokens=6))
    assert "".join(first) == "".join(second)


def test_emit_raising_stops_generation_and_propagates(loaded: MlxVlmBackend) -> None:
    class Abort(Exception):
        pass

    calls: list[str] = []

    def emit(text: str) -> None:
        calls.append(text)
        raise Abort

    with pytest.raises(Abort):
        loaded.generate(ask(photo(), max_tokens=40), emit)
    assert len(calls) == 1
    # The stream was closed, not left half-run: the next case works.
    chunks, stats = run(loaded, ask(photo(), max_tokens=4))
    assert chunks and stats.gen_tokens == 4


def test_should_stop_ends_generation_early(loaded: MlxVlmBackend) -> None:
    checks: list[None] = []

    def should_stop() -> bool:
        checks.append(None)
        return len(checks) >= 3

    _, stats = run(loaded, ask(photo(), max_tokens=40, should_stop=should_stop))
    assert stats.gen_tokens == 3


# ----------------------------------------------------------------------------- memory


def test_framework_memory_after_load(loaded: MlxVlmBackend) -> None:
    import mlx.core as mx

    sample = loaded.framework_memory()
    assert sample is not None
    assert sample.framework == "mlx"
    assert sample.guarded_bytes > 0
    assert sample.active_bytes is not None and sample.active_bytes > 0
    assert sample.guarded_bytes == sample.active_bytes + (sample.cache_bytes or 0)
    if mx.default_device() == mx.cpu:
        assert sample.device == "cpu"
        assert sample.device_total_bytes is None  # mx.device_info() has no memory size on the CPU


def test_cleanup_and_unload_clear_the_cache() -> None:
    import mlx.core as mx

    backend = MlxVlmBackend(spec("tiny:idefics3"))
    backend.load()
    run(backend, ask(photo()))
    scratch = mx.ones((1 << 20,)) * 2  # 4 MiB, freed into MLX's buffer cache
    mx.eval(scratch)
    del scratch
    assert mx.get_cache_memory() > 0
    backend.cleanup()
    assert mx.get_cache_memory() == 0
    before = mx.get_active_memory()
    backend.unload()
    assert backend.model is None
    assert mx.get_cache_memory() == 0
    assert mx.get_active_memory() < before


def test_reset_peak_memory_starts_a_new_window(loaded: MlxVlmBackend) -> None:
    import mlx.core as mx

    run(loaded, ask(photo(), max_tokens=2))
    loaded.reset_peak_memory()
    assert mx.get_peak_memory() <= mx.get_active_memory() + mx.get_cache_memory()


def test_set_memory_limit_sets_mlx_limit_which_is_a_guideline() -> None:
    import mlx.core as mx

    backend = MlxVlmBackend(spec("tiny:idefics3"))
    previous = mx.get_memory_limit()
    try:
        backend.set_memory_limit(16 << 20)
        assert mx.get_memory_limit() == 16 << 20
        # Past the limit MLX reclaims its cache but still allocates: nothing to catch, so the
        # backend does not claim a catchable limit.
        big = mx.ones((16 << 20,), dtype=mx.float32)  # 64 MiB
        mx.eval(big)
        assert mx.get_active_memory() >= 64 << 20
        del big
    finally:
        mx.set_memory_limit(previous)
    assert MlxVlmBackend.supports_memory_limit is False


@pytest.mark.parametrize(
    "message",
    [
        # Recorded from mlx's Metal and common allocators.
        "[metal::malloc] Attempting to allocate 134668044288 bytes which is greater than the maximum "
        "allowed buffer size of 86586540032 bytes.",
        "[metal::malloc] Resource limit (499000) exceeded.",
        "[malloc] Unable to allocate 4294967296 bytes.",
    ],
)
def test_mlx_allocation_failures_are_out_of_memory(message: str) -> None:
    backend = MlxVlmBackend(spec("tiny:idefics3"))
    assert backend.is_out_of_memory(RuntimeError(message))
    wrapped = ValueError("Failed to process inputs")
    wrapped.__cause__ = RuntimeError(message)
    assert is_mlx_out_of_memory(wrapped)
    assert backend.is_out_of_memory(OutOfMemoryError("x"))
    assert not backend.is_out_of_memory(RuntimeError("[matmul] Last dimension of first input mismatch"))


# ----------------------------------------------------------------------------- suite options


def test_image_splitting_off_uses_fewer_image_tokens() -> None:
    prompt_tokens: dict[bool, int] = {}
    for splitting in (True, False):
        backend = MlxVlmBackend(spec("tiny:idefics3", image_splitting=splitting))
        info = backend.load()
        assert f"image splitting {'on' if splitting else 'off'}" in info.notes
        _, stats = run(backend, ask(photo(), max_tokens=2))
        assert stats.prompt_tokens is not None
        prompt_tokens[splitting] = stats.prompt_tokens
        backend.unload()
    assert prompt_tokens[False] < prompt_tokens[True]


def test_max_image_size_caps_the_idefics3_upscaling() -> None:
    backend = MlxVlmBackend(spec("tiny:idefics3", max_image_size=20))
    info = backend.load()
    # Never below one tile (32 px here): the vision encoder takes whole tiles.
    assert "images scaled to at most 32 px on the longest edge" in info.notes
    _, capped = run(backend, ask(photo(), max_tokens=2))
    backend.unload()
    unsplit = MlxVlmBackend(spec("tiny:idefics3", image_splitting=False))
    unsplit.load()
    _, single = run(unsplit, ask(photo(), max_tokens=2))
    unsplit.unload()
    assert capped.prompt_tokens == single.prompt_tokens  # one 32 px image: nothing left to split


def test_moondream_image_splitting_off_keeps_the_global_crop() -> None:
    backend = MlxVlmBackend(spec("tiny:moondream2", image_splitting=False))
    info = backend.load()
    assert backend.processor.max_crops == 1
    assert any("global crop only" in note for note in info.notes)
    chunks, _ = run(backend, ask(photo(), max_tokens=3))
    assert chunks
    backend.unload()


def test_prefill_step_size_and_dtype_are_applied() -> None:
    plain = MlxVlmBackend(spec("tiny:idefics3"))
    plain.load()
    expected, _ = run(plain, ask(photo(), max_tokens=6))
    plain.unload()
    chunked = MlxVlmBackend(spec("tiny:idefics3", prefill_step_size=8))
    chunked.load()
    got, stats = run(chunked, ask(photo(), max_tokens=6))
    chunked.unload()
    assert stats.prompt_tokens is not None and stats.prompt_tokens > 8  # really prefilled in chunks
    assert "".join(got) == "".join(expected)
    half = MlxVlmBackend(spec("tiny:idefics3", dtype="float16"))
    assert half.load().dtype == "float16"
    assert run(half, ask(photo(), max_tokens=3))[0]
    half.unload()
    with pytest.raises(BackendError, match="dtype 'int8'"):
        MlxVlmBackend(spec("tiny:idefics3", dtype="int8")).load()


# ----------------------------------------------------------------------------- LLaVA × transformers 5


def test_llava15_runs_with_the_image_processor_shielded(llava15_dir: Path) -> None:
    backend = MlxVlmBackend(spec(str(llava15_dir)))
    backend.load()
    chunks, stats = run(backend, ask(photo()))
    assert "".join(chunks).strip() and stats.gen_tokens == 12
    backend.unload()


def test_unshielded_llava15_fails_with_one_line_naming_the_fix(llava15_dir: Path) -> None:
    """Without the shield mlx-vlm raises the real transformers error; the case fails with one clear line."""
    backend = MlxVlmBackend(spec(str(llava15_dir)))
    backend.load()
    del backend.processor.image_processor.preprocess  # back to transformers' own, unshielded method
    with pytest.raises(BackendError) as caught:
        run(backend, ask(photo()))
    backend.unload()
    assert "ImagesKwargs.__init__() got an unexpected keyword argument 'padding'" in str(caught.value.__cause__)
    message = str(caught.value)
    assert "\n" not in message
    assert "'padding'" in message and "mlx-vlm#870" in message and "fix:" in message
    assert "mlx-vlm 0.7" in message and "transformers 5." in message
    assert explain_error(caught.value.__cause__) is not None  # type: ignore[arg-type]
    assert explain_error(RuntimeError("something else")) is None


# ----------------------------------------------------------------------------- user errors


def test_missing_local_path_is_a_backend_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"model path not found: .*nowhere"):
        MlxVlmBackend(spec(str(tmp_path / "nowhere"))).load()


def test_uncached_hub_id_offline_is_one_line() -> None:
    with pytest.raises(BackendError) as caught:
        MlxVlmBackend(spec("mlx-community/no-such-model-4bit", revision="v1")).load()
    message = str(caught.value)
    assert "mlx-community/no-such-model-4bit@v1" in message
    assert "not in the Hugging Face cache and HF_HUB_OFFLINE is set" in message
    assert "\n" not in message


def test_moondream2_without_its_hub_tokenizer_offline_is_one_line() -> None:
    """A Moondream2 that is not a tiny build needs moondream/starmie-v1, which is not cached here."""
    local = MlxVlmBackend(spec("tiny:moondream2")).resolve_path()
    with pytest.raises(BackendError) as caught:
        MlxVlmBackend(spec(str(local))).load()
    message = str(caught.value)
    assert "moondream/starmie-v1" in message and "\n" not in message


def test_unknown_tiny_family_is_a_backend_error() -> None:
    with pytest.raises(BackendError, match="unknown tiny model"):
        MlxVlmBackend(spec("tiny:nonesuch")).load()


def test_moondream2_build_is_deterministic(tmp_path: Path) -> None:
    from vlmtui.worker.demo.tiny_mlx import build_moondream2

    build_moondream2(tmp_path / "a")
    build_moondream2(tmp_path / "b")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_device_option() -> None:
    import mlx.core as mx

    with pytest.raises(BackendError, match="not an MLX device"):
        MlxVlmBackend(spec("tiny:idefics3", device="npu")).load()
    if not mx.metal.is_available() and not mx.cuda.is_available():
        with pytest.raises(BackendError, match="no GPU backend"):
            MlxVlmBackend(spec("tiny:idefics3", device="gpu")).load()
    backend = MlxVlmBackend(spec("tiny:idefics3", device="cpu"))
    assert backend.load().device == "cpu"
    assert run(backend, ask(photo(), max_tokens=2))[0]
    backend.unload()
