"""The next model's worker imports its framework while the current model's last case runs, and loads nothing
until the current worker has unloaded and gone (issue 17): through the real worker, with a fault model first
and a tiny transformers model second."""

from __future__ import annotations

import os
import sys
from typing import Any

import psutil

from tests.conftest import ROOT, SAMPLE_IMAGES
from tests.functional.helpers import model_spec, scheduler_for
from vlmtui.engine.events import CaseFinished, CaseStarted, Event, MemoryUpdate, ModelLoaded, ModelLoading, Notice
from vlmtui.engine.plan import Case
from vlmtui.engine.scheduler import Scheduler
from vlmtui.suite.loader import GuardConfig
from vlmtui.wire.spec import Expect, ModelSpec

FAULT_WORKER = [sys.executable, "-m", "tests.fixtures.fault_worker"]
EATER = ModelSpec(id="eater", backend="fault", path="fault:0.1:50")
TINY = model_spec(id="tiny-hf", backend="transformers", path="tiny:idefics3")


def _cases() -> list[Case]:
    image = SAMPLE_IMAGES / "bicycle.jpg"
    # 4000 tokens at 50 ms: far longer than any import; the test ends it once the warm-up is seen.
    return [Case("eater/long", EATER, "eat", None, 0, 4000, 0.0, Expect()),
            Case("eater/b", EATER, "eat", None, 0, 3, 0.0, Expect()),
            Case("tiny-hf/bicycle", TINY, "Describe this image.", image, 0, 8, 0.0, Expect())]


class Watch:
    """What the test sees, in order; aborts the long case once the next worker says it is warm."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.events: list[Event] = []
        self.eater_pid: int | None = None
        self.eater_alive_at_tiny_load: bool | None = None
        self.warm_pids: set[int] = set()
        self.tiny_pid: int | None = None

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        session = self.scheduler.session
        if isinstance(event, CaseStarted) and event.case_id.startswith("eater/"):
            self.eater_pid = session.pid
        if isinstance(event, Notice) and "warmed transformers" in event.message:
            spare = session.spares.spare  # the process that warmed, followed to the load
            if spare is not None and spare.client.pid is not None:
                self.warm_pids.add(spare.client.pid)
            self.scheduler.abort_current("the overlap is seen")
        if isinstance(event, ModelLoading) and event.model == "tiny-hf":
            self.eater_alive_at_tiny_load = self.eater_pid is not None and psutil.pid_exists(self.eater_pid)
        if isinstance(event, ModelLoaded) and event.model == "tiny-hf":
            self.tiny_pid = session.pid

    def index(self, kind: type, **match: Any) -> int:
        return next(i for i, e in enumerate(self.events)
                    if isinstance(e, kind) and all(getattr(e, k) == v for k, v in match.items()))

    def warmed(self) -> int:
        return next(i for i, e in enumerate(self.events)
                    if isinstance(e, Notice) and "warmed transformers" in e.message)


async def test_the_next_models_import_overlaps_the_last_case_and_waits_for_the_unload() -> None:
    guard = GuardConfig(budget="8GiB", sample_ms=100, grace_s=30.0)
    scheduler, _ = scheduler_for(_cases(), guard=guard, worker_argv=FAULT_WORKER,
                                 worker_env={**os.environ, "PYTHONPATH": str(ROOT)})
    scheduler.session.spares.enabled = True  # whatever this machine's default (warm_by_default)
    watch = Watch(scheduler)
    scheduler.subscribe(watch)
    counts = await scheduler.run()

    assert counts == {"passed": 2, "aborted": 1}, [(e.result.case_id, e.result.error) for e in watch.events
                                                    if isinstance(e, CaseFinished)]
    warmed = watch.warmed()  # "next worker: warmed transformers: imported torch, … in 9.1 s"
    print(watch.events[warmed])
    # The import ran while the eater's last case ran: between its start and its end.
    assert watch.index(CaseStarted, case_id="eater/long") < warmed
    long_end = next(i for i, e in enumerate(watch.events)
                    if isinstance(e, CaseFinished) and e.result.case_id == "eater/long")
    assert warmed < long_end < watch.index(CaseStarted, case_id="eater/b") < watch.index(ModelLoading, model="tiny-hf")
    # The warmed worker is the one that loaded the model, and only after the eater's worker had gone: no
    # memory sample can see two models resident.
    assert watch.eater_alive_at_tiny_load is False, "the last model's worker had exited before the next load"
    assert watch.tiny_pid in watch.warm_pids
    tiny_start = watch.index(ModelLoading, model="tiny-hf")
    assert [e for e in watch.events[tiny_start:] if isinstance(e, MemoryUpdate) and e.worker_rss], "sampled"
    assert scheduler.latest()["tiny-hf/bicycle"].status == "passed"


async def test_a_model_of_the_same_backend_reuses_the_worker() -> None:
    other = ModelSpec(id="eater2", backend="fault", path="fault:0.1:5")
    cases = [Case("eater/a", EATER, "eat", None, 0, 3, 0.0, Expect()),
             Case("eater2/a", other, "eat", None, 0, 3, 0.0, Expect())]
    scheduler, recorder = scheduler_for(cases, worker_argv=FAULT_WORKER,
                                        worker_env={**os.environ, "PYTHONPATH": str(ROOT)})
    scheduler.session.spares.enabled = True
    pids: list[int | None] = []
    scheduler.subscribe(lambda e: pids.append(scheduler.session.pid) if isinstance(e, CaseStarted) else None)
    assert await scheduler.run() == {"passed": 2}
    assert len(set(pids)) == 1, "its framework is imported there: no second worker"
    assert not [n for n in recorder.of(Notice) if "next worker" in n.message]


def test_engine_and_worker_name_the_same_variable() -> None:
    from vlmtui.engine.spare_worker import WARM_ENV as ENGINE_SIDE
    from vlmtui.worker.warm import WARM_ENV as WORKER_SIDE

    assert ENGINE_SIDE == WORKER_SIDE  # the engine may not import the worker: two constants, one name


def test_the_next_model_is_the_one_take_will_load_after_the_current() -> None:
    from vlmtui.engine.case_queue import CaseQueue

    tiny_mlx = ModelSpec(id="tiny-mlx", backend="mlx-vlm", path="tiny:idefics3")
    skipped = Case("tiny-mlx/text", tiny_mlx, "Hi", None, 0, 8, 0.0, Expect(), skip_reason="vision-only")
    queue = CaseQueue([*_cases(), skipped, Case("tiny-mlx/a", tiny_mlx, "Hi", None, 0, 8, 0.0, Expect())])
    assert queue.next_model(EATER) == TINY
    first = queue.take(None)
    assert first is not None and first.model == EATER and queue.next_model(EATER) == TINY
    queue.model("tiny-hf").load_error = "cannot load"
    assert queue.next_model(EATER) is None, "a model that cannot load gets no worker ahead"
    queue.model("tiny-hf").load_error = None
    other_eater = ModelSpec(id="eater2", backend="fault", path="fault:0.1:5")
    assert queue.next_model(other_eater) == TINY, "the first model of another backend, not one of the same"
    for _ in range(2):
        queue.take("eater" if _ == 0 else "tiny-hf")
    assert queue.next_model(TINY) == tiny_mlx, "past its skipped case"


def test_warm_ups_follow_the_switch_else_the_cores() -> None:
    from vlmtui.engine.spare_worker import warm_by_default

    assert warm_by_default({}, cores=8) and not warm_by_default({}, cores=2)
    assert warm_by_default({"VLMTUI_WARM_WORKERS": "1"}, cores=2)
    assert not warm_by_default({"VLMTUI_WARM_WORKERS": "0"}, cores=8)


async def test_two_tiny_models_the_second_starts_warming_while_the_first_runs() -> None:
    tiny_mlx = model_spec(id="tiny-mlx", backend="mlx-vlm", path="tiny:idefics3")
    images = sorted(SAMPLE_IMAGES.glob("*"))
    cases = [Case(f"{model.id}/{image.name}", model, "Describe this image.", image, 0, 8, 0.0, Expect())
             for model in (TINY, tiny_mlx) for image in images]
    scheduler, recorder = scheduler_for(cases)
    scheduler.session.spares.enabled = True
    seen: dict[str, object] = {}

    def watch(event: Event) -> None:
        spare = scheduler.session.spares.spare
        if isinstance(event, CaseStarted) and event.case_id.startswith("tiny-hf/"):
            seen["hf_pid"] = scheduler.session.pid
            if spare is not None:
                seen.setdefault("spare", (spare.backend, spare.client.pid, spare.started_at))
        if isinstance(event, ModelLoading) and event.model == "tiny-mlx":
            pid = seen.get("hf_pid")
            seen["hf_alive_at_mlx_load"] = isinstance(pid, int) and psutil.pid_exists(pid)
        if isinstance(event, ModelLoaded) and event.model == "tiny-mlx":
            seen["mlx_pid"] = scheduler.session.pid

    scheduler.subscribe(watch)
    assert await scheduler.run() == {"passed": 2 * len(images)}
    backend, spare_pid, started_at = seen["spare"]  # type: ignore[misc]
    assert backend == "mlx-vlm", "the mlx worker was started while the transformers model ran"
    last_hf = max(e.result.ended_at for e in recorder.of(CaseFinished) if e.result.case_id.startswith("tiny-hf/"))
    assert started_at < last_hf
    assert seen["hf_alive_at_mlx_load"] is False, "the transformers worker had gone before the mlx load"
    assert seen["mlx_pid"] == spare_pid, "the warmed worker loaded the mlx model"
