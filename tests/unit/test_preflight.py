"""Preflight: weight sizes from real safetensors/npz files on disk, the HF cache layout, and the fit check."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from vlmtui.memory.preflight import (
    OVERHEAD_BYTES,
    OVERHEAD_FACTOR,
    FootprintEstimate,
    check_fit,
    estimate_footprint,
    hub_cache_dir,
)

GiB = 1024**3
MiB = 1024**2


def write_safetensors(path: Path, n_floats: int) -> int:
    """A real safetensors file holding ``n_floats`` float32 values; its size on disk."""
    save_file({"weight": np.zeros(n_floats, dtype=np.float32)}, str(path))
    return path.stat().st_size


def write_index(folder: Path, name: str, shards: list[str]) -> None:
    weight_map = {f"layer.{i}.weight": shard for i, shard in enumerate(shards)}
    (folder / name).write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))


def test_single_safetensors_file_with_margin(tmp_path: Path) -> None:
    size = write_safetensors(tmp_path / "model.safetensors", 100_000)
    (tmp_path / "config.json").write_text("{}")
    est = estimate_footprint(tmp_path)
    assert est is not None
    assert est.weights_bytes == size and size > 400_000
    assert est.estimated_bytes == int(size * OVERHEAD_FACTOR) + OVERHEAD_BYTES
    assert (est.source, est.location, est.files) == ("local dir", str(tmp_path), ("model.safetensors",))


def test_sharded_index_counts_its_shards_not_consolidated(tmp_path: Path) -> None:
    a = write_safetensors(tmp_path / "model-00001-of-00002.safetensors", 50_000)
    b = write_safetensors(tmp_path / "model-00002-of-00002.safetensors", 30_000)
    write_safetensors(tmp_path / "consolidated.safetensors", 80_000)
    write_index(tmp_path, "model.safetensors.index.json",
                ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"])
    est = estimate_footprint(str(tmp_path))
    assert est is not None and est.weights_bytes == a + b
    assert "consolidated.safetensors" not in est.files


def test_consolidated_dropped_without_an_index_too(tmp_path: Path) -> None:
    a = write_safetensors(tmp_path / "model.safetensors", 10_000)
    write_safetensors(tmp_path / "consolidated.safetensors", 10_000)
    est = estimate_footprint(tmp_path)
    assert est is not None and est.weights_bytes == a


def test_same_weights_in_two_formats_count_once(tmp_path: Path) -> None:
    a = write_safetensors(tmp_path / "model.safetensors", 20_000)
    (tmp_path / "pytorch_model.bin").write_bytes(b"\0" * 80_000)
    est = estimate_footprint(tmp_path)
    assert est is not None and est.weights_bytes == a and est.files == ("model.safetensors",)


def test_bin_weights_skip_training_leftovers(tmp_path: Path) -> None:
    (tmp_path / "pytorch_model.bin").write_bytes(b"\0" * 70_000)
    (tmp_path / "training_args.bin").write_bytes(b"\0" * 5_000)
    est = estimate_footprint(tmp_path)
    assert est is not None and est.files == ("pytorch_model.bin",) and est.weights_bytes == 70_000


def test_npz_weights(tmp_path: Path) -> None:
    np.savez(tmp_path / "weights.npz", w=np.ones(25_000, dtype=np.float16))
    est = estimate_footprint(tmp_path)
    assert est is not None and est.weights_bytes == (tmp_path / "weights.npz").stat().st_size


def test_gguf_counts_one_quantisation_and_the_projector(tmp_path: Path) -> None:
    # Only sizes are read; the contents need not be valid GGUF.
    for name, size in [("m-Q4_K_M.gguf", 4000), ("m-Q8_0.gguf", 8000), ("mmproj-m-f16.gguf", 600)]:
        (tmp_path / name).write_bytes(b"GGUF" + b"\0" * (size - 4))
    est = estimate_footprint(tmp_path)
    assert est is not None and est.files == ("m-Q8_0.gguf", "mmproj-m-f16.gguf") and est.weights_bytes == 8600


def test_a_single_weight_file_path(tmp_path: Path) -> None:
    size = write_safetensors(tmp_path / "model.safetensors", 1_000)
    est = estimate_footprint(tmp_path / "model.safetensors")
    assert est is not None and est.source == "local file" and est.weights_bytes == size


def test_folder_without_weights_or_unknown_things_are_none(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert estimate_footprint(tmp_path) is None
    assert estimate_footprint("tiny:smolvlm") is None
    assert estimate_footprint(str(tmp_path / "missing")) is None
    assert estimate_footprint("") is None


def make_cached_repo(cache: Path, repo_id: str, files: dict[str, int], commit: str = "a" * 40) -> Path:
    """Safetensors ``files`` (name: float count) laid out as huggingface_hub caches them.

    Blobs by content hash, a snapshot folder of symlinks into them, refs/main naming the commit.
    """
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name, n_floats in files.items():
        tmp = repo / "blobs" / "incoming"
        save_file({"weight": np.zeros(n_floats, dtype=np.float32)}, str(tmp))
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        tmp.rename(repo / "blobs" / digest)
        os.symlink(Path("..") / ".." / "blobs" / digest, snapshot / name)
    return snapshot


def test_hub_id_found_in_the_local_cache(tmp_path: Path) -> None:
    snapshot = make_cached_repo(tmp_path, "org/tiny-vlm", {"model.safetensors": 40_000})
    hf = pytest.importorskip("huggingface_hub")
    # The layout is the one huggingface_hub itself resolves (no network involved).
    found = hf.try_to_load_from_cache("org/tiny-vlm", "model.safetensors", cache_dir=tmp_path)
    assert found is not None and Path(found) == snapshot / "model.safetensors"
    est = estimate_footprint("org/tiny-vlm", cache_dir=tmp_path, allow_network=False)
    assert est is not None and est.source == "hf cache"
    assert est.weights_bytes == (snapshot / "model.safetensors").stat().st_size  # the blob, not the link


def test_incomplete_cache_snapshot_is_not_trusted(tmp_path: Path) -> None:
    snapshot = make_cached_repo(tmp_path, "org/half", {"model-00001-of-00002.safetensors": 1_000})
    write_index(snapshot, "model.safetensors.index.json",
                ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"])
    assert estimate_footprint("org/half", cache_dir=tmp_path, allow_network=False) is None


def test_cache_revision_by_commit(tmp_path: Path) -> None:
    commit = "b" * 40
    make_cached_repo(tmp_path, "org/pinned", {"model.safetensors": 2_000}, commit=commit)
    assert estimate_footprint("org/pinned", revision=commit, cache_dir=tmp_path, allow_network=False)
    assert estimate_footprint("org/pinned", revision="v2", cache_dir=tmp_path, allow_network=False) is None


def test_hub_cache_dir_follows_hf_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert hub_cache_dir() == tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert hub_cache_dir() == tmp_path / "c"


def test_unknown_hub_id_is_none_offline_or_not(tmp_path: Path) -> None:
    # A real request: offline it fails to connect, online the hub answers 404; both read as "unknown".
    est = estimate_footprint("vlmtui-tests/no-such-model-3f9c", cache_dir=tmp_path, timeout_s=2.0)
    assert est is None


def test_check_fit() -> None:
    est = FootprintEstimate.from_weights({"model.safetensors": int(3.45 * GiB)}, "local dir", "/m")
    assert est.estimated_bytes == int(int(3.45 * GiB) * 1.2) + 256 * MiB  # ~4.4 GiB
    no = check_fit(est, budget_bytes=8 * GiB, currently_used_bytes=int(5.9 * GiB))
    assert not no.fits
    assert no.reason == "needs ~4.4 GiB, 2.1 GiB free under the budget of 8.0 GiB"
    yes = check_fit(est, budget_bytes=16 * GiB, currently_used_bytes=2 * GiB)
    assert yes.fits and yes.reason == "needs ~4.4 GiB, 14.0 GiB free under the budget"
    assert yes.needed_bytes == est.estimated_bytes and yes.free_bytes == 14 * GiB
    over = check_fit(est, budget_bytes=8 * GiB, currently_used_bytes=9 * GiB)
    assert not over.fits and over.free_bytes == 0


def test_check_fit_unknown_size_lets_the_load_through() -> None:
    verdict = check_fit(None, budget_bytes=8 * GiB, currently_used_bytes=GiB)
    assert verdict.fits and verdict.needed_bytes is None
    assert verdict.reason == "size unknown, loading unchecked; 7.0 GiB free under the budget"
