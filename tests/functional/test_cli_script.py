"""The command line a script can trust (issue 19), run as a script runs it: the real ``vlmtui`` in a
subprocess. Models that cannot load (a path that does not exist) keep each run to a few seconds."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE_IMAGES

GHOSTS = """name = "ghosts"
images = ["{images}"]
prompts = ["Describe this image."]

[[models]]
id = "ghost-a"
backend = "transformers"
path = "{tmp}/no-such-model"

[[models]]
id = "{second}"
backend = "transformers"
path = "{tmp}/no-such-model"
"""


def ghosts(tmp_path: Path, *, name: str = "ghosts.toml", images: str = "", second: str = "ghost-b") -> Path:
    """A suite of two models that fail to load at once: each case fails in ~1 s without building a model."""
    path = tmp_path / name
    path.write_text(GHOSTS.format(images=images or f"{SAMPLE_IMAGES}/still-life.png", tmp=tmp_path, second=second))
    return path


def vlmtui(*args: str, stderr: int | None = subprocess.PIPE, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vlmtui", *args], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                          stderr=stderr, timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vlmtui: error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def log_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------- small things (item 6)


def test_a_mistyped_command_suggests_the_right_one() -> None:
    done = vlmtui("rn")
    assert done.returncode == 2
    line = one_error_line(done)
    assert "did you mean 'vlmtui run'?" in line and "vlmtui vlmtui" not in line


# ----------------------------------------------------------------------------- --log safety (item 2)


def test_log_never_appends_to_a_file_that_is_not_a_log(tmp_path: Path) -> None:
    suite = ghosts(tmp_path)
    victim = tmp_path / "victim.toml"
    victim.write_text('name = "precious"\n')
    done = vlmtui("run", str(suite), "--log", str(victim))
    assert done.returncode == 2
    assert "not a vlmtui session log" in one_error_line(done)
    assert victim.read_text() == 'name = "precious"\n', "nothing was written to it"


def test_log_refuses_another_suites_log_and_force_appends(tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    assert vlmtui("run", str(ghosts(tmp_path, name="other.toml", second="ghost-c")), "--log", str(other),
                  "--only", "ghost-a").returncode == 1
    before = other.read_text()
    mine = ghosts(tmp_path)
    (tmp_path / "mine.toml").write_text(mine.read_text().replace('name = "ghosts"', 'name = "mine"'))
    done = vlmtui("run", str(tmp_path / "mine.toml"), "--log", str(other))
    assert done.returncode == 2 and "another suite" in one_error_line(done)
    assert other.read_text() == before
    resumed = vlmtui("run", str(tmp_path / "mine.toml"), "--resume", str(other))
    assert resumed.returncode == 2 and "another suite" in one_error_line(resumed), "a resume checks the suite too"
    elsewhere = vlmtui("run", str(tmp_path / "mine.toml"), "--resume", str(other), "--log", str(tmp_path / "n.jsonl"))
    assert elsewhere.returncode == 2 and "another suite" in one_error_line(elsewhere), "even into a new file"
    assert not (tmp_path / "n.jsonl").exists()
    forced = vlmtui("run", str(tmp_path / "mine.toml"), "--log", str(other), "--force")
    assert forced.returncode == 1, forced.stderr
    assert [line["suite"] for line in log_lines(other) if line["event"] == "session_start"] == ["ghosts", "mine"]


def test_log_of_the_same_suite_and_plan_is_appended_to_and_another_plan_is_not(tmp_path: Path) -> None:
    suite, log = ghosts(tmp_path), tmp_path / "run.jsonl"
    assert vlmtui("run", str(suite), "--log", str(log)).returncode == 1
    assert vlmtui("run", str(suite), "--log", str(log)).returncode == 1
    assert sum(line["event"] == "session_start" for line in log_lines(log)) == 2
    narrower = vlmtui("run", str(suite), "--log", str(log), "--only", "ghost-a")
    assert narrower.returncode == 2 and "another plan" in one_error_line(narrower)


def test_log_directory_means_a_new_file_in_it(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    done = vlmtui("run", str(ghosts(tmp_path)), "--log", str(logs))
    assert done.returncode == 1, done.stderr
    (written,) = logs.iterdir()
    assert written.name.endswith("-ghosts.jsonl") and f"session log: {written}" in done.stderr


# ----------------------------------------------------------------------------- checks before loading (item 4)


def test_budget_larger_than_the_machine_is_refused_unless_forced(tmp_path: Path) -> None:
    done = vlmtui("run", str(ghosts(tmp_path)), "--budget", "1TB", "--log", str(tmp_path / "x.jsonl"))
    assert done.returncode == 2 and "more than this machine's" in one_error_line(done)
    assert not (tmp_path / "x.jsonl").exists()
    forced = vlmtui("check", str(ghosts(tmp_path)), "--budget", "1TB", "--force")
    assert "budget 931.3 GiB (explicit 1TB)" in forced.stdout and "more than" not in forced.stderr


def test_check_prints_the_plan_and_loads_nothing(tmp_path: Path) -> None:
    suite = tmp_path / "ok.toml"
    suite.write_text(f'name = "ok"\nimages = ["{SAMPLE_IMAGES}/*"]\nprompts = ["Describe."]\n'
                     '[[models]]\nid = "smol"\nbackend = "transformers"\npath = "tiny:idefics3"\n'
                     '[[models]]\nid = "hub"\nbackend = "transformers"\npath = "vlmtui-test/never-cached"\n')
    done = vlmtui("check", str(suite))
    assert done.returncode == 0, done.stderr
    assert "smol [transformers]: 3 cases (3 image)" in done.stdout
    assert "hub vlmtui-test/never-cached (not cached" in done.stdout
    assert "check: ok; 3 images readable; nothing was loaded" in done.stdout


def test_check_names_each_bad_image_and_a_missing_model(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    good = (SAMPLE_IMAGES / "still-life.png").read_bytes()
    (images / "truncated.png").write_bytes(good[: len(good) // 2])
    (images / "empty.jpg").write_bytes(b"")
    (images / "ok.png").write_bytes(good)
    done = vlmtui("check", str(ghosts(tmp_path, images=f"{images}/*")))
    assert done.returncode == 2
    assert "truncated.png: broken or truncated image" in done.stderr
    assert "empty.jpg: empty file" in done.stderr
    assert "model 'ghost-a': " in done.stderr and "not found on disk" in done.stderr
    assert "ok.png" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_check_says_permission_denied(tmp_path: Path) -> None:
    image = tmp_path / "locked.png"
    image.write_bytes((SAMPLE_IMAGES / "still-life.png").read_bytes())
    image.chmod(0)
    done = vlmtui("check", str(ghosts(tmp_path, images=str(image))))
    assert done.returncode == 2 and "locked.png: permission denied" in done.stderr


def test_a_bad_image_fails_its_case_before_any_model_loads(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    suite = tmp_path / "real.toml"
    suite.write_text(f'name = "real"\nimages = ["{bad}"]\nprompts = ["Describe."]\n'
                     '[[models]]\nid = "smol"\nbackend = "transformers"\npath = "tiny:idefics3"\n')
    log = tmp_path / "real.jsonl"
    done = vlmtui("run", str(suite), "--log", str(log))
    assert done.returncode == 1, done.stderr
    lines = log_lines(log)
    (end,) = [line for line in lines if line["event"] == "case_end"]
    assert end["status"] == "failed" and "bad.png" in str(end["error"])
    assert not [line for line in lines if line["event"] in ("model_load", "model_loaded")], "no model was loaded"


# ----------------------------------------------------------------------------- model selection (item 5)


def test_only_and_skip_pick_models_without_editing_the_suite(tmp_path: Path) -> None:
    suite = ghosts(tmp_path)
    for option, kept in (("--only", "ghost-b"), ("--skip", "ghost-a")):
        log = tmp_path / f"{option}.jsonl"
        assert vlmtui("run", str(suite), option, kept, "--log", str(log)).returncode == 1
        (start,) = [line for line in log_lines(log) if line["event"] == "session_start"]
        assert {c["model"] for c in start["cases"]} == {"ghost-b"}  # type: ignore[attr-defined]
    done = vlmtui("run", str(suite), "--only", "ghost-a,nope")
    assert done.returncode == 2 and "no model 'nope'" in one_error_line(done)


# ----------------------------------------------------------------------------- output for pipes (item 5)


def test_text_output_to_a_pipe_is_one_unwrapped_line_per_case(tmp_path: Path) -> None:
    long_id = "ghost-" + "x" * 120
    done = vlmtui("run", str(ghosts(tmp_path, second=long_id)), "--only", long_id,
                  "--log", str(tmp_path / "l.jsonl"))
    assert done.returncode == 1
    (line,) = [line for line in done.stdout.splitlines() if "failed" in line and "/still-life.png/p0" in line]
    assert f"{long_id}/still-life.png/p0" in line and "model path not found" in line
    assert "vlmtui ghosts: 1 case · budget" in done.stdout, "one case, not '1 cases'"


def test_jsonl_output_is_the_logs_case_end_records(tmp_path: Path) -> None:
    log = tmp_path / "l.jsonl"
    done = vlmtui("run", str(ghosts(tmp_path)), "--format", "jsonl", "--log", str(log))
    assert done.returncode == 1
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    logged = [line for line in log_lines(log) if line["event"] == "case_end"]
    assert printed == logged and len(printed) == 2
    assert "cannot load ghost-a" in done.stderr


def test_progress_counter_goes_to_a_terminal_stderr_when_stdout_is_a_pipe(tmp_path: Path) -> None:
    primary, secondary = pty.openpty()
    try:
        done = vlmtui("run", str(ghosts(tmp_path)), "--log", str(tmp_path / "l.jsonl"), stderr=secondary)
        os.close(secondary)
        seen = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(primary)
    assert done.returncode == 1
    text = seen.decode("utf-8", "replace")
    assert "[0/2] ETA ?" in text and "[2/2] ETA 0:00" in text, text
    assert "[" not in done.stdout.split("Per-model")[0].replace("[transformers", ""), "the counter is not on stdout"
