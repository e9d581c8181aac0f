"""The transformers backend in-process with the real tiny Idefics3 and LLaVA-NeXT models: streaming,
aborting through ``emit``, errors a user can cause (missing path, uncached hub id, broken remote code)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.functional.helpers import model_spec
from vlmtui.wire.spec import ModelSpec
from vlmtui.worker.backends.base import BackendError, GenerationRequest, GenerationStats
from vlmtui.worker.backends.transformers import TransformersBackend
from vlmtui.worker.demo.tiny import tiny_model_dir

FAMILIES = ("idefics3", "llava-next")


@pytest.fixture(scope="module", params=FAMILIES)
def loaded(request: pytest.FixtureRequest) -> Iterator[TransformersBackend]:
    """A tiny model of each family, loaded once for the module."""
    backend = TransformersBackend(spec(f"tiny:{request.param}"))
    backend.load()
    yield backend
    backend.unload()


def spec(path: str, **overrides: object) -> ModelSpec:
    values: dict[str, object] = {"id": "m", "backend": "transformers", "path": path}
    values.update(overrides)
    return model_spec(**values)


def photo(width: int = 96, height: int = 64) -> Image.Image:
    """A small RGB gradient: a real image with structure, made here."""
    image = Image.new("RGB", (width, height))
    image.putdata([(x * 255 // width, y * 255 // height, 128) for y in range(height) for x in range(width)])
    return image


def ask(
    image: Image.Image | None, max_tokens: int = 24, should_stop: object = None, temperature: float = 0.0
) -> GenerationRequest:
    return GenerationRequest(
        case_id="c1",
        prompt="Describe this image in one sentence.",
        image=image,
        max_tokens=max_tokens,
        temperature=temperature,
        should_stop=should_stop or (lambda: False),  # type: ignore[arg-type]
    )


def run(backend: TransformersBackend, request: GenerationRequest) -> tuple[str, GenerationStats]:
    chunks: list[str] = []
    stats = backend.generate(request, chunks.append)
    return "".join(chunks), stats


class Abort(Exception):
    """What the worker raises from ``emit`` to stop a generation."""


def generate_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("generate-")]


# ---------------------------------------------------------------------------------------- tiny models


def test_tiny_build_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLMTUI_CACHE_DIR", str(tmp_path))
    first = tiny_model_dir("tiny:smolvlm", "transformers")
    assert (first / "model.safetensors").stat().st_size < 2_000_000
    assert {"config.json", "processor_config.json", "tokenizer.json", "chat_template.jinja"} <= {
        p.name for p in first.iterdir()
    }
    started = time.perf_counter()
    again = tiny_model_dir("tiny:idefics3", "transformers")
    assert again == first
    assert time.perf_counter() - started < 0.05


def test_tiny_builds_are_deterministic(tmp_path: Path) -> None:
    from vlmtui.worker.demo.tiny_hf import build_llava_next

    build_llava_next(tmp_path / "a")
    build_llava_next(tmp_path / "b")
    weights = [(tmp_path / name / "model.safetensors").read_bytes() for name in ("a", "b")]
    assert weights[0] == weights[1]


# ---------------------------------------------------------------------------------------- generation


def test_image_case_streams_max_tokens(loaded: TransformersBackend) -> None:
    text, stats = run(loaded, ask(photo(), max_tokens=24))
    assert text.strip()
    assert stats.gen_tokens == 24  # the special tokens' output rows are zero: greedy never picks eos
    assert stats.prompt_tokens is not None and stats.prompt_tokens > 20
    assert stats.prompt_tps and stats.gen_tps and stats.gen_tps > 0
    assert stats.peak_memory_bytes is None  # cpu: the worker samples RSS instead
    assert loaded.framework_memory() is None


def test_text_only_case_streams(loaded: TransformersBackend) -> None:
    text, stats = run(loaded, ask(None, max_tokens=16))
    with_image = run(loaded, ask(photo(), max_tokens=1))[1]
    assert text.strip()
    assert stats.gen_tokens == 16
    assert stats.prompt_tokens is not None and with_image.prompt_tokens is not None
    assert stats.prompt_tokens < with_image.prompt_tokens


def test_sampling_runs(loaded: TransformersBackend) -> None:
    _, stats = run(loaded, ask(photo(), max_tokens=12, temperature=0.8))
    assert stats.gen_tokens is not None and 0 < stats.gen_tokens <= 12


def test_emit_raising_stops_generation(loaded: TransformersBackend) -> None:
    steps = 0

    def count_steps() -> bool:
        nonlocal steps
        steps += 1
        return False

    def emit(chunk: str) -> None:
        raise Abort("stop")

    started = time.perf_counter()
    with pytest.raises(Abort):
        loaded.generate(ask(photo(), max_tokens=3000, should_stop=count_steps), emit)
    assert not generate_threads()
    assert steps < 200, f"generation went on for {steps} tokens after emit raised"
    assert time.perf_counter() - started < 5
    # The backend is usable again after an abort.
    assert run(loaded, ask(None, max_tokens=4))[1].gen_tokens == 4


def test_should_stop_ends_generation_early(loaded: TransformersBackend) -> None:
    calls = 0

    def stop_after_five() -> bool:
        nonlocal calls
        calls += 1
        return calls >= 5

    _, stats = run(loaded, ask(None, max_tokens=500, should_stop=stop_after_five))
    assert stats.gen_tokens == 5


def test_error_in_generate_thread_is_raised_in_caller(loaded: TransformersBackend) -> None:
    with pytest.raises(ValueError, match="max_new_tokens"):
        run(loaded, ask(None, max_tokens=0))
    assert not generate_threads()


def test_image_splitting_off_and_max_image_size_cut_image_tokens() -> None:
    big = photo(320, 200)
    tiled = TransformersBackend(spec("tiny:smolvlm"))
    single = TransformersBackend(spec("tiny:smolvlm", image_splitting=False))
    small = TransformersBackend(spec("tiny:smolvlm", max_image_size=32))
    counts = []
    for backend in (tiled, single, small):
        backend.load()
        counts.append(run(backend, ask(big, max_tokens=1))[1].prompt_tokens)
        backend.unload()
    assert counts[1] is not None and counts[2] is not None and counts[0] is not None
    assert counts[1] < counts[0] and counts[2] < counts[0]


def test_image_splitting_is_noted_where_it_does_not_apply() -> None:
    import torch

    threads = torch.get_num_threads()
    backend = TransformersBackend(spec("tiny:llava-next", image_splitting=False, dtype="bfloat16"))
    info = backend.load()
    try:
        assert info.dtype == "bfloat16" and info.device == "cpu"
        assert any("image_splitting is ignored" in note for note in info.notes)
        assert run(backend, ask(photo(), max_tokens=3))[1].gen_tokens == 3
        assert torch.get_num_threads() == 1  # tiny models run single-threaded
    finally:
        backend.unload()
    assert torch.get_num_threads() == threads


def test_loads_transformers_processor_after_mlx_vlm_patched_auto_processor() -> None:
    # Importing mlx-vlm's idefics3 processor patches AutoProcessor.from_pretrained for this process, as it
    # does in a worker that ran an mlx-vlm model before this one.
    pytest.importorskip("mlx_vlm.models.idefics3.processing_idefics3")
    backend = TransformersBackend(spec("tiny:idefics3"))
    backend.load()
    try:
        assert type(backend._processor).__module__.startswith("transformers.")
        assert run(backend, ask(photo(), max_tokens=3))[1].gen_tokens == 3
    finally:
        backend.unload()


# ---------------------------------------------------------------------------------------- errors


def test_missing_local_path() -> None:
    with pytest.raises(BackendError, match="model path not found: /nowhere/model"):
        TransformersBackend(spec("/nowhere/model")).load()


def test_unknown_dtype() -> None:
    with pytest.raises(BackendError, match="dtype"):
        TransformersBackend(spec("tiny:llava-next", dtype="int3")).load()


def test_hub_id_not_cached_offline() -> None:
    with pytest.raises(BackendError) as caught:
        TransformersBackend(spec("vlmtui-tests/no-such-model", revision="main")).load()
    assert str(caught.value) == ("vlmtui-tests/no-such-model is not in the Hugging Face cache and HF_HUB_OFFLINE "
                                 "is set; download it once online (vlmtui run --download-only SUITE, or unset "
                                 "HF_HUB_OFFLINE)")


BROKEN_IMPORTS = {
    # a module this transformers no longer has: raised by the repo's own code as it runs
    "removed-api": ("from transformers.models.phi.nonexistent import PhiConfig\n", "ModuleNotFoundError: "),
    # a package that is not installed: refused by transformers' check_imports before it runs
    "missing-package": ("import vlmtui_missing_package_xyz\n", "ImportError: This modeling file requires"),
}


@pytest.fixture(params=sorted(BROKEN_IMPORTS))
def broken_remote_repo(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, str]:
    """A model directory whose remote config code fails to import (as Moondream2's can), and the error."""
    repo = tmp_path / "broken-remote"
    repo.mkdir()
    (repo / "config.json").write_text(json.dumps({
        "model_type": "broken_remote",
        "architectures": ["BrokenRemoteModel"],
        "auto_map": {
            "AutoConfig": "configuration_broken.BrokenRemoteConfig",
            "AutoModelForCausalLM": "modeling_broken.BrokenRemoteModel",
        },
    }))
    code, error = BROKEN_IMPORTS[request.param]
    (repo / "configuration_broken.py").write_text(code)
    return repo, error


def test_remote_code_import_failure_gives_hint(broken_remote_repo: tuple[Path, str]) -> None:
    import transformers

    repo, error = broken_remote_repo
    with pytest.raises(BackendError) as caught:
        TransformersBackend(spec(str(repo), trust_remote_code=True)).load()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"remote code of {repo} failed to import ({error}")
    assert 'use backend = "mlx-vlm" or pin revision' in message
    assert f"supports transformers {transformers.__version__}" in message


def test_remote_code_without_opt_in_is_refused_not_prompted(broken_remote_repo: tuple[Path, str]) -> None:
    # Without an explicit False transformers would ask on stdin, which in the worker is the command pipe.
    with pytest.raises(BackendError, match="set trust_remote_code = true"):
        TransformersBackend(spec(str(broken_remote_repo[0]))).load()


def test_working_remote_code_loads_with_a_note(tmp_path: Path) -> None:
    repo = tmp_path / "remote-idefics3"
    repo.mkdir()
    source = tiny_model_dir("tiny:idefics3", "transformers")
    for path in source.iterdir():
        if path.is_file() and not path.name.startswith("."):
            (repo / path.name).write_bytes(path.read_bytes())
    config = json.loads((repo / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "remote_idefics3.RemoteIdefics3Config",
        "AutoModelForImageTextToText": "remote_idefics3.RemoteIdefics3",
    }
    (repo / "config.json").write_text(json.dumps(config))
    (repo / "remote_idefics3.py").write_text(
        "from transformers import Idefics3Config, Idefics3ForConditionalGeneration\n\n\n"
        "class RemoteIdefics3Config(Idefics3Config):\n    pass\n\n\n"
        "class RemoteIdefics3(Idefics3ForConditionalGeneration):\n"
        "    config_class = RemoteIdefics3Config\n"
    )
    backend = TransformersBackend(spec(str(repo), trust_remote_code=True))
    info = backend.load()
    try:
        note = f"trust_remote_code is on for {repo}: code from the model repo runs in the worker"
        assert note in info.notes
        assert type(backend._model).__name__ == "RemoteIdefics3"
        assert run(backend, ask(photo(), max_tokens=3))[1].gen_tokens == 3
    finally:
        backend.unload()


def test_out_of_memory_recognised() -> None:
    import torch

    backend = TransformersBackend(spec("tiny:llava-next"))
    assert backend.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert backend.is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)"))
    with pytest.raises(RuntimeError) as caught:
        torch.empty(1 << 62, dtype=torch.uint8)  # a real refusal of the CPU allocator
    assert backend.is_out_of_memory(caught.value)
    assert not backend.is_out_of_memory(ValueError("bad value"))
