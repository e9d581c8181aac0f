"""The real worker's memory sampler: full rate while a model loads or a case runs, slow while idle."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.conftest import SAMPLE_IMAGES
from tests.functional.worker_driver import WorkerDriver
from vlmtui.wire import protocol as p
from vlmtui.wire.spec import ModelSpec

IDLE_MS = 30_000
"""Far longer than any wait below: an idle sample inside one would be the old fixed rate."""


@pytest.fixture
def slow_idle_worker() -> Iterator[WorkerDriver]:
    driver = WorkerDriver(env={**os.environ, "VLMTUI_IDLE_SAMPLE_MS": str(IDLE_MS)})
    driver.wait_for(p.Hello, timeout_s=60)
    yield driver
    driver.close()


def events_until(driver: WorkerDriver, *stop: type[p.Event], timeout_s: float = 300.0) -> list[p.Event]:
    """Every event up to and including the first of ``stop``."""
    seen: list[p.Event] = []
    while True:
        event = driver.wait_for(object, timeout_s=timeout_s)
        seen.append(event)
        if isinstance(event, stop):
            return seen


def events_for(driver: WorkerDriver, seconds: float) -> list[p.Event]:
    """Every event the worker sends within ``seconds``."""
    seen: list[p.Event] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            seen.append(driver.wait_for(object, timeout_s=left))
        except AssertionError:
            break
    return seen


def memory(events: list[p.Event]) -> list[p.Memory]:
    return [e for e in events if isinstance(e, p.Memory)]


def test_idle_worker_samples_at_the_idle_rate_and_wakes_for_a_load_and_a_case(slow_idle_worker: WorkerDriver) -> None:
    worker = slow_idle_worker
    # Nothing loaded: at the old fixed 4 samples a second this was ~12 lines in 3 s.
    assert memory(events_for(worker, 3.0)) == []

    # A load wakes the sampler at once: the guard sees the load's memory before it ends, not 30 s later.
    model = ModelSpec(id="tiny", backend="transformers", path="tiny:idefics3")
    worker.send(p.Load(model=model.to_dict(), sample_ms=100))
    during_load = events_until(worker, p.Loaded, p.LoadFailed)
    assert isinstance(during_load[-1], p.Loaded), during_load[-1]
    assert memory(during_load), "no memory sample during the load"

    # Loaded and idle: slow again (at most the sample already due as the load ended).
    assert len(memory(events_for(worker, 3.0))) <= 1

    # A case runs at the full rate from its start.
    worker.send(p.Run(case_id="c", prompt="Describe this image.", image=str(SAMPLE_IMAGES / "lake.jpg"),
                      max_tokens=400))
    during_case = events_until(worker, p.Result)
    samples = memory(during_case)
    assert samples, "no memory sample during the case"
    result = during_case[-1]
    assert isinstance(result, p.Result) and result.outcome == "completed", result
    # Far more than one sample in each idle interval while it ran (100 ms asked; a busy 2-core box is slower).
    tokens = [e for e in during_case if isinstance(e, p.Token)]
    if len(tokens) > 50 and samples[-1].t - samples[0].t > 1.0:
        rate = (len(samples) - 1) / (samples[-1].t - samples[0].t)
        assert rate > 2.0, f"{rate:.2f} samples/s during the case"
