"""Budget resolution and thresholds, over device summaries recorded on real machines.

The Metal dictionaries cannot be produced here (no Mac); they are recorded outputs of MLX's device
info on real Apple Silicon, wrapped the way ``frameworks.device_info()`` wraps them.
"""

from __future__ import annotations

from typing import Any

import pytest

from vlmtui.memory.budget import Budget, Thresholds, resolve_budget
from vlmtui.memory.system import probe_system
from vlmtui.worker.frameworks import device_info

GiB = 1024**3

# mx.metal.device_info() on an Apple M1, 16 GB, macOS 13.7.8, mlx 0.29.3 (recorded verbatim).
M1_16GB_MLX_DEVICE_INFO: dict[str, Any] = {
    "resource_limit": 499000,
    "max_buffer_length": 8589934592,
    "architecture": "applegpu_g13g",
    "memory_size": 17179869184,
    "max_recommended_working_set_size": 11453251584,
    "device_name": "Apple M1",
}
# mx.device_info() on an Apple M5 Max, 128 GB, mlx 0.32.2 (recorded verbatim).
M5_MAX_128GB_MLX_DEVICE_INFO: dict[str, Any] = {
    "device_name": "Apple M5 Max",
    "max_recommended_working_set_size": 115448725504,
    "memory_size": 137438953472,
    "architecture": "applegpu_g17s",
    "max_buffer_length": 86586540032,
    "resource_limit": 499000,
}


def mac_device(mlx_info: dict[str, Any]) -> dict[str, Any]:
    """``frameworks.device_info()`` as it reads on a Mac with MLX on Metal."""
    keys = ("device_name", "architecture", "memory_size", "max_recommended_working_set_size")
    return {
        "platform": "darwin",
        "machine": "arm64",
        "apple_silicon": True,
        "cpu": {"count": 8},
        "mlx": {"backend": "metal", **mlx_info},
        "metal": {k: mlx_info.get(k) for k in keys},
    }


LINUX_CPU = {"platform": "linux", "machine": "x86_64", "apple_silicon": False, "cpu": {"count": 2}}


@pytest.mark.parametrize(
    ("mlx_info", "expected"),
    [(M1_16GB_MLX_DEVICE_INFO, 11453251584), (M5_MAX_128GB_MLX_DEVICE_INFO, 115448725504)],
)
def test_auto_on_apple_silicon_is_metal_recommended_working_set(
    mlx_info: dict[str, Any], expected: int
) -> None:
    budget = resolve_budget("auto", mac_device(mlx_info), system_total=mlx_info["memory_size"])
    assert budget == Budget(expected, "metal recommended working set")


def test_auto_with_torch_mps_only_uses_its_recommended_max() -> None:
    # torch.mps.recommended_max_memory() reads the same MTLDevice.recommendedMaxWorkingSetSize.
    device = {**LINUX_CPU, "platform": "darwin", "machine": "arm64", "apple_silicon": True,
              "mps": {"recommended_max_memory": 11453251584}}
    budget = resolve_budget("auto", device, system_total=17179869184)
    assert budget.bytes == 11453251584 and budget.source.startswith("metal recommended working set")


def test_auto_on_cuda_is_the_first_gpus_total() -> None:
    # frameworks.device_info() on an NVIDIA H200, torch 2.11.0+cu130 (recorded; total_memory is
    # torch.cuda.get_device_properties(0).total_memory, equal to mem_get_info()'s total there).
    device = {**LINUX_CPU, "cpu": {"count": 16},
              "cuda": [{"index": 0, "name": "NVIDIA H200", "total_memory": 150109880320}]}
    assert resolve_budget("auto", device, system_total=128 * GiB) == Budget(150109880320, "cuda total")


def test_auto_elsewhere_is_system_ram() -> None:
    assert resolve_budget("auto", LINUX_CPU, system_total=24 * GiB) == Budget(24 * GiB, "system RAM")


def test_auto_with_this_machines_real_probes() -> None:
    total = probe_system().total
    device = device_info(import_if_missing=False)
    budget = resolve_budget("auto", device, system_total=total)
    assert budget.bytes > 0
    if not {"metal", "mps", "cuda"} & set(device):
        assert budget == Budget(total, "system RAM")


def test_percentage_of_ram() -> None:
    budget = resolve_budget("60%", mac_device(M1_16GB_MLX_DEVICE_INFO), system_total=16 * GiB)
    assert budget == Budget(int(16 * GiB * 0.6), "60% of RAM")
    assert str(budget) == "9.6 GiB (60% of RAM)"


def test_explicit_size() -> None:
    assert resolve_budget("12GiB", LINUX_CPU, system_total=24 * GiB) == Budget(12 * GiB, "explicit 12GiB")
    assert resolve_budget(" 512 MiB ", LINUX_CPU, 24 * GiB).bytes == 512 * 1024**2


@pytest.mark.parametrize("spec", ["0%", "150%", "abc%", "lots", "0GiB"])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        resolve_budget(spec, LINUX_CPU, system_total=24 * GiB)


def test_thresholds_in_bytes() -> None:
    th = Budget(8 * GiB, "explicit 8GiB").thresholds(75, 85, 95)
    assert th == Thresholds(8 * GiB, 75, 85, 95)
    assert (th.warn_bytes, th.cleanup_bytes, th.abort_bytes) == (6 * GiB, int(6.8 * GiB), int(7.6 * GiB))
    assert th.fraction(4 * GiB) == 0.5


def test_thresholds_must_rise() -> None:
    with pytest.raises(ValueError, match="thresholds must rise"):
        Thresholds(8 * GiB, 90, 85, 95)
