"""A ``tiny:`` demo model never touches the network (issue 19 item 3): the hub endpoint is pointed at a local
listener, HF_HUB_OFFLINE is unset, and the real ``vlmtui`` runs tiny:moondream2 on mlx-vlm (whose processor
asks the hub for moondream/starmie-v1's tokenizer); not one connection may reach the listener."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE_IMAGES
from vlmtui.worker.demo.offline import hub_offline


class Listener:
    """A TCP socket on 127.0.0.1 that counts (and drops) every connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


@pytest.mark.slow
def test_tiny_moondream2_loads_without_a_hub_request(tmp_path: Path) -> None:
    hub = Listener()
    suite = tmp_path / "moon.toml"
    suite.write_text(f'name = "moon"\nimages = ["{SAMPLE_IMAGES}/lake.jpg"]\nprompts = ["Describe."]\n'
                     'max_tokens = 2\n[[models]]\nid = "moon"\nbackend = "mlx-vlm"\npath = "tiny:moondream2"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{hub.port}"
    done = subprocess.run([sys.executable, "-m", "vlmtui", "run", str(suite), "--log", str(tmp_path / "m.jsonl")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    hub.sock.close()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert hub.connections == 0, f"the tiny model's load made {hub.connections} hub request(s)"


def test_hub_offline_switches_the_hub_off_and_puts_it_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with hub_offline():
        assert constants.is_offline_mode() and os.environ["HF_HUB_OFFLINE"] == "1"
    assert not constants.is_offline_mode() and "HF_HUB_OFFLINE" not in os.environ


class _Hub(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_doctor_says_whether_the_hub_answers_and_whether_hub_offline_is_set() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
        done = subprocess.run([sys.executable, "-m", "vlmtui", "doctor"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("Hub:")]
    assert f"{endpoint} reachable (" in line and "HF_HUB_OFFLINE=1 (hub lookups are skipped" in line
    closed = Listener()
    closed.sock.close()
    missing = hub_line_for(f"http://127.0.0.1:{closed.port}")
    assert "not reachable within" in missing and "HF_HUB_OFFLINE" in missing


def hub_line_for(endpoint: str) -> str:
    from vlmtui.hub_reach import hub_line

    saved = os.environ.get("HF_ENDPOINT")
    os.environ["HF_ENDPOINT"] = endpoint
    try:
        return hub_line(timeout_s=2)
    finally:
        if saved is None:
            os.environ.pop("HF_ENDPOINT", None)
        else:
            os.environ["HF_ENDPOINT"] = saved
