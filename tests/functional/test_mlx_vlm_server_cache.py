"""No state leaks from one case into the next through a real mlx_vlm.server: its prefix cache stays off."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import SAMPLE_IMAGES
from tests.functional.helpers import model_spec
from tests.functional.worker_driver import WorkerDriver
from vlmtui.wire import protocol as p


@pytest.fixture
def worker_with_apc_exported() -> Iterator[WorkerDriver]:
    """A real worker whose environment turns mlx_vlm.server's Automatic Prefix Cache on, as a user's shell may."""
    driver = WorkerDriver(env={**os.environ, "APC_ENABLED": "1"})
    driver.wait_for(p.Hello, timeout_s=60)
    yield driver
    driver.close()


def test_the_mlx_vlm_server_preset_turns_the_prefix_cache_off(worker_with_apc_exported: WorkerDriver) -> None:
    worker = worker_with_apc_exported
    model = model_spec(id="served", backend="openai", server="mlx-vlm", path="tiny:idefics3")
    worker.send(p.Load(model=model.to_dict(), sample_ms=500))
    loaded = worker.wait_for(p.Loaded, p.LoadFailed, timeout_s=300)
    assert isinstance(loaded, p.Loaded), loaded
    base = loaded.device.removeprefix("server ")
    assert base.startswith("http://127.0.0.1:"), loaded.device
    assert any("prefix cache off" in note for note in loaded.notes), loaded.notes

    # Twice the same image and prompt: with the cache on, the second found 64 of its 67 prompt tokens cached.
    for n in (1, 2):
        worker.send(p.Run(case_id=f"c{n}", prompt="Describe this image.", image=str(SAMPLE_IMAGES / "lake.jpg"),
                          max_tokens=4))
        result = worker.wait_for(p.Result, timeout_s=120)
        assert result.outcome == "completed", result

    with httpx.Client(trust_env=False, timeout=10.0) as http:
        assert http.get(f"{base}/health").json()["apc_enabled"] is False
        assert http.get(f"{base}/v1/cache/stats").json() == {"enabled": False}
