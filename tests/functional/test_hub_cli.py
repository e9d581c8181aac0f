"""``vlmtui doctor SUITE`` and ``vlmtui run --download-only SUITE`` from the real CLI against a local hub (issue 18)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.fake_hub import FakeHub, FakeRepo, serve_hub
from vlmtui.worker.demo.tiny import tiny_model_dir

SUITE = """
name = "hub-cli"
text_prompts = ["Hello?"]

[[models]]
id = "smol"
backend = "transformers"
path = "org/tiny-smol"

[[models]]
id = "local"
backend = "transformers"
path = "tiny:idefics3"
"""


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    tiny = tiny_model_dir("tiny:idefics3", "transformers")
    with serve_hub({"org/tiny-smol": FakeRepo(tiny), "org/gated": FakeRepo(tiny, status=401)}) as served:
        yield served


def vlmtui(args: list[str], hub: FakeHub, hf_home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(hf_home), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "vlmtui", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


def test_doctor_lists_sizes_and_download_only_fills_the_cache(tmp_path: Path, hub: FakeHub) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE)
    home = tmp_path / "hf"

    before = vlmtui(["doctor", str(suite)], hub, home)
    assert before.returncode == 0, before.stderr
    assert "0 of 7 files" in before.stdout and "tiny model, built here" in before.stdout
    assert "To download: 960 KiB for 1 of 2 model(s)" in before.stdout
    assert "│ ~257.1 MiB │ yes  │" in before.stdout, "the memory it needs, and that it fits"
    assert hub.file_gets() == [], "doctor only asks for the sizes"

    fetched = vlmtui(["run", "--download-only", str(suite)], hub, home)
    assert fetched.returncode == 0, fetched.stderr
    assert "downloaded smol: 960 KiB" in fetched.stdout
    assert "local: nothing to download (tiny:idefics3)" in fetched.stdout
    gets = len(hub.file_gets())
    assert gets == 7

    after = vlmtui(["doctor", str(suite)], hub, home)
    assert "To download: 0 B for 0 of 2 model(s)" in after.stdout, after.stdout
    again = vlmtui(["run", "--download-only", str(suite)], hub, home)
    assert again.returncode == 0 and "smol: all files in the Hugging Face cache" in again.stdout
    assert len(hub.file_gets()) == gets


def test_download_only_checks_the_fit_first_and_fails_in_one_line(tmp_path: Path, hub: FakeHub) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE + '\n[[models]]\nid = "gated"\nbackend = "transformers"\npath = "org/gated"\n')
    home = tmp_path / "hf"
    small = vlmtui(["run", "--download-only", "--budget", "64MiB", "--only", "smol", str(suite)], hub, home)
    assert small.returncode == 0, small.stderr
    assert "smol: skipped by preflight: needs ~" in small.stdout
    assert "force = true downloads and loads anyway" in small.stdout
    assert hub.file_gets() == [] and hub.body_bytes == 0

    doctor = vlmtui(["doctor", str(suite)], hub, home)
    assert doctor.returncode == 0
    assert "  gated: the hub refused org/gated (401): Access to model org/gated is restricted." in doctor.stdout
    assert doctor.stdout.rstrip().endswith("; 1 could not be sized (above)")

    gated = vlmtui(["run", "--download-only", "--only", "gated", str(suite)], hub, home)
    assert gated.returncode == 1
    failure = [line for line in gated.stdout.splitlines() if "failed:" in line]
    assert failure == ["  download of gated failed: the hub refused org/gated (401): Access to model org/gated is "
                       "restricted. You must have access to it and be authenticated to access it. Please log in.; "
                       "log in (hf auth login) or set HF_TOKEN"], gated.stdout


def test_doctor_sizes_a_gguf_repo_by_the_quantisation_llama_server_loads(tmp_path: Path) -> None:
    repo = tmp_path / "gguf-repo"
    repo.mkdir()
    for name, size in (("smol-Q8_0.gguf", 80_000), ("smol-Q4_K_M.gguf", 40_000), ("smol-F16.gguf", 160_000),
                       ("mmproj-smol-f16.gguf", 6_000), ("README.md", 100)):
        (repo / name).write_bytes(b"\0" * size)
    suite = tmp_path / "suite.toml"
    suite.write_text('name = "gguf"\ntext_prompts = ["Hello?"]\n\n[[models]]\nid = "gguf"\nbackend = "openai"\n'
                     'server = "llama.cpp"\npath = "org/smol-gguf"\n')
    with serve_hub({"org/smol-gguf": FakeRepo(repo)}) as hub:
        found = vlmtui(["doctor", str(suite)], hub, tmp_path / "hf")
    assert found.returncode == 0, found.stderr
    row = next(line for line in found.stdout.splitlines() if "org/smol-gguf@main" in line)
    assert "45 KiB" in row and "llama-server's own cache" in row, row  # Q4_K_M (40,000) + the projector (6,000)
    assert row.rstrip("│ ").endswith("│ —     │ —"), "no fit check: llama-server's memory is not the worker's"
    assert "To download: 0 B for 0 of 1 model(s)" in found.stdout, "llama-server fetches it itself"
