"""``vlmtui doctor`` on llama-server: where it is and its version, how to get it, and the cached build reused."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import ROOT
from vlmtui import doctor
from vlmtui.llamacpp import CONVERTER_PARTS, llama_cache_dir

FAKE_SERVER = """#!/bin/sh
case "$1" in
  --version) echo 'version: 0.5.0-dev (build 1, commit 0c1e57098)' >&2; echo 'built with GNU 12.2.0' >&2 ;;
  --list-devices) echo 'Available devices:'; echo '  MTL0: Apple M2 (10922 MiB, 10922 MiB free)' ;;
esac
"""


def fake_server(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FAKE_SERVER)
    path.chmod(0o755)
    return path


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No llama-server anywhere: an empty cache, an empty PATH, no $VLMTUI_LLAMA_SERVER."""
    monkeypatch.setenv("VLMTUI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("VLMTUI_LLAMA_SERVER", raising=False)
    return tmp_path


def test_found_says_where_its_version_and_devices(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = fake_server(bare / "bin" / "llama-server")
    monkeypatch.setenv("VLMTUI_LLAMA_SERVER", str(server))
    status = doctor.llama_server_status()
    assert "found[/] in $VLMTUI_LLAMA_SERVER" in status and str(server) in status
    assert "version 0.5.0-dev (build 1, commit 0c1e57098)" in status
    assert "offloads to MTL0: Apple M2" in status
    monkeypatch.delenv("VLMTUI_LLAMA_SERVER")
    monkeypatch.setenv("PATH", str(server.parent))
    assert "found[/] in PATH" in doctor.llama_server_status()


def test_missing_says_how_to_get_it(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    status = doctor.llama_server_status()
    assert "not found" in status and "vlmtui doctor --build-llama-server" in status and "brew" not in status
    monkeypatch.setattr(sys, "platform", "darwin")
    assert "brew install llama.cpp" in doctor.llama_server_status()


def test_build_reuses_the_cached_binary_at_once(bare: Path) -> None:
    cached = fake_server(llama_cache_dir() / "llama-server")
    for part in CONVERTER_PARTS:
        (cached.parent / "convert" / part).mkdir(parents=True)
    out = io.StringIO()
    assert doctor.build_llama_server(Console(file=out, width=300, color_system=None)) == 0
    assert f"llama-server: found in vlmtui's cache: {cached}" in out.getvalue()


def test_build_leaves_one_on_the_path_as_it_is(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = fake_server(bare / "bin" / "llama-server")
    monkeypatch.setenv("PATH", str(server.parent))
    out = io.StringIO()
    assert doctor.build_llama_server(Console(file=out, width=300, color_system=None)) == 0
    assert out.getvalue().startswith(f"llama-server: found in PATH: {server}")
    assert not llama_cache_dir().exists()


def test_the_flag_is_on_the_command_line(bare: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "vlmtui", "doctor", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert "--build-llama-server" in done.stdout
    failed = subprocess.run([sys.executable, "-m", "vlmtui", "doctor", "--build-llama-server"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert failed.stderr == ("vlmtui: error: cannot build llama-server: cmake not found on PATH "
                             "(brew install cmake · apt-get install cmake · pip install cmake)\n")
