"""The mlx-vlm backend wires Metal's recommended working set while a model is loaded and gives the previous
limit back on unload, a dropped load and SIGTERM; weights past 0.9× of it get a load note.

MLX here runs on the CPU: it accepts ``mx.set_wired_limit`` (answering 0, the previous limit) but its device
info has no working-set size. Where a Metal device is needed, ``mx.device_info`` answers with the dictionary
recorded on an Apple M1 (16 GB) and the real ``set_wired_limit`` is wrapped to record its calls, around a real
load of ``tiny:idefics3``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.functional.helpers import model_spec
from tests.functional.worker_driver import WorkerDriver
from tests.unit.test_memory_budget import M1_16GB_MLX_DEVICE_INFO, M5_MAX_128GB_MLX_DEVICE_INFO
from vlmtui.wire import protocol as p
from vlmtui.worker.backends.mlx_vlm import MlxVlmBackend, paging_note, recommended_working_set

mx = pytest.importorskip("mlx.core")

M1_RECOMMENDED = M1_16GB_MLX_DEVICE_INFO["max_recommended_working_set_size"]  # 11453251584, 10.7 GiB
LLAVA_16_7B_PARAMS = 7_567_000_000  # LLaVA-v1.6-Mistral-7B's published dimensions (bench/gpu_models.py)


class WiredLimitSpy:
    """The real ``mx.set_wired_limit`` with every call recorded (optionally refusing, as Metal can)."""

    def __init__(self, real: Callable[[int], int], refuse: Exception | None = None) -> None:
        self.real = real
        self.refuse = refuse
        self.calls: list[int] = []

    def __call__(self, limit: int) -> int:
        self.calls.append(limit)
        if self.refuse is not None:
            raise self.refuse
        return int(self.real(limit))


def on_metal(monkeypatch: pytest.MonkeyPatch, info: dict[str, Any], refuse: Exception | None = None) -> WiredLimitSpy:
    """MLX reporting the Metal device ``info``, its wired-limit calls recorded."""
    spy = WiredLimitSpy(mx.set_wired_limit, refuse)
    monkeypatch.setattr(mx, "set_wired_limit", spy)
    monkeypatch.setattr(mx, "device_info", lambda: dict(info))
    return spy


def backend() -> MlxVlmBackend:
    return MlxVlmBackend(model_spec(id="m", backend="mlx-vlm", path="tiny:idefics3"))


def weights_bytes(loaded: MlxVlmBackend) -> int:
    from mlx.utils import tree_flatten

    return sum(int(param.nbytes) for _, param in tree_flatten(loaded.model.parameters()))


def test_mlx_on_the_cpu_wires_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = WiredLimitSpy(mx.set_wired_limit)
    monkeypatch.setattr(mx, "set_wired_limit", spy)
    assert recommended_working_set(mx) is None  # this machine's real device info: no working-set size
    model = backend()
    info = model.load()
    model.unload()
    assert spy.calls == []
    assert not [n for n in info.notes if "wired" in n or "working set" in n]


def test_the_recommended_working_set_is_wired_while_loaded_and_given_back_on_unload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = on_metal(monkeypatch, M1_16GB_MLX_DEVICE_INFO)
    model = backend()
    info = model.load()
    assert spy.calls == [M1_RECOMMENDED]
    assert not [n for n in info.notes if "working set" in n]  # a few MiB of weights: far from paging
    model.unload()
    assert spy.calls == [M1_RECOMMENDED, 0]  # the limit before the load (MLX's default, 0) is back
    model.unload()
    assert spy.calls == [M1_RECOMMENDED, 0]  # a second unload restores nothing twice


def test_weights_past_90_percent_of_the_working_set_are_a_load_note(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = backend()
    probe.load()
    weights = weights_bytes(probe)
    probe.unload()
    # Made: a Metal device whose working set is only 5 % above the tiny model's weights.
    small = {**M1_16GB_MLX_DEVICE_INFO, "max_recommended_working_set_size": int(weights * 1.05)}
    spy = on_metal(monkeypatch, small)
    model = backend()
    info = model.load()
    model.unload()
    notes = [n for n in info.notes if "working set" in n]
    assert len(notes) == 1 and "exceed 90% of Metal's recommended working set" in notes[0]
    assert spy.calls == [int(weights * 1.05), 0]  # wired all the same, as mlx-lm does


def test_metal_refusing_the_limit_is_a_note_and_nothing_to_restore(monkeypatch: pytest.MonkeyPatch) -> None:
    # MLX's own message (mlx/backend/metal/allocator.cpp), raised as ValueError past the maximum working set.
    refusal = ValueError("[metal::set_wired_limit] Setting a wired limit larger than the maximum working set "
                         "size is not allowed.")
    spy = on_metal(monkeypatch, M1_16GB_MLX_DEVICE_INFO, refuse=refusal)
    model = backend()
    info = model.load()
    model.unload()
    assert [n for n in info.notes if n.startswith("wired limit not set")] == [
        "wired limit not set: [metal::set_wired_limit] Setting a wired limit larger than the maximum working set "
        "size is not allowed."]
    assert spy.calls == [M1_RECOMMENDED]


@pytest.mark.parametrize(("bytes_per_param", "info", "noted"), [
    (2, M1_16GB_MLX_DEVICE_INFO, True),          # 7.6 B in bf16: 14.1 GiB on a 10.7 GiB working set
    (0.5625, M1_16GB_MLX_DEVICE_INFO, False),    # 4-bit with group scales: 4.0 GiB
    (2, M5_MAX_128GB_MLX_DEVICE_INFO, False),    # bf16 on a 107.5 GiB working set
])
def test_paging_note_on_recorded_working_sets(bytes_per_param: float, info: dict[str, Any], noted: bool) -> None:
    note = paging_note(int(LLAVA_16_7B_PARAMS * bytes_per_param), info["max_recommended_working_set_size"])
    assert (note is not None) == noted
    if note:
        assert note.startswith("weights 14.1 GiB exceed 90% of Metal's recommended working set 10.7 GiB")


def test_recommended_working_set_from_either_device_info() -> None:
    class NewMlx:
        @staticmethod
        def device_info() -> dict[str, Any]:
            return dict(M5_MAX_128GB_MLX_DEVICE_INFO)

    class OldMlx:  # mlx 0.29: mx.metal.device_info() only
        class metal:  # MLX's module name
            @staticmethod
            def device_info() -> dict[str, Any]:
                return dict(M1_16GB_MLX_DEVICE_INFO)

    assert recommended_working_set(NewMlx) == 115448725504
    assert recommended_working_set(OldMlx) == M1_RECOMMENDED


@pytest.mark.slow
def test_sigterm_gives_the_wired_limit_back_in_the_real_worker(tmp_path: Path) -> None:
    log = tmp_path / "wired.log"
    env = {**os.environ, "VLMTUI_TEST_WIRED_LOG": str(log)}
    worker = WorkerDriver([sys.executable, "-m", "tests.fixtures.wired_worker"], env=env)
    try:
        worker.wait_for(p.Hello, timeout_s=60)
        worker.send(p.Load(model=model_spec(id="m", backend="mlx-vlm", path="tiny:idefics3").to_dict()))
        loaded = worker.wait_for(p.Loaded, p.LoadFailed, timeout_s=300)
        assert isinstance(loaded, p.Loaded), loaded
        assert log.read_text().split() == [str(M1_RECOMMENDED)]
        os.kill(worker.process.pid, signal.SIGTERM)
        worker.wait_for(p.Exiting, timeout_s=30)
        assert worker.process.wait(timeout=30) == 0
    finally:
        worker.close()
    assert log.read_text().split() == [str(M1_RECOMMENDED), "0"]
