"""The tiny families of issue 15 through the real worker: SmolVLM2 (mlx-vlm ``smolvlm``; its transformers
build is a real ``SmolVLMForConditionalGeneration`` checkpoint whose processor needs torchvision), and
Phi-3-Vision, which neither library can build small here, each said in one line."""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import SAMPLE_IMAGES
from tests.functional.worker_driver import WorkerDriver
from vlmtui.plugins import backends, find_backend
from vlmtui.wire import protocol as p
from vlmtui.wire.capabilities import TINY_MODEL_TYPES
from vlmtui.wire.source import ModelSource
from vlmtui.wire.spec import ModelSpec
from vlmtui.worker.demo.tiny import tiny_model_dir

pytestmark = pytest.mark.slow

IMAGE = str(sorted(SAMPLE_IMAGES.glob("*.jpg"))[0])
HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None


def load(worker: WorkerDriver, backend: str, path: str) -> p.Loaded | p.LoadFailed:
    """Ask the worker to load ``path`` on ``backend``; its answer."""
    worker.send(p.Load(model=ModelSpec(id="m", backend=backend, path=path).to_dict(), sample_ms=100))
    answer: p.Loaded | p.LoadFailed = worker.wait_for(p.Loaded, p.LoadFailed, timeout_s=300)
    return answer


def ask(worker: WorkerDriver, case_id: str, image: str | None, max_tokens: int = 8) -> p.Result:
    """Run one case and return its result; its streamed tokens are in ``worker.tokens[case_id]``."""
    worker.send(p.Run(case_id=case_id, prompt="Describe this image.", image=image, max_tokens=max_tokens))
    result: p.Result = worker.wait_for(p.Result, timeout_s=120)
    return result


def test_smolvlm2_on_mlx_vlm_streams_an_image_and_a_text_case(worker: WorkerDriver) -> None:
    loaded = load(worker, "mlx-vlm", "tiny:smolvlm2")
    assert isinstance(loaded, p.Loaded), loaded
    assert loaded.model_type == TINY_MODEL_TYPES["smolvlm2"] == "smolvlm"
    image = ask(worker, "image", IMAGE)
    text = ask(worker, "text", None)
    for result in (image, text):
        assert (result.outcome, result.error) == ("completed", "")
        assert len(worker.tokens[result.case_id]) > 1  # streamed, not one chunk
        assert "".join(worker.tokens[result.case_id]) == result.output != ""
        assert result.metrics["gen_tokens"] == 8  # the tiny models never pick a special token
    prompt_tokens = (image.metrics["prompt_tokens"], text.metrics["prompt_tokens"])
    assert isinstance(prompt_tokens[0], int) and isinstance(prompt_tokens[1], int)
    # 2 x 2 tiles and a global view of 4 image tokens each, with their row/column and wrapping tokens
    assert prompt_tokens[0] > prompt_tokens[1] + 20


def test_smolvlm2_build_is_the_transformers_layout_mlx_vlm_reads() -> None:
    folder = tiny_model_dir("tiny:smolvlm2", "mlx-vlm")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "smolvlm" and config["architectures"] == ["SmolVLMForConditionalGeneration"]
    assert json.loads((folder / "processor_config.json").read_text())["processor_class"] == "SmolVLMProcessor"
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size < 2 << 20, f"{size} bytes"


def test_smolvlm2_transformers_checkpoint_generates_with_smolvlm_class() -> None:
    """The hf build is a working SmolVLMForConditionalGeneration; Idefics3's processor lays out the same tokens
    (SmolVLM's own cannot be built without torchvision here)."""
    from transformers import AutoTokenizer, Idefics3Processor, SmolVLMForConditionalGeneration
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    folder = tiny_model_dir("tiny:smolvlm2", "transformers")
    model = SmolVLMForConditionalGeneration.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    processor = Idefics3Processor(  # type: ignore[no-untyped-call]
        image_processor=SmolVLMImageProcessorPil.from_pretrained(folder),
        tokenizer=tokenizer,
        image_seq_len=json.loads((folder / "processor_config.json").read_text())["image_seq_len"],
        chat_template=(folder / "chat_template.jinja").read_text(),
    )
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=text, images=[Image.open(IMAGE)], return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert output.shape[1] - inputs["input_ids"].shape[1] == 6


def test_smolvlm2_on_transformers_loads_or_names_torchvision(worker: WorkerDriver) -> None:
    loaded = load(worker, "transformers", "tiny:smolvlm2")
    if HAS_TORCHVISION:
        assert isinstance(loaded, p.Loaded), loaded
        assert ask(worker, "image", IMAGE).outcome == "completed"
        return
    assert isinstance(loaded, p.LoadFailed)
    assert "\n" not in loaded.error
    assert "SmolVLMVideoProcessor needs torchvision" in loaded.error and "transformers#48558" in loaded.error


@pytest.mark.parametrize("backend", ["mlx-vlm", "transformers", "openai"])
def test_phi3_v_is_refused_in_one_line_saying_why(backend: str) -> None:
    problem = find_backend(backend).tiny_problem(ModelSource.parse("tiny:phi3-v"), backends())
    assert problem is not None and "\n" not in problem
    assert problem.startswith(f"tiny:phi3-v has no {backend} build: ")
    assert ("mlx-vlm 0.7" in problem) if backend != "transformers" else ("remote code" in problem)


def test_the_reasons_phi3_v_is_not_built_still_hold() -> None:
    """When one of these fails, a tiny phi3-v can be built: declare it and drop the reason."""
    import transformers
    from mlx_vlm.models.phi3_v.vision import VisionModel

    tower = VisionModel.CLIP_VIT_LARGE_PATCH14_336_CONFIG
    assert (tower.num_hidden_layers, tower.hidden_size) == (24, 1024)
    assert "vision_config" not in inspect.getsource(VisionModel.__init__)
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    assert "phi3_v" not in CONFIG_MAPPING_NAMES and not hasattr(transformers, "Phi3VForCausalLM")


def test_suite_naming_phi3_v_is_one_line(tmp_path: Path) -> None:
    from vlmtui.suite.checks import SuiteError
    from vlmtui.suite.loader import load_suite

    suite = tmp_path / "s.toml"
    suite.write_text(f'images = ["{IMAGE}"]\nprompts = ["x"]\n[[models]]\nid = "p"\nbackend = "mlx-vlm"\n'
                     'path = "tiny:phi3-v"\n')
    with pytest.raises(SuiteError) as caught:
        load_suite(suite)
    assert "\n" not in str(caught.value) and "hard-codes the CLIP ViT-L/14-336 tower" in str(caught.value)
