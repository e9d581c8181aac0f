"""The real llama.cpp ``llama-server`` serving ``tiny:idefics3`` converted to GGUF + mmproj.

Runs when a ``llama-server`` is found (``$VLMTUI_LLAMA_SERVER``, the PATH, or vlmtui's cache, filled
by ``vlmtui doctor --build-llama-server``); skips with the way to get one otherwise. conftest exports the
one it finds as ``$VLMTUI_LLAMA_SERVER`` before pointing ``VLMTUI_CACHE_DIR`` at the test session's
temporary cache, so the user's (or CI's) build and the converter cached beside it are used; the tiny
GGUF pair itself is built into the session cache.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.functional.llamacpp_helpers import FOUND, needs_server
from vlmtui.llamacpp import llama_server_version

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "sample_images" / "bicycle.jpg"

STARTUP_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server_binary() -> Path:
    assert FOUND is not None
    return FOUND[0]


@pytest.fixture(scope="module")
def tiny_gguf() -> tuple[Path, Path]:
    """The tiny Idefics3 as (model.gguf, mmproj.gguf), converted by llama.cpp's own converter."""
    from vlmtui.worker.demo.tiny_gguf import build_tiny_gguf

    return build_tiny_gguf()


def start_server(binary: Path, model: Path, mmproj: Path | None, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-c", "512",
               "-t", "2", "--no-webui"]
    if mmproj is not None:
        command += ["--mmproj", str(mmproj)]
    with open(log, "wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, SIGKILL it after 10 s; always reaped."""
    if process.poll() is None:
        with _no_such_process():
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with _no_such_process():
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class _no_such_process:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, *_rest: object) -> bool:
        return kind is ProcessLookupError


def wait_healthy(process: subprocess.Popen[bytes], port: int, log: Path) -> list[int]:
    """Poll ``GET /health`` until 200 (503 while the model loads); the status codes seen, in order."""
    import httpx

    seen: list[int] = []
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama-server exited {process.returncode} while starting:\n{tail(log)}")
        try:
            status = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0).status_code
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == 200:
            return seen
        assert status == 503, f"/health answered {status}"
        time.sleep(0.05)
    pytest.fail(f"llama-server not healthy after {STARTUP_TIMEOUT_S} s:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


@needs_server
def test_version_is_reported(server_binary: Path) -> None:
    version = llama_server_version(server_binary)
    assert not version.startswith("unknown"), version
    assert FOUND is not None and FOUND[1] in ("env", "PATH", "cache")


@needs_server
def test_streams_an_image_answer_with_server_timings(
    server_binary: Path, tiny_gguf: tuple[Path, Path], tmp_path: Path
) -> None:
    import httpx

    model, mmproj = tiny_gguf
    port = free_port()
    log = tmp_path / "llama-server.log"
    process = start_server(server_binary, model, mmproj, port, log)
    try:
        statuses = wait_healthy(process, port, log)
        assert statuses[-1] == 200
        image_url = "data:image/jpeg;base64," + base64.b64encode(IMAGE.read_bytes()).decode()
        body = {
            "model": "tiny",
            "stream": True,
            "max_tokens": 8,
            "temperature": 0.0,
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": image_url}},
                {"type": "text", "text": "Describe this image in one sentence."},
            ]}],
        }
        chunks: list[dict[str, Any]] = []
        text = ""
        with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body,
                          timeout=60.0) as response:
            assert response.status_code == 200, response.read().decode(errors="replace")
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line.removeprefix("data: "))
                chunks.append(chunk)
                for choice in chunk.get("choices") or []:
                    text += (choice.get("delta") or {}).get("content") or ""
        content_chunks = [c for c in chunks
                          if any((ch.get("delta") or {}).get("content") for ch in c.get("choices") or [])]
        assert len(content_chunks) >= 2, f"expected a streamed answer, got {chunks}"
        assert text
        timings = next((c["timings"] for c in reversed(chunks) if "timings" in c), None)
        assert isinstance(timings, dict), f"no server timings in the stream: {chunks[-2:]}"
        # prompt_n counts the prompt tokens evaluated, image tokens included (the tiny mmproj makes a
        # few per 32 px tile); predicted_n the generated ones.
        assert timings["prompt_n"] > 0
        assert 1 <= timings["predicted_n"] <= 8
        for key in ("prompt_ms", "predicted_ms", "predicted_per_second"):
            assert key in timings
        assert process.poll() is None, f"llama-server died:\n{tail(log)}"
    finally:
        stop_server(process)
    assert process.returncode is not None


@needs_server
@pytest.mark.parametrize("damage", ["not-gguf", "truncated"])
def test_corrupt_gguf_exits_with_an_error_line(
    server_binary: Path, tiny_gguf: tuple[Path, Path], tmp_path: Path, damage: str
) -> None:
    from vlmtui.llamacpp import llama_server_error_line

    model, _mmproj = tiny_gguf
    bad = tmp_path / "bad.gguf"
    if damage == "not-gguf":
        bad.write_bytes(b"this is not a GGUF file\n" * 64)
    else:
        bad.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    log = tmp_path / "llama-server.log"
    process = start_server(server_binary, bad, None, free_port(), log)
    try:
        code = process.wait(timeout=STARTUP_TIMEOUT_S)
    finally:
        stop_server(process)
    output = log.read_text(errors="replace")
    assert code != 0, output
    line = llama_server_error_line(output)
    assert line, output
    assert "\n" not in line
    assert any(word in line.lower() for word in ("gguf", "model", "failed", "error")), line


def test_error_line_picks_the_loaders_own_complaint() -> None:
    from vlmtui.llamacpp import llama_server_error_line

    output = "\n".join([  # llama-server 0c1e57098 on a file that is not GGUF (abridged)
        "0.00.001.629 I srv  llama_server: initializing ...",
        "0.00.009.582 I srv    load_model: loading model 'bad1.gguf'",
        "0.00.009.719 E gguf_init_from_reader: invalid magic characters: 'this', expected 'GGUF'",
        "0.00.009.853 E llama_model_load: error loading model: llama_model_loader: failed to load model from bad1.gguf",
        "0.00.010.003 E cmn  common_init_: failed to load model 'bad1.gguf'",
        "0.00.010.018 E srv    load_model: failed to load model, 'bad1.gguf'",
        "0.00.010.034 I srv    operator(): operator(): cleaning up before exit...",
        "0.00.016.732 E srv  llama_server: exiting due to model loading error",
    ])
    assert llama_server_error_line(output) == "gguf_init_from_reader: invalid magic characters: 'this', expected 'GGUF'"
    assert llama_server_error_line("0.00.010.003 E cmn  common_init_: failed to load model 'x.gguf'") == (
        "common_init_: failed to load model 'x.gguf'")
    # older builds print bare lines; argument errors too
    assert llama_server_error_line("build: 4000 (abc)\nerror: invalid argument: --bogus\n") == (
        "error: invalid argument: --bogus")
    assert llama_server_error_line("") == ""


def test_find_prefers_env_then_path_then_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from vlmtui import llamacpp

    def fake(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\necho 'version: 9 (abc)' >&2\n")
        path.chmod(0o755)
        return path

    monkeypatch.setenv("VLMTUI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("VLMTUI_LLAMA_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert llamacpp.find_llama_server() is None
    cached = fake(llamacpp.llama_cache_dir() / "llama-server")
    assert llamacpp.find_llama_server() == (cached, "cache")
    on_path = fake(tmp_path / "bin" / "llama-server")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert llamacpp.find_llama_server() == (on_path, "PATH")
    explicit = fake(tmp_path / "elsewhere" / "llama-server")
    monkeypatch.setenv("VLMTUI_LLAMA_SERVER", str(explicit))
    assert llamacpp.find_llama_server() == (explicit.resolve(), "env")
    assert llamacpp.llama_server_version(explicit) == "9 (abc)"
    assert llamacpp.llama_server_version(tmp_path / "missing").startswith("unknown: FileNotFoundError")


def test_build_without_cmake_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from vlmtui.llamacpp_build import LlamaBuildError, build_llama_server

    monkeypatch.setenv("VLMTUI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(LlamaBuildError, match="cmake not found on PATH") as raised:
        build_llama_server()
    assert "\n" not in str(raised.value)


def test_build_reports_a_failed_pip_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import shutil
    import sys

    from vlmtui.llamacpp_build import LlamaBuildError, build_llama_server

    if not (shutil.which("cmake") and shutil.which("c++")):
        pytest.skip("needs cmake and a C++ compiler to get as far as the download")
    monkeypatch.setenv("VLMTUI_CACHE_DIR", str(tmp_path / "cache"))
    failing_python = tmp_path / "python"
    failing_python.write_text("#!/bin/sh\necho 'ERROR: No matching distribution found for llama-cpp-python' >&2\n"
                              "exit 1\n")
    failing_python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(failing_python))
    with pytest.raises(LlamaBuildError) as raised:
        build_llama_server()
    assert str(raised.value) == ("pip download of llama-cpp-python==0.3.36 failed (exit 1): "
                                 "ERROR: No matching distribution found for llama-cpp-python")
