"""``server = "llama.cpp" | "mlx-vlm"``: the suite's rules, the argv each preset makes, and the server's timings."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.functional.helpers import model_spec
from vlmtui.suite.loader import SuiteError, parse_suite
from vlmtui.worker import measure as worker_measure
from vlmtui.worker.backends import server_timings
from vlmtui.worker.backends.base import BackendError, GenerationStats
from vlmtui.worker.backends.server_presets import LLAMA_HEALTH_URL, llama_model_args, server_launch
from vlmtui.worker.backends.server_timings import full_timings, stream_stats


def suite_with(model: str, tmp_path: Path) -> str:
    text = f'name = "t"\ntext_prompts = ["p"]\n\n[[models]]\nid = "m"\nbackend = "openai"\n{model}\n'
    try:
        parse_suite(text, tmp_path / "suite.toml")
    except SuiteError as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize(("model", "error"), [
    ('server = "llama.cpp"\npath = "ggml-org/SmolVLM-500M-Instruct-GGUF"\ncontext = 2048', ""),
    ('server = "mlx-vlm"\npath = "tiny:idefics3"', ""),
    ('server = "llama.cpp"\npath = "tiny:smolvlm"', ""),
    ('server = "vllm"\npath = "x"', r":7: server: unknown server 'vllm': \"llama.cpp\" or \"mlx-vlm\""),
    ('server = "llama.cpp"\ncommand = ["x"]\npath = "a.gguf"', r"server: set one of server, command and base_url"),
    ('server = "llama.cpp"\npath = "tiny:llava-next"',
     r"path: tiny:llava-next has no GGUF build for llama.cpp \(tiny GGUF models: tiny:idefics3\)"),
    ('server = "llama.cpp"', r"path: server = \"llama.cpp\" needs path"),
    ('server = "mlx-vlm"\npath = "tiny:idefics3"\ncontext = 512',
     r":9: context: applies to server = \"llama.cpp\" only"),
    ('path = "tiny:idefics3"', r"backend: an openai model needs server = \"llama.cpp\" \| \"mlx-vlm\""),
])
def test_the_suite_checks_the_server_preset(tmp_path: Path, model: str, error: str) -> None:
    found = suite_with(model, tmp_path)
    if error:
        assert re.search(error, found), found
        assert "\n" not in found
    else:
        assert found == ""


def llama_options(**given: object) -> dict[str, object]:
    from vlmtui.plugins.builtin import OPENAI

    return OPENAI.with_defaults({"server": "llama.cpp", **given})


def test_local_ggufs_give_the_model_and_its_mmproj(tmp_path: Path) -> None:
    (tmp_path / "model-Q8_0.gguf").write_bytes(b"GGUF")
    (tmp_path / "mmproj-model-f16.gguf").write_bytes(b"GGUF")
    spec = model_spec(id="m", backend="openai", path=str(tmp_path), server="llama.cpp")
    args, notes = llama_model_args(spec, llama_options(), print)
    assert args == ["-m", str(tmp_path / "model-Q8_0.gguf"), "--mmproj", str(tmp_path / "mmproj-model-f16.gguf")]
    file_spec = model_spec(id="m", backend="openai", path=str(tmp_path / "model-Q8_0.gguf"), server="llama.cpp")
    assert llama_model_args(file_spec, llama_options(), print)[0] == args
    (tmp_path / "model-Q4_K_M.gguf").write_bytes(b"GGUF")
    with pytest.raises(BackendError, match=r"expected one model .gguf \(found model-Q4_K_M.gguf, model-Q8_0.gguf\); "
                                           r"set model_file"):
        llama_model_args(spec, llama_options(), print)
    chosen, _ = llama_model_args(spec, llama_options(model_file="model-Q4_K_M.gguf"), print)
    assert chosen[:2] == ["-m", str(tmp_path / "model-Q4_K_M.gguf")]
    with pytest.raises(BackendError, match=r"^mmproj: GGUF file not found: .*/nope.gguf$"):
        llama_model_args(spec, llama_options(model_file="model-Q4_K_M.gguf", mmproj="nope.gguf"), print)
    (tmp_path / "mmproj-model-f16.gguf").unlink()
    text_only, notes = llama_model_args(file_spec, llama_options(), print)
    assert text_only == ["-m", str(tmp_path / "model-Q8_0.gguf")] and "without vision" in notes[0]


def test_a_hub_repo_is_fetched_by_llama_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vlmtui.worker.backends.server_presets.offline", lambda: False)
    spec = model_spec(id="m", backend="openai", path="ggml-org/SmolVLM-500M-Instruct-GGUF", server="llama.cpp")
    args, _ = llama_model_args(spec, llama_options(model_file="SmolVLM-500M-Instruct-Q8_0.gguf"), print)
    assert args == ["-hf", "ggml-org/SmolVLM-500M-Instruct-GGUF", "--hf-file", "SmolVLM-500M-Instruct-Q8_0.gguf"]
    monkeypatch.setattr("vlmtui.worker.backends.server_presets.offline", lambda: True)
    assert llama_model_args(spec, llama_options(), print)[0][-1] == "--offline"
    pinned = model_spec(id="m", backend="openai", path="ggml-org/SmolVLM-500M-Instruct-GGUF", revision="main",
                        server="llama.cpp")
    with pytest.raises(BackendError, match="cannot pin a revision"):
        llama_model_args(pinned, llama_options(), print)


def test_the_llama_cpp_argv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\necho 'Available devices:'\necho '  CUDA0: NVIDIA H200 (143000 MiB, 142000 MiB free)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("VLMTUI_LLAMA_SERVER", str(fake))
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    spec = model_spec(id="m", backend="openai", path=str(tmp_path / "m.gguf"), server="llama.cpp")
    launch = server_launch(spec, llama_options(context=4096, server_args=["-t", "4"]), "openai", print)
    assert launch is not None and launch.health_url == LLAMA_HEALTH_URL
    assert launch.argv == [str(fake), "-m", str(tmp_path / "m.gguf"), "--host", "127.0.0.1", "--port", "{port}",
                           "-c", "4096", "-ngl", "99", "-t", "4"]
    assert "llama-server offloads to CUDA0: NVIDIA H200 (143000 MiB, 142000 MiB free)" in launch.notes
    assert launch.request_extra == {"cache_prompt": False}, "each case evaluates its whole prompt"
    fake.write_text("#!/bin/sh\necho 'Available devices:'\necho '  (none)'\n")
    launch = server_launch(spec, llama_options(), "openai", print)
    assert launch is not None and "-ngl" not in launch.argv and "-c" not in launch.argv
    launch = server_launch(spec, llama_options(gpu_layers=0), "openai", print)
    assert launch is not None and launch.argv[-2:] == ["-ngl", "0"]
    monkeypatch.setenv("VLMTUI_LLAMA_SERVER", str(tmp_path / "missing"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("VLMTUI_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(BackendError, match=r"^llama-server not found .*: .*vlmtui doctor --build-llama-server"):
        server_launch(spec, llama_options(), "openai", print)


def test_the_mlx_vlm_preset_is_what_the_demo_wrote_by_hand(tmp_path: Path) -> None:
    spec = model_spec(id="m", backend="openai", path="mlx-community/SmolVLM2-500M-Video-Instruct-mlx",
                      server="mlx-vlm")
    launch = server_launch(spec, llama_options(server="mlx-vlm"), "openai", print)
    assert launch is not None
    assert launch.argv == ["{python}", "-m", "mlx_vlm.server", "--host", "127.0.0.1", "--port", "{port}",
                           "--model", "{model_path}", "--log-level", "WARNING"]
    assert launch.model_path == "mlx-community/SmolVLM2-500M-Video-Instruct-mlx"


# The last chunk of a llama-server 0c1e57098 stream (tiny:idefics3, bicycle.jpg) and mlx_vlm.server
# 0.7.10's usage chunk, as received.
LLAMA_TIMINGS = {"cache_n": 0, "prompt_n": 61, "prompt_ms": 985.43, "prompt_per_token_ms": 16.15,
                 "prompt_per_second": 61.9, "predicted_n": 24, "predicted_ms": 73.45,
                 "predicted_per_token_ms": 3.06, "predicted_per_second": 326.75}
MLX_TIMINGS = {"prompt_n": 1180, "cache_n": 0, "predicted_n": 8, "prompt_ms": 480.1, "prompt_per_token_ms": 0.41,
               "prompt_per_second": 2457.8, "predicted_ms": 160.0, "predicted_per_token_ms": 20.0,
               "predicted_per_second": 50.0, "peak_memory": 0.412}


def test_server_timings_are_the_cases_figures() -> None:
    stats = stream_stats(full_timings(LLAMA_TIMINGS), None, chunks=10, client_ttft_s=1.13775, span_s=0.07)
    assert stats == GenerationStats(prompt_tokens=61, gen_tokens=24, prompt_tps=pytest.approx(61.9, abs=0.01),
                                    gen_tps=326.75, peak_memory_bytes=None, ttft_s=pytest.approx(0.98543),
                                    metrics_source="server", extra={"client_ttft_s": 1.13775})
    mlx = stream_stats(full_timings(MLX_TIMINGS), None, chunks=8, client_ttft_s=0.6, span_s=0.15)
    # mlx_vlm.server's peak_memory is MLX's since the server started: kept apart, not the case's peak.
    assert mlx.peak_memory_bytes is None and mlx.extra["server_mlx_peak_bytes"] == 412_000_000
    assert mlx.metrics_source == "server"
    assert full_timings({"predicted_per_second": 50.0}) is None, "a content chunk's rate is not the request's"
    client = stream_stats(None, None, chunks=5, client_ttft_s=0.5, span_s=0.4)
    # A client's chunk arrival times are the server's delivery, not its decode rate (test_metrics_honesty).
    assert (client.metrics_source, client.gen_tokens, client.gen_tps, client.ttft_s) == ("client", 5, None, 0.5)


def test_the_log_format_names_every_metric() -> None:
    doc = (ROOT / "docs" / "log-format.md").read_text(encoding="utf-8")
    written = set(re.findall(r'"(\w+)":', inspect.getsource(worker_measure.case_metrics)))
    written |= {"load_s", "metrics_source", "client_ttft_s"}
    assert "client_ttft_s" in inspect.getsource(server_timings)
    for key in sorted(written):
        assert f"`{key}`" in doc, key
