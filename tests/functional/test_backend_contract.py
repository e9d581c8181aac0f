"""Every registered backend keeps the Backend contract inside the real worker: load, streamed generate,
cleanup and abort between tokens, unload, and a bad model as one line.

The backends are the ones registered now (the built-ins' own entry points) plus the echo plug-in from
a temporary dist-info. Each runs a tiny model; openai through a real ``mlx_vlm.server`` as
test_openai_backend.py starts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SAMPLE_IMAGES
from tests.fixtures.plugin_site import echo_on_path
from tests.functional.test_openai_backend import MLX_SERVER
from tests.functional.worker_driver import WorkerDriver
from vlmtui.plugins import backends, find_backend
from vlmtui.wire import protocol as p
from vlmtui.wire.spec import ModelSpec

pytestmark = pytest.mark.slow

GOOD: dict[str, dict[str, Any]] = {
    "openai": {"path": "tiny:idefics3", "options": {"command": list(MLX_SERVER), "startup_timeout_s": 180.0}},
    "echo": {"path": "tiny:words", "options": {"delay_ms": 2}},
}
"""How to run each backend offline, where its first tiny family alone is not enough."""
BAD: dict[str, dict[str, Any]] = {
    "openai": {"path": "", "options": {"base_url": "http://127.0.0.1:9"}},
}
"""A model that cannot load; the default is a local path that does not exist."""
NAMES = sorted({d.name for d in backends()} | {"echo"})


@pytest.fixture(scope="module", autouse=True)
def echo_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The echo plug-in, known here and to every worker started from this module."""
    with echo_on_path(tmp_path_factory.mktemp("site")) as site:
        yield site


def spec(name: str, recipe: dict[str, Any] | None) -> ModelSpec:
    """The backend's model: the recipe, else its first tiny family."""
    families = find_backend(name).tiny_families
    values: dict[str, Any] = {"path": f"tiny:{'idefics3' if 'idefics3' in families else families[0]}"}
    values.update(recipe or {})
    return ModelSpec(id=f"contract-{name}", backend=name, **values)


@pytest.mark.parametrize("name", NAMES)
def test_backend_keeps_the_contract(name: str) -> None:
    worker = WorkerDriver()
    try:
        worker.wait_for(p.Hello, timeout_s=60)
        worker.send(p.Load(model=spec(name, GOOD.get(name)).to_dict(), sample_ms=100))
        loaded = worker.wait_for(p.Loaded, p.LoadFailed, timeout_s=300)
        assert isinstance(loaded, p.Loaded), loaded.error
        assert loaded.device

        image = str(sorted(SAMPLE_IMAGES.glob("*.jpg"))[0])
        worker.send(p.Run(case_id="image", prompt="Describe this image.", image=image, max_tokens=8))
        result = worker.wait_for(p.Result, timeout_s=120)
        assert (result.outcome, result.error) == ("completed", "")
        assert worker.tokens["image"] and "".join(worker.tokens["image"]) == result.output != ""
        assert result.metrics["gen_tokens"] and result.metrics["ttft_s"] is not None

        # The guard's cleanup lands between tokens, then its abort stops the generation at the next one.
        worker.send(p.Run(case_id="long", prompt="Count to a thousand.", max_tokens=4000))
        worker.wait_for(p.Token, timeout_s=120)
        worker.send(p.Cleanup(reason="contract"))
        cleaned = worker.wait_for(p.Cleaned, timeout_s=60)
        assert cleaned.reason == "contract" and cleaned.freed_bytes >= 0
        worker.send(p.Abort(case_id="long", reason="stopped by the contract test"))
        aborted = worker.wait_for(p.Result, timeout_s=120)
        assert (aborted.outcome, aborted.error) == ("aborted", "stopped by the contract test")
        assert aborted.output and aborted.metrics["gen_tokens"] < 4000

        worker.send(p.Run(case_id="after", prompt="Hello?", max_tokens=3))
        after = worker.wait_for(p.Result, timeout_s=120)
        assert after.outcome == "completed", "the backend works on after an abort"

        worker.send(p.Unload())
        worker.wait_for(p.Unloaded, timeout_s=60)
        worker.send(p.Run(case_id="unloaded", prompt="Hello?", max_tokens=3))
        assert worker.wait_for(p.Result, timeout_s=30).outcome == "failed"

        worker.send(p.Load(model=spec(name, BAD.get(name, {"path": "/nowhere/model"})).to_dict()))
        failed = worker.wait_for(p.LoadFailed, p.Loaded, timeout_s=120)
        assert isinstance(failed, p.LoadFailed)
        assert failed.error and "\n" not in failed.error and "Traceback" not in failed.error
        print(f"\n{name}: {failed.error}")
    finally:
        worker.close()
