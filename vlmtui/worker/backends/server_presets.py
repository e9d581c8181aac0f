"""The servers the ``openai`` backend starts by name: ``server = "llama.cpp"`` or ``"mlx-vlm"`` → an argv,
a readiness URL and a reader of the server's errors; ``command = [...]`` for any other server.

llama.cpp (``llama-server``): ``-m model.gguf --mmproj mmproj.gguf`` for local files (``tiny:idefics3`` is
converted to such a pair by vlmtui.worker.demo.tiny_gguf), ``-hf repo`` for a hub repo (llama-server
downloads the GGUF and its mmproj itself, into its own cache), ``--host 127.0.0.1 --port {port}``,
``-ngl 99`` where the binary sees a Metal or CUDA device, ``-c`` from the suite's ``context``. It answers
``GET /health`` with 503 while it loads the model, then 200.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmtui.llamacpp import find_llama_server, how_to_get, llama_server_error_line, llama_server_gpus
from vlmtui.plugins.builtin import LLAMA_CPP_TINY
from vlmtui.wire.spec import ModelSpec
from vlmtui.worker.backends.base import BackendError
from vlmtui.worker.demo.tiny_gguf import TinyGGUFError, build_tiny_gguf
from vlmtui.worker.servers import DEFAULT_HEALTH_URL
from vlmtui.worker.sources import offline, tiny_dir

LLAMA_HEALTH_URL = "http://127.0.0.1:{port}/health"
GPU_LAYERS = 99
"""``-ngl`` where llama-server sees a GPU: every layer of any model this size (llama.cpp caps it at the count)."""
MLX_VLM_SERVER = ("{python}", "-m", "mlx_vlm.server", "--host", "127.0.0.1", "--port", "{port}",
                  "--model", "{model_path}", "--log-level", "WARNING")

MLX_VLM_SERVER_ENV = {"APC_ENABLED": "0"}
"""Every case evaluates its whole prompt, as a model in the worker does. mlx_vlm.server (0.7.10) reuses an
earlier request's KV blocks when its Automatic Prefix Cache is on, which only its environment decides (no
flag; ``PATCH /v1/settings`` at run time): off by default, but an ``APC_ENABLED=1`` inherited from the user's
shell turned it on, and a repeat of the tiny Idefics3's image prompt then found 64 of its 67 prompt tokens
cached (``usage.prompt_tokens_details.cached_tokens``). Its vision feature cache (qwen3_5, gemma4,
deepseek_v4 only) cannot be turned off: ``--vision-cache-size 0`` fails on the first image (its LRU pops from
an empty dict), so those families' repeats of one image skip the vision encoder (docs/backends.md)."""


@dataclass(frozen=True)
class ServerLaunch:
    """How to start one managed server: argv (``{port}`` still to fill), readiness URL, error reader."""

    program: str
    argv: list[str]
    health_url: str = DEFAULT_HEALTH_URL
    model_path: str | None = None
    """What ``{model_path}`` in the argv stands for."""
    error_line: Callable[[str], str] | None = None
    notes: list[str] = field(default_factory=list)
    request_extra: Mapping[str, Any] = field(default_factory=dict)
    """Fields every chat request carries beyond the OpenAI API."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables set for the server on top of the worker's environment."""


def server_launch(spec: ModelSpec, options: Mapping[str, Any], backend: str,
                  say: Callable[[str], None]) -> ServerLaunch | None:
    """The server to start for ``spec`` (``None`` for a ``base_url`` that is already running)."""
    server = options["server"]
    if server == "llama.cpp":
        return llama_cpp_launch(spec, options, say)
    if server == "mlx-vlm":
        return ServerLaunch("mlx_vlm.server", [*MLX_VLM_SERVER, *options["server_args"]],
                            model_path=_plain_model_path(spec, backend), env=MLX_VLM_SERVER_ENV,
                            notes=["mlx_vlm.server's prefix cache off (APC_ENABLED=0)"])
    if server is not None:
        raise BackendError(f"unknown server {server!r}: \"llama.cpp\" or \"mlx-vlm\" (command = [...] for any other)")
    if options["command"]:
        argv = list(options["command"])
        return ServerLaunch(Path(argv[0]).name, argv, model_path=_plain_model_path(spec, backend))
    return None


def _plain_model_path(spec: ModelSpec, backend: str) -> str | None:
    """A tiny model's built folder; any other path handed over as written."""
    return str(tiny_dir(spec.source, backend)) if spec.source.is_tiny else spec.path or None


def llama_cpp_launch(spec: ModelSpec, options: Mapping[str, Any], say: Callable[[str], None]) -> ServerLaunch:
    """``llama-server`` for a GGUF model (local files, a hub repo, or ``tiny:idefics3``)."""
    found = find_llama_server()
    if found is None:
        raise BackendError(f"llama-server not found (not on PATH, not in vlmtui's cache, $VLMTUI_LLAMA_SERVER "
                           f"unset): {how_to_get()}")
    binary, where = found
    model_args, notes = llama_model_args(spec, options, say)
    argv = [str(binary), *model_args, "--host", "127.0.0.1", "--port", "{port}"]
    if options["context"] is not None:
        argv += ["-c", str(options["context"])]
    layers = options["gpu_layers"]
    if layers is None:
        gpus = llama_server_gpus(binary)
        layers = GPU_LAYERS if gpus else None
        notes.append(f"llama-server offloads to {', '.join(gpus)}" if gpus else "llama-server runs on the CPU")
    if layers is not None:
        argv += ["-ngl", str(layers)]
    argv += list(options["server_args"])
    notes.insert(0, f"llama-server from {where}: {binary}")
    # Every case evaluates its whole prompt, as a model in the worker does: llama-server would otherwise
    # reuse the previous request's cached prefix (a repeat's image prompt measured 0.5 ms instead of 21 ms).
    return ServerLaunch("llama-server", argv, LLAMA_HEALTH_URL, error_line=llama_server_error_line, notes=notes,
                        request_extra={"cache_prompt": False})


def llama_model_args(spec: ModelSpec, options: Mapping[str, Any],
                     say: Callable[[str], None]) -> tuple[list[str], list[str]]:
    """llama-server's model arguments for ``spec`` and notes about them; one-line errors."""
    source = spec.source
    if source.is_tiny:
        if source.name not in LLAMA_CPP_TINY:
            raise BackendError(f"{source} has no GGUF build for llama.cpp "
                               f"(tiny GGUF models: {', '.join('tiny:' + f for f in LLAMA_CPP_TINY)})")
        try:
            model, mmproj = build_tiny_gguf(progress=say)
        except TinyGGUFError as exc:
            raise BackendError(str(exc)) from None
        return ["-m", str(model), "--mmproj", str(mmproj)], []
    if source.is_hub:
        return _hub_args(spec, options)
    if source.is_local:
        return _local_args(source.local_path(), options)
    raise BackendError('server = "llama.cpp" needs path: a .gguf file, a folder of GGUF files or a hub repo')


def _hub_args(spec: ModelSpec, options: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    source = spec.source
    if source.revision:
        raise BackendError(f"{source}: llama-server's -hf cannot pin a revision; drop @{source.revision} or "
                           "download the GGUF files and set path to them")
    args = ["-hf", source.name]
    if options["model_file"]:
        args += ["--hf-file", options["model_file"]]
    if options["mmproj"]:
        args += ["--mmproj", str(_file(Path(options["mmproj"]).expanduser(), "mmproj"))]
    notes = ["llama-server fetches the model itself (-hf) into its own cache, or reads it from there"]
    if offline():
        args.append("--offline")  # the hub must not be contacted: llama-server's cache only
    return args, notes


def _local_args(path: Path, options: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    if not path.exists():
        raise BackendError(f"model path not found: {path}")
    folder = path if path.is_dir() else path.parent
    if options["model_file"]:
        model = _file(_beside(folder, options["model_file"]), "model_file")
    elif path.is_dir():
        ggufs = [p for p in sorted(path.glob("*.gguf")) if not p.name.lower().startswith("mmproj")]
        if len(ggufs) != 1:
            listed = ", ".join(p.name for p in ggufs) or "none"
            raise BackendError(f"{path}: expected one model .gguf (found {listed}); set model_file = \"…\"")
        model = ggufs[0]
    else:
        model = path
    args = ["-m", str(model)]
    if options["mmproj"]:
        args += ["--mmproj", str(_file(_beside(folder, options["mmproj"]), "mmproj"))]
        return args, []
    projectors = sorted(p for p in folder.glob("*.gguf") if p.name.lower().startswith("mmproj"))
    if len(projectors) == 1:
        return [*args, "--mmproj", str(projectors[0])], []
    if projectors:
        raise BackendError(f"{folder}: several mmproj files ({', '.join(p.name for p in projectors)}); "
                           "set mmproj = \"…\"")
    return args, [f"no mmproj*.gguf beside {model.name}: llama-server serves it without vision"]


def _beside(folder: Path, name: str) -> Path:
    """``name`` as written when absolute (or ``~``), else relative to the model's folder."""
    path = Path(name).expanduser()
    return path if path.is_absolute() else folder / path


def _file(path: Path, key: str) -> Path:
    if not path.is_file():
        raise BackendError(f"{key}: GGUF file not found: {path}")
    return path
