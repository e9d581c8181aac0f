"""A suite file (TOML) read into frozen dataclasses, with every user mistake caught as one clear line
(``suite.checks``: the file, the key and the line).
"""

from __future__ import annotations

import glob
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmtui.plugins import BackendNotFound, Option, backends, find_backend
from vlmtui.suite.checks import SuiteError as SuiteError  # re-exported: callers catch it from here
from vlmtui.suite.checks import Where, number, str_list, typed, unknown
from vlmtui.suite.conversations import Conversation, parse_conversations
from vlmtui.suite.dataset_tables import DatasetEntry, parse_datasets
from vlmtui.units import parse_size
from vlmtui.wire.source import ModelSource
from vlmtui.wire.spec import Expect, ModelSpec

CAPABILITIES = ("image", "text", "vision-only")
ON_ABORT = ("next-case", "skip-model", "stop")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


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
    datasets: tuple[DatasetEntry, ...] = ()
    """The ``[[datasets]]``: every selected item runs on every model and is scored (docs/scoring.md)."""
    conversations: tuple[Conversation, ...] = ()
    """The ``[[conversations]]``: multi-turn cases, one per image (or one text-only) per model."""


# ----------------------------------------------------------------------------- validation


_TOP_KEYS = {
    "name", "images", "prompts", "text_prompts", "max_tokens", "temperature", "repeat", "warmup",
    "guard", "models", "expect", "datasets", "conversations",
}
_GUARD_KEYS = set(GuardConfig.__dataclass_fields__)
_MODEL_KEYS = set(ModelSpec.__dataclass_fields__) | {"options"}
_EXPECT_KEYS = set(Expect.__dataclass_fields__)


def _expect(where: Where, data: Any, key: str, table: str | None = None, index: int = 0) -> Expect:
    typed(where, data, dict, key, table, index)
    unknown(where, data, _EXPECT_KEYS, f"{key}.", table, index)
    regex = data.get("regex")
    if regex is not None:
        typed(where, regex, str, f"{key}.regex", table, index)
        try:
            re.compile(regex)
        except re.error as exc:
            raise where.error(f"not a valid regular expression: {exc}", f"{key}.regex", table, index) from None
    peak = data.get("max_peak_memory")
    if peak is not None:
        typed(where, peak, (str, int), f"{key}.max_peak_memory", table, index)
        try:
            peak = parse_size(peak) if isinstance(peak, str) else peak
        except ValueError as exc:
            raise where.error(str(exc), f"{key}.max_peak_memory", table, index) from None
    min_tokens = data.get("min_tokens")
    if min_tokens is not None:
        typed(where, min_tokens, int, f"{key}.min_tokens", table, index)
    max_total = data.get("max_total_s")
    if max_total is not None:
        max_total = float(typed(where, max_total, (int, float), f"{key}.max_total_s", table, index))
    return Expect(
        contains=str_list(where, data.get("contains", []), f"{key}.contains", table, index),
        not_contains=str_list(where, data.get("not_contains", []), f"{key}.not_contains", table, index),
        regex=regex,
        min_tokens=min_tokens,
        max_total_s=max_total,
        max_peak_memory=peak,
    )


def _prompts(where: Where, value: Any, key: str, base: Expect) -> tuple[Prompt, ...]:
    typed(where, value, list, key)
    prompts = []
    for item in value:
        if isinstance(item, str):
            prompts.append(Prompt(item, base))
            continue
        typed(where, item, (str, dict), key)
        unknown(where, item, {"text", "expect"}, f"{key}.")
        if "text" not in item:
            raise where.error("a prompt table needs a text = \"…\"", key)
        text = typed(where, item["text"], str, f"{key}.text")
        expect = _expect(where, item["expect"], f"{key}.expect") if "expect" in item else Expect()
        prompts.append(Prompt(text, base.merged(expect)))
    return tuple(prompts)


def _images(where: Where, value: Any, base_dir: Path, table: str | None = None, index: int = 0) -> tuple[Path, ...]:
    patterns = str_list(where, value, "images", table, index)
    found: list[Path] = []
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(base_dir / pattern)
        matches = sorted(Path(p) for p in glob.glob(full, recursive=True))
        matches = [p for p in matches if p.is_file()]
        if not matches:
            raise where.error(f"{pattern!r} matches no file (globs are relative to the suite file)", "images",
                              table, index)
        found.extend(p.resolve() for p in matches if p.resolve() not in found)
    return tuple(found)


def _guard(where: Where, data: Any) -> GuardConfig:
    typed(where, data, dict, "guard")
    unknown(where, data, _GUARD_KEYS, "guard.", "guard")
    budget = data.get("budget", "auto")
    typed(where, budget, str, "budget", "guard")
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
        warn=number(where, data, "warn", 75.0, lo=1, hi=100, table="guard"),
        cleanup=number(where, data, "cleanup", 85.0, lo=1, hi=100, table="guard"),
        abort=number(where, data, "abort", 95.0, lo=1, hi=100, table="guard"),
        sample_ms=number(where, data, "sample_ms", 250, lo=10, hi=60_000, table="guard", integer=True),
        on_abort=data.get("on_abort", "next-case"),
        grace_s=number(where, data, "grace_s", 1.0, lo=0.05, hi=60, table="guard"),
        term_grace_s=number(where, data, "term_grace_s", 2.0, lo=0.05, hi=60, table="guard"),
        log_every_ms=number(where, data, "log_every_ms", 1000, lo=10, hi=3_600_000, table="guard",
                             integer=True),
    )
    if cfg.on_abort not in ON_ABORT:
        raise where.error(f"must be one of {', '.join(ON_ABORT)}", "on_abort", "guard")
    if not cfg.warn <= cfg.cleanup <= cfg.abort:
        raise where.error("thresholds must rise: warn ≤ cleanup ≤ abort", "warn", "guard")
    return cfg


def _option(where: Where, option: Option, value: Any, table: str, index: int) -> Any:
    """A backend option's value, checked against the type its backend declares."""
    key = option.name
    if option.kind is list:
        if isinstance(value, str):
            raise where.error(f"write the {key} as an argv list, e.g. [\"python\", \"-m\", \"server\"], "
                              "never a shell string", key, table, index)
        return list(str_list(where, value, key, table, index))
    if option.kind is float:
        return float(typed(where, value, (int, float), key, table, index))
    return typed(where, value, option.kind, key, table, index)


def _model(where: Where, data: Any, index: int, base_expect: Expect) -> ModelSpec:
    """A ``[[models]]`` table: the common keys, then the options its backend declares (vlmtui.plugins)."""
    table = "models"
    typed(where, data, dict, "models", table, index)
    merged = dict(data)
    options = merged.pop("options", {})
    typed(where, options, dict, "options", table, index)
    for required in ("id", "backend"):
        if required not in merged:
            raise where.error(f"models[{index}] needs {required} = \"…\"", "models", table, index)
    backend = typed(where, merged["backend"], str, "backend", table, index)
    try:
        declaration = find_backend(backend)
    except BackendNotFound as exc:
        raise where.error(str(exc), "backend", table, index) from None
    known = _MODEL_KEYS | {o.name for o in declaration.options}
    unknown(where, options, known - {"options", "id", "backend", "path", "expect"}, "options.", table, index)
    merged.update(options)
    unknown(where, merged, known, "", table, index)
    model_id = typed(where, merged["id"], str, "id", table, index)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", model_id):
        raise where.error("use letters, digits, '.', '_' and '-' only", "id", table, index)

    def opt(key: str, kinds: type | tuple[type, ...]) -> Any:
        return typed(where, merged[key], kinds, key, table, index) if key in merged else None

    path = typed(where, merged.get("path", ""), str, "path", table, index)
    if not path and declaration.path_required:
        raise where.error("needs path = \"<hub id | local dir | tiny:<family>>\"", "path", table, index)
    source = ModelSource.parse(path, revision := opt("revision", str)).anchored(where.path.parent)
    path = source.name if source.is_local else path  # a path written as one is absolute from here on
    if (problem := declaration.tiny_problem(source, backends())) is not None:
        raise where.error(problem, "path", table, index)
    caps = str_list(where, merged.get("capabilities", []), "capabilities", table, index)
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
    where = Where(path, text)
    unknown(where, data, _TOP_KEYS, "")
    name = typed(where, data.get("name", path.stem), str, "name")
    base_expect = _expect(where, data["expect"], "expect") if "expect" in data else Expect()
    models_raw = data.get("models")
    if not models_raw:
        raise where.error("a suite needs at least one [[models]] table", "models")
    typed(where, models_raw, list, "models")
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
    datasets = parse_datasets(where, data["datasets"], [m.id for m in models]) if "datasets" in data else ()
    conversations = parse_conversations(
        where, data["conversations"], base_expect, _expect,
        lambda w, value, table, index: _images(w, value, path.parent, table, index), {d.id for d in datasets},
    ) if "conversations" in data else ()
    if not prompts and not text_prompts and not datasets and not conversations:
        raise where.error("a suite needs prompts (with images), text_prompts, [[datasets]] or [[conversations]]",
                          "prompts")
    return Suite(
        name=name,
        path=path,
        images=images,
        prompts=prompts,
        text_prompts=text_prompts,
        models=models,
        max_tokens=number(where, data, "max_tokens", 64, lo=1, hi=1_000_000, integer=True),
        temperature=number(where, data, "temperature", 0.0, lo=0, hi=10),
        repeat=number(where, data, "repeat", 1, lo=1, hi=10_000, integer=True),
        warmup=number(where, data, "warmup", 0, lo=0, hi=10_000, integer=True),
        guard=_guard(where, data["guard"]) if "guard" in data else GuardConfig(),
        datasets=datasets,
        conversations=conversations,
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
