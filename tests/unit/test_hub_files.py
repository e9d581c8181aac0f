"""Which files of a hub repo each backend needs (issue 18), and how its bytes are counted as they come."""

from __future__ import annotations

import logging
from typing import Any

from vlmtui.worker.hub import ProgressReport, needed_files, progress_bar_class

SAFETENSORS_REPO = {
    "config.json": 2_000, "tokenizer.json": 3_000_000, "tokenizer_config.json": 20_000, "chat_template.jinja": 900,
    "preprocessor_config.json": 500, "processor_config.json": 100, "generation_config.json": 200,
    "model-00001-of-00002.safetensors": 4_000_000_000, "model-00002-of-00002.safetensors": 1_000_000_000,
    "model.safetensors.index.json": 60_000, "pytorch_model.bin": 5_000_000_000, "README.md": 9_000,
    ".gitattributes": 1_500, "onnx/model.onnx": 5_000_000_000, "modeling_custom.py": 30_000,
    "additional_chat_templates/tools.jinja": 700,
}


def test_transformers_takes_safetensors_over_bin_and_the_processor_files_but_no_docs_or_onnx() -> None:
    names, weights = needed_files(SAFETENSORS_REPO, "transformers", {})
    assert weights == {"model-00001-of-00002.safetensors": 4_000_000_000,
                       "model-00002-of-00002.safetensors": 1_000_000_000}
    assert "pytorch_model.bin" not in names and "onnx/model.onnx" not in names and "README.md" not in names
    assert {"tokenizer.json", "chat_template.jinja", "preprocessor_config.json",
            "additional_chat_templates/tools.jinja", "model.safetensors.index.json"} <= set(names)
    assert "modeling_custom.py" not in names, "remote code only with trust_remote_code"
    assert "modeling_custom.py" in needed_files(SAFETENSORS_REPO, "transformers", {}, trust_remote_code=True)[0]


def test_a_gguf_repo_gives_one_quantisation_and_one_projector() -> None:
    repo = {"model-Q8_0.gguf": 8_000, "model-Q4_K_M.gguf": 4_000, "model-F16.gguf": 16_000,
            "mmproj-model-f16.gguf": 600, "mmproj-model-Q8_0.gguf": 300, "README.md": 10}
    assert needed_files(repo, "openai", {}) == (["mmproj-model-Q8_0.gguf", "model-Q4_K_M.gguf"],
                                                {"model-Q4_K_M.gguf": 4_000, "mmproj-model-Q8_0.gguf": 300})
    chosen = needed_files(repo, "openai", {"model_file": "model-Q8_0.gguf", "mmproj": "mmproj-model-f16.gguf"})
    assert chosen[1] == {"model-Q8_0.gguf": 8_000, "mmproj-model-f16.gguf": 600}


def test_a_xet_download_counts_each_byte_once_through_huggingface_hubs_own_reporter() -> None:
    from types import SimpleNamespace

    from huggingface_hub.utils._xet_progress_reporting import XetDownloadProgressReporter

    sent: list[dict[str, Any]] = []
    report = ProgressReport(1000, sent.append)
    with XetDownloadProgressReporter(reconstruction_desc="model.safetensors", total=1000, log_level=logging.INFO,
                                     tqdm_class=progress_bar_class(report)) as reporter:
        for written, received in ((300, 400), (1000, 900)):
            reporter.update_progress(SimpleNamespace(
                total_bytes_completed=written, total_transfer_bytes_completed=received, total_bytes=1000,
                total_bytes_completion_rate=1e6, total_transfer_bytes_completion_rate=1e6))
    assert report.downloaded == 1000, "bytes written, not written + received"
    assert sent and all(0 < s["progress"]["downloaded"] <= 1000 for s in sent)
