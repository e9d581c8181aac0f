"""The torch device a transformers model runs on: choosing it, its dtype, and its memory (cuda, mps, cpu).

torch is imported inside the methods: the worker's sampler thread may ask for memory before a model has
made torch initialise anything, and a probe must not be the one that does.
"""

from __future__ import annotations

import sys

from vlmtui.memory.samples import FrameworkSample
from vlmtui.worker.backends.base import BackendError
from vlmtui.worker.frameworks import probe_torch

DTYPES = {
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float32": "float32", "fp32": "float32", "float": "float32",
}
"""Accepted ``dtype`` values of a suite and the torch dtype each one names."""


def is_torch_out_of_memory(exc: BaseException) -> bool:
    """torch's catchable OOM: CUDA, MPS, or the CPU allocator refusing a size (a RuntimeError)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
        if isinstance(exc, oom):
            return True
    message = str(exc).lower()
    said = "out of memory" in message or "can't allocate memory" in message
    return isinstance(exc, RuntimeError) and said


class TorchDevice:
    """One torch device (``cuda``, ``cuda:1``, ``mps`` or ``cpu``) and the peak-memory window on it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._mps_peak = 0

    @classmethod
    def choose(cls, wanted: str) -> TorchDevice:
        """The device a suite asks for, or the best available one for ``auto``: cuda, then mps, then cpu."""
        import torch

        want = wanted.strip().lower()
        if want in ("", "auto"):
            mps = getattr(torch.backends, "mps", None)
            if torch.cuda.is_available():
                want = "cuda"
            elif mps is not None and mps.is_available():
                want = "mps"
            else:
                want = "cpu"
        elif want.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(f"device = \"{wanted}\" but torch {torch.__version__} sees no CUDA device")
        elif want == "mps" and not torch.backends.mps.is_available():
            raise BackendError(f"device = \"mps\" but torch {torch.__version__} has no MPS device here")
        return cls(want)

    @property
    def is_cuda(self) -> bool:
        """Whether this is a CUDA device."""
        return self.name.startswith("cuda")

    def dtype_name(self, wanted: str) -> str:
        """The suite's dtype, or for ``auto``: bf16 (else fp16) on cuda, fp16 on mps, fp32 on cpu."""
        import torch

        want = wanted.strip().lower()
        if want not in ("", "auto"):
            if want not in DTYPES:
                raise BackendError(f"dtype = \"{wanted}\" is not one of auto, float16, bfloat16, float32")
            return DTYPES[want]
        if self.is_cuda:
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "float16" if self.name == "mps" else "float32"

    def track_mps_peak(self) -> None:
        """Raise the tracked MPS peak to the driver's current allocation (MPS keeps no peak itself)."""
        if self.name == "mps":
            import torch

            self._mps_peak = max(self._mps_peak, int(torch.mps.driver_allocated_memory()))

    def peak_bytes(self) -> int | None:
        """The peak of the current window: CUDA's own counter, the MPS peak tracked here, nothing on CPU."""
        import torch

        if self.is_cuda:
            return int(torch.cuda.max_memory_allocated(self.name))
        if self.name == "mps":
            self.track_mps_peak()
            return self._mps_peak
        return None

    def reset_peak(self) -> None:
        """Start a new peak window: CUDA's counter, or the tracked MPS peak."""
        if self.is_cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(self.name)
        elif self.name == "mps":
            import torch

            self._mps_peak = int(torch.mps.driver_allocated_memory())

    def memory(self) -> FrameworkSample | None:
        """torch's view of device memory on cuda or mps; ``None`` on cpu (the worker samples RSS instead).

        On CUDA it answers ``None`` until torch has initialised CUDA: a probe must not create a context
        the model did not.
        """
        if self.is_cuda:
            import torch

            return probe_torch(cuda_index=torch.device(self.name).index)
        if self.name == "mps":
            import torch

            driver = int(torch.mps.driver_allocated_memory())
            current = int(torch.mps.current_allocated_memory())
            self._mps_peak = max(self._mps_peak, driver)
            return FrameworkSample(
                framework="torch-mps",
                device=self.name,
                guarded_bytes=driver,
                active_bytes=current,
                cache_bytes=max(0, driver - current),
                peak_bytes=self._mps_peak,
                limit_bytes=int(torch.mps.recommended_max_memory()),
            )
        return None

    def set_memory_limit(self, limit_bytes: int) -> None:
        """Cap torch's allocator so going over raises ``OutOfMemoryError``; the cpu allocator has no cap."""
        if self.is_cuda:
            import torch

            # torch wants an index here, not the bare "cuda" device name (torch 2.11, seen on an H100).
            index = torch.device(self.name).index
            index = torch.cuda.current_device() if index is None else index
            _, total = torch.cuda.mem_get_info(index)
            torch.cuda.set_per_process_memory_fraction(min(1.0, max(0.0, limit_bytes / total)), index)
        elif self.name == "mps":
            import torch

            # The fraction is of the recommended maximum; torch accepts 0 to 2 (2 lifts it to all of RAM).
            fraction = limit_bytes / int(torch.mps.recommended_max_memory())
            torch.mps.set_per_process_memory_fraction(min(2.0, max(0.0, fraction)))

    def empty_cache(self) -> None:
        """Return cached allocator blocks on cuda or mps (nothing to do on cpu)."""
        import torch

        if self.is_cuda:
            torch.cuda.empty_cache()
        elif self.name == "mps":
            torch.mps.empty_cache()

