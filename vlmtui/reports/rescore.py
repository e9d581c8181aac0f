"""Scores for a saved session's answers without running a model again (``vlmtui score``): new metrics,
corrected references. The new log is the old one line for line, with each dataset case's ``case_end``
scored again (and passed or failed again by its primary score); its reports show the new scores.

References come from the suite's datasets when it has them (``--suite``), else from the log's own
``references``. Judge metrics cannot be recomputed offline: the judge's cases in the log keep their grades.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmtui.reports.case_scores import JUDGE_KIND, CaseScores, Judging, answered, score_status
from vlmtui.reports.records import LogError, SessionRecords, load_log
from vlmtui.scoring.metrics import MetricError, parse_metric, score_all
from vlmtui.suite.datasets import DatasetError, DatasetSource, load_dataset

SCORE_KEYS = ("scores", "score_errors", "primary_metric", "pass_at", "references", "dataset", "item_id",
              "answer_type")
"""The ``case_end`` fields a re-scoring rewrites."""


class RescoreError(LogError):
    """A re-scoring that cannot be done (bad metric, unreadable dataset, nothing to score); one line."""


@dataclass(frozen=True)
class SuiteItem:
    """What the suite says about one dataset item: its references, answer type, metrics and threshold."""

    references: tuple[str, ...]
    answer_type: str | None = None
    metrics: tuple[str, ...] = ()
    pass_at: float | None = None


@dataclass(frozen=True)
class Rescored:
    """What ``rescore`` did: the new log, how many answers it scored, and the lines worth telling the user."""

    source: Path
    output: Path
    answers: int
    """Answers scored (one per ``case_end`` of a dataset case that ran to an answer)."""
    unreferenced: int
    """Of those, answers without reference answers (their scores are null)."""
    notes: tuple[str, ...]
    records: SessionRecords = field(repr=False)
    """The new log, read back."""


def check_metrics(metrics: Iterable[str]) -> tuple[str, ...]:
    """The metric names checked (``vqa``, ``judge:<model-id>``, …); an unknown one is a :class:`RescoreError`."""
    try:
        return tuple(parse_metric(name).name for name in metrics)
    except MetricError as exc:
        raise RescoreError(str(exc)) from None


def suite_items(suite: object) -> dict[tuple[str, str], SuiteItem]:
    """The items of a suite's ``[[datasets]]`` by (dataset id, item id); none for a suite without datasets.

    A dataset entry names its ``id``, ``metrics`` and ``pass_at`` and holds its files as a
    ``DatasetSource`` (its ``source``, or the entry itself).
    """
    items: dict[tuple[str, str], SuiteItem] = {}
    for entry in getattr(suite, "datasets", None) or ():
        source = getattr(entry, "source", entry)
        if not isinstance(source, DatasetSource):
            continue
        try:
            dataset = load_dataset(source)
        except DatasetError as exc:
            raise RescoreError(str(exc)) from None
        dataset_id = str(getattr(entry, "id", ""))
        metrics = check_metrics(getattr(entry, "metrics", ()) or ())
        pass_at = getattr(entry, "pass_at", None)
        for item_id, references, answer_type in dataset.answer_keys():  # missing images too: answered before they went
            items[(dataset_id, item_id)] = SuiteItem(references, answer_type, metrics,
                                                     float(pass_at) if isinstance(pass_at, int | float) else None)
    return items


def default_output(log: Path) -> Path:
    """``run.jsonl`` → ``run.scored.jsonl`` beside it."""
    return log.with_name(f"{log.stem}.scored.jsonl")


def rescore(log: str | Path, *, metrics: Sequence[str] | None = None,
            items: Mapping[tuple[str, str], SuiteItem] | None = None, output: str | Path | None = None,
            suite_name: str = "") -> Rescored:
    """Score the answers of ``log`` again and write the new log to ``output``; returns what was done."""
    source = Path(log)
    load_log(source)  # one-line error for a file that is not a session log
    target = Path(output) if output is not None else default_output(source)
    if target.resolve() == source.resolve():
        raise RescoreError(f"{target}: would overwrite the log it scores; name another file with -o")
    asked = check_metrics(metrics) if metrics else None
    lines = source.read_text(encoding="utf-8").splitlines()
    parsed = [_json(line) for line in lines]
    scorer = _Scorer(asked, items or {}, _grades(parsed))
    out = []
    for text, record in zip(lines, parsed, strict=True):
        scored = scorer.line(record) if record is not None and scorer.wants(record) else None
        out.append(text if scored is None else json.dumps(scored, ensure_ascii=False))
    if scorer.answers == 0 and not scorer.seen:
        raise RescoreError(f"{source}: nothing to score: no case has a dataset or reference answers")
    notes = scorer.notes(suite_name)
    session_id = next((str(r.get("session_id", "")) for r in reversed(parsed) if r and "session_id" in r), "")
    message = f"scored again from {source}" + (f" with {', '.join(asked)}" if asked else "")
    out.append(json.dumps({"event": "notice", "t": time.time(), "session_id": session_id, "level": "info",
                           "message": message}, ensure_ascii=False))
    _write(target, "\n".join(out) + "\n")
    return Rescored(source, target, scorer.answers, scorer.unreferenced, notes, load_log(target))


class _Scorer:
    """Scores one ``case_end`` line at a time, counting what it did for the notes."""

    def __init__(self, metrics: tuple[str, ...] | None, items: Mapping[tuple[str, str], SuiteItem],
                 grades: Mapping[str, list[tuple[int | None, CaseScores]]]) -> None:
        self.metrics = metrics
        self.items = items
        self.grades = grades
        self.answers = 0
        self.unreferenced = 0
        self.seen = 0
        self.from_suite = 0
        self.judges: set[str] = set()

    def wants(self, record: dict[str, Any]) -> bool:
        """A case_end of a case that is not a judge's."""
        return (record.get("event") == "case_end" and "case_id" in record and record.get("kind") != JUDGE_KIND
                and Judging.from_line(record) is None)

    def line(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """The line with its scores computed again; None to keep it as it is (a case without a dataset)."""
        before = CaseScores.from_line(record)
        item = self.items.get((before.dataset, before.item_id)) if before.dataset and before.item_id else None
        if item is None and not (before.dataset or before.references or before.scores):
            return None
        self.seen += 1
        self.from_suite += item is not None
        metrics = self.metrics or (item.metrics if item and item.metrics else tuple(before.metrics))
        if not metrics:
            return None
        self.judges.update(m for m in metrics if parse_metric(m).is_judge)
        references = item.references if item is not None else before.references
        scores: dict[str, float | None] = {}
        errors: dict[str, str] = {}
        if answered(str(record.get("status")), record.get("metrics") or {}):
            scores, errors = score_all(metrics, str(record.get("output") or ""), references)
            self.answers += 1
            self.unreferenced += not any(ref.strip() for ref in references)
        pass_at = item.pass_at if item is not None and item.pass_at is not None else before.pass_at
        after = CaseScores(scores, errors, references, before.dataset, before.item_id,
                           item.answer_type if item is not None else before.answer_type, metrics[0], pass_at)
        attempt = record.get("attempt") or 1
        grades = [grade for read, grade in self.grades.get(str(record["case_id"]), []) if read in (None, attempt)]
        status, error = score_status(str(record.get("status")), str(record.get("error") or ""),
                                     _graded(before, grades), _graded(after, grades))
        rewritten = {k: v for k, v in record.items() if k not in SCORE_KEYS}
        return {**rewritten, "status": status, "error": error, **after.to_dict()}

    def notes(self, suite_name: str) -> tuple[str, ...]:
        """The lines the user should read: judge metrics kept, references not from the suite."""
        notes = [f"{name} cannot be recomputed offline: the grades of its judge cases in the log are kept "
                 "(run the suite again to judge anew)" for name in sorted(self.judges)]
        if suite_name and not self.items:
            notes.append(f"{suite_name} has no [[datasets]]: the references come from the log")
        elif self.items and self.seen > self.from_suite:
            notes.append(f"{self.seen - self.from_suite} case(s) are not items of the suite's datasets: "
                         "their references come from the log")
        if self.unreferenced:
            notes.append(f"{self.unreferenced} answer(s) have no reference answers: their scores are null")
        return tuple(notes)


def _json(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def _grades(records: Iterable[dict[str, Any] | None]) -> dict[str, list[tuple[int | None, CaseScores]]]:
    """Each judge case's latest grade, by the case it read, with the attempt it read (None: not named)."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        if record is not None and record.get("event") == "case_end" and "case_id" in record:
            latest[str(record["case_id"])] = record
    grades: dict[str, list[tuple[int | None, CaseScores]]] = {}
    for record in latest.values():
        judging = Judging.from_line(record)
        if judging is not None:
            grades.setdefault(judging.case_id, []).append((judging.attempt, CaseScores.from_line(record)))
    return grades


def _graded(scores: CaseScores, grades: Iterable[CaseScores]) -> CaseScores:
    for grade in grades:
        scores = scores.with_grades(grade)
    return scores


def _write(path: Path, text: str) -> None:
    """Write the whole file or nothing (a temporary file renamed over it)."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        raise RescoreError(f"{path}: cannot write the scored log: {exc.strerror or exc}") from None
