"""Every peak figure says what it measured, and TTFT is the first token's, through the real worker on tiny
models: mlx-vlm (MLX active), transformers on CPU (the worker's RSS) and a managed llama-server (the server
process tree's RSS)."""

from __future__ import annotations

import pytest

from tests.conftest import SAMPLE_IMAGES
from tests.functional.helpers import model_spec
from tests.functional.worker_driver import WorkerDriver
from vlmtui.llamacpp import find_llama_server
from vlmtui.wire import protocol as p

IMAGE = str(SAMPLE_IMAGES / "bicycle.jpg")


def _one_case(spec: dict[str, object], max_tokens: int = 24) -> dict[str, object]:
    worker = WorkerDriver()
    try:
        worker.send(p.Load(model=model_spec(**spec).to_dict()))
        loaded = worker.wait_for(p.Loaded, p.LoadFailed, timeout_s=600)
        assert isinstance(loaded, p.Loaded), getattr(loaded, "error", loaded)
        worker.send(p.Run(case_id="m/c", prompt="Describe this image.", image=IMAGE, max_tokens=max_tokens))
        result = worker.wait_for(p.Result, timeout_s=300)
        assert result.outcome == "completed", result.error
        return dict(result.metrics)
    finally:
        worker.close()


def test_moondream2_ttft_is_its_first_token_and_its_peak_mlx_active() -> None:
    # Before: ttft_s 1.084 of total_s 1.091 (the detokenizer gave all 24 tokens' text in the last step).
    metrics = _one_case({"id": "m", "backend": "mlx-vlm", "path": "tiny:moondream2"})
    assert metrics["peak_kind"] == "mlx-active" and metrics["peak_memory_bytes"]
    ttft, total = float(metrics["ttft_s"]), float(metrics["total_s"])  # type: ignore[arg-type]
    gen_tokens, gen_tps = int(metrics["gen_tokens"]), float(metrics["gen_tps"])  # type: ignore[arg-type]
    # The decoding after the first token happens after TTFT: TTFT leaves room for it.
    assert ttft + (gen_tokens - 1) / gen_tps <= total * 1.05, metrics
    assert ttft < total - 0.5 * (gen_tokens - 1) / gen_tps, metrics


def test_transformers_on_cpu_reports_the_workers_rss() -> None:
    metrics = _one_case({"id": "m", "backend": "transformers", "path": "tiny:idefics3"})
    assert metrics["peak_kind"] == "rss"
    assert int(metrics["peak_memory_bytes"]) > 100 << 20, "a process with torch imported"  # type: ignore[arg-type]
    assert 0 < float(metrics["ttft_s"]) < float(metrics["total_s"])  # type: ignore[arg-type]


@pytest.mark.skipif(find_llama_server() is None, reason="no llama-server here")
def test_a_server_case_reports_the_server_trees_rss() -> None:
    metrics = _one_case({"id": "m", "backend": "openai", "path": "tiny:idefics3", "server": "llama.cpp",
                         "context": 1024})
    assert metrics["peak_kind"] == "server-rss" and int(metrics["peak_memory_bytes"]) > 1 << 20  # type: ignore[arg-type]
    assert metrics["metrics_source"] == "server"
    assert float(metrics["e2e_tps"]) <= float(metrics["gen_tps"]), metrics  # type: ignore[arg-type]


def test_tree_peak_catches_a_peak_between_the_samplers_readings() -> None:
    import subprocess
    import sys
    import time

    from vlmtui.worker.tree_peak import TreePeak

    script = ("import sys; b = bytearray(96 << 20); print('up', flush=True); sys.stdin.readline(); del b; "
              "print('down', flush=True); sys.stdin.readline()")
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        with TreePeak(child.pid, interval_s=0.005) as peak:
            assert child.stdout.readline() == "up\n"
            deadline = time.monotonic() + 30  # the poller, not this thread, must see the 96 MiB
            while peak.bytes < 96 << 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            child.stdin.write("free\n")
            child.stdin.flush()
            assert child.stdout.readline() == "down\n"
            after = peak.read()
        assert peak.bytes >= 96 << 20, "the 96 MiB held between two events"
        assert after < peak.bytes - (64 << 20), "and given back before the end: the peak is not the last reading"
    finally:
        child.stdin.close()
        child.wait(timeout=30)
