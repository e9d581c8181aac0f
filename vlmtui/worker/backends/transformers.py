"""Hugging Face transformers backend: AutoProcessor + AutoModelForImageTextToText, streamed token by token.

torch and transformers are imported inside the methods, so importing this module stays cheap and the
engine can name the class without pulling a framework into the parent process.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from vlmtui.memory.samples import FrameworkSample
from vlmtui.wire.spec import ModelSpec
from vlmtui.worker.backends.base import (
    Backend,
    BackendError,
    GenerationRequest,
    GenerationStats,
    LoadInfo,
    OutOfMemoryError,
    first_line,
    one_line,
)
from vlmtui.worker.frameworks import probe_torch

DTYPES = {
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float32": "float32", "fp32": "float32", "float": "float32",
}
"""Accepted ``dtype`` values of a suite and the torch dtype each one names."""

FAMILY_CLASSES = {
    "idefics3": "Idefics3ForConditionalGeneration",
    "smolvlm": "SmolVLMForConditionalGeneration",
    "llava": "LlavaForConditionalGeneration",
    "llava_next": "LlavaNextForConditionalGeneration",
    "mllama": "MllamaForConditionalGeneration",
    "paligemma": "PaliGemmaForConditionalGeneration",
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
}
"""Concrete classes tried by ``config.model_type`` when no auto class maps a config."""

MODEL_LOADERS = ("AutoModelForImageTextToText", "AutoModelForVision2Seq", None, "AutoModelForCausalLM")
"""Load order; ``None`` is the family class. AutoModelForVision2Seq is gone in transformers 5."""


def _offline() -> bool:
    """Whether the Hugging Face hub must not be contacted (env read now, not at hub import time)."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    if any(flag.strip().upper() in {"1", "ON", "YES", "TRUE"} for flag in flags):
        return True
    import huggingface_hub

    return bool(huggingface_hub.is_offline_mode())


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _raised_in_remote_code(exc: BaseException) -> bool:
    """Whether ``exc`` (or a cause) came from a repo's own code or from transformers importing it."""
    for link in _chain(exc):
        tb: TracebackType | None = link.__traceback__
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            # transformers copies a repo's code into HF_MODULES_CACHE/transformers_modules and imports it
            # through dynamic_module_utils (whose check_imports raises for missing packages).
            if "transformers_modules" in filename or filename.endswith("dynamic_module_utils.py"):
                return True
            tb = tb.tb_next
    return False


def _own_processor(transformers: Any, processor: Any, source: str, hub_kwargs: dict[str, Any]) -> Any:
    """transformers' own processor class where AutoProcessor returned a foreign one of the same name."""
    cls = type(processor)
    if cls.__module__.startswith(("transformers.", "transformers_modules.")):
        return processor
    # mlx-vlm (0.7) patches AutoProcessor.from_pretrained process-wide once its idefics3/llava_next
    # modules are imported (install_auto_processor_patch); its processors carry no chat template and
    # return MLX arrays. A worker that ran an mlx-vlm model first would hand those to torch.
    own = getattr(transformers, cls.__name__, None)
    return own.from_pretrained(source, **hub_kwargs) if own is not None else processor


class TransformersBackend(Backend):
    """One model loaded with transformers on cuda, mps or cpu, streaming through ``TextIteratorStreamer``."""

    name: ClassVar[str] = "transformers"
    supports_memory_limit: ClassVar[bool] = True

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self._model: Any = None
        self._processor: Any = None
        self._tokenizer: Any = None
        self._device: str | None = None
        self._dtype: Any = None
        self._mps_peak = 0
        self._saved_threads: int | None = None

    # ------------------------------------------------------------------------------ load

    def load(self) -> LoadInfo:
        """Resolve the model's path, load processor and model on the chosen device and dtype."""
        import torch
        import transformers

        source, is_hub = self._source()
        device = self.device
        dtype_name = self._dtype_name(torch, device)
        self._dtype = getattr(torch, dtype_name)
        trust = bool(self.spec.trust_remote_code)
        notes: list[str] = []
        if trust:
            notes.append(f"trust_remote_code is on for {self.spec.path}: "
                         f"code from the model repo runs in the worker")
        # trust_remote_code must always be passed as a bool: left as None, transformers 5 asks
        # "Do you wish to run the custom code? [y/N]" on stdin, which is the worker's command pipe.
        hub_kwargs: dict[str, Any] = {"trust_remote_code": trust}
        if is_hub and self.spec.revision:
            hub_kwargs["revision"] = self.spec.revision
        remote_code = False
        try:
            config = transformers.AutoConfig.from_pretrained(source, **hub_kwargs)
            remote_code = trust and bool(getattr(config, "auto_map", None))
            auto_processor: Any = transformers.AutoProcessor  # from_pretrained is untyped in 5.24
            processor = auto_processor.from_pretrained(source, **hub_kwargs)
            processor = _own_processor(transformers, processor, source, hub_kwargs)
            model, loader = self._load_model(transformers, source, config, hub_kwargs)
            model.to(device)
            model.eval()
        except BackendError:
            raise
        except Exception as exc:
            if self.is_out_of_memory(exc):
                raise OutOfMemoryError(f"out of memory loading {self.spec.path} on {device}: "
                                       f"{first_line(exc)}") from exc
            raise self._load_error(exc, trust, remote_code, transformers.__version__) from exc
        if loader != MODEL_LOADERS[0]:
            notes.append(f"{config.model_type} loaded with {loader} "
                         f"(AutoModelForImageTextToText does not map it)")
        self._model, self._processor = model, processor
        self._tokenizer = getattr(processor, "tokenizer", None) or processor
        notes.extend(self._configure_images(str(config.model_type)))
        if self.spec.path.startswith("tiny:") and device == "cpu":
            # A tiny model's ops take microseconds: intra-op threads only add OpenMP sync, and on a busy
            # machine their spin-waits stall it (measured 3-10x slower with 2 threads than 1 on 2 cores).
            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(1)
        return LoadInfo(
            device=device,
            dtype=dtype_name,
            versions={"torch": torch.__version__, "transformers": transformers.__version__},
            notes=notes,
        )

    def _source(self) -> tuple[str, bool]:
        """The directory or hub id to load from, and whether it is a hub id."""
        path = self.spec.path
        if path.startswith("tiny:"):
            from vlmtui.worker.demo.tiny import TinyModelError, tiny_model_dir

            try:
                return str(tiny_model_dir(path, self.name)), False
            except TinyModelError as exc:
                raise BackendError(str(exc)) from None
        local = Path(path).expanduser()
        if local.is_dir():
            return str(local), False
        if local.exists():
            raise BackendError(f"model path is not a directory: {path}")
        parts = path.split("/")
        looks_local = path.startswith((".", "/", "~")) or len(parts) != 2 or not all(parts)
        if looks_local:
            raise BackendError(f"model path not found: {path}")
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(path, "config.json", revision=self.spec.revision)
        except ValueError:  # huggingface_hub's HFValidationError: not a valid repo id either
            raise BackendError(f"model path not found: {path}") from None
        if not isinstance(cached, str) and _offline():
            raise BackendError(f"{path} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
                               f"download it once with network")
        return path, True

    def _load_model(
        self, transformers: Any, source: str, config: Any, hub_kwargs: dict[str, Any]
    ) -> tuple[Any, str]:
        """The model from the first of ``MODEL_LOADERS`` that maps ``config``, and that loader's name."""
        tried: list[str] = []
        for name in MODEL_LOADERS:
            name = name or FAMILY_CLASSES.get(str(config.model_type))
            loader = getattr(transformers, name, None) if name else None
            if loader is None or name in tried:
                continue
            tried.append(str(name))
            try:
                model = loader.from_pretrained(source, config=config, dtype=self._dtype, **hub_kwargs)
            except ValueError as exc:
                if "Unrecognized configuration class" in str(exc):
                    continue
                raise
            return model, str(name)
        raise BackendError(f"{self.spec.path}: transformers {transformers.__version__} has no model class "
                           f"for model_type {config.model_type!r} (tried {', '.join(tried)})")

    def _load_error(self, exc: Exception, trust: bool, remote_code: bool, version: str) -> BackendError:
        """The one-line ``BackendError`` for a failed load, with a hint where there is one."""
        path = self.spec.path
        if trust and (remote_code or _raised_in_remote_code(exc)):
            verb = "import" if any(isinstance(e, ImportError) for e in _chain(exc)) else "load"
            return BackendError(
                f"remote code of {path} failed to {verb} ({one_line(exc)}); use backend = \"mlx-vlm\" "
                f"or pin revision = \"…\" to a release that supports transformers {version}"
            )
        if not trust and isinstance(exc, ValueError) and "trust_remote_code" in str(exc):
            return BackendError(f"{path} needs code from its repo: set trust_remote_code = true for it "
                                f"in the suite if you trust that code")
        return BackendError(f"could not load {path}: {one_line(exc)}")

    def _configure_images(self, model_type: str) -> list[str]:
        """Apply the spec's image splitting and max image size to the image processor; notes if ignored."""
        notes: list[str] = []
        image_processor = getattr(self._processor, "image_processor", None)
        if image_processor is None:
            return [f"{self.spec.path} has no image processor: only text-only prompts can run"]
        if self.spec.image_splitting is not None:
            if hasattr(image_processor, "do_image_splitting"):
                image_processor.do_image_splitting = self.spec.image_splitting
            else:
                notes.append(f"image_splitting is ignored: {model_type} does not split images")
        limit = self.spec.max_image_size
        size = getattr(image_processor, "size", None)
        longest = size.get("longest_edge") if isinstance(size, dict) else getattr(size, "longest_edge", None)
        if limit and longest and limit < longest:
            # SmolVLM/Idefics3: resize to this edge before tiling, so it bounds the number of image tiles.
            image_processor.size = {"longest_edge": limit}
        return notes

    # ------------------------------------------------------------------------------ generate

    def generate(self, request: GenerationRequest, emit: Callable[[str], None]) -> GenerationStats:
        """Stream one answer: generate in a thread, emit chunks here, stop that thread if ``emit`` raises."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        if self._model is None:
            raise BackendError("generate called before load")
        model = self._model
        inputs = self._inputs(request)
        prompt_tokens = int(inputs["input_ids"].shape[-1])
        stop = threading.Event()
        backend = self

        class TokenClock(StoppingCriteria):
            """Called after every new token: counts and times it, and stops generation on request."""

            def __init__(self) -> None:
                self.count = 0
                self.first: float | None = None
                self.last: float | None = None

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                self.last = time.perf_counter()
                if self.first is None:
                    self.first = self.last
                self.count = int(input_ids.shape[-1]) - prompt_tokens
                backend._track_mps_peak()
                halt = stop.is_set() or request.should_stop()
                return torch.full((input_ids.shape[0],), halt, dtype=torch.bool, device=input_ids.device)

        clock = TokenClock()
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs: dict[str, Any] = {
            "max_new_tokens": request.max_tokens,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([clock]),
            "do_sample": request.temperature > 0,
        }
        if request.temperature > 0:
            kwargs["temperature"] = request.temperature
        if model.generation_config.pad_token_id is None:
            pad = self._tokenizer.pad_token_id
            kwargs["pad_token_id"] = pad if pad is not None else self._tokenizer.eos_token_id
        failure: list[BaseException] = []

        threads = torch.get_num_threads()

        def run() -> None:
            # OpenMP's thread count is per thread: a new thread starts at the machine default, so the
            # generating thread must be told again (else a 1-thread setting is silently 2+ threads here).
            torch.set_num_threads(threads)
            try:
                with torch.inference_mode():
                    model.generate(**inputs, **kwargs)
            except BaseException as exc:
                failure.append(exc)
                streamer.text_queue.put(streamer.stop_signal)  # generate never reached streamer.end()

        thread = threading.Thread(target=run, name=f"generate-{request.case_id}", daemon=True)
        started = time.perf_counter()
        thread.start()
        try:
            for chunk in streamer:
                if chunk:
                    emit(chunk)
        except BaseException:
            stop.set()
            thread.join()
            raise
        thread.join()
        if failure:
            error = failure[0]
            if self.is_out_of_memory(error) and not isinstance(error, OutOfMemoryError):
                raise OutOfMemoryError(
                    f"out of memory generating on {self.device}: {first_line(error)}"
                ) from error
            raise error
        return self._stats(prompt_tokens, clock.count, started, clock.first, clock.last)

    def _inputs(self, request: GenerationRequest) -> Any:
        """The processor's tensors for the chat-formatted prompt (and image), on the model's device/dtype."""
        processor = self._processor
        image = request.image
        if image is not None:
            if getattr(processor, "image_processor", None) is None:
                raise BackendError(f"{self.spec.path} has no image processor, so it cannot take an image")
            limit = self.spec.max_image_size
            if limit and max(image.size) > limit:
                from PIL import Image

                image = image.copy()
                image.thumbnail((limit, limit), Image.Resampling.LANCZOS)
        content: list[dict[str, str]] = [{"type": "image"}] if image is not None else []
        content.append({"type": "text", "text": request.prompt})
        messages = [{"role": "user", "content": content}]
        try:
            text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except ValueError as exc:
            if "chat template" not in str(exc).lower():
                raise
            raise BackendError(f"{self.spec.path} has no chat template; it is probably a base model, "
                               f"not an instruction-tuned one") from None
        if image is not None:
            inputs = processor(text=text, images=[image], return_tensors="pt")
        else:
            inputs = processor(text=text, return_tensors="pt")
        from transformers import BatchFeature

        if isinstance(inputs, BatchFeature):  # a processor's output: cast pixel values to the model's dtype
            return inputs.to(self.device, dtype=self._dtype)
        return inputs.to(self.device)  # a bare tokenizer's BatchEncoding takes no dtype

    def _stats(
        self, prompt_tokens: int, gen_tokens: int, started: float, first: float | None, last: float | None
    ) -> GenerationStats:
        """Token counts and rates: prefill ends at the first token, decoding runs from first to last."""
        prompt_tps = gen_tps = None
        if first is not None and first > started:
            prompt_tps = prompt_tokens / (first - started)
        if first is not None and last is not None and gen_tokens > 1 and last > first:
            gen_tps = (gen_tokens - 1) / (last - first)
        return GenerationStats(
            prompt_tokens=prompt_tokens,
            gen_tokens=gen_tokens,
            prompt_tps=prompt_tps,
            gen_tps=gen_tps,
            peak_memory_bytes=self._peak_bytes(),
        )

    # ------------------------------------------------------------------------------ memory

    @property
    def device(self) -> str:
        """The spec's device, or the best available one: cuda, then mps, then cpu."""
        if self._device is None:
            import torch

            want = self.spec.device.strip().lower()
            if want in ("", "auto"):
                mps = getattr(torch.backends, "mps", None)
                if torch.cuda.is_available():
                    want = "cuda"
                elif mps is not None and mps.is_available():
                    want = "mps"
                else:
                    want = "cpu"
            elif want.startswith("cuda") and not torch.cuda.is_available():
                raise BackendError(
                    f"device = \"{self.spec.device}\" but torch {torch.__version__} sees no CUDA device"
                )
            elif want == "mps" and not torch.backends.mps.is_available():
                raise BackendError(f"device = \"mps\" but torch {torch.__version__} has no MPS device here")
            self._device = want
        return self._device

    def _dtype_name(self, torch: Any, device: str) -> str:
        """The spec's dtype, or bf16/fp16 on cuda, fp16 on mps and fp32 on cpu."""
        want = self.spec.dtype.strip().lower()
        if want not in ("", "auto"):
            if want not in DTYPES:
                raise BackendError(
                    f"dtype = \"{self.spec.dtype}\" is not one of auto, float16, bfloat16, float32"
                )
            return DTYPES[want]
        if device.startswith("cuda"):
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "float16" if device == "mps" else "float32"

    def _track_mps_peak(self) -> None:
        """Raise the tracked MPS peak to the driver's current allocation (MPS keeps no peak itself)."""
        if self._device == "mps":
            import torch

            self._mps_peak = max(self._mps_peak, int(torch.mps.driver_allocated_memory()))

    def _peak_bytes(self) -> int | None:
        """The peak of the current window: CUDA's own counter, the MPS peak tracked here, nothing on CPU."""
        import torch

        if self.device.startswith("cuda"):
            return int(torch.cuda.max_memory_allocated(self.device))
        if self.device == "mps":
            self._track_mps_peak()
            return self._mps_peak
        return None

    def framework_memory(self) -> FrameworkSample | None:
        """torch's view of device memory on cuda or mps; ``None`` on cpu (the worker samples RSS instead).

        The worker's sampler thread calls this while ``load`` runs on the main thread too, so it never
        resolves the device itself (that imports torch and may raise) and, on CUDA, answers ``None``
        until torch has initialised CUDA: a probe must not create a context the model did not.
        """
        device = self._device
        if device is None:
            return None
        if device.startswith("cuda"):
            import torch

            return probe_torch(cuda_index=torch.device(device).index)  # None until torch has set CUDA up
        if device == "mps":
            import torch

            driver = int(torch.mps.driver_allocated_memory())
            current = int(torch.mps.current_allocated_memory())
            self._mps_peak = max(self._mps_peak, driver)
            return FrameworkSample(
                framework="torch-mps",
                device=device,
                guarded_bytes=driver,
                active_bytes=current,
                cache_bytes=max(0, driver - current),
                peak_bytes=self._mps_peak,
                limit_bytes=int(torch.mps.recommended_max_memory()),
            )
        return None

    def reset_peak_memory(self) -> None:
        """Start a new peak window: CUDA's counter, or the tracked MPS peak."""
        device = self.device
        if device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats(device)
        elif device == "mps":
            import torch

            self._mps_peak = int(torch.mps.driver_allocated_memory())

    def cleanup(self) -> None:
        """Collect garbage and return the allocator's cached blocks to the device."""
        gc.collect()
        self._empty_cache()

    def set_memory_limit(self, limit_bytes: int) -> None:
        """Cap torch's allocator so going over raises ``OutOfMemoryError``; the cpu allocator has no cap."""
        device = self.device
        if device.startswith("cuda"):
            import torch

            # torch wants an index here, not the bare "cuda" device name (torch 2.11, seen on an H100).
            index = torch.device(device).index
            index = torch.cuda.current_device() if index is None else index
            _, total = torch.cuda.mem_get_info(index)
            torch.cuda.set_per_process_memory_fraction(min(1.0, max(0.0, limit_bytes / total)), index)
        elif device == "mps":
            import torch

            # The fraction is of the recommended maximum; torch accepts 0 to 2 (2 lifts it to all of RAM).
            fraction = limit_bytes / int(torch.mps.recommended_max_memory())
            torch.mps.set_per_process_memory_fraction(min(2.0, max(0.0, fraction)))

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """torch's catchable OOM: CUDA, MPS, or the CPU allocator refusing a size (a RuntimeError)."""
        if super().is_out_of_memory(exc):
            return True
        torch = sys.modules.get("torch")
        if torch is not None:
            oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
            if isinstance(exc, oom):
                return True
        message = str(exc).lower()
        said = "out of memory" in message or "can't allocate memory" in message
        return isinstance(exc, RuntimeError) and said

    def unload(self) -> None:
        """Drop model and processor, collect garbage and empty the device cache."""
        self._model = self._processor = self._tokenizer = None
        if self._saved_threads is not None:
            import torch

            torch.set_num_threads(self._saved_threads)
            self._saved_threads = None
        gc.collect()
        self._empty_cache()

    def _empty_cache(self) -> None:
        """Return cached allocator blocks on cuda or mps (nothing to do on cpu)."""
        if self._device is None:
            return
        import torch

        if self._device.startswith("cuda"):
            torch.cuda.empty_cache()
        elif self._device == "mps":
            torch.mps.empty_cache()
