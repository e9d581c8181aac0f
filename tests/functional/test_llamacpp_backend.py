"""``server = "llama.cpp"`` for real: suites run through vlmtui's engine against llama-server on the tiny GGUF.

A streamed answer with the server's own timings and its RSS gauged; kill -9 of vlmtui leaves no
llama-server and frees the port; a port another process holds is left to it and another is taken; a
broken GGUF fails its cases with the server's own error line.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT
from tests.functional.helpers import cases_of, model_spec, scheduler_for, write_suite
from tests.functional.llamacpp_helpers import needs_server
from tests.functional.test_cli import assert_all_gone, descendants, vlmtui, wait_for_log
from tests.functional.test_openai_backend import port_free
from vlmtui.engine.events import CaseFinished, MemoryUpdate, ModelLoaded, Notice, TokenReceived

IMAGE = ROOT / "sample_images" / "bicycle.jpg"

SERVED = """
prompts = ["Describe this image in one sentence."]
text_prompts = ["What is the capital of France?"]
max_tokens = {max_tokens}

[guard]
sample_ms = 50

[[models]]
id = "tiny-llama"
backend = "openai"
server = "llama.cpp"
path = "{path}"
context = 1024
"""


@needs_server
async def test_a_suite_streams_with_server_timings_and_the_server_rss_gauged(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, SERVED.format(max_tokens=24, path="tiny:idefics3"), images=str(IMAGE))
    scheduler, recorder = scheduler_for(cases_of(suite), suite_name="test")
    counts = await scheduler.run()
    assert counts == {"passed": 2}, [e.result.error for e in recorder.of(CaseFinished)]
    loaded = recorder.of(ModelLoaded)
    assert len(loaded) == 1
    assert any("llama-server started in" in note for note in loaded[0].notes), loaded[0].notes
    assert len(recorder.of(TokenReceived)) >= 1, "the answer streams"
    for finished in recorder.of(CaseFinished):
        metrics = finished.result.metrics
        assert metrics["metrics_source"] == "server", metrics
        assert metrics["prompt_tokens"] > 0 and 0 < metrics["gen_tokens"] <= 24
        assert metrics["gen_tps"] > 0 and metrics["prompt_tps"] > 0
        assert metrics["ttft_s"] > 0 and metrics["client_ttft_s"] >= metrics["ttft_s"] > 0, metrics
        assert finished.result.output
        print(f"\n{finished.result.case_id}: {metrics}")
    image_case = next(e.result for e in recorder.of(CaseFinished) if e.result.case_id.startswith("tiny-llama/bic"))
    text_case = next(e.result for e in recorder.of(CaseFinished) if "/text/" in e.result.case_id)
    assert image_case.metrics["prompt_tokens"] > text_case.metrics["prompt_tokens"], "image tokens count"
    gauged = [m.framework for m in recorder.of(MemoryUpdate) if m.framework]
    assert any(f["framework"] == "server-rss" and f["guarded_bytes"] > 10_000_000 for f in gauged), gauged[-3:]
    loading = [n.message for n in recorder.of(Notice) if "loading" in n.message]
    print(f"notices while loading: {loading}")


@needs_server
def test_kill_9_of_vlmtui_leaves_no_llama_server_and_frees_its_port(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, SERVED.format(max_tokens=2000, path="tiny:idefics3"))
    log = tmp_path / "log.jsonl"
    proc = vlmtui("run", str(suite), "--headless", "--log", str(log))
    try:
        wait_for_log(log, lambda lines: any(line["event"] == "case_start" for line in lines))
        family = descendants(proc.pid)
        servers = [p for p in family if Path(p.cmdline()[0]).name == "llama-server"]
        assert len(servers) == 1, [" ".join(p.cmdline()) for p in family]
        argv = servers[0].cmdline()
        port = int(argv[argv.index("--port") + 1])
        assert argv[argv.index("--host") + 1] == "127.0.0.1"
        assert not port_free(port)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert_all_gone(family)
        deadline = time.monotonic() + 10
        while not port_free(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert port_free(port), f"port {port} still taken after the server went"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=60)


# Someone else's server: answers 200 to every GET, as another llama-server on that port would.
FOREIGN = """
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture
def foreign_server() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A process of someone else's holding a loopback port, and that port."""
    process = subprocess.Popen([sys.executable, "-c", FOREIGN], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    yield process, port
    process.terminate()
    process.wait(timeout=10)


@needs_server
def test_a_port_already_taken_is_left_alone_and_another_is_used(
    monkeypatch: pytest.MonkeyPatch, foreign_server: tuple[subprocess.Popen[str], int]
) -> None:
    import httpx

    from vlmtui.worker import servers
    from vlmtui.worker.backends.base import GenerationRequest
    from vlmtui.worker.backends.openai import OpenAIBackend

    foreign, taken = foreign_server
    real = servers.free_loopback_port
    offered: list[int] = []

    def taken_first() -> int:
        port = taken if not offered else real()
        offered.append(port)
        return port

    monkeypatch.setattr(servers, "free_loopback_port", taken_first)
    backend = OpenAIBackend(model_spec(id="tiny-llama", backend="openai", path="tiny:idefics3", server="llama.cpp",
                                       context=1024))
    try:
        backend.load()
        assert backend.base_url is not None
        used = int(backend.base_url.rsplit(":", 1)[1])
        assert offered[0] == taken and used == offered[-1] != taken, offered
        server = psutil.Process(backend.server_pid)
        assert "llama-server" in " ".join(server.cmdline())
        chunks: list[str] = []
        stats = backend.generate(GenerationRequest("c", "Hello?", None, 4, 0.0, lambda: False), chunks.append)
        assert chunks and stats.metrics_source == "server"
    finally:
        backend.unload()
    assert foreign.poll() is None, "someone else's server was stopped"
    assert httpx.get(f"http://127.0.0.1:{taken}/health", timeout=5, trust_env=False).status_code == 200


@needs_server
@pytest.mark.parametrize("damage", ["not-gguf", "truncated"])
async def test_a_bad_gguf_fails_its_cases_with_the_servers_own_error_line(tmp_path: Path, damage: str) -> None:
    bad = tmp_path / "bad.gguf"
    if damage == "not-gguf":
        bad.write_bytes(b"this is not a GGUF file\n" * 64)
    else:
        from vlmtui.worker.demo.tiny_gguf import build_tiny_gguf

        model, _mmproj = build_tiny_gguf()
        bad.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    suite = write_suite(tmp_path, SERVED.format(max_tokens=4, path="./bad.gguf"), images=str(IMAGE))
    scheduler, recorder = scheduler_for(cases_of(suite), suite_name="test")
    counts = await scheduler.run()
    assert counts == {"failed": 2}
    errors = {e.result.error for e in recorder.of(CaseFinished)}
    assert len(errors) == 1
    error = errors.pop()
    print(f"\n{damage}: {error}")
    assert "\n" not in error and len(error) < 400
    assert error.startswith("llama-server exited with code"), error
    expected = {"not-gguf": r"invalid magic characters", "truncated": r"gguf|tensor|file|model"}[damage]
    assert re.search(expected, error, re.I), error
    assert " | " not in error, "one line of the server's, not its tail"
