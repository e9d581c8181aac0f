"""The suite's ``[[datasets]]`` tables: where a dataset's files are, how its answers are scored, and its
selected items read, every mistake one line with the suite's file, key and line (docs/scoring.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmtui.reports.case_scores import DEFAULT_PASS_AT
from vlmtui.scoring.judge import DEFAULT_JUDGE_PROMPT, JudgePromptError, check_judge_prompt
from vlmtui.scoring.metrics import MetricError, parse_metric
from vlmtui.suite.checks import Where, number, str_list, typed, unknown
from vlmtui.suite.datasets import (
    DEFAULT_ANSWER_FORMAT,
    FORMATS,
    Dataset,
    DatasetError,
    DatasetItem,
    DatasetSource,
    load_dataset,
)

TABLE = "datasets"
_FILES = {"vqa2": ("questions", "annotations", "images"), "jsonl": ("path",), "csv": ("path",)}
"""The file keys each format takes; the first of vqa2's and jsonl/csv's ``path`` are required (and images)."""
_REQUIRED = {"vqa2": ("questions", "images"), "jsonl": ("path",), "csv": ("path",)}
_KEYS = {"id", "format", "questions", "annotations", "images", "path", "metrics", "answer_format", "limit",
         "sample", "seed", "pass_at", "judge_prompt"}
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


@dataclass(frozen=True)
class DatasetEntry:
    """One ``[[datasets]]`` table, checked, with its selected items read and its missing images listed."""

    id: str
    source: DatasetSource
    metrics: tuple[str, ...]
    """The first is the primary: it decides passed or failed at ``pass_at``."""
    dataset: Dataset
    pass_at: float = DEFAULT_PASS_AT
    answer_format: str = ""
    """Appended to each question on a new line; ``""`` for none."""
    judge_prompt: str = DEFAULT_JUDGE_PROMPT

    @property
    def judges(self) -> tuple[str, ...]:
        """The model ids of the judge metrics (``judge:<model-id>``), in metric order."""
        return tuple(m.judge_model for m in map(parse_metric, self.metrics) if m.judge_model is not None)

    def prompt(self, item: DatasetItem) -> str:
        """What a model is asked for ``item``: the question, and the answer format on a new line."""
        return f"{item.question}\n{self.answer_format}" if self.answer_format else item.question


def parse_datasets(where: Where, value: Any, model_ids: Sequence[str]) -> tuple[DatasetEntry, ...]:
    """Every ``[[datasets]]`` table checked and read; ``model_ids`` are the suite's, for judge metrics."""
    typed(where, value, list, TABLE)
    entries: list[DatasetEntry] = []
    for index, table in enumerate(value):
        entry = _entry(where, table, index, model_ids)
        if any(e.id == entry.id for e in entries):
            raise where.error(f"dataset id {entry.id!r} is used twice", "id", TABLE, index)
        entries.append(entry)
    return tuple(entries)


def _entry(where: Where, data: Any, index: int, model_ids: Sequence[str]) -> DatasetEntry:
    """One table: its keys, its files resolved against the suite, its metrics, then its items read."""
    typed(where, data, dict, TABLE, TABLE, index)
    unknown(where, data, _KEYS, "", TABLE, index)
    for required in ("id", "format", "metrics"):
        if required not in data:
            example = '["vqa", "relaxed"]' if required == "metrics" else '"…"'
            raise where.error(f"datasets[{index}] needs {required} = {example}", TABLE, TABLE, index)
    dataset_id = typed(where, data["id"], str, "id", TABLE, index)
    if not _ID.fullmatch(dataset_id):
        raise where.error("use letters, digits, '.', '_' and '-' only", "id", TABLE, index)
    form = typed(where, data["format"], str, "format", TABLE, index)
    if form not in FORMATS:
        raise where.error(f"unknown format {form!r} (known: {', '.join(FORMATS)})", "format", TABLE, index)
    files = _files(where, data, form, index)
    limit, sample = _count(where, data, "limit", index), _count(where, data, "sample", index)
    seed = number(where, data, "seed", 0, lo=0, hi=2**63, table=TABLE, index=index, integer=True)
    if limit is not None and sample is not None:
        raise where.error("limit takes the first items and sample draws some: set one", "sample", TABLE, index)
    if "seed" in data and sample is None:
        raise where.error("seed picks the items of sample = N; without sample it does nothing", "seed", TABLE, index)
    metrics = _metrics(where, data["metrics"], index, model_ids)
    answer_format = typed(where, data.get("answer_format", DEFAULT_ANSWER_FORMAT.get(form, "")), str,
                          "answer_format", TABLE, index).strip()
    judge_prompt = DEFAULT_JUDGE_PROMPT
    if "judge_prompt" in data:
        judge_prompt = typed(where, data["judge_prompt"], str, "judge_prompt", TABLE, index)
        if not any(parse_metric(m).is_judge for m in metrics):
            raise where.error("no metric is judge:<model-id>, so no judge reads this prompt", "judge_prompt",
                              TABLE, index)
        try:
            check_judge_prompt(judge_prompt)
        except JudgePromptError as exc:
            raise where.error(str(exc).removeprefix("judge_prompt: "), "judge_prompt", TABLE, index) from None
    source = DatasetSource(format=form, limit=limit, sample=sample, seed=seed, **files)
    try:
        dataset = load_dataset(source)
    except DatasetError as exc:
        raise where.error(f"dataset {dataset_id!r}: {exc}", TABLE, TABLE, index) from None
    return DatasetEntry(
        id=dataset_id, source=source, metrics=metrics, dataset=dataset,
        pass_at=number(where, data, "pass_at", DEFAULT_PASS_AT, lo=0, hi=1, table=TABLE, index=index),
        answer_format=answer_format, judge_prompt=judge_prompt,
    )


def _count(where: Where, data: Mapping[str, Any], key: str, index: int) -> int | None:
    """``limit`` or ``sample``: a whole number of at least 1, or None when absent."""
    if key not in data:
        return None
    return int(number(where, data, key, 1, lo=1, hi=10**9, table=TABLE, index=index, integer=True))


def _files(where: Where, data: Mapping[str, Any], form: str, index: int) -> dict[str, Path]:
    """The format's file keys, resolved against the suite's folder; a key of another format is an error."""
    takes = _FILES[form]
    for key in ("questions", "annotations", "images", "path"):
        if key in data and key not in takes:
            wanted = " and ".join(_REQUIRED[form])
            raise where.error(f"a {form} dataset takes {wanted}, not {key}", key, TABLE, index)
    for key in _REQUIRED[form]:
        if key not in data:
            raise where.error(f"a {form} dataset needs {key} = \"…\" (relative to the suite file)", TABLE,
                              TABLE, index)
    base = where.path.parent
    return {key: base / Path(typed(where, data[key], str, key, TABLE, index)).expanduser()
            for key in takes if key in data}


def _metrics(where: Where, value: Any, index: int, model_ids: Sequence[str]) -> tuple[str, ...]:
    """The metric names checked: known, each once, and a judge that is a model of the suite."""
    names = str_list(where, value, "metrics", TABLE, index)
    if not names:
        raise where.error('name at least one metric, e.g. ["vqa", "relaxed"]', "metrics", TABLE, index)
    metrics: list[str] = []
    for name in names:
        try:
            metric = parse_metric(name)
        except MetricError as exc:
            raise where.error(str(exc), "metrics", TABLE, index) from None
        if metric.name in metrics:
            raise where.error(f"{metric.name} is listed twice", "metrics", TABLE, index)
        if metric.judge_model is not None and metric.judge_model not in model_ids:
            known = ", ".join(model_ids)
            raise where.error(f"{metric.name}: no model of the suite has id {metric.judge_model!r} (models: {known})",
                              "metrics", TABLE, index)
        metrics.append(metric.name)
    return tuple(metrics)
