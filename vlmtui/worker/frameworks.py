"""Memory as the model's framework sees it (MLX, torch MPS/CUDA, NVML), probed inside the worker.

Worker side. torch and mlx are imported inside the functions, and only when the worker has imported
them already or the caller asks (``import_if_missing=True``, e.g. ``vlmtui doctor``), so probing never
pays a framework import nor, on CUDA, creates a context the model did not. Any failure of a framework
call is "not available" (``None``): a probe must never take the worker down.

Cost per call, measured: ``probe_mlx`` ≈ 6 µs (mlx 0.32 on CPU, dev box); ``probe_torch`` on CUDA
≈ 170 µs and ``probe_nvml`` ≈ 13 µs (torch 2.11+cu130, one H200).
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from types import ModuleType
from typing import Any

from vlmtui.memory.samples import FrameworkSample

_nvml_ready = False


def _module(name: str, import_if_missing: bool) -> ModuleType | None:
    """The module if it is already imported, or imported now when asked; ``None`` when it is not installed."""
    mod = sys.modules.get(name)
    if mod is not None or not import_if_missing:
        return mod
    try:
        return importlib.import_module(name)
    except Exception:  # ImportError, or a broken install raising anything at import time
        return None


def _mlx_device_info(mx: Any) -> dict[str, Any]:
    """``mx.device_info()``; mlx 0.29 had only ``mx.metal.device_info()`` (recorded on an M1, mlx 0.29.3)."""
    fn = getattr(mx, "device_info", None)
    if fn is None:
        metal = getattr(mx, "metal", None)
        fn = getattr(metal, "device_info", None)
    if fn is None:
        return {}
    return dict(fn())


def _mlx_backend(mx: Any) -> str:
    """Where MLX computes by default: ``metal``, ``cuda`` or ``cpu``."""
    if mx.default_device().type != mx.gpu:  # mx.gpu is the DeviceType, not a Device
        return "cpu"
    if getattr(mx, "metal", None) is not None and mx.metal.is_available():
        return "metal"
    if getattr(mx, "cuda", None) is not None and mx.cuda.is_available():
        return "cuda"
    return "gpu"


def probe_mlx(*, import_if_missing: bool = False) -> FrameworkSample | None:
    """MLX's allocator now: guarded = active + cache; ``None`` when mlx is not loaded (or not installed).

    The limit is ``mx.get_memory_limit()``; the device total is Metal's recommended working set
    (``max_recommended_working_set_size``), present only on Metal — on CPU ``device_info()`` has no size.
    """
    mx = _module("mlx.core", import_if_missing)
    if mx is None:
        return None
    try:
        active = int(mx.get_active_memory())
        cache = int(mx.get_cache_memory())
        peak = int(mx.get_peak_memory())
        limit = int(mx.get_memory_limit()) if hasattr(mx, "get_memory_limit") else None
        info = _mlx_device_info(mx)
        backend = _mlx_backend(mx)
    except Exception:
        return None
    total = info.get("max_recommended_working_set_size")
    return FrameworkSample(
        framework="mlx",
        device=backend,
        guarded_bytes=active + cache,
        active_bytes=active,
        cache_bytes=cache,
        peak_bytes=peak,
        limit_bytes=limit,
        device_total_bytes=int(total) if isinstance(total, int) and total > 0 else None,
    )


CUDA_INFO_EVERY_S = 1.0
"""How often the probe asks the driver for free/total device memory (``cudaMemGetInfo``)."""
_cuda_info: dict[int, tuple[float, int, int]] = {}


def _cuda_free_total(torch: Any, index: int) -> tuple[int, int]:
    """The driver's free and total bytes for one device, asked at most once per ``CUDA_INFO_EVERY_S``.

    ``cudaMemGetInfo`` cost ~1 ms (p90 1.4 ms) while a model generated on a virtualised H200, against
    ~75 µs for the allocator's own statistics, and a sampler thread holding the GIL that long slows a
    host-bound decode loop (`bench/gpu_diag.py ab`). Free and total are context for the log; the guard reads
    the allocator's reserved bytes, which are fresh on every sample.
    """
    now = time.monotonic()
    cached = _cuda_info.get(index)
    if cached is None or now - cached[0] >= CUDA_INFO_EVERY_S:
        free, total = (int(v) for v in torch.cuda.mem_get_info(index))
        cached = _cuda_info[index] = (now, free, total)
    return cached[1], cached[2]


def probe_torch(*, import_if_missing: bool = False, cuda_index: int | None = None) -> FrameworkSample | None:
    """torch's allocator on CUDA (guarded = reserved) or MPS (guarded = driver-allocated); ``None`` on CPU.

    CUDA is probed only once torch has initialised it, and the driver's free/total
    (``mem_get_info``) only once the allocator holds memory: before that there may be no CUDA context,
    and a probe that created one would itself cost about 500 MiB of device memory (seen on an H200).
    ``cuda_index`` picks the device (default: torch's current one).
    """
    torch = _module("torch", import_if_missing)
    if torch is None:
        return None
    try:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            index = int(torch.cuda.current_device()) if cuda_index is None else cuda_index
            # One memory_stats() call (~75 µs on an H200) instead of memory_allocated/_reserved/
            # max_memory_allocated, which each build the same dict; the keys are the ones they read.
            stats = torch.cuda.memory_stats(index)
            allocated = int(stats.get("allocated_bytes.all.current", 0))
            reserved = int(stats.get("reserved_bytes.all.current", 0))
            free: int | None = None
            total: int | None = None
            if reserved > 0:
                free, total = _cuda_free_total(torch, index)
            return FrameworkSample(
                framework="torch-cuda",
                device=f"cuda:{index}",
                guarded_bytes=reserved,
                active_bytes=allocated,
                cache_bytes=reserved - allocated,
                peak_bytes=int(stats.get("allocated_bytes.all.peak", 0)),
                device_total_bytes=total,
                device_free_bytes=free,
            )
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            current = int(torch.mps.current_allocated_memory())
            driver = int(torch.mps.driver_allocated_memory())
            recommended = getattr(torch.mps, "recommended_max_memory", None)  # torch ≥ 2.5
            return FrameworkSample(
                framework="torch-mps",
                device="mps",
                guarded_bytes=driver,
                active_bytes=current,
                cache_bytes=max(driver - current, 0),
                limit_bytes=int(recommended()) if recommended is not None else None,
            )
    except Exception:
        return None
    return None


def probe_nvml() -> dict[str, Any] | None:
    """Every NVIDIA GPU's memory as the driver sees it (all processes); ``None`` without pynvml or a GPU.

    ``{"driver": str, "devices": [{"index", "name", "total_bytes", "used_bytes", "free_bytes"}]}``.
    NVML is initialised once per process (nvmlInit costs milliseconds) and never shut down.
    """
    global _nvml_ready
    try:
        import pynvml
    except Exception:
        return None
    try:
        if not _nvml_ready:
            pynvml.nvmlInit()
            _nvml_ready = True
        driver = pynvml.nvmlSystemGetDriverVersion()
        devices = []
        for index in range(int(pynvml.nvmlDeviceGetCount())):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            devices.append({
                "index": index,
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "total_bytes": int(mem.total),
                "used_bytes": int(mem.used),
                "free_bytes": int(mem.free),
            })
    except Exception:
        return None
    return {"driver": driver.decode() if isinstance(driver, bytes) else str(driver), "devices": devices}


def device_info(*, import_if_missing: bool = True) -> dict[str, Any]:
    """What accelerators this process can use, with their memory totals, for ``vlmtui doctor`` and the budget.

    Always has ``platform``, ``machine``, ``apple_silicon`` and ``cpu``; adds ``metal`` (from MLX),
    ``mps`` and ``cuda`` (from torch) only where they are available. Works with neither torch nor mlx
    installed. Keys the budget reads: ``metal.max_recommended_working_set_size``,
    ``mps.recommended_max_memory``, ``cuda[i].total_memory``.
    """
    info: dict[str, Any] = {
        "platform": sys.platform,
        "machine": platform.machine(),
        "apple_silicon": sys.platform == "darwin" and platform.machine() == "arm64",
        "cpu": {"count": os.cpu_count()},
    }
    mx = _module("mlx.core", import_if_missing)
    if mx is not None:
        try:
            mlx_info = _mlx_device_info(mx)
            backend = _mlx_backend(mx)
            info["mlx"] = {"backend": backend, **mlx_info}
            if backend == "metal":
                keys = ("device_name", "architecture", "memory_size", "max_recommended_working_set_size")
                info["metal"] = {k: mlx_info.get(k) for k in keys}
        except Exception:
            pass
    torch = _module("torch", import_if_missing)
    if torch is not None:
        try:
            mps = getattr(torch.backends, "mps", None)
            if mps is not None and mps.is_available():
                recommended = getattr(torch.mps, "recommended_max_memory", None)
                info["mps"] = {"recommended_max_memory": int(recommended()) if recommended else None}
            if torch.cuda.is_available():
                info["cuda"] = [
                    {
                        "index": i,
                        "name": props.name,
                        "total_memory": int(props.total_memory),
                    }
                    for i in range(torch.cuda.device_count())
                    if (props := torch.cuda.get_device_properties(i)) is not None
                ]
        except Exception:
            pass
    return info
