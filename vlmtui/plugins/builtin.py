"""The three built-in backends' declarations, registered in pyproject.toml as any plug-in's would be.

Standard library only: the vlmtui process reads these to validate suites, run the preflight and list
what doctor checks; the classes they name are imported in the worker alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vlmtui.plugins.declaration import BackendDeclaration, Capabilities, Option, TinyModels
from vlmtui.wire.source import ModelSource

_HF = "vlmtui.worker.demo.tiny_hf"
_MLX = "vlmtui.worker.demo.tiny_mlx"

MLX_TINY = TinyModels("mlx", {
    "idefics3": f"{_MLX}:build_idefics3",
    "llava-next": f"{_MLX}:build_llava_next",
    "moondream2": f"{_MLX}:build_moondream2",
    # LLaVA-1.5 (model_type "llava"): the family whose mlx-vlm processor trips over transformers 5.
    "llava-1.5": f"{_MLX}:build_llava15",
})

DEVICE = Option("device", str, "auto", "where the model runs (auto picks the best the framework sees)")
DTYPE = Option("dtype", str, "auto", "weight dtype: auto, float16, bfloat16 or float32")
IMAGE_SPLITTING = Option("image_splitting", bool, None, "SmolVLM/Idefics3 image tiling (off saves memory)")

TRANSFORMERS = BackendDeclaration(
    name="transformers",
    implementation="vlmtui.worker.backends.transformers:TransformersBackend",
    summary="Hugging Face transformers on torch (CUDA, MPS, CPU)",
    packages=("torch", "transformers"),
    options=(DEVICE, DTYPE, IMAGE_SPLITTING),
    tiny=TinyModels("hf", {"idefics3": f"{_HF}:build_idefics3", "llava-next": f"{_HF}:build_llava_next"}),
    capabilities=Capabilities(memory_limit=True),
)

MLX_VLM = BackendDeclaration(
    name="mlx-vlm",
    implementation="vlmtui.worker.backends.mlx_vlm:MlxVlmBackend",
    summary="mlx-vlm on MLX (Metal on Apple Silicon, the CPU on Linux)",
    packages=("mlx", "mlx_vlm"),
    options=(
        Option("device", str, "auto", "auto, cpu or gpu"),
        DTYPE,
        IMAGE_SPLITTING,
        Option("prefill_step_size", int, None, "prefill chunk size (smaller uses less memory)"),
    ),
    tiny=MLX_TINY,
    # mlx 0.32's memory limit is a guideline: past it MLX frees its cache and waits, and raises only when
    # the system itself is out of memory (on CPU, an impossible allocation segfaults instead).
    capabilities=Capabilities(memory_limit=False),
)


def _server_named(options: Mapping[str, Any], source: ModelSource) -> tuple[str, str] | None:
    if options.get("command") or options.get("base_url"):
        return None
    return "backend", "an openai model needs command = [...] (vlmtui starts it) or base_url"


OPENAI = BackendDeclaration(
    name="openai",
    implementation="vlmtui.worker.backends.openai:OpenAIBackend",
    summary="an OpenAI-compatible server that vlmtui starts (command) or one already running (base_url)",
    packages=("openai", "httpx"),
    options=(
        Option("command", list, (), "argv of a server vlmtui starts and stops; {port}, {model_path}, "
                                    "{python} are filled in"),
        Option("base_url", str, None, "a server that is already running"),
        Option("served_model", str, None, "the model name to ask the server for (default: the one it serves)"),
        Option("api_key", str, None),
        Option("startup_timeout_s", float, 120.0, "how long a started server may take to answer"),
    ),
    tiny=MLX_TINY,  # tiny:<family> is handed to the server as an MLX folder (mlx_vlm.server serves it)
    preflight=False,  # the weights load into the server, whose memory the worker samples as it runs
    path_required=False,
    check=_server_named,
)
