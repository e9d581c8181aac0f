"""The three built-in backends' declarations, registered in pyproject.toml as any plug-in's would be.

Standard library only: the vlmtui process reads these to validate suites, run the preflight and list
what doctor checks; the classes they name are imported in the worker alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vlmtui.llamacpp import find_llama_server, how_to_get
from vlmtui.plugins.declaration import BackendDeclaration, Capabilities, Option, TinyModels
from vlmtui.wire.source import ModelSource

_HF = "vlmtui.worker.demo.tiny_hf"
_MLX = "vlmtui.worker.demo.tiny_mlx"

PHI3_V_MLX = ("mlx-vlm 0.7.10's phi3_v VisionModel hard-codes the CLIP ViT-L/14-336 tower (24 layers x 1024, 304 M "
              "parameters) whatever vision_config says, so no tiny one exists: ~600 MB, minutes a crop on a CPU")
PHI3_V_HF = ("transformers 5.24 has no Phi-3-Vision class (microsoft/Phi-3.5-vision-instruct is remote code, "
             "modeling_phi3_v.py)")
"""Why tiny:phi3-v is not built (issue 15): each line names the versions and where the limit is."""

MLX_TINY = TinyModels("mlx", {
    "idefics3": f"{_MLX}:build_idefics3",
    "smolvlm2": f"{_MLX}:build_smolvlm2",
    "llava-next": f"{_MLX}:build_llava_next",
    "moondream2": f"{_MLX}:build_moondream2",
    # LLaVA-1.5 (model_type "llava"): the family whose mlx-vlm processor trips over transformers 5.
    "llava-1.5": f"{_MLX}:build_llava15",
}, not_built={"phi3-v": PHI3_V_MLX})

DEVICE = Option("device", str, "auto", "where the model runs (auto picks the best the framework sees)")
DTYPE = Option("dtype", str, "auto", "weight dtype: auto, float16, bfloat16 or float32")
IMAGE_SPLITTING = Option("image_splitting", bool, None, "SmolVLM/Idefics3 image tiling (off saves memory)")

TRANSFORMERS = BackendDeclaration(
    name="transformers",
    implementation="vlmtui.worker.backends.transformers:TransformersBackend",
    summary="Hugging Face transformers on torch (CUDA, MPS, CPU)",
    packages=("torch", "transformers"),
    options=(DEVICE, DTYPE, IMAGE_SPLITTING),
    tiny=TinyModels("hf", {
        "idefics3": f"{_HF}:build_idefics3",
        "smolvlm2": f"{_HF}:build_smolvlm2",  # its processor needs torchvision (transformers#48558)
        "llava-next": f"{_HF}:build_llava_next",
    }, not_built={"phi3-v": PHI3_V_HF}),
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


SERVER_PRESETS = ("llama.cpp", "mlx-vlm")
"""The servers the openai backend starts by name (``server = "…"``); ``command = [...]`` starts any other."""

LLAMA_CPP_TINY = ("idefics3",)
"""The tiny families llama.cpp serves, converted to GGUF + mmproj by vlmtui.worker.demo.tiny_gguf."""

_LLAMA_CPP_ONLY = ("model_file", "mmproj", "context", "gpu_layers")


def _server_named(options: Mapping[str, Any], source: ModelSource) -> tuple[str, str] | None:
    """How the server is reached: one of ``server``, ``command`` or ``base_url``; llama.cpp's own rules."""
    server = options.get("server")
    if server is None:
        if not (options.get("command") or options.get("base_url")):
            return "backend", ('an openai model needs server = "llama.cpp" | "mlx-vlm", command = [...] '
                               "(vlmtui starts it) or base_url (one already running)")
        given = next((key for key in _LLAMA_CPP_ONLY if options.get(key) is not None), None)
        return (given, 'applies to server = "llama.cpp" only') if given else None
    if server not in SERVER_PRESETS:
        return "server", f'unknown server {server!r}: "llama.cpp" or "mlx-vlm" (command = [...] for any other)'
    if options.get("command") or options.get("base_url"):
        return "server", "set one of server, command and base_url"
    if server != "llama.cpp":
        given = next((key for key in _LLAMA_CPP_ONLY if options.get(key) is not None), None)
        return (given, 'applies to server = "llama.cpp" only') if given else None
    if source.kind == "none":
        return "path", 'server = "llama.cpp" needs path: a .gguf file, a folder of GGUF files or a hub repo (-hf)'
    if source.is_tiny and source.name not in LLAMA_CPP_TINY:
        known = ", ".join(f"tiny:{family}" for family in LLAMA_CPP_TINY)
        return "path", f"{source} has no GGUF build for llama.cpp (tiny GGUF models: {known})"
    return None


def _server_missing(options: Mapping[str, Any], source: ModelSource) -> str | None:
    """A llama.cpp model on a machine without llama-server: its cases are skipped, saying how to get it."""
    if options.get("server") != "llama.cpp" or find_llama_server() is not None:
        return None
    return f"llama-server not found: {how_to_get()}"


OPENAI = BackendDeclaration(
    name="openai",
    implementation="vlmtui.worker.backends.openai:OpenAIBackend",
    summary="an OpenAI-compatible server that vlmtui starts (server preset or command) or one already running",
    packages=("openai", "httpx"),
    options=(
        Option("server", str, None, 'a server vlmtui starts and stops for the model: "llama.cpp" (llama-server) '
                                    'or "mlx-vlm" (mlx_vlm.server)'),
        Option("command", list, (), "argv of any other server vlmtui starts and stops; {port}, {model_path}, "
                                    "{python} are filled in"),
        Option("base_url", str, None, "a server that is already running"),
        Option("served_model", str, None, "the model name to ask the server for (default: the one it serves)"),
        Option("api_key", str, None),
        Option("startup_timeout_s", float, 120.0, "how long a started server may take to load and answer"),
        Option("server_args", list, (), "more arguments for a server preset (e.g. [\"-t\", \"4\"])"),
        Option("model_file", str, None, "llama.cpp: the model GGUF when path is a folder (relative to it) "
                                        "or a hub repo (--hf-file)"),
        Option("mmproj", str, None, "llama.cpp: the vision projector GGUF (default: the mmproj*.gguf "
                                    "beside the model)"),
        Option("context", int, None, "llama.cpp: context size in tokens (-c; default: the model's)"),
        Option("gpu_layers", int, None, "llama.cpp: layers on the GPU (-ngl; default: 99 where llama-server "
                                        "sees Metal or CUDA, none on a CPU)"),
    ),
    tiny=MLX_TINY,  # tiny:<family> is an MLX folder for mlx_vlm.server; llama.cpp serves LLAMA_CPP_TINY as GGUF
    preflight=False,  # the weights load into the server, whose memory the worker samples as it runs
    path_required=False,
    check=_server_named,
    unavailable=_server_missing,
)
