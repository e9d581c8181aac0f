"""llama.cpp's ``llama-server``: where it is (``$VLMTUI_LLAMA_SERVER``, the PATH, vlmtui's cache), its
version and devices, and the one line of its output that says why it failed.

Both processes use this: ``doctor`` in the vlmtui process, the ``openai`` backend's ``server = "llama.cpp"``
preset in the worker. Standard library and platformdirs only; it runs no model code. The build that
fills the cache is ``vlmtui.llamacpp_build``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import platformdirs

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
"""The ``llama-cpp-python`` sdist whose ``vendor/llama.cpp`` is built (the newest on the registry in 2026-12)."""

LLAMA_CPP_COMMIT = "0c1e57098"
"""The llama.cpp commit vendored in that sdist (its CHANGELOG: "update llama.cpp to ggml-org/llama.cpp@0c1e57098").
It names the cache directory; the sdist carries no git history, so it is also passed to cmake as the
build commit that ``llama-server --version`` prints."""

BINARY = "llama-server"

CONVERTER_PARTS = ("convert_hf_to_gguf.py", "conversion", "gguf-py")
"""What llama.cpp's HF → GGUF converter needs from the source tree (the script imports the other two)."""


def cache_root() -> Path:
    """vlmtui's cache: ``$VLMTUI_CACHE_DIR`` or the platform's user cache directory (as the tiny models)."""
    override = os.environ.get("VLMTUI_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("vlmtui"))


def llama_cache_dir(commit: str = LLAMA_CPP_COMMIT) -> Path:
    """Where the build of llama.cpp ``commit`` (binary, converter, log) is cached."""
    return cache_root() / "llama.cpp" / commit


def cached_llama_server() -> Path | None:
    """The cached ``llama-server`` of the pinned commit, else of any other cached commit (newest first)."""
    pinned = llama_cache_dir() / BINARY
    if is_executable(pinned):
        return pinned
    others = sorted((cache_root() / "llama.cpp").glob(f"*/{BINARY}"),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    return next((p for p in others if is_executable(p)), None)


def find_llama_server() -> tuple[Path, str] | None:
    """The ``llama-server`` to use and where it came from: ``"env"``, ``"PATH"`` or ``"cache"``.

    ``$VLMTUI_LLAMA_SERVER`` (a path) wins, so CI and tests can point at a build outside the cache;
    then the PATH (Homebrew's ``brew install llama.cpp``, a distro package); then vlmtui's own build.
    """
    explicit = os.environ.get("VLMTUI_LLAMA_SERVER")
    if explicit and is_executable(Path(explicit)):
        return Path(explicit).resolve(), "env"
    on_path = shutil.which(BINARY)
    if on_path:
        return Path(on_path), "PATH"
    cached = cached_llama_server()
    if cached is not None:
        return cached, "cache"
    return None


def llama_server_version(path: Path | str, timeout_s: float = 15.0) -> str:
    """What ``llama-server --version`` says, e.g. ``"0 (0c1e57098)"``; ``"unknown: <why>"`` when it fails.

    The server prints the version to stderr, after any backend-loading lines (CUDA/Metal device
    lists), followed by a ``built with <compiler> for <target>`` line.
    """
    try:
        done = subprocess.run([str(path), "--version"], capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown: {type(exc).__name__}: {exc}"
    lines = [line.strip() for line in (done.stderr + "\n" + done.stdout).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("version:"):
            return line.removeprefix("version:").strip()
    if done.returncode != 0 or not lines:
        tail = lines[-1] if lines else "no output"
        return f"unknown: exit {done.returncode}: {tail}"
    return lines[0]


# llama-server's log lines: "0.00.009.719 E gguf_init_from_reader: invalid magic characters: …" or, with a
# module tag, "0.00.010.003 E cmn  common_init_: failed to load model 'bad.gguf'"; older builds (and
# argument errors) print the message alone.
_LOG_PREFIX = re.compile(r"^\d+\.\d+\.\d+\.\d+ ([DIWE]) (?:[a-z]{2,5} +(?=\S+: ))?")
_ERROR_WORDS = re.compile(r"\b(error|failed|invalid|unable|cannot|not found|corrupt\w*)\b", re.I)


def llama_server_error_line(output: str) -> str:
    """The one line of llama-server's output that says why it failed ("" for no output).

    The first error-level line is the cause (the loader's own complaint: bad magic, a tensor beyond
    the end of the file, a missing file); the lines after it repeat it up the call chain. Without
    level markers, the first line that reads like an error; else the last line.
    """
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        prefix = _LOG_PREFIX.match(line)
        if prefix and prefix.group(1) == "E":
            return line[prefix.end():].strip()[:300]
    for line in lines:
        if not _LOG_PREFIX.match(line) and _ERROR_WORDS.search(line):
            return line[:300]
    return _LOG_PREFIX.sub("", lines[-1])[:300] if lines else ""


def llama_server_gpus(path: Path | str, timeout_s: float = 15.0) -> list[str]:
    """The GPU devices this ``llama-server`` can offload to (``--list-devices``: Metal, CUDA, Vulkan …).

    An empty list means a CPU-only build or machine, where ``-ngl`` has nothing to do. A CPU-only
    build prints ``Available devices:`` and ``(none)``; a Metal one ``MTL0: Apple M2 (…)``.
    """
    try:
        done = subprocess.run([str(path), "--list-devices"], capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    lines = (done.stdout + "\n" + done.stderr).splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("Available devices")), None)
    if start is None:
        return []
    devices = []
    for line in lines[start + 1:]:
        if not line.startswith((" ", "\t")) or not line.strip():
            break
        name = line.strip()
        if name != "(none)" and not name.upper().startswith(("CPU", "BLAS")):
            devices.append(name)
    return devices


def converter_dir() -> Path | None:
    """llama.cpp's converter (``convert_hf_to_gguf.py`` + ``conversion/`` + ``gguf-py/``), if at hand.

    The one cached for the pinned commit, else the one beside the ``llama-server`` in use when that is
    a vlmtui build (``$VLMTUI_LLAMA_SERVER`` pointing into another cache, as the tests do).
    """
    candidates = [llama_cache_dir() / "convert"]
    found = find_llama_server()
    if found is not None:
        candidates.append(found[0].parent / "convert")
    return next((c for c in candidates if all((c / part).exists() for part in CONVERTER_PARTS)), None)


def how_to_get() -> str:
    """One line saying how to get ``llama-server`` on this machine."""
    build = "vlmtui doctor --build-llama-server (builds it from source: 11-35 minutes on 2 cores)"
    if sys.platform == "darwin":
        return f"brew install llama.cpp, or {build}"
    return build


def is_executable(path: Path) -> bool:
    """A file this process may run."""
    return path.is_file() and os.access(path, os.X_OK)

