"""The openai backend against the real ``python -m mlx_vlm.server`` serving a tiny model, and the reaper
that keeps every server it starts from outliving its owner."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.helpers import model_spec
from vlmtui.wire.spec import ModelSpec
from vlmtui.worker.backends.base import BackendError, GenerationRequest
from vlmtui.worker.backends.openai import OpenAIBackend
from vlmtui.worker.images import open_image
from vlmtui.worker.reaper import group_alive
from vlmtui.worker.servers import ManagedServer, free_loopback_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MLX_SERVER = ("{python}", "-m", "mlx_vlm.server", "--host", "127.0.0.1", "--port", "{port}",
              "--model", "{model_path}", "--log-level", "WARNING")


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The tiny-model cache: the session's (set by conftest) or a temporary one of this module."""
    before = os.environ.get("VLMTUI_CACHE_DIR")
    path = before or str(tmp_path_factory.mktemp("vlmtui-cache"))
    os.environ["VLMTUI_CACHE_DIR"] = path
    yield path
    if before is None:
        os.environ.pop("VLMTUI_CACHE_DIR", None)


def tiny_spec(**overrides: object) -> ModelSpec:
    values: dict[str, object] = {"id": "tiny-served", "backend": "openai", "path": "tiny:smolvlm",
                                 "command": MLX_SERVER, "startup_timeout_s": 180.0}
    values.update(overrides)
    return model_spec(**values)


def request(prompt: str, image_path: Path | None = None, max_tokens: int = 8) -> GenerationRequest:
    image = open_image(image_path, 256) if image_path else None
    return GenerationRequest(case_id="c1", prompt=prompt, image=image, max_tokens=max_tokens,
                             temperature=0.0, should_stop=lambda: False)


def port_free(port: int) -> bool:
    """Whether a server could bind ``port`` now (with SO_REUSEADDR, as servers do)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_until(predicate: object, timeout_s: float) -> float:
    """Seconds until ``predicate()`` held; fails the test after ``timeout_s``."""
    assert callable(predicate)
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"still not true after {timeout_s} s")
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def served() -> Iterator[OpenAIBackend]:
    """One tiny model served by mlx_vlm.server for the generation tests."""
    backend = OpenAIBackend(tiny_spec())
    backend.load()
    yield backend
    backend.unload()


class TestGeneration:
    def test_load_reports_the_server_and_model(self, served: OpenAIBackend) -> None:
        assert served.base_url is not None and served.base_url.startswith("http://127.0.0.1:")
        assert served.model_name is not None and Path(served.model_name).is_dir()
        assert served.server_pid is not None and group_alive(served.server_pid)
        assert served.framework_memory() is None

    @pytest.mark.parametrize("image", [ROOT / "sample_images" / "bicycle.jpg", None], ids=["image", "text"])
    def test_streams_chunks_with_metrics(self, served: OpenAIBackend, image: Path | None) -> None:
        chunks: list[str] = []
        started = time.perf_counter()
        first: list[float] = []

        def emit(text: str) -> None:
            first.append(time.perf_counter())
            chunks.append(text)

        stats = served.generate(request("Describe this image." if image else "Say hello.", image), emit)
        total = time.perf_counter() - started
        assert chunks and all(chunks)
        assert stats.gen_tokens is not None and 0 < stats.gen_tokens <= 8
        assert stats.prompt_tokens is not None and stats.prompt_tokens > 0
        assert stats.prompt_tps is not None and stats.prompt_tps > 0
        if stats.gen_tokens > 1:
            assert stats.gen_tps is not None and stats.gen_tps > 0
        print(f"\n{'image' if image else 'text'}: ttft {first[0] - started:.3f} s, total {total:.3f} s, "
              f"{stats.prompt_tokens} prompt tok at {stats.prompt_tps:.0f} tok/s, "
              f"{stats.gen_tokens} gen tok at {stats.gen_tps or 0:.1f} tok/s, chunks {len(chunks)}, "
              f"peak {stats.peak_memory_bytes}")

    def test_an_abort_from_emit_stops_the_stream_and_the_server_goes_on(self, served: OpenAIBackend) -> None:
        class Abort(Exception):
            pass

        def emit(_text: str) -> None:
            raise Abort

        with pytest.raises(Abort):
            served.generate(request("Say hello.", max_tokens=32), emit)
        chunks: list[str] = []
        served.generate(request("Say hello again.", max_tokens=4), chunks.append)
        assert chunks


def test_unload_stops_the_server_group_and_frees_its_port() -> None:
    backend = OpenAIBackend(tiny_spec())
    info = backend.load()
    assert info.device.startswith("server http://127.0.0.1:")
    assert info.versions["openai"] and info.versions["server"].startswith("mlx_vlm/")
    pid = backend.server_pid
    assert pid is not None and backend.base_url is not None
    port = int(backend.base_url.rsplit(":", 1)[1])
    assert not port_free(port)
    started = time.monotonic()
    backend.unload()
    stop_s = time.monotonic() - started
    assert not group_alive(pid)
    assert port_free(port)
    assert backend.server_pid is None
    print(f"\nunload: server group gone and port free after {stop_s:.2f} s")


OWNER = textwrap.dedent("""
    import sys, time
    from vlmtui.worker.servers import ManagedServer
    server = ManagedServer(sys.argv[2:], startup_timeout_s=180, model_path=sys.argv[1])
    server.start()
    print(server.server_pid, server.port, flush=True)
    time.sleep(600)
""")


def test_kill_9_of_the_owner_stops_the_server() -> None:
    from vlmtui.worker.demo.tiny import tiny_model_dir

    model_dir = str(tiny_model_dir("tiny:smolvlm", "openai"))
    owner = subprocess.Popen([sys.executable, "-c", OWNER, model_dir, *MLX_SERVER],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()
        assert line, "the owner process died before the server answered"
        pid, port = (int(v) for v in line.split())
        assert group_alive(pid) and not port_free(port)
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        gone_s = wait_until(lambda: not group_alive(pid) and port_free(port), 10.0)
        print(f"\nkill -9 of the owner: server group gone and port free after {gone_s:.2f} s")
    finally:
        owner.kill()
        owner.wait()


FORKING_OWNER = textwrap.dedent("""
    import os, sys, time
    from vlmtui.worker.servers import ManagedServer
    server = ManagedServer(["{python}", "-m", "http.server", "--bind", "127.0.0.1", "{port}"],
                           health_url_template="http://127.0.0.1:{port}/", startup_timeout_s=30)
    server.start()
    if os.fork() == 0:  # a child that keeps the reaper's stdin pipe open after the owner dies
        time.sleep(30)
        os._exit(0)
    print(server.server_pid, server.port, flush=True)
    time.sleep(600)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux only")
def test_the_owner_dying_stops_the_server_even_if_a_fork_holds_the_pipe() -> None:
    owner = subprocess.Popen([sys.executable, "-c", FORKING_OWNER], stdout=subprocess.PIPE, text=True,
                             cwd=ROOT, start_new_session=True)
    try:
        assert owner.stdout is not None
        pid, port = (int(v) for v in owner.stdout.readline().split())
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        wait_until(lambda: not group_alive(pid) and port_free(port), 5.0)
    finally:
        os.killpg(owner.pid, signal.SIGKILL)  # the forked child
        owner.wait()


def test_a_server_started_from_a_thread_outlives_that_thread() -> None:
    """Linux sends the parent-death signal when the spawning *thread* exits; that must not stop it."""
    server = ManagedServer(["{python}", "-m", "http.server", "--bind", "127.0.0.1", "{port}"],
                           health_url_template="http://127.0.0.1:{port}/", startup_timeout_s=30)
    thread = threading.Thread(target=server.start)
    thread.start()
    thread.join()
    try:
        time.sleep(0.5)
        assert server.running and server.server_pid is not None and group_alive(server.server_pid)
    finally:
        server.stop()


def test_a_port_taken_before_the_server_binds_it_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = [taken.getsockname()[1]]
        real = free_loopback_port
        monkeypatch.setattr("vlmtui.worker.servers.free_loopback_port", lambda: ports.pop() if ports else real())
        server = ManagedServer(["{python}", "-m", "http.server", "--bind", "127.0.0.1", "{port}"],
                               health_url_template="http://127.0.0.1:{port}/", startup_timeout_s=30)
        with server:
            assert not ports and server.port != taken.getsockname()[1] and server.running


def test_a_command_that_exits_at_once_fails_quickly_with_its_output() -> None:
    spec = tiny_spec(path="", command=("{python}", "-c", "import sys; print('boom'); sys.exit(3)"),
                     startup_timeout_s=60.0)
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        OpenAIBackend(spec).load()
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "boom" in message and "code 3" in message and "\n" not in message


HANGS = textwrap.dedent("""
    import os, socket, sys, time
    sock = socket.socket()
    sock.bind(("127.0.0.1", int(sys.argv[1])))
    sock.listen()
    print("hanging pid", os.getpid(), flush=True)
    time.sleep(600)
""")


def test_a_server_that_never_answers_times_out() -> None:
    spec = tiny_spec(path="", command=("{python}", "-c", HANGS, "{port}"), startup_timeout_s=2.0)
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        OpenAIBackend(spec).load()
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert 2.0 <= elapsed < 8, elapsed
    assert "within 2 s" in message and "hanging pid" in message and "\n" not in message
    pid = int(message.rsplit("hanging pid", 1)[1].split()[0])
    assert not group_alive(pid)


def test_the_server_pid_is_known_while_the_server_starts() -> None:
    # The worker samples the server's RSS during the load: a server loading its model is not yet healthy.
    spec = tiny_spec(path="", command=("{python}", "-c", HANGS, "{port}"), startup_timeout_s=3.0)
    backend = OpenAIBackend(spec)
    failed: list[BaseException] = []

    def load() -> None:
        try:
            backend.load()
        except BaseException as exc:
            failed.append(exc)

    loader = threading.Thread(target=load)
    loader.start()
    wait_until(lambda: backend.server_pid is not None or not loader.is_alive(), 10)
    pid = backend.server_pid
    assert loader.is_alive() and pid is not None and group_alive(pid), "no server_pid while it started"
    loader.join(15)
    assert failed and isinstance(failed[0], BackendError)
    assert backend.server_pid is None and not group_alive(pid)


def test_nothing_listening_at_base_url_is_one_line() -> None:
    port = free_loopback_port()
    spec = tiny_spec(command=(), base_url=f"http://127.0.0.1:{port}/v1/")
    with pytest.raises(BackendError) as caught:
        OpenAIBackend(spec).load()
    message = str(caught.value)
    assert message.startswith(f"no OpenAI-compatible server answers at http://127.0.0.1:{port}: ")
    assert "\n" not in message


def test_an_external_server_is_used_and_left_running() -> None:
    from vlmtui.worker.demo.tiny import tiny_model_dir

    model_dir = str(tiny_model_dir("tiny:smolvlm", "openai"))
    with ManagedServer(list(MLX_SERVER), startup_timeout_s=180, model_path=model_dir) as server:
        assert server.base_url is not None
        backend = OpenAIBackend(tiny_spec(command=(), path="", base_url=server.base_url + "/v1"))
        backend.load()
        assert backend.model_name == model_dir and backend.server_pid is None
        chunks: list[str] = []
        backend.generate(request("Say hello.", max_tokens=4), chunks.append)
        backend.unload()
        assert chunks and server.running
