"""Metal command-buffer failures that newer MLX raises (ml-explore/mlx#3523) instead of aborting the process.

Older MLX ends the worker from a Metal completion thread (the case is ``crashed``, a fresh worker goes on);
where MLX raises the error, the case is ``aborted`` as out of memory, caches are cleared and the worker stays.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import ROOT, SAMPLE_IMAGES
from tests.fixtures.metal_fault_backend import CLOSE_FAIL_MARK, FAIL_MARK, METAL_OOM, MetalFaultBackend
from tests.functional.helpers import scheduler_for
from vlmtui.engine.events import GuardEvent, ModelLoaded, Notice, WorkerExited
from vlmtui.engine.plan import Case
from vlmtui.wire.spec import Expect, ModelSpec
from vlmtui.worker.backends.base import GenerationRequest, OutOfMemoryError
from vlmtui.worker.backends.mlx_vlm import MlxVlmBackend, is_mlx_out_of_memory

METAL_WORKER = [sys.executable, "-m", "tests.fixtures.metal_fault_worker"]


def request(prompt: str, should_stop: Callable[[], bool] = lambda: False) -> GenerationRequest:
    return GenerationRequest(case_id="c", prompt=prompt, image=None, max_tokens=12, temperature=0.0,
                             should_stop=should_stop)


@pytest.fixture(scope="module")
def metal() -> Iterator[MetalFaultBackend]:
    """The tiny Idefics3, loaded in this process, its marked cases failing as newer MLX fails on Metal."""
    backend = MetalFaultBackend(ModelSpec(id="m", backend="mlx-vlm", path="tiny:idefics3"))
    backend.load()
    yield backend
    backend.unload()


@pytest.mark.parametrize(
    "message",
    [
        METAL_OOM,
        # As the incident behind vlmtui quotes it (DESIGN.md).
        "[METAL] Command buffer execution failed: Insufficient Memory (kIOGPUCommandBufferCallbackErrorOutOfMemory)",
    ],
)
def test_metal_command_buffer_out_of_memory_is_out_of_memory(message: str) -> None:
    backend = MlxVlmBackend(ModelSpec(id="m", backend="mlx-vlm", path="tiny:idefics3"))
    assert backend.is_out_of_memory(RuntimeError(message))
    wrapped = ValueError("Failed to process inputs")
    wrapped.__cause__ = RuntimeError(message)
    assert is_mlx_out_of_memory(wrapped)


def test_other_metal_command_buffer_failures_are_not_out_of_memory() -> None:
    # A GPU watchdog timeout is a failed case, not a memory problem.
    timeout = ("[METAL] Command buffer execution failed: Caused GPU Timeout Error "
               "(00000002:kIOGPUCommandBufferCallbackErrorTimeout)")
    assert not is_mlx_out_of_memory(RuntimeError(timeout))


async def test_a_raised_metal_out_of_memory_aborts_the_case_and_the_worker_carries_on() -> None:
    model = ModelSpec(id="tiny", backend="mlx-vlm", path="tiny:idefics3")
    image = sorted(SAMPLE_IMAGES.glob("*.jpg"))[0]
    cases = [
        Case("tiny/oom", model, f"Describe this image. {FAIL_MARK}", image, 0, 12, 0.0, Expect()),
        Case("tiny/next", model, "Describe this image.", image, 1, 4, 0.0, Expect()),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    scheduler, recorder = scheduler_for(cases, worker_argv=METAL_WORKER, worker_env=env)
    counts = await scheduler.run()

    oom = scheduler.latest()["tiny/oom"]
    assert oom.status == "aborted", oom
    assert oom.error == f"MLX ran out of memory: {METAL_OOM}"
    assert oom.output, "the tokens before the failure are kept"
    assert scheduler.latest()["tiny/next"].status == "passed"
    assert counts == {"aborted": 1, "passed": 1}
    # Caught in the worker: the same worker, the model loaded once, caches cleared after the failure.
    assert not recorder.of(WorkerExited)
    assert len(recorder.of(ModelLoaded)) == 1
    # The worker's own cleanup, not the guard's: a notice now (a guard event before issue 11's item 4).
    said = [e.message for e in recorder.of(Notice)] + [e.reason for e in recorder.of(GuardEvent)]
    assert any(line.startswith("cleanup (after out of memory) freed") for line in said), said


def test_a_failure_raised_as_the_stream_closes_reads_as_out_of_memory(metal: MetalFaultBackend) -> None:
    """The guard's or the user's stop ends the stream early; MLX raises the error as mlx-vlm synchronises."""
    calls: list[None] = []

    def stop_after_three() -> bool:
        calls.append(None)
        return len(calls) >= 3

    with pytest.raises(OutOfMemoryError) as caught:
        metal.generate(request(f"Hello? {CLOSE_FAIL_MARK}", stop_after_three), lambda text: None)
    assert str(caught.value) == f"MLX ran out of memory: {METAL_OOM}"


def test_what_emit_raises_goes_out_even_when_the_closing_stream_fails(metal: MetalFaultBackend) -> None:
    """The worker's abort (raised by ``emit``) is not replaced by the error the stream's close raises."""

    class Stop(Exception):
        pass

    def emit(text: str) -> None:
        raise Stop

    with pytest.raises(Stop):
        metal.generate(request(f"Hello? {CLOSE_FAIL_MARK}"), emit)
    chunks: list[str] = []
    metal.generate(request("Hello?"), chunks.append)
    assert chunks, "the next case runs"
