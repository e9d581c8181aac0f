"""Memory probes: psutil for real; macOS sysctl through an injected runner fed recorded real outputs.

This is the one unit-test module that starts processes: a sleeping child to measure and lose, the
real default sysctl runner, and a clean interpreter to prove the parent-side modules import no
framework.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import FrozenInstanceError

import pytest

from vlmtui.memory.system import (
    PressureSample,
    SystemSample,
    probe_pressure,
    probe_process_rss,
    probe_system,
    probe_wired_limit_mb,
    read_sysctl_int,
    run_sysctl,
)
from vlmtui.worker import frameworks


class RecordedSysctl:
    """Stands in for ``sysctl`` on a Mac: answers one argv with one recorded stdout, or raises."""

    def __init__(self, argv: list[str], stdout: str | None = None, error: Exception | None = None) -> None:
        self.expected = argv
        self.stdout = stdout
        self.error = error
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> str:
        self.calls.append(list(argv))
        assert list(argv) == self.expected, f"unexpected call {argv!r}"
        if self.error is not None:
            raise self.error
        assert self.stdout is not None
        return self.stdout


def never_called(argv: Sequence[str]) -> str:
    raise AssertionError(f"sysctl must not run off macOS: {argv!r}")


# ----------------------------------------------------------------------------- psutil, for real


def test_probe_system_reads_this_machine() -> None:
    sample = probe_system()
    assert isinstance(sample, SystemSample)
    assert sample.total > 0
    assert 0 < sample.available <= sample.total
    assert 0 <= sample.used <= sample.total
    assert 0.0 <= sample.percent <= 100.0
    assert 0 <= sample.swap_used <= max(sample.swap_total, sample.swap_used)
    assert sample.t > 1.7e9
    with pytest.raises(FrozenInstanceError):
        sample.total = 1  # type: ignore[misc]
    assert SystemSample.from_dict(sample.to_dict()) == sample


def test_probe_process_rss_of_this_process() -> None:
    rss = probe_process_rss(os.getpid())
    assert rss is not None and rss > 10 * 1024**2  # an interpreter with pytest loaded


def test_probe_process_rss_counts_children_and_is_none_once_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        alone = probe_process_rss(os.getpid())
        child_rss = probe_process_rss(child.pid)
        with_children = probe_process_rss(os.getpid(), include_children=True)
        assert alone is not None and child_rss is not None and with_children is not None
        assert child_rss > 0
        assert with_children >= alone + child_rss // 2  # both sampled a moment apart
    finally:
        child.kill()
        child.wait()
    assert probe_process_rss(child.pid) is None


# ----------------------------------------------------------------------------- macOS sysctl, recorded


def test_pressure_normal_on_macos() -> None:
    # Fakes: `sysctl -n kern.memorystatus_vm_pressure_level` on an idle Mac prints "1\n".
    run = RecordedSysctl(["sysctl", "-n", "kern.memorystatus_vm_pressure_level"], "1\n")
    sample = probe_pressure(run, platform="darwin")
    assert isinstance(sample, PressureSample)
    assert (sample.level, sample.name) == (1, "normal")
    assert run.calls == [["sysctl", "-n", "kern.memorystatus_vm_pressure_level"]]


@pytest.mark.parametrize(("stdout", "level", "name"), [("2\n", 2, "warning"), ("4\n", 4, "critical")])
def test_pressure_warning_and_critical_on_macos(stdout: str, level: int, name: str) -> None:
    # Fakes: `sysctl -n kern.memorystatus_vm_pressure_level` under pressure; it prints XNU's
    # NOTE_MEMORYSTATUS_PRESSURE_WARN (2) or _CRITICAL (4), one number and a newline.
    run = RecordedSysctl(["sysctl", "-n", "kern.memorystatus_vm_pressure_level"], stdout)
    sample = probe_pressure(run, platform="darwin")
    assert sample is not None and (sample.level, sample.name) == (level, name)


def test_wired_limit_default_on_macos() -> None:
    # Fakes: `sysctl -n iogpu.wired_limit_mb` on a Mac where it was never raised prints "0\n".
    run = RecordedSysctl(["sysctl", "-n", "iogpu.wired_limit_mb"], "0\n")
    assert probe_wired_limit_mb(run, platform="darwin") == 0


def test_wired_limit_missing_on_an_older_mac() -> None:
    # Fakes: `sysctl -n iogpu.wired_limit_mb` where the OID does not exist (macOS < 14): sysctl exits 1
    # with "sysctl: unknown oid 'iogpu.wired_limit_mb'" on stderr.
    argv = ["sysctl", "-n", "iogpu.wired_limit_mb"]
    error = subprocess.CalledProcessError(1, argv, "", "sysctl: unknown oid 'iogpu.wired_limit_mb'\n")
    assert probe_wired_limit_mb(RecordedSysctl(argv, error=error), platform="darwin") is None


def test_memsize_on_a_16gb_mac() -> None:
    # Fakes: `sysctl -n hw.memsize` on a 16 GB Mac prints "17179869184\n".
    run = RecordedSysctl(["sysctl", "-n", "hw.memsize"], "17179869184\n")
    assert read_sysctl_int("hw.memsize", run=run, platform="darwin") == 17179869184


def test_sysctl_timeout_is_not_available() -> None:
    # Fakes: `sysctl -n kern.memorystatus_vm_pressure_level` hanging past the runner's timeout.
    argv = ["sysctl", "-n", "kern.memorystatus_vm_pressure_level"]
    run = RecordedSysctl(argv, error=subprocess.TimeoutExpired(argv, 0.5))
    assert probe_pressure(run, platform="darwin") is None


@pytest.mark.parametrize("stdout", ["", "abc\n", "3\n"])
def test_unexpected_pressure_output_is_not_available(stdout: str) -> None:
    # Fakes: `sysctl -n kern.memorystatus_vm_pressure_level` printing something it is not known to print.
    run = RecordedSysctl(["sysctl", "-n", "kern.memorystatus_vm_pressure_level"], stdout)
    assert probe_pressure(run, platform="darwin") is None


def test_sysctl_probes_do_not_run_off_macos() -> None:
    assert probe_pressure(never_called, platform="linux") is None
    assert probe_wired_limit_mb(never_called, platform="linux") is None
    if sys.platform != "darwin":
        assert probe_pressure() is None
        assert probe_wired_limit_mb() is None


@pytest.mark.skipif(sys.platform != "linux" or shutil.which("sysctl") is None, reason="needs Linux sysctl")
def test_default_runner_is_real_sysctl_without_a_shell() -> None:
    assert run_sysctl(["sysctl", "-n", "kernel.ostype"]) == "Linux\n"
    # The macOS OID does not exist on Linux: sysctl exits non-zero, which reads as "not available".
    assert read_sysctl_int("kern.memorystatus_vm_pressure_level", platform="darwin") is None


# ----------------------------------------------------------------------------- framework probes


def test_probe_mlx_on_this_machine() -> None:
    mx = pytest.importorskip("mlx.core")
    a = mx.ones((512, 512))
    mx.eval(a)
    sample = frameworks.probe_mlx()
    assert sample is not None
    assert sample.framework == "mlx"
    assert sample.active_bytes is not None and sample.active_bytes >= 512 * 512 * 4
    assert sample.guarded_bytes == sample.active_bytes + (sample.cache_bytes or 0)
    assert sample.peak_bytes is not None and sample.peak_bytes >= sample.active_bytes
    assert sample.limit_bytes is not None and sample.limit_bytes > 0
    if sample.device == "cpu":
        assert sample.device_total_bytes is None  # device_info() has no memory size on CPU


def test_probe_torch_is_none_on_cpu() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("an accelerator is present")
    assert frameworks.probe_torch() is None


class RecordedCuda:
    """Stands in for ``torch.cuda`` on an NVIDIA machine (none here), answering with values recorded
    from torch 2.11 on an H200 while a 7.6 B model generated; counts the driver queries."""

    def __init__(self) -> None:
        self.reserved = 16_091_447_296
        self.mem_get_info_calls = 0

    def is_available(self) -> bool:
        return True

    def is_initialized(self) -> bool:
        return True

    def current_device(self) -> int:
        return 0

    def memory_stats(self, index: int) -> dict[str, int]:
        return {"allocated_bytes.all.current": 15_523_191_808, "reserved_bytes.all.current": self.reserved,
                "allocated_bytes.all.peak": 15_817_090_048}

    def mem_get_info(self, index: int) -> tuple[int, int]:
        self.mem_get_info_calls += 1
        return 133_287_772_160, 150_109_880_320


def test_probe_torch_on_cuda_reads_the_allocator_every_time_and_the_driver_once_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import types

    cuda = RecordedCuda()
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    monkeypatch.setattr(frameworks, "_cuda_info", {})
    first = frameworks.probe_torch()
    assert first is not None and first.framework == "torch-cuda" and first.device == "cuda:0"
    assert first.guarded_bytes == 16_091_447_296 and first.active_bytes == 15_523_191_808
    assert first.device_total_bytes == 150_109_880_320 and first.device_free_bytes == 133_287_772_160
    cuda.reserved += 1 << 30  # the allocator grows between two samples
    second = frameworks.probe_torch()
    assert second is not None and second.guarded_bytes == first.guarded_bytes + (1 << 30)
    assert cuda.mem_get_info_calls == 1  # the costly driver query is not repeated within the second
    monkeypatch.setattr(frameworks, "CUDA_INFO_EVERY_S", 0.0)
    frameworks.probe_torch()
    assert cuda.mem_get_info_calls == 2


def test_probe_nvml_without_pynvml_or_gpu_is_none() -> None:
    try:
        import pynvml  # noqa: F401
    except ImportError:
        assert frameworks.probe_nvml() is None
    else:
        result = frameworks.probe_nvml()
        assert result is None or isinstance(result["devices"], list)


def test_device_info_always_has_the_cpu() -> None:
    info = frameworks.device_info(import_if_missing=False)
    assert info["platform"] == sys.platform
    assert info["cpu"]["count"] == os.cpu_count()
    assert isinstance(info["apple_silicon"], bool)


def run_clean(code: str) -> None:
    """Run ``code`` in a fresh interpreter (nothing imported by this test session leaks in)."""
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, timeout=60)


def test_parent_side_modules_import_no_framework() -> None:
    run_clean(
        """
        import vlmtui.memory.guard, vlmtui.memory.budget, vlmtui.memory.system, vlmtui.memory.preflight, sys
        vlmtui.memory.system.probe_system()
        vlmtui.memory.system.probe_pressure()
        heavy = [m for m in ("torch", "mlx", "transformers", "textual") if m in sys.modules]
        assert not heavy, heavy
        """
    )


def test_framework_probes_import_nothing_unless_asked() -> None:
    run_clean(
        """
        import sys
        from vlmtui.worker import frameworks
        assert frameworks.probe_mlx() is None and frameworks.probe_torch() is None
        info = frameworks.device_info(import_if_missing=False)
        assert set(info) == {"platform", "machine", "apple_silicon", "cpu"}, info
        heavy = [m for m in ("torch", "mlx", "transformers", "textual") if m in sys.modules]
        assert not heavy, heavy
        """
    )


def test_a_backend_probed_before_its_load_reports_nothing_and_imports_nothing() -> None:
    # The worker's sampler probes the backend being loaded, from its own thread, from before ``load``
    # has chosen a device or imported its framework: no answer yet, and no framework import (nor, on
    # CUDA, a context) started from the sampler thread.
    run_clean(
        """
        import sys
        from vlmtui.worker.backends.mlx_vlm import MlxVlmBackend
        from vlmtui.worker.backends.transformers import TransformersBackend
        from vlmtui.wire.spec import ModelSpec
        for cls, backend in ((TransformersBackend, "transformers"), (MlxVlmBackend, "mlx-vlm")):
            assert cls(ModelSpec(id="m", backend=backend, path="tiny:smolvlm")).framework_memory() is None
        heavy = [m for m in ("torch", "mlx", "transformers") if m in sys.modules]
        assert not heavy, heavy
        """
    )


def test_device_info_without_torch_or_mlx_installed() -> None:
    # A meta-path finder that refuses torch and mlx: the interpreter behaves as if neither is installed.
    run_clean(
        """
        import sys
        class NotInstalled:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "mlx", "pynvml"):
                    raise ModuleNotFoundError(name)
                return None
        sys.meta_path.insert(0, NotInstalled())
        from vlmtui.worker import frameworks
        info = frameworks.device_info()
        assert set(info) == {"platform", "machine", "apple_silicon", "cpu"}, info
        assert frameworks.probe_mlx(import_if_missing=True) is None
        assert frameworks.probe_torch(import_if_missing=True) is None
        assert frameworks.probe_nvml() is None
        """
    )
