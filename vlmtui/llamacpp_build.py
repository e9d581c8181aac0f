"""Build llama.cpp's ``llama-server`` offline from the ``llama-cpp-python`` sdist, and cache it.

llama.cpp's source reaches machines without network inside the ``llama-cpp-python`` sdist on the
package registry (``vendor/llama.cpp``: ``tools/server``, ``tools/mtmd``, ``convert_hf_to_gguf.py``).
``build_llama_server`` fetches that sdist with pip (a registry download, like any install), builds
only the ``llama-server`` target with cmake, and caches the binary, together with llama.cpp's own
HF → GGUF converter from the same tree, under::

    <cache_root>/llama.cpp/<llama.cpp commit>/llama-server
    <cache_root>/llama.cpp/<llama.cpp commit>/convert/{convert_hf_to_gguf.py,conversion/,gguf-py/}
    <cache_root>/llama.cpp/<llama.cpp commit>/build.log, build-info.json

Measured (2026-12, llama-cpp-python 0.3.36 = llama.cpp 0c1e57098, Linux x86_64, 2 cores, gcc 12.2,
cmake 3.25 + ninja 1.11, everything under ``nice -n 19`` while other test suites ran at normal
priority): ``pip download`` 77 s the first time (pip also prepares the sdist's metadata), 24 s once
pip's cache holds the build backend; unpack + converter copy 8 s; cmake configure 3.5 s; the build of
llama-server alone (206 ninja steps, 2 jobs) 1120 s (18.7 min) at a load average of about 3, and
2043 s (34 min) at a load average of 5; the issue's unloaded figure is about 11 minutes. Scratch
space: over 0.3 GB in the system temp dir, removed afterwards. The binary is 15.1 MB
(15,100,136 bytes, static llama/ggml/mtmd); it links only libc, libstdc++, libgomp and OpenSSL
dynamically. A call that finds the cached binary returns in well under 0.1 s.

Standard library only (with ``vlmtui.llamacpp``): ``vlmtui doctor --build-llama-server`` runs it in
the vlmtui process, the worker's tiny-GGUF builder fetches the converter through it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from vlmtui.filelock import locked
from vlmtui.llamacpp import (
    BINARY,
    CONVERTER_PARTS,
    LLAMA_CPP_COMMIT,
    LLAMA_CPP_PYTHON_VERSION,
    converter_dir,
    is_executable,
    llama_cache_dir,
)

# Everything the server does not need is off: no tests, examples or other tools, no web UI (building
# it needs npm; the prebuilt one is downloaded from the Hugging Face hub at build time, which an
# offline machine cannot do), static llama/ggml libraries so the cached binary stands alone.
# GGML_NATIVE=OFF: the binary may travel in a CI cache to another host of the same kind; on x86_64
# ggml still compiles its AVX2/FMA/F16C path, which every x86 CI runner has. OpenSSL stays at its
# default (found ⇒ used) so ``-hf repo`` downloads keep working with a cached build.
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DGGML_CCACHE=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",  # tools/server and tools/mtmd live under tools/
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)


class LlamaBuildError(Exception):
    """Fetching or building llama-server failed; ``str()`` is one line saying what and what to do."""


def build_llama_server(
    progress: Callable[[str], None] | None = None,
    *,
    sdist: Path | None = None,
    jobs: int | None = None,
) -> Path:
    """Build ``llama-server`` from the pinned ``llama-cpp-python`` sdist once, cache it, return its path.

    ``sdist``: a ``llama_cpp_python-<version>.tar.gz`` already at hand (a CI cache) instead of a pip
    download. Two processes calling this at once build once: the second waits on the lock and finds
    the binary. The converter is cached beside it. Raises ``LlamaBuildError`` (one line).
    """
    say = progress or (lambda _msg: None)
    target_dir = llama_cache_dir()
    binary = target_dir / BINARY
    if is_executable(binary) and _has_converter(target_dir):
        return binary
    cmake, generator, compiler = _check_toolchain()
    target_dir.mkdir(parents=True, exist_ok=True)
    with locked(target_dir.parent / f".{LLAMA_CPP_COMMIT}.lock"):
        if is_executable(binary) and _has_converter(target_dir):
            return binary  # another process built it while we waited
        with tempfile.TemporaryDirectory(prefix="vlmtui-llama-build-") as scratch_name:
            scratch = Path(scratch_name)
            started = time.monotonic()
            tree = _unpacked_tree(scratch, sdist, say)
            _install_converter(tree, target_dir)
            if not is_executable(binary):
                _build(tree, scratch / "build", target_dir, cmake, generator, compiler, jobs, say, started)
    say(f"llama-server ready: {binary}")
    return binary


def fetch_converter(progress: Callable[[str], None] | None = None, *, sdist: Path | None = None) -> Path:
    """Cache llama.cpp's converter from the pinned sdist without building anything (about a minute)."""
    say = progress or (lambda _msg: None)
    found = converter_dir()
    if found is not None:
        return found
    target_dir = llama_cache_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    with locked(target_dir.parent / f".{LLAMA_CPP_COMMIT}.lock"):
        found = converter_dir()
        if found is not None:
            return found
        with tempfile.TemporaryDirectory(prefix="vlmtui-llama-convert-") as scratch_name:
            tree = _unpacked_tree(Path(scratch_name), sdist, say)
            _install_converter(tree, target_dir)
    found = converter_dir()
    assert found is not None
    return found


# --- the steps ---------------------------------------------------------------------------------------


def _has_converter(target_dir: Path) -> bool:
    """Whether ``target_dir/convert`` holds the whole converter."""
    return all((target_dir / "convert" / part).exists() for part in CONVERTER_PARTS)


def _check_toolchain() -> tuple[str, list[str], str]:
    """cmake, the generator arguments (ninja when present, else make) and the C++ compiler, or a one-line error."""
    cmake = shutil.which("cmake")
    if cmake is None:
        raise LlamaBuildError("cannot build llama-server: cmake not found on PATH "
                              "(brew install cmake · apt-get install cmake · pip install cmake)")
    compilers = [os.environ.get("CXX", ""), "c++", "g++", "clang++"]
    compiler = next((found for name in compilers if name and (found := shutil.which(name))), None)
    if compiler is None:
        raise LlamaBuildError("cannot build llama-server: no C++ compiler found (c++, g++ or clang++ on PATH, "
                              "or $CXX); install one (xcode-select --install · apt-get install g++)")
    if shutil.which("ninja"):
        generator = ["-G", "Ninja"]
    elif shutil.which("make"):
        generator = ["-G", "Unix Makefiles"]
    else:
        raise LlamaBuildError("cannot build llama-server: neither ninja nor make found on PATH "
                              "(brew install ninja · apt-get install ninja-build · pip install ninja)")
    return cmake, generator, compiler


def _unpacked_tree(scratch: Path, sdist: Path | None, say: Callable[[str], None]) -> Path:
    """Fetch (unless given) and unpack the sdist into ``scratch``; return its ``vendor/llama.cpp``."""
    if sdist is None:
        sdist = _download_sdist(scratch / "sdist", say)
    elif not sdist.is_file():
        raise LlamaBuildError(f"llama-cpp-python sdist not found: {sdist}")
    say(f"unpacking {sdist.name}")
    try:
        with tarfile.open(sdist) as archive:
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: no links or paths out of the tree
                archive.extractall(scratch / "src", filter="data")
            else:
                archive.extractall(scratch / "src")  # older 3.11: trusted, it comes from pip's registry
    except (OSError, tarfile.TarError) as exc:
        raise LlamaBuildError(f"cannot unpack {sdist}: {exc}") from exc
    roots = [p for p in (scratch / "src").iterdir() if p.is_dir()]
    tree = roots[0] / "vendor" / "llama.cpp" if len(roots) == 1 else scratch / "missing"
    if not (tree / "CMakeLists.txt").is_file():
        raise LlamaBuildError(f"{sdist.name} has no vendor/llama.cpp/CMakeLists.txt; is it a llama-cpp-python sdist?")
    commit = _vendored_commit(roots[0])
    if commit is not None and not commit.startswith(LLAMA_CPP_COMMIT[:7]):
        raise LlamaBuildError(f"{sdist.name} vendors llama.cpp {commit}, expected {LLAMA_CPP_COMMIT}: "
                              "update LLAMA_CPP_COMMIT together with LLAMA_CPP_PYTHON_VERSION")
    return tree


def _download_sdist(dest: Path, say: Callable[[str], None]) -> Path:
    """``pip download`` the pinned sdist (source only, no dependencies) into ``dest``."""
    spec = f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"
    say(f"downloading the {spec} sdist with pip")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-d", str(dest), spec]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise LlamaBuildError(f"pip download of {spec} failed: {exc}") from exc
    if done.returncode != 0:
        raise LlamaBuildError(f"pip download of {spec} failed (exit {done.returncode}): "
                              f"{_last_error_line(done.stderr + done.stdout)}")
    found = sorted(dest.glob("llama_cpp_python-*.tar.gz")) + sorted(dest.glob("llama-cpp-python-*.tar.gz"))
    if not found:
        raise LlamaBuildError(f"pip download of {spec} succeeded but left no sdist in {dest}")
    return found[0]


def _vendored_commit(sdist_root: Path) -> str | None:
    """The llama.cpp commit the sdist's CHANGELOG names for its own version, if it names one."""
    changelog = sdist_root / "CHANGELOG.md"
    if not changelog.is_file():
        return None
    text = changelog.read_text(encoding="utf-8", errors="replace")
    section = re.search(rf"^## \[{re.escape(LLAMA_CPP_PYTHON_VERSION)}\](.*?)(?=^## \[|\Z)", text, re.M | re.S)
    found = re.search(r"llama\.cpp@([0-9a-f]{7,40})", section.group(1)) if section else None
    return found.group(1) if found else None


def _install_converter(tree: Path, target_dir: Path) -> None:
    """Copy the converter's parts into ``target_dir/convert``, atomically (tmp dir, then rename)."""
    if _has_converter(target_dir):
        return
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target_dir))
    try:
        for part in CONVERTER_PARTS:
            source = tree / part
            if source.is_dir():
                shutil.copytree(source, staging / part,
                                ignore=shutil.ignore_patterns("__pycache__", "tests", "*.pyc"))
            elif source.is_file():
                shutil.copy2(source, staging / part)
            else:
                raise LlamaBuildError(f"the llama.cpp tree has no {part}; cannot cache the converter")
        staging.chmod(0o755)  # mkdtemp makes it 0700; the cache is readable like the tiny models
        final = target_dir / "convert"
        if final.exists():
            shutil.rmtree(final)  # an incomplete one left by an older vlmtui
        staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _build(
    tree: Path,
    build_dir: Path,
    target_dir: Path,
    cmake: str,
    generator: list[str],
    compiler: str,
    jobs: int | None,
    say: Callable[[str], None],
    started: float,
) -> None:
    """Configure and build the llama-server target; install the binary atomically; keep the log."""
    log_path = target_dir / "build.log"
    jobs = jobs or os.cpu_count() or 2
    configure = [cmake, "-S", str(tree), "-B", str(build_dir), *generator, *CMAKE_OPTIONS,
                 f"-DLLAMA_BUILD_COMMIT={LLAMA_CPP_COMMIT}"]
    build = [cmake, "--build", str(build_dir), "--target", BINARY, "--parallel", str(jobs)]
    with open(log_path, "w", encoding="utf-8") as log:
        say("configuring llama.cpp (cmake)")
        configure_started = time.monotonic()
        _run_logged(configure, log, "cmake configure", say=None)
        say(f"building {BINARY} with {jobs} jobs (11-35 minutes on 2 cores, depending on load)")
        _run_logged(build, log, f"building {BINARY}", say=say)
    built = next((p for p in (build_dir / "bin" / BINARY, build_dir / BINARY) if p.is_file()), None)
    if built is None:
        raise LlamaBuildError(f"the build finished but produced no {BINARY}; see {log_path}")
    staging = target_dir / f".{BINARY}.tmp"
    shutil.copy2(built, staging)
    staging.chmod(0o755)
    os.replace(staging, target_dir / BINARY)
    finished = time.monotonic()
    info = {
        "llama_cpp_python": LLAMA_CPP_PYTHON_VERSION,
        "llama_cpp_commit": LLAMA_CPP_COMMIT,
        "cmake_options": [*CMAKE_OPTIONS, *generator],
        "compiler": compiler,
        "jobs": jobs,
        "build_s": round(finished - configure_started, 1),
        "total_s": round(finished - started, 1),
        "binary_bytes": (target_dir / BINARY).stat().st_size,
    }
    (target_dir / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")


_STEP = re.compile(r"^\[(\d+)/(\d+)\]")  # ninja's "[12/206] Building CXX object …"
_PERCENT = re.compile(r"^\[\s*(\d+)%\]")  # make's "[ 42%] Building CXX object …"


def _run_logged(command: list[str], log: TextIO, what: str, say: Callable[[str], None] | None) -> None:
    """Run ``command``, appending its output to ``log`` and reporting build steps; raise on failure."""
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    tail: list[str] = []
    last_report = 0.0
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   errors="replace", env={**os.environ, "CLICOLOR_FORCE": "0"})
    except OSError as exc:
        raise LlamaBuildError(f"{what} failed to start: {exc}") from exc
    assert process.stdout is not None
    for line in process.stdout:
        log.write(line)
        tail = [*tail[-199:], line.rstrip()]
        step = _STEP.match(line) or _PERCENT.match(line)
        if say is not None and step and time.monotonic() - last_report >= 5:
            last_report = time.monotonic()
            said = f"{step.group(1)}/{step.group(2)}" if step.re is _STEP else f"{step.group(1)}%"
            say(f"building {BINARY}: {said}")
    code = process.wait()
    log.flush()
    if code != 0:
        raise LlamaBuildError(f"{what} failed (exit {code}): {_last_error_line(chr(10).join(tail))} "
                              f"(full log: {log.name})")


def _last_error_line(text: str) -> str:
    """The most telling line of a tool's output: the last one that says error, else the last one."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.search(r"\berror\b|ERROR|No matching distribution|Could not find", line):
            return line[:300]
    return lines[-1][:300] if lines else "no output"


