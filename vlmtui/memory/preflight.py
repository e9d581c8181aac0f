"""Before loading a model: how much memory will it need, and does that fit under the budget?

The estimate is the size of the weight files (a local folder, the local Hugging Face cache, or the
hub's file metadata) plus a margin; it is a file-size estimate, read without opening a tensor, and
``None`` when the size cannot be known (offline and not cached, an unknown id, a tiny demo model).
Where the weights are is the model's ``ModelSource``; whether the preflight applies at all is its
backend's declaration (a server's weights are not the worker's).

The margin: weights × 1.2 + 256 MiB. The 20 % covers what grows with the model — allocator slack and
cache, dtype up-casts of a few layers (norms, vision tower in fp32), quantisation scales — and the
fixed 256 MiB covers what does not: one image's activations, a short generation's KV cache and the
framework's own buffers. It is deliberately a floor, not a prediction: a preflight "does not fit" must
be right, and the guard watches the rest live.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmtui.plugins import BackendNotFound, find_backend
from vlmtui.units import format_bytes
from vlmtui.wire.source import ModelSource
from vlmtui.wire.spec import ModelSpec

OVERHEAD_FACTOR = 1.2
OVERHEAD_BYTES = 256 * 1024**2

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".npz", ".gguf")
"""In order of preference: a repository holding the same weights in two formats is counted once."""

_INDEX_NAMES = {
    ".safetensors": ("model.safetensors.index.json",),
    ".bin": ("pytorch_model.bin.index.json",),
}
_NOT_WEIGHTS = re.compile(r"^(training_args|optimizer|scheduler|scaler|rng_state.*)\.bin$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class FootprintEstimate:
    """Weight bytes found for a model, and the memory its load is expected to need."""

    weights_bytes: int
    estimated_bytes: int
    """``weights_bytes × OVERHEAD_FACTOR + OVERHEAD_BYTES``."""
    files: tuple[str, ...]
    source: str
    """``local dir``, ``local file``, ``hf cache`` or ``hub metadata``."""
    location: str
    """The folder, file or ``repo@revision`` the sizes came from."""

    @classmethod
    def from_weights(cls, sizes: dict[str, int], source: str, location: str) -> FootprintEstimate:
        """An estimate from weight file sizes, with the margin applied."""
        weights = sum(sizes.values())
        return cls(
            weights_bytes=weights,
            estimated_bytes=int(weights * OVERHEAD_FACTOR) + OVERHEAD_BYTES,
            files=tuple(sorted(sizes)),
            source=source,
            location=location,
        )


@dataclass(frozen=True)
class PreflightVerdict:
    """Whether a model is expected to fit, with one line saying why."""

    fits: bool
    reason: str
    """E.g. ``needs ~4.4 GiB, 2.1 GiB free under the budget``."""
    needed_bytes: int | None
    free_bytes: int


def check_fit(
    estimate: FootprintEstimate | None, budget_bytes: int, currently_used_bytes: int
) -> PreflightVerdict:
    """Does ``estimate`` fit in what is left of the budget? An unknown size is let through (and says so)."""
    free = max(budget_bytes - currently_used_bytes, 0)
    if estimate is None:
        return PreflightVerdict(
            True, f"size unknown, loading unchecked; {format_bytes(free)} free under the budget", None, free
        )
    needed = estimate.estimated_bytes
    fits = needed <= free
    reason = f"needs ~{format_bytes(needed)}, {format_bytes(free)} free under the budget"
    if not fits:
        reason += f" of {format_bytes(budget_bytes)}"
    return PreflightVerdict(fits, reason, needed, free)


def estimate_footprint(
    model: str | Path | ModelSource,
    revision: str | None = None,
    *,
    cache_dir: str | Path | None = None,
    allow_network: bool = True,
    timeout_s: float = 5.0,
) -> FootprintEstimate | None:
    """The expected footprint of a local folder or file, or of a hub repo (local cache first, then the hub).

    Never raises for a model it cannot size: offline, unknown, gated or a ``tiny:`` demo model is ``None``.
    """
    source = model if isinstance(model, ModelSource) else ModelSource.parse(str(model), revision)
    if source.is_local:
        path = source.local_path()
        if path.is_dir():
            return _from_folder(path, "local dir")
        if path.is_file() and path.name.endswith(WEIGHT_SUFFIXES):
            return FootprintEstimate.from_weights({path.name: path.stat().st_size}, "local file", str(path))
        return None
    if not source.is_hub:
        return None
    snapshot = cached_snapshot(source.name, source.revision, cache_dir)
    if snapshot is not None:
        cached = _from_folder(snapshot, "hf cache", require_complete=True)
        if cached is not None:
            return cached
    if not allow_network:
        return None
    return _from_hub(source.name, source.revision, timeout_s)


def model_footprint(model: ModelSpec) -> FootprintEstimate | None:
    """The footprint of a suite's model, where its backend declares that the preflight applies.

    ``None`` also for a backend this process does not know (one a test's worker registers itself).
    """
    try:
        applies = find_backend(model.backend).preflight
    except BackendNotFound:
        return None
    return estimate_footprint(model.source) if applies else None


# ----------------------------------------------------------------------------- which files are weights


def select_weights(sizes: dict[str, int], indexes: dict[str, set[str]]) -> tuple[dict[str, int], bool]:
    """The weight files of one format among top-level ``sizes``, and whether all that an index names exist.

    ``indexes`` maps a suffix to the shard names its ``*.index.json`` lists (when one was read).
    """
    for suffix in WEIGHT_SUFFIXES:
        chosen = {
            n: s for n, s in sizes.items() if n.endswith(suffix) and not _NOT_WEIGHTS.match(n)
        }
        if not chosen:
            continue
        complete = True
        if suffix in indexes:
            listed = indexes[suffix]
            complete = listed <= set(chosen)
            chosen = {n: s for n, s in chosen.items() if n in listed}
        elif suffix == ".safetensors":
            # Mistral-style repos ship consolidated.safetensors beside the transformers shards.
            others = {n: s for n, s in chosen.items() if not n.startswith("consolidated")}
            chosen = others or chosen
        elif suffix == ".gguf":
            # A GGUF repo holds one file per quantisation; a server loads one, plus one vision projector.
            proj = {n: s for n, s in chosen.items() if "mmproj" in n.lower()}
            main = {n: s for n, s in chosen.items() if n not in proj}
            chosen = {}
            for group in (main, proj):
                if group:
                    name = max(group, key=lambda n: group[n])
                    chosen[name] = group[name]
        return chosen, complete
    return {}, False


def _from_folder(folder: Path, source: str, require_complete: bool = False) -> FootprintEstimate | None:
    """Weight files at the top of ``folder`` (symlinks into the HF blob store are followed)."""
    sizes: dict[str, int] = {}
    try:
        for entry in folder.iterdir():
            if entry.name.endswith(WEIGHT_SUFFIXES) and entry.is_file():
                sizes[entry.name] = entry.stat().st_size
    except OSError:
        return None
    indexes: dict[str, set[str]] = {}
    for suffix, names in _INDEX_NAMES.items():
        for name in names:
            listed = _read_index(folder / name)
            if listed is not None:
                indexes[suffix] = listed
    chosen, complete = select_weights(sizes, indexes)
    if not chosen or (require_complete and not complete):
        return None
    return FootprintEstimate.from_weights(chosen, source, str(folder))


def _read_index(path: Path) -> set[str] | None:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict):
        return None
    return {str(v) for v in weight_map.values()}


# ----------------------------------------------------------------------------- the Hugging Face cache and hub


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps downloads, by the same environment variables it reads."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def cached_snapshot(repo_id: str, revision: str | None, cache_dir: str | Path | None) -> Path | None:
    """The snapshot folder of ``repo_id`` at ``revision`` (default: main) in the local cache, if any."""
    repo_dir = Path(cache_dir or hub_cache_dir()) / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo_dir / "snapshots"
    if revision and _COMMIT.match(revision) and (snapshots / revision).is_dir():
        return snapshots / revision
    try:
        commit = (repo_dir / "refs" / (revision or "main")).read_text(encoding="utf-8").strip()
    except OSError:
        commit = ""
    if commit and (snapshots / commit).is_dir():
        return snapshots / commit
    if revision is None and snapshots.is_dir():
        found = [p for p in snapshots.iterdir() if p.is_dir()]
        if len(found) == 1:  # fetched by commit, no refs/main: the only snapshot is the one
            return found[0]
    return None


def _from_hub(repo_id: str, revision: str | None, timeout_s: float) -> FootprintEstimate | None:
    """File sizes from the hub's metadata (one HTTP request); ``None`` offline or on any hub error."""
    try:
        from huggingface_hub import HfApi  # lazy: ~0.25 s to import, and only this path needs it
    except Exception:
        return None
    try:
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True, timeout=timeout_s)
    except Exception:  # offline, unknown repo, gated, rate-limited: all "size unknown"
        return None
    sizes = {
        s.rfilename: int(s.size)
        for s in (info.siblings or [])
        if "/" not in s.rfilename and isinstance(s.size, int)
    }
    chosen, _ = select_weights(sizes, {})
    if not chosen:
        return None
    return FootprintEstimate.from_weights(chosen, "hub metadata", f"{repo_id}@{revision or 'main'}")
