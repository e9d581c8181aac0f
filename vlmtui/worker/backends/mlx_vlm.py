"""A model run by mlx-vlm (MLX: Metal on Apple Silicon, the CPU on Linux) in the worker process.

``mlx_vlm.load`` then ``mlx_vlm.stream_generate`` in the calling thread, emitting text as the streaming
detokenizer completes it (usually a word at a time).
What this backend adds, each for a version it names:

- transformers 5 image processors reject tokenizer options (``padding``) that mlx-vlm 0.7.10's
  ``LlavaProcessor`` hands them; the loaded image processor is shielded from those options, and the
  error, should it come from a path the shield does not cover, reads as one line naming the fix.
- mlx-vlm 0.7.10 takes Moondream2's tokenizer from the hub repo ``moondream/starmie-v1`` and, when it
  cannot (offline), silently falls back to a text-only tokenizer; that is a clear error for a real model
  and, for ``tiny:moondream2`` (which bundles its own tokenizer), the right processor built around it.
- MLX with ml-explore/mlx#3523 raises a failed Metal command buffer at the next synchronisation instead
  of aborting the process: inside a step, or as the stream closes (mlx-vlm synchronises then). Either way
  an ``Insufficient Memory`` failure is this case's out of memory (``aborted``, caches cleared, the worker
  kept), and it never replaces the worker's own abort on its way out. Older MLX still ends the worker.

- Like mlx-lm's and mlx-vlm's own generate (which wire it per generation), Metal's recommended working set
  is wired while a model is loaded (``mx.set_wired_limit``) and the previous limit restored on unload, the
  SIGTERM path included; weights past 0.9× of it (where Metal starts paging) get a load note.

Suite options: ``prefill_step_size`` goes to ``stream_generate``. ``image_splitting`` switches Idefics3 /
SmolVLM tiling (``do_image_splitting``) and Moondream's local crops (off: the global crop only).
``max_image_size`` also caps the longest edge an Idefics3-style processor scales images up to (the
worker has already downscaled larger images). ``dtype`` (float16, bfloat16, float32) casts the weights;
``device`` picks MLX's default device (auto, cpu, gpu). Fitting the processor to those options and to
transformers 5 is mlx_processor.py.
"""

from __future__ import annotations

import gc
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlmtui.memory.samples import FrameworkSample
from vlmtui.plugins.builtin import MLX_VLM
from vlmtui.units import format_bytes
from vlmtui.wire.capabilities import TEXT, capabilities_of
from vlmtui.wire.spec import ModelSpec
from vlmtui.worker.backends.base import (
    Backend,
    BackendError,
    GenerationRequest,
    GenerationStats,
    LoadInfo,
    OutOfMemoryError,
    first_line,
)
from vlmtui.worker.backends.mlx_processor import (
    apply_image_options,
    chat_prompt,
    explain_error,
    history_refusal,
    moondream_processor,
    package_version,
    shield_image_processor,
)
from vlmtui.worker.frameworks import probe_mlx
from vlmtui.worker.sources import hub_snapshot, model_dir

HUB_PATTERNS = ["*.json", "*.jsonl", "*.safetensors", "*.py", "*.model", "*.tiktoken", "*.txt", "*.jinja"]
"""The files ``mlx_vlm.load`` fetches from the hub (mlx_vlm.utils.get_model_path, 0.7.10)."""

_MLX_OOM = re.compile(
    r"\[(?:metal::)?malloc\]|Attempting to allocate \d+ bytes|Unable to allocate \d+ bytes"
    r"|Resource limit \(.*\) exceeded|Insufficient Memory|kIOGPUCommandBufferCallbackErrorOutOfMemory"
)
"""MLX refusing an allocation, or a Metal command buffer that failed for lack of memory: ``[METAL] Command
buffer execution failed: Insufficient Memory (00000008:kIOGPUCommandBufferCallbackErrorOutOfMemory)``.
Older MLX throws that one on a Metal completion thread, which ends the worker (the case is ``crashed``);
MLX with ml-explore/mlx#3523 raises it at the next synchronisation, where it is caught like any other."""
_DTYPES = ("float16", "bfloat16", "float32")
PAGING_SHARE = 0.9
"""Weights past this share of Metal's recommended working set page (mlx-lm's and mlx-vlm's generate warn there)."""


def is_mlx_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is MLX refusing an allocation."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (MemoryError, OutOfMemoryError)):
            return True
        if isinstance(current, (RuntimeError, ValueError)) and _MLX_OOM.search(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def _explained(exc: Exception) -> Exception:
    """``exc`` as the worker should see it: MLX's out of memory and known incompatibilities in one line."""
    if isinstance(exc, BackendError):
        return exc
    if is_mlx_out_of_memory(exc):
        return OutOfMemoryError(f"MLX ran out of memory: {first_line(exc)}")
    return explain_error(exc) or exc


def _next_result(stream: Any) -> Any:
    """The stream's next ``GenerationResult`` (``None`` at its end), with MLX and library errors explained."""
    try:
        return next(stream)
    except StopIteration:
        return None
    except Exception as exc:
        explained = _explained(exc)
        if explained is exc:
            raise
        raise explained from exc


def _close_stream(stream: Any, *, stopping: bool) -> None:
    """Close the stream, running mlx-vlm's own clean-up, which synchronises with the GPU on Metal.

    A failed command buffer can surface there (ml-explore/mlx#3523). It is explained like a step's error;
    while ``emit``'s exception (the worker's abort) is on its way out, that one goes out instead and a
    failure here only clears MLX's cache (raising would replace the abort and its unload).
    """
    try:
        stream.close()
    except Exception as exc:
        if not stopping:
            explained = _explained(exc)
            if explained is exc:
                raise
            raise explained from exc
        if is_mlx_out_of_memory(exc):
            import mlx.core as mx

            mx.clear_cache()


def recommended_working_set(mx: Any) -> int | None:
    """Metal's ``max_recommended_working_set_size`` in bytes (``mx.device_info()``; mlx 0.29 had only
    ``mx.metal.device_info()``); ``None`` where MLX runs without Metal (its CPU device info has no size)."""
    info = getattr(mx, "device_info", None) or getattr(getattr(mx, "metal", None), "device_info", None)
    try:
        size = dict(info()).get("max_recommended_working_set_size") if info is not None else None
    except Exception:
        return None
    return int(size) if isinstance(size, int) and size > 0 else None


def paging_note(weights_bytes: int, recommended_bytes: int) -> str | None:
    """The load note when the weights pass ``PAGING_SHARE`` of the recommended working set, else ``None``."""
    if weights_bytes <= PAGING_SHARE * recommended_bytes:
        return None
    return (f"weights {format_bytes(weights_bytes)} exceed {PAGING_SHARE:.0%} of Metal's recommended working set "
            f"{format_bytes(recommended_bytes)}: Metal will page, so generation may be much slower "
            "(raising iogpu.wired_limit_mb helps; see vlmtui doctor)")


class MlxVlmBackend(Backend):
    """A vision-language model loaded and run by ``mlx_vlm``."""

    declaration = MLX_VLM
    supports_history = True
    """The history goes through mlx-vlm's ``apply_chat_template`` as a messages list and is prefilled again every
    turn (``stream_generate`` starts a fresh prompt cache each call); a prompt-only model type has none."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.model: Any = None
        self.processor: Any = None
        self.model_type = ""
        self.model_path: Path | None = None
        self._replaced_device: Any = None
        self._previous_wired_limit: int | None = None

    # ------------------------------------------------------------------ load

    def load(self) -> LoadInfo:
        """Resolve the path, ``mlx_vlm.load`` it, and fit the processor to the suite's options."""
        import mlx.core as mx
        from mlx_vlm.utils import load

        device = self._device(mx)
        if self.options["dtype"].lower() not in ("auto", *_DTYPES):
            choices = ", ".join(("auto", *_DTYPES))
            raise BackendError(f"dtype {self.options['dtype']!r} is not supported by mlx-vlm (use {choices})")
        path = self.resolve_path()
        try:
            model, processor = load(str(path))
        except Exception as exc:
            where = self.spec.path
            if is_mlx_out_of_memory(exc):
                raise OutOfMemoryError(f"MLX ran out of memory loading {where}: {first_line(exc)}") from exc
            raise BackendError(f"mlx-vlm could not load {where}: {first_line(exc)}") from exc
        self.model_path = path
        self.model_type = str(getattr(model.config, "model_type", "")).lower()
        notes: list[str] = []
        if self.model_type.startswith("moondream"):
            processor = moondream_processor(model, processor, self.model_type, self.spec.source.is_tiny, notes)
        shield_image_processor(processor)
        notes += apply_image_options(processor, self.options["image_splitting"], self.spec.max_image_size,
                                     self.model_type)
        dtype = self._apply_dtype(model, mx)
        self.model, self.processor = model, processor
        notes += self._wire(mx, model)
        if device is not None:
            self._replaced_device = mx.default_device()
            mx.set_default_device(device)
        sample = probe_mlx()
        return LoadInfo(
            device=sample.device if sample is not None else str(mx.default_device()),
            dtype=dtype,
            versions={
                "mlx": package_version("mlx"),
                "mlx-vlm": package_version("mlx-vlm"),
                "transformers": package_version("transformers"),
            },
            notes=notes,
            model_type=self.model_type,
            no_history=history_refusal(self.model_type),
        )

    def resolve_path(self) -> Path:
        """The local directory of the model: a tiny build, a local directory, or a hub snapshot."""
        source = self.spec.source
        return hub_snapshot(source, HUB_PATTERNS) if source.is_hub else model_dir(source, self.name)

    def _device(self, mx: Any) -> Any:
        """The MLX device the spec asks for, ``None`` for ``auto`` (MLX's own default)."""
        device = self.options["device"].lower()
        if device == "auto":
            return None
        if device == "cpu":
            return mx.cpu
        if device in ("gpu", "metal", "cuda"):
            backends = (getattr(mx, name, None) for name in ("metal", "cuda"))
            if not any(b is not None and b.is_available() for b in backends):
                raise BackendError(f"device {device!r} asked for, but this MLX has no GPU backend (use cpu)")
            return mx.gpu
        raise BackendError(f"device {self.options['device']!r} is not an MLX device (use auto, cpu or gpu)")

    def _apply_dtype(self, model: Any, mx: Any) -> str:
        """Cast the weights to the spec's dtype; say what they are (``"4-bit, float16"`` when quantised)."""
        from mlx.utils import tree_flatten

        wanted = self.options["dtype"].lower()
        if wanted != "auto":
            model.set_dtype(getattr(mx, wanted))
        sizes: dict[str, int] = {}
        params: Any = tree_flatten(model.parameters())
        for _, param in params:
            if mx.issubdtype(param.dtype, mx.floating):
                name = str(param.dtype).rsplit(".", 1)[-1]
                sizes[name] = sizes.get(name, 0) + int(param.size)
        floating = max(sizes, key=lambda k: sizes[k]) if sizes else ""
        bits = self._quantization_bits()
        return f"{bits}-bit, {floating}" if bits else floating

    def _wire(self, mx: Any, model: Any) -> list[str]:
        """Wire Metal's recommended working set while the model is loaded, as mlx-lm's and mlx-vlm's generate
        do (so the weights are not evicted between cases); ``unload`` restores the previous limit."""
        recommended = recommended_working_set(mx)
        if recommended is None:
            return []  # MLX on the CPU: nothing to wire
        from mlx.utils import tree_flatten

        params: Any = tree_flatten(model.parameters())  # mlx's stubs type it loosely
        weights = sum(int(param.nbytes) for _, param in params)
        note = paging_note(weights, recommended)
        try:
            self._previous_wired_limit = int(mx.set_wired_limit(recommended))
        except Exception as exc:  # MLX raises ValueError past the maximum working set (mlx/backend/metal)
            return [*([note] if note else []), f"wired limit not set: {first_line(exc)}"]
        return [note] if note else []

    def _quantization_bits(self) -> int | None:
        """The checkpoint's quantisation width from its config.json, if it is quantised."""
        if self.model_path is None:
            return None
        try:
            config = json.loads((self.model_path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        quant = config.get("quantization") or config.get("quantization_config") or {}
        bits = quant.get("bits") if isinstance(quant, dict) else None
        return int(bits) if isinstance(bits, int) else None

    # ------------------------------------------------------------------ generate

    def generate(self, request: GenerationRequest, emit: Callable[[str], None]) -> GenerationStats:
        """Stream one case through ``mlx_vlm.stream_generate``; ``emit`` raising stops it and propagates."""
        import mlx.core as mx
        from mlx_vlm.generate import stream_generate
        from mlx_vlm.prompt_utils import apply_chat_template

        if self.model is None:
            raise BackendError("generate() called before load()")
        if request.image is None and TEXT not in capabilities_of(self.model_type):
            raise BackendError(f"{self.model_type} is vision-only in mlx-vlm: text-only prompts do not apply")
        model, processor = self.model, self.processor
        # stream_generate is annotated for paths, but prepare_inputs takes PIL images as they are.
        images: Any = [request.image] if request.image is not None else None
        kwargs: dict[str, Any] = {"max_tokens": request.max_tokens, "temperature": request.temperature}
        if self.options["prefill_step_size"] is not None:
            kwargs["prefill_step_size"] = self.options["prefill_step_size"]
        prompt: Any = apply_chat_template(processor, model.config, chat_prompt(request), num_images=len(images or ()))
        stream = stream_generate(model, processor, prompt, image=images, **kwargs)
        last: Any = None
        started, first = time.perf_counter(), None
        try:
            # Only the library's steps are translated; whatever emit raises goes out untouched.
            while (result := _next_result(stream)) is not None:
                last = result
                # Each step is one token, its text possibly held back by the detokenizer (tiny moondream2's
                # whole answer came in the last step: TTFT measured on text equalled the total time).
                first = time.perf_counter() if first is None else first
                if result.text:
                    emit(result.text)
                if request.should_stop():
                    break
        except BaseException:
            _close_stream(stream, stopping=True)
            raise
        _close_stream(stream, stopping=False)
        if last is None:
            return GenerationStats(peak_memory_bytes=int(mx.get_peak_memory()), extra={"peak_kind": "mlx-active"})
        return GenerationStats(
            prompt_tokens=int(last.prompt_tokens),
            gen_tokens=int(last.generation_tokens),
            prompt_tps=float(last.prompt_tps),
            gen_tps=float(last.generation_tps),
            # stream_generate reports mx.get_peak_memory() / 1e9; read the byte count itself.
            peak_memory_bytes=int(mx.get_peak_memory()),
            ttft_s=first - started if first is not None else None,
            extra={"peak_kind": "mlx-active"},  # MLX's peak of active (not cached) memory in this window
        )

    # ------------------------------------------------------------------ memory

    def framework_memory(self) -> FrameworkSample | None:
        """MLX's allocator: guarded = active + cache; the device total only where Metal reports one.

        Called from the worker's sampler thread, also while ``load`` runs: it never imports mlx itself
        (``load`` and ``set_memory_limit`` do, on the main thread); until then there is nothing to report.
        """
        return probe_mlx(import_if_missing=False)

    def reset_peak_memory(self) -> None:
        """Start a new peak window (MLX keeps one process-wide peak)."""
        import mlx.core as mx

        mx.reset_peak_memory()

    def cleanup(self) -> None:
        """Collect garbage and give MLX's buffer cache back to the system."""
        import mlx.core as mx

        gc.collect()
        mx.clear_cache()

    def set_memory_limit(self, limit_bytes: int) -> None:
        """``mx.set_memory_limit``: past it MLX reclaims its cache first (a guideline, not a hard cap)."""
        import mlx.core as mx

        mx.set_memory_limit(int(limit_bytes))

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """MLX's allocation failures (``[metal::malloc] …``, ``[malloc] Unable to allocate …``)."""
        return is_mlx_out_of_memory(exc)

    def unload(self) -> None:
        """Drop the model and processor, give back MLX's default device, clear MLX's cache, then restore the
        wired limit the load replaced (also on SIGTERM and a dropped load, which come through here)."""
        self.model = None
        self.processor = None
        if self._replaced_device is not None:
            import mlx.core as mx

            mx.set_default_device(self._replaced_device)
            self._replaced_device = None
        try:
            self.cleanup()
        finally:
            if self._previous_wired_limit is not None:
                import mlx.core as mx

                mx.synchronize()  # nothing in flight may still use the wired buffers (mlx-vlm does the same)
                mx.set_wired_limit(self._previous_wired_limit)
                self._previous_wired_limit = None
