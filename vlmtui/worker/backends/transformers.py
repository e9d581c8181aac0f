"""Hugging Face transformers backend: AutoProcessor + AutoModelForImageTextToText, streamed token by token.

torch and transformers are imported inside the methods, so importing this module stays cheap. Choosing
the device and reading its memory is torch_device.py; finding the model class and explaining a failed
load is hf_loading.py.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from typing import Any

from vlmtui.memory.samples import FrameworkSample
from vlmtui.plugins.builtin import TRANSFORMERS
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
from vlmtui.worker.backends.hf_loading import (
    MODEL_LOADERS,
    chat_inputs,
    configure_images,
    load_error,
    load_model,
    own_processor,
)
from vlmtui.worker.backends.torch_device import TorchDevice, is_torch_out_of_memory
from vlmtui.worker.sources import cached_hub_id, model_dir


def _stats(prompt_tokens: int, gen_tokens: int, started: float, first: float | None, last: float | None,
           peak: int | None, device: str = "cpu") -> GenerationStats:
    """Token counts and rates: prefill ends at the first token, decoding runs from first to last.

    TTFT is the first token's time on the model's clock: TextIteratorStreamer holds text back to a word
    boundary, so the first streamed chunk comes later. ``peak``: CUDA's max allocated, or the MPS driver's
    tracked peak; on cpu none (the worker's sampled RSS stands in).
    """
    prompt_tps = gen_tps = None
    if first is not None and first > started:
        prompt_tps = prompt_tokens / (first - started)
    if first is not None and last is not None and gen_tokens > 1 and last > first:
        gen_tps = (gen_tokens - 1) / (last - first)
    kind = "cuda-allocated" if device.startswith("cuda") else "mps-driver" if device == "mps" else None
    return GenerationStats(prompt_tokens=prompt_tokens, gen_tokens=gen_tokens, prompt_tps=prompt_tps,
                           gen_tps=gen_tps, peak_memory_bytes=peak,
                           ttft_s=first - started if first is not None and first > started else None,
                           extra={"peak_kind": kind} if kind and peak else {})


class TransformersBackend(Backend):
    """One model loaded with transformers on cuda, mps or cpu, streaming through ``TextIteratorStreamer``."""

    declaration = TRANSFORMERS
    supports_history = True
    """The history goes through the processor's chat template (hf_loading.chat_inputs) and is prefilled again
    every turn: ``generate`` keeps no KV cache between cases."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self._model: Any = None
        self._processor: Any = None
        self._tokenizer: Any = None
        self._torch_device: TorchDevice | None = None
        self._dtype: Any = None
        self._saved_threads: int | None = None

    # ------------------------------------------------------------------------------ load

    def load(self) -> LoadInfo:
        """Resolve the model's source, load processor and model on the chosen device and dtype."""
        import torch
        import transformers

        source, is_hub = self._source()
        device = self.device
        dtype_name = self._device().dtype_name(self.options["dtype"])
        self._dtype = getattr(torch, dtype_name)
        where = self.spec.path
        trust = bool(self.spec.trust_remote_code)
        notes: list[str] = []
        if trust:
            notes.append(f"trust_remote_code is on for {where}: code from the model repo runs in the worker")
        # trust_remote_code must always be passed as a bool: left as None, transformers 5 asks
        # "Do you wish to run the custom code? [y/N]" on stdin, which is the worker's command pipe.
        hub_kwargs: dict[str, Any] = {"trust_remote_code": trust}
        if is_hub and self.spec.source.revision:
            hub_kwargs["revision"] = self.spec.source.revision
        remote_code = False
        try:
            config = transformers.AutoConfig.from_pretrained(source, **hub_kwargs)
            remote_code = trust and bool(getattr(config, "auto_map", None))
            auto_processor: Any = transformers.AutoProcessor  # from_pretrained is untyped in 5.24
            processor = auto_processor.from_pretrained(source, **hub_kwargs)
            processor = own_processor(transformers, processor, source, hub_kwargs)
            model, loader = load_model(transformers, source, config, self._dtype, hub_kwargs, where)
            model.to(device)
            model.eval()
        except BackendError:
            raise
        except Exception as exc:
            if self.is_out_of_memory(exc):
                raise OutOfMemoryError(f"out of memory loading {where} on {device}: {first_line(exc)}") from exc
            raise load_error(exc, where, trust, remote_code, transformers.__version__) from exc
        if loader != MODEL_LOADERS[0]:
            notes.append(f"{config.model_type} loaded with {loader} "
                         f"(AutoModelForImageTextToText does not map it)")
        self._model, self._processor = model, processor
        self._tokenizer = getattr(processor, "tokenizer", None) or processor
        notes.extend(configure_images(processor, self.options["image_splitting"], self.spec.max_image_size,
                                      str(config.model_type), where))
        if self.spec.source.is_tiny and device == "cpu":
            # A tiny model's ops take microseconds: intra-op threads only add OpenMP sync, and on a busy
            # machine their spin-waits stall it (measured 3-10x slower with 2 threads than 1 on 2 cores).
            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(1)
        return LoadInfo(
            device=device,
            dtype=dtype_name,
            versions={"torch": torch.__version__, "transformers": transformers.__version__},
            notes=notes,
            model_type=str(config.model_type).lower(),
        )

    def _source(self) -> tuple[str, bool]:
        """The directory or hub id to load from, and whether it is a hub id."""
        source = self.spec.source
        if source.is_hub:
            return cached_hub_id(source), True
        return str(model_dir(source, self.name)), False

    # ------------------------------------------------------------------------------ generate

    def generate(self, request: GenerationRequest, emit: Callable[[str], None]) -> GenerationStats:
        """Stream one answer: generate in a thread, emit chunks here, stop that thread if ``emit`` raises."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        if self._model is None:
            raise BackendError("generate called before load")
        model = self._model
        inputs = chat_inputs(self._processor, request, self.spec.path, self.spec.max_image_size,
                             self.device, self._dtype)
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
        return _stats(prompt_tokens, clock.count, started, clock.first, clock.last, self._peak_bytes(),
                      self._device().name)

    # ------------------------------------------------------------------------------ memory

    def _device(self) -> TorchDevice:
        """The spec's device, chosen on first use (this imports torch)."""
        if self._torch_device is None:
            self._torch_device = TorchDevice.choose(self.options["device"])
        return self._torch_device

    @property
    def device(self) -> str:
        """The spec's device, or the best available one: cuda, then mps, then cpu."""
        return self._device().name

    def _track_mps_peak(self) -> None:
        if self._torch_device is not None:
            self._torch_device.track_mps_peak()

    def _peak_bytes(self) -> int | None:
        return self._device().peak_bytes()

    def framework_memory(self) -> FrameworkSample | None:
        """torch's view of device memory on cuda or mps; ``None`` on cpu (the worker samples RSS instead).

        The worker's sampler thread calls this while ``load`` runs on the main thread too, so it never
        chooses the device itself (that imports torch and may raise): until then there is nothing to say.
        """
        device = self._torch_device
        return device.memory() if device is not None else None

    def reset_peak_memory(self) -> None:
        """Start a new peak window: CUDA's counter, or the tracked MPS peak."""
        self._device().reset_peak()

    def cleanup(self) -> None:
        """Collect garbage and return the allocator's cached blocks to the device."""
        gc.collect()
        self._empty_cache()

    def set_memory_limit(self, limit_bytes: int) -> None:
        """Cap torch's allocator so going over raises ``OutOfMemoryError``; the cpu allocator has no cap."""
        self._device().set_memory_limit(limit_bytes)

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """torch's catchable OOM: CUDA, MPS, or the CPU allocator refusing a size (a RuntimeError)."""
        return super().is_out_of_memory(exc) or is_torch_out_of_memory(exc)

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
        if self._torch_device is not None:
            self._torch_device.empty_cache()
