"""``tiny:idefics3`` as GGUF: a model + mmproj pair that llama.cpp's ``llama-server`` serves.

Made from the tiny Idefics3 (SmolVLM layout) Hugging Face checkpoint with llama.cpp's own
``convert_hf_to_gguf.py``, run as a subprocess of this Python (it imports torch, transformers and
numpy) with the converter cached by ``vlmtui.llamacpp_build`` from the same llama.cpp tree as the
server:

1. vision tower + connector: ``convert_hf_to_gguf.py --mmproj <checkpoint>`` exports them directly
   (projector type ``idefics3``, scale factor 2, preprocessing longest edge 64 px), 38 tensors, 390 KB.
2. text model: the converter refuses ``Idefics3ForConditionalGeneration`` as a text model, so the text
   half is presented as a Llama checkpoint (``config.json`` = the ``text_config`` with
   ``model_type "llama"`` / ``LlamaForCausalLM``, the ``model.text_model.*`` weights renamed to
   ``model.*``, ``lm_head`` kept, the tokenizer files copied) and converted by the Llama converter,
   21 tensors, 572 KB. Two tokenizer fixes on the way: the tiny byte-level BPE tokenizer is
   pre-tokenized with GPT-2's split regex, but its hash is not in the converter's table of known hub
   tokenizers, which raises ``NotImplementedError``; a few-line wrapper falls back to llama.cpp's
   ``"gpt-2"`` pre-tokenizer for exactly that case. And mtmd needs ``"\\n\\n"`` as one token
   (``MTMD_IDEFICS3_TOKENS``), which the tiny vocabulary gains (513 rows instead of 512).

Both files are f32 (tiny, and exact). Cached under ``<cache_root>/tiny-gguf/v<N>-<llama.cpp commit>/``.
Conversion takes 10-15 s on 2 cores (two Python start-ups with torch), plus the tiny HF checkpoint's
build when it is not cached yet. llama-server then loads the pair in 0.3 s and answers an image
prompt (bicycle.jpg: 55 prompt tokens, 22 without the image) in under a second on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlmtui.filelock import locked
from vlmtui.llamacpp import LLAMA_CPP_COMMIT, cache_root, converter_dir
from vlmtui.llamacpp_build import LlamaBuildError, fetch_converter
from vlmtui.worker.demo.tiny import tiny_model_dir

GGUF_BUILD_VERSION = 1
"""Bump when the conversion changes, so stale cached GGUF files are rebuilt."""

MODEL_FILE = "tiny-idefics3.gguf"
MMPROJ_FILE = "mmproj-tiny-idefics3.gguf"
MODEL_NAME = "vlmtui tiny idefics3"

MTMD_IDEFICS3_TOKENS = ("\n", "\n\n")
"""Text that llama.cpp's mtmd looks up as single vocabulary pieces for an Idefics3 image (``\\n\\n``
before the global image, ``\\n`` after each row of tiles): an absent one becomes an invalid token and
the server answers 400 "Invalid token". The tiny tokenizer, trained on single lines, has ``\\n`` (a
byte) but not ``\\n\\n``; the conversion adds it (one more vocabulary row, zero weights)."""

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                   "special_tokens_map.json", "generation_config.json")

# Runs llama.cpp's converter with one fallback: a BPE tokenizer whose pre-tokenizer hash is unknown is
# treated as GPT-2's (what the tiny tokenizer is: tokenizers' ByteLevel with the GPT-2 regex).
_WRAPPER = """
import runpy, sys
tree = sys.argv[1]
sys.path[0:0] = [tree, tree + "/gguf-py"]
import conversion.base as base
_original = base.TextModel.get_vocab_base_pre
def _pre(self, tokenizer):
    try:
        return _original(self, tokenizer)
    except NotImplementedError:
        return "gpt-2"
base.TextModel.get_vocab_base_pre = _pre
sys.argv = [tree + "/convert_hf_to_gguf.py", *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class TinyGGUFError(Exception):
    """The tiny GGUF could not be made; ``str()`` is one line."""


def tiny_gguf_dir() -> Path:
    """Where the tiny GGUF pair is cached for the pinned llama.cpp converter."""
    return cache_root() / "tiny-gguf" / f"v{GGUF_BUILD_VERSION}-{LLAMA_CPP_COMMIT}"


def build_tiny_gguf(
    out_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    *,
    python: str | None = None,
    converter: Path | None = None,
) -> tuple[Path, Path]:
    """``(model.gguf, mmproj.gguf)`` of ``tiny:idefics3``, converted once and cached.

    ``out_dir`` defaults to ``tiny_gguf_dir()``; a directory that already holds both files is reused.
    ``python`` runs the converter (default: this interpreter, which has torch and transformers when
    the ``transformers`` extra is installed). ``converter``: a directory holding
    ``convert_hf_to_gguf.py``, ``conversion/`` and ``gguf-py/``; by default the one cached beside the
    llama-server build, or fetched from the same sdist without building (about a minute) when there is none.
    """
    say = progress or (lambda _msg: None)
    out = Path(out_dir) if out_dir is not None else tiny_gguf_dir()
    model, mmproj = out / MODEL_FILE, out / MMPROJ_FILE
    if model.is_file() and mmproj.is_file():
        return model, mmproj
    out.mkdir(parents=True, exist_ok=True)
    with locked(out.parent / f".{out.name}.lock"):
        if model.is_file() and mmproj.is_file():
            return model, mmproj
        converter = converter or _converter(say)
        checkpoint = _tiny_checkpoint(say)
        with tempfile.TemporaryDirectory(prefix=".tiny-gguf-", dir=out) as scratch_name:
            scratch = Path(scratch_name)
            say("converting tiny:idefics3 vision tower to GGUF (mmproj)")
            _convert(python, converter, checkpoint, scratch / MMPROJ_FILE, mmproj=True)
            text_dir = scratch / "text-as-llama"
            write_text_as_llama(checkpoint, text_dir)
            say("converting tiny:idefics3 text model to GGUF (as Llama)")
            _convert(python, converter, text_dir, scratch / MODEL_FILE, mmproj=False)
            # The model last: its presence with the mmproj is what marks the pair complete.
            os.replace(scratch / MMPROJ_FILE, mmproj)
            os.replace(scratch / MODEL_FILE, model)
    return model, mmproj


def write_text_as_llama(checkpoint: Path, dest: Path) -> None:
    """Write the text half of an Idefics3 checkpoint into ``dest`` as a plain Llama checkpoint."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    config = json.loads((checkpoint / "config.json").read_text())
    text_config = dict(config["text_config"])
    if text_config.get("model_type", "llama") != "llama":
        raise TinyGGUFError(f"{checkpoint}: text model is {text_config['model_type']!r}, expected 'llama'")
    text_config.update(model_type="llama", architectures=["LlamaForCausalLM"])
    text_config.setdefault("torch_dtype", config.get("dtype", config.get("torch_dtype", "float32")))
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.json").write_text(json.dumps(text_config, indent=2) + "\n")

    weights = {}
    shards = sorted(checkpoint.glob("*.safetensors"))
    if not shards:
        raise TinyGGUFError(f"{checkpoint}: no *.safetensors weights")
    for shard in shards:
        with safe_open(str(shard), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                if name.startswith("model.text_model."):
                    weights["model." + name.removeprefix("model.text_model.")] = handle.get_tensor(name)
                elif name == "lm_head.weight":
                    weights[name] = handle.get_tensor(name)
    if "model.embed_tokens.weight" not in weights:
        raise TinyGGUFError(f"{checkpoint}: no model.text_model.* weights; not an Idefics3 checkpoint?")
    for name in TOKENIZER_FILES:
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, dest / name)
    added = _add_byte_level_tokens(dest / "tokenizer.json", MTMD_IDEFICS3_TOKENS)
    if added:
        _grow_vocab(weights, text_config, added)
        (dest / "config.json").write_text(json.dumps(text_config, indent=2) + "\n")
    save_file(weights, str(dest / "model.safetensors"), metadata={"format": "pt"})


def _add_byte_level_tokens(tokenizer_json: Path, texts: tuple[str, ...]) -> int:
    """Give each of ``texts`` a single token in a byte-level BPE ``tokenizer.json``; how many were added.

    Each new token gets the next id and a merge of its first byte-symbol with the rest, so the
    tokenizer also produces it; only whitespace runs are needed here, which GPT-2's pre-tokenizer
    keeps together.
    """
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    model = data["model"]
    if model.get("type") != "BPE":
        raise TinyGGUFError(f"{tokenizer_json}: expected a BPE tokenizer, got {model.get('type')!r}")
    vocab: dict[str, int] = model["vocab"]
    symbols = _byte_symbols()
    added = 0
    next_id = max([*vocab.values(), *(t["id"] for t in data.get("added_tokens", []))]) + 1
    for text in texts:
        piece = "".join(symbols[b] for b in text.encode("utf-8"))
        if piece in vocab:
            continue
        head, rest = piece[0], piece[1:]
        if rest not in vocab:
            raise TinyGGUFError(f"{tokenizer_json}: cannot build {text!r} from its parts")
        vocab[piece] = next_id
        merge = [head, rest]
        model["merges"].append(merge if model["merges"] and isinstance(model["merges"][0], list)
                               else " ".join(merge))
        next_id += 1
        added += 1
    if added:
        tokenizer_json.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return added


def _byte_symbols() -> dict[int, str]:
    """GPT-2's byte → printable-character table that byte-level BPE vocabularies are written in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _grow_vocab(weights: dict[str, Any], text_config: dict[str, Any], added: int) -> None:
    """Append ``added`` rows to the embedding (zeros) and the output head (zeros: never chosen greedily)."""
    import torch

    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        if name in weights:
            matrix = weights[name]
            weights[name] = torch.cat([matrix, matrix.new_zeros((added, matrix.shape[1]))]).contiguous()
    text_config["vocab_size"] = int(weights["model.embed_tokens.weight"].shape[0])


def _converter(say: Callable[[str], None]) -> Path:
    found = converter_dir()
    if found is not None:
        return found
    say("fetching llama.cpp's converter from the llama-cpp-python sdist")
    try:
        return fetch_converter(say)
    except LlamaBuildError as exc:
        raise TinyGGUFError(f"llama.cpp's converter is not available: {exc}") from exc


def _tiny_checkpoint(say: Callable[[str], None]) -> Path:
    say("building the tiny:idefics3 Hugging Face checkpoint")
    return tiny_model_dir("tiny:idefics3", "transformers")


def _convert(python: str | None, converter: Path, source: Path, outfile: Path, *, mmproj: bool) -> None:
    """Run llama.cpp's converter on ``source`` into ``outfile``; raise ``TinyGGUFError`` with its error line."""
    command = [python or sys.executable, "-c", _WRAPPER, str(converter), "--outtype", "f32",
               "--model-name", MODEL_NAME, "--outfile", str(outfile), str(source)]
    if mmproj:
        command.insert(4, "--mmproj")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(converter / "gguf-py"), os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    env.pop("NO_LOCAL_GGUF", None)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not outfile.is_file():
        what = "mmproj" if mmproj else "text model"
        raise TinyGGUFError(f"converting tiny:idefics3 {what} to GGUF failed (exit {done.returncode}): "
                            f"{_error_line(done.stderr + done.stdout)}")


def _error_line(text: str) -> str:
    """The exception line of a Python traceback, else the last line of output."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception")) or line.startswith("ERROR:"):
            return line[:300]
    return lines[-1][:300] if lines else "no output"

