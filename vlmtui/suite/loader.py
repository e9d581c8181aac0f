"""A suite file (TOML) read into frozen dataclasses, with every user mistake caught as one clear line.

The error names the file, the key and, where it can be found, the line: a person fixes a suite in an
editor, not by reading a traceback.
"""

from __future__ import annotations

import glob
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmtui.plugins import BackendNotFound, Option, backends, find_backend
from vlmtui.units import parse_size
from vlmtui.wire.source import ModelSource
from vlmtui.wire.spec import Expect, ModelSpec

CAPABILITIES = ("image", "text", "vision-only")
ON_ABORT = ("next-case", "skip-model", "stop")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


class SuiteError(Exception):
    """A suite the user must fix; ``str()`` is the one line to print."""


@dataclass(frozen=True)
class Prompt:
    """One prompt of the suite, with its own expectations."""

    text: str
    expect: Expect = field(default_factory=Expect)


@dataclass(frozen=True)
class GuardConfig:
    """The ``[guard]`` table: the memory budget and the thresholds as percentages of it."""

    budget: str = "auto"
    """``"auto"``, a size (``"12GiB"``) or a percentage of system RAM (``"60%"``)."""
    warn: float = 75.0
    cleanup: float = 85.0
    abort: float = 95.0
    sample_ms: int = 250
    on_abort: str = "next-case"
    grace_s: float = 1.0
    term_grace_s: float = 2.0
    """After SIGTERM, how long a worker gets to unload and exit before SIGKILL."""
    log_every_ms: int = 1000
    """How often memory samples go into the session log (the gauge sees every sample)."""


@dataclass(frozen=True)
class Suite:
    """A whole suite: what to run, and how memory is guarded while it runs."""

    name: str
    path: Path
    images: tuple[Path, ...]
    prompts: tuple[Prompt, ...]
    text_prompts: tuple[Prompt, ...]
    models: tuple[ModelSpec, ...]
    max_tokens: int = 64
    temperature: float = 0.0
    repeat: int = 1
    warmup: int = 0
    guard: GuardConfig = field(default_factory=GuardConfig)


# ----------------------------------------------------------------------------- validation


class _Where:
    """Finds the line of a key in the suite text, so an error can point at it."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?")

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def _section(self, table: str | None, index: int) -> tuple[int, int]:
        """The line range [start, end) of a table (``None`` is the top level before any header)."""
        headers = [
            (i, m.group(1)) for i, line in enumerate(self.lines) if (m := self._HEADER.match(line))
        ]
        if table is None:
            return 0, headers[0][0] if headers else len(self.lines)
        hits = [i for i, name in headers if name == table]
        if index >= len(hits):
            return 0, 0
        start = hits[index]
        later = [i for i, _ in headers if i > start and not _[1].startswith(f"{table}.")]
        return start, later[0] if later else len(self.lines)

    def line(self, key: str, table: str | None = None, index: int = 0) -> int | None:
        """1-based line of ``key = …`` in the given table, or None."""
        start, end = self._section(table, index)
        pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        for i in range(start, end):
            if pattern.match(self.lines[i]):
                return i + 1
        if table is not None and start < end:
            return start + 1
        return None

    def error(self, message: str, key: str, table: str | None = None, index: int = 0) -> SuiteError:
        """A SuiteError that reads ``file:line: key: message``."""
        line = self.line(key.split(".")[-1], table, index)
        where = f"{self.path}:{line}" if line else str(self.path)
        return SuiteError(f"{where}: {key}: {message}")


_TOP_KEYS = {
    "name", "images", "prompts", "text_prompts", "max_tokens", "temperature", "repeat", "warmup",
    "guard", "models", "expect",
}
_GUARD_KEYS = set(GuardConfig.__dataclass_fields__)
_MODEL_KEYS = set(ModelSpec.__dataclass_fields__) | {"options"}
_EXPECT_KEYS = set(Expect.__dataclass_fields__)


def _typed(
    where: _Where, value: Any, kinds: type | tuple[type, ...], key: str,
    table: str | None = None, index: int = 0,
) -> Any:
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise where.error(f"expected {_kind_name(kinds)}, got a boolean", key, table, index)
    if not isinstance(value, kinds):
        raise where.error(
            f"expected {_kind_name(kinds)}, got {type(value).__name__} {value!r}", key, table, index
        )
    return value


def _kind_name(kinds: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a table"}
    seq = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(names.get(k, k.__name__) for k in seq)


def _unknown(
    where: _Where, data: Mapping[str, Any], allowed: set[str], prefix: str,
    table: str | None = None, index: int = 0,
) -> None:
    for key in data:
        if key not in allowed:
            hint = ", ".join(sorted(allowed))
            raise where.error(f"unknown key (known keys: {hint})", f"{prefix}{key}", table, index)


def _str_list(where: _Where, value: Any, key: str, table: str | None = None, index: int = 0) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    _typed(where, value, list, key, table, index)
    for item in value:
        _typed(where, item, str, key, table, index)
    return tuple(value)


def _expect(where: _Where, data: Any, key: str, table: str | None = None, index: int = 0) -> Expect:
    _typed(where, data, dict, key, table, index)
    _unknown(where, data, _EXPECT_KEYS, f"{key}.", table, index)
    regex = data.get("regex")
    if regex is not None:
        _typed(where, regex, str, f"{key}.regex", table, index)
        try:
            re.compile(regex)
        except re.error as exc:
            raise where.error(f"not a valid regular expression: {exc}", f"{key}.regex", table, index) from None
    peak = data.get("max_peak_memory")
    if peak is not None:
        _typed(where, peak, (str, int), f"{key}.max_peak_memory", table, index)
        try:
            peak = parse_size(peak) if isinstance(peak, str) else peak
        except ValueError as exc:
            raise where.error(str(exc), f"{key}.max_peak_memory", table, index) from None
    min_tokens = data.get("min_tokens")
    if min_tokens is not None:
        _typed(where, min_tokens, int, f"{key}.min_tokens", table, index)
    max_total = data.get("max_total_s")
    if max_total is not None:
        max_total = float(_typed(where, max_total, (int, float), f"{key}.max_total_s", table, index))
    return Expect(
        contains=_str_list(where, data.get("contains", []), f"{key}.contains", table, index),
        not_contains=_str_list(where, data.get("not_contains", []), f"{key}.not_contains", table, index),
        regex=regex,
        min_tokens=min_tokens,
        max_total_s=max_total,
        max_peak_memory=peak,
    )


def _prompts(where: _Where, value: Any, key: str, base: Expect) -> tuple[Prompt, ...]:
    _typed(where, value, list, key)
    prompts = []
    for item in value:
        if isinstance(item, str):
            prompts.append(Prompt(item, base))
            continue
        _typed(where, item, (str, dict), key)
        _unknown(where, item, {"text", "expect"}, f"{key}.")
        if "text" not in item:
            raise where.error("a prompt table needs a text = \"…\"", key)
        text = _typed(where, item["text"], str, f"{key}.text")
        expect = _expect(where, item["expect"], f"{key}.expect") if "expect" in item else Expect()
        prompts.append(Prompt(text, base.merged(expect)))
    return tuple(prompts)


def _images(where: _Where, value: Any, base_dir: Path) -> tuple[Path, ...]:
    patterns = _str_list(where, value, "images")
    found: list[Path] = []
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(base_dir / pattern)
        matches = sorted(Path(p) for p in glob.glob(full, recursive=True))
        matches = [p for p in matches if p.is_file()]
        if not matches:
            raise where.error(f"{pattern!r} matches no file (globs are relative to the suite file)", "images")
        found.extend(p.resolve() for p in matches if p.resolve() not in found)
    return tuple(found)


def _number(where: _Where, data: Mapping[str, Any], key: str, default: float, *, lo: float, hi: float,
            table: str | None = None, index: int = 0, integer: bool = False) -> Any:
    if key not in data:
        return default
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    value = _typed(where, data[key], kinds, key, table, index)
    if not lo <= value <= hi:
        raise where.error(f"must be between {lo:g} and {hi:g}, got {value}", key, table, index)
    return value if integer else float(value)


def _guard(where: _Where, data: Any) -> GuardConfig:
    _typed(where, data, dict, "guard")
    _unknown(where, data, _GUARD_KEYS, "guard.", "guard")
    budget = data.get("budget", "auto")
    _typed(where, budget, str, "budget", "guard")
    if budget != "auto":
        try:
            if budget.endswith("%"):
                pct = float(budget[:-1])
                if not 0 < pct <= 100:
                    raise ValueError("a percentage of RAM must be between 0 and 100")
            else:
                parse_size(budget)
        except ValueError as exc:
            raise where.error(str(exc), "budget", "guard") from None
    cfg = GuardConfig(
        budget=budget,
        warn=_number(where, data, "warn", 75.0, lo=1, hi=100, table="guard"),
        cleanup=_number(where, data, "cleanup", 85.0, lo=1, hi=100, table="guard"),
        abort=_number(where, data, "abort", 95.0, lo=1, hi=100, table="guard"),
        sample_ms=_number(where, data, "sample_ms", 250, lo=10, hi=60_000, table="guard", integer=True),
        on_abort=data.get("on_abort", "next-case"),
        grace_s=_number(where, data, "grace_s", 1.0, lo=0.05, hi=60, table="guard"),
        term_grace_s=_number(where, data, "term_grace_s", 2.0, lo=0.05, hi=60, table="guard"),
        log_every_ms=_number(where, data, "log_every_ms", 1000, lo=10, hi=3_600_000, table="guard",
                             integer=True),
    )
    if cfg.on_abort not in ON_ABORT:
        raise where.error(f"must be one of {', '.join(ON_ABORT)}", "on_abort", "guard")
    if not cfg.warn <= cfg.cleanup <= cfg.abort:
        raise where.error("thresholds must rise: warn ≤ cleanup ≤ abort", "warn", "guard")
    return cfg


def _option(where: _Where, option: Option, value: Any, table: str, index: int) -> Any:
    """A backend option's value, checked against the type its backend declares."""
    key = option.name
    if option.kind is list:
        if isinstance(value, str):
            raise where.error(f"write the {key} as an argv list, e.g. [\"python\", \"-m\", \"server\"], "
                              "never a shell string", key, table, index)
        return list(_str_list(where, value, key, table, index))
    if option.kind is float:
        return float(_typed(where, value, (int, float), key, table, index))
    return _typed(where, value, option.kind, key, table, index)


def _model(where: _Where, data: Any, index: int, base_expect: Expect) -> ModelSpec:
    """A ``[[models]]`` table: the common keys, then the options its backend declares (vlmtui.plugins)."""
    table = "models"
    _typed(where, data, dict, "models", table, index)
    merged = dict(data)
    options = merged.pop("options", {})
    _typed(where, options, dict, "options", table, index)
    for required in ("id", "backend"):
        if required not in merged:
            raise where.error(f"models[{index}] needs {required} = \"…\"", "models", table, index)
    backend = _typed(where, merged["backend"], str, "backend", table, index)
    try:
        declaration = find_backend(backend)
    except BackendNotFound as exc:
        raise where.error(str(exc), "backend", table, index) from None
    known = _MODEL_KEYS | {o.name for o in declaration.options}
    _unknown(where, options, known - {"options", "id", "backend", "path", "expect"}, "options.", table, index)
    merged.update(options)
    _unknown(where, merged, known, "", table, index)
    model_id = _typed(where, merged["id"], str, "id", table, index)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", model_id):
        raise where.error("use letters, digits, '.', '_' and '-' only", "id", table, index)

    def opt(key: str, kinds: type | tuple[type, ...]) -> Any:
        return _typed(where, merged[key], kinds, key, table, index) if key in merged else None

    path = _typed(where, merged.get("path", ""), str, "path", table, index)
    if not path and declaration.path_required:
        raise where.error("needs path = \"<hub id | local dir | tiny:<family>>\"", "path", table, index)
    source = ModelSource.parse(path, revision := opt("revision", str)).anchored(where.path.parent)
    path = source.name if source.is_local else path  # a path written as one is absolute from here on
    if (problem := declaration.tiny_problem(source, backends())) is not None:
        raise where.error(problem, "path", table, index)
    caps = _str_list(where, merged.get("capabilities", []), "capabilities", table, index)
    for cap in caps:
        if cap not in CAPABILITIES:
            raise where.error(f"unknown capability {cap!r} (known: {', '.join(CAPABILITIES)})",
                              "capabilities", table, index)
    values = {o.name: _option(where, o, merged[o.name], table, index) for o in declaration.options if o.name in merged}
    if declaration.check is not None and (broken := declaration.check(values, source)) is not None:
        raise where.error(broken[1], broken[0], table, index)
    expect = _expect(where, merged["expect"], "expect", table, index) if "expect" in merged else Expect()
    return ModelSpec(
        id=model_id,
        backend=backend,
        path=path,
        revision=revision,
        trust_remote_code=bool(opt("trust_remote_code", bool)),
        capabilities=caps,
        force=bool(opt("force", bool)),
        max_image_size=opt("max_image_size", int),
        max_tokens=opt("max_tokens", int),
        temperature=float(t) if (t := opt("temperature", (int, float))) is not None else None,
        options=values,
        expect=base_expect.merged(expect),
    )


def parse_suite(text: str, path: Path, *, resolve_path: Callable[[str], str] | None = None) -> Suite:
    """A suite from its TOML text; ``path`` anchors relative globs and names the file in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path}: not valid TOML: {exc}") from None
    where = _Where(path, text)
    _unknown(where, data, _TOP_KEYS, "")
    name = _typed(where, data.get("name", path.stem), str, "name")
    base_expect = _expect(where, data["expect"], "expect") if "expect" in data else Expect()
    models_raw = data.get("models")
    if not models_raw:
        raise where.error("a suite needs at least one [[models]] table", "models")
    _typed(where, models_raw, list, "models")
    models = tuple(_model(where, m, i, Expect()) for i, m in enumerate(models_raw))
    seen: set[str] = set()
    for index, model in enumerate(models):
        if model.id in seen:
            raise where.error(f"model id {model.id!r} is used twice", "id", "models", index)
        seen.add(model.id)
    prompts = _prompts(where, data.get("prompts", []), "prompts", base_expect)
    text_prompts = _prompts(where, data.get("text_prompts", []), "text_prompts", base_expect)
    images = _images(where, data["images"], path.parent) if "images" in data else ()
    if prompts and not images:
        raise where.error("image prompts need images = [\"glob\", …]", "prompts")
    if images and not prompts:
        raise where.error("images are listed but there is no image prompt", "images")
    if not prompts and not text_prompts:
        raise where.error("a suite needs prompts (with images) or text_prompts", "prompts")
    return Suite(
        name=name,
        path=path,
        images=images,
        prompts=prompts,
        text_prompts=text_prompts,
        models=models,
        max_tokens=_number(where, data, "max_tokens", 64, lo=1, hi=1_000_000, integer=True),
        temperature=_number(where, data, "temperature", 0.0, lo=0, hi=10),
        repeat=_number(where, data, "repeat", 1, lo=1, hi=10_000, integer=True),
        warmup=_number(where, data, "warmup", 0, lo=0, hi=10_000, integer=True),
        guard=_guard(where, data["guard"]) if "guard" in data else GuardConfig(),
    )


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; every problem is a ``SuiteError`` with one line to show."""
    suite_path = Path(path).expanduser()
    try:
        text = suite_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError(f"{suite_path}: suite file not found") from None
    except IsADirectoryError:
        raise SuiteError(f"{suite_path}: is a directory, not a suite file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{suite_path}: cannot read the suite: {exc}") from None
    return parse_suite(text, suite_path.resolve())
