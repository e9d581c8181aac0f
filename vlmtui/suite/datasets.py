"""Dataset files with reference answers (VQA v2, JSON lines, CSV) read into frozen items, mistakes as one line.

Paths arrive resolved (the suite resolves them against its own file); an image named inside a JSONL or CSV
file is relative to that file. Selection (``limit``, or ``sample`` + ``seed``) happens before images are
looked for, so the same items are chosen whichever images are missing. The formats: docs/scoring.md.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from vlmtui.text import and_more

FORMATS = ("vqa2", "jsonl", "csv")
DEFAULT_ANSWER_FORMAT = {"vqa2": "Answer the question using a single word or phrase."}
"""The instruction appended to each question unless the suite says otherwise (VQA's usual one)."""
CSV_ANSWER_SEPARATOR = "|"
"""Between the answers in a CSV ``answers`` cell: ``red|dark red``; an answer holding ``|`` needs JSONL."""
RECORD_KEYS = ("id", "image", "question", "answers", "answer", "answer_type")
_VQA_IMAGE_NAME = re.compile(r"(?:^|_)(\d+)\.(?:jpe?g|png)$", re.I)

T = TypeVar("T")


class DatasetError(Exception):
    """A dataset the user must fix; ``str()`` is the one line to print (file, line or item, what is wrong)."""


@dataclass(frozen=True)
class DatasetItem:
    """One question of a dataset: its image (None for a text-only question) and its reference answers."""

    id: str
    image: Path | None
    question: str
    references: tuple[str, ...]
    """Empty when the data has none: the answer is recorded, not scored."""
    answer_type: str | None = None


@dataclass(frozen=True)
class MissingImage:
    """An item whose image is not there, and where it was looked for."""

    item_id: str
    looked_for: str
    source: Path
    references: tuple[str, ...] = ()
    """The item's reference answers and answer type: scoring a saved log again (``vlmtui score --suite``) needs
    them for every answered item, and an image may have gone since the run."""
    answer_type: str | None = None

    def message(self) -> str:
        """The one line naming the file, the item and the path looked for."""
        return f"{self.source}: item {self.item_id}: image not found: {self.looked_for}"


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset's files are and which of its items to take; built from a suite's ``[[datasets]]`` table."""

    format: str
    path: Path | None = None
    """The JSONL or CSV file."""
    questions: Path | None = None
    """VQA v2: the questions JSON."""
    annotations: Path | None = None
    """VQA v2: the annotations JSON; without it the items have no references."""
    images: Path | None = None
    """VQA v2: the folder of images."""
    limit: int | None = None
    sample: int | None = None
    seed: int = 0

    @property
    def file(self) -> Path:
        """The file errors about items name: the JSONL/CSV file, or the VQA questions JSON."""
        return self.path or self.questions or Path("?")


@dataclass(frozen=True)
class Dataset:
    """The selected items of a dataset whose images were found, and those whose images were not."""

    source: DatasetSource
    items: tuple[DatasetItem, ...]
    missing: tuple[MissingImage, ...]
    total: int
    """Items in the files, before ``limit`` or ``sample``."""

    def answer_keys(self) -> Iterator[tuple[str, tuple[str, ...], str | None]]:
        """Each selected item's id, references and answer type, its image found or not."""
        for item in self.items:
            yield item.id, item.references, item.answer_type
        for gone in self.missing:
            yield gone.item_id, gone.references, gone.answer_type

    def require_images(self) -> None:
        """Raise :class:`DatasetError` naming the first missing image, for a run without ``--skip-missing``."""
        if self.missing:
            raise DatasetError(f"{self.missing[0].message()}{and_more(len(self.missing))}; --skip-missing runs "
                               "without them")


@dataclass(frozen=True)
class _Record:
    """An item before its image is looked for: a path (JSONL/CSV) or an image id (VQA v2)."""

    id: str
    image: Path | int | None
    question: str
    references: tuple[str, ...]
    answer_type: str | None


def select(items: Sequence[T], limit: int | None = None, sample: int | None = None, seed: int = 0) -> list[T]:
    """The first ``limit`` items, or ``sample`` items drawn with ``seed`` (kept in file order), or all."""
    if limit is not None and sample is not None:
        raise DatasetError("limit and sample cannot both be set: limit takes the first items, sample draws some")
    for name, value in (("limit", limit), ("sample", sample)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise DatasetError(f"{name} must be a whole number of at least 1, not {value!r}")
    if limit is not None:
        return list(items[:limit])
    if sample is not None and sample < len(items):
        return [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), sample))]
    return list(items)


def load_dataset(source: DatasetSource) -> Dataset:
    """Read, select and find the images of a dataset; a bad file or option is a :class:`DatasetError`."""
    if source.format not in FORMATS:
        raise DatasetError(f"unknown dataset format {source.format!r} (known: {', '.join(FORMATS)})")
    if source.format == "vqa2":
        if source.questions is None or source.images is None:
            raise DatasetError("a vqa2 dataset needs questions (the questions JSON) and images (their folder)")
        records = _read_vqa2(source.questions, source.annotations)
    elif source.path is None:
        raise DatasetError(f"a {source.format} dataset needs path (the {source.format} file)")
    elif source.format == "jsonl":
        records = _read_jsonl(source.path)
    else:
        records = _read_csv(source.path)
    chosen = select(records, source.limit, source.sample, source.seed)
    items, missing = _find_images(source, chosen)
    return Dataset(source=source, items=tuple(items), missing=tuple(missing), total=len(records))


# ----------------------------------------------------------------------------- reading files


def _read_text(path: Path, encoding: str = "utf-8-sig") -> str:
    """A file's text, or a one-line :class:`DatasetError` saying why it cannot be read."""
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot read: {error.strerror}") from None


def _load_json(path: Path) -> Any:
    """A whole JSON file, a syntax error pointing at its line and column."""
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}") from None


def _optional(value: Any, where: str, key: str) -> str | None:
    """A string field (a whole number is taken as its digits); None if absent or blank."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise DatasetError(f"{where}: {key} must be a string, not {type(value).__name__}")
    return value


def _required(value: Any, where: str, key: str) -> str:
    """A string field that must be there and not blank."""
    text = _optional(value, where, key)
    if text is None:
        raise DatasetError(f"{where}: {key} is missing or empty")
    return text


def _record(fields: Mapping[str, Any], where: str, base: Path, seen: dict[str, str]) -> _Record:
    """One JSONL object or CSV row checked: known keys, an id not seen before, a question, answers."""
    unknown = [key for key in fields if key not in RECORD_KEYS]
    if unknown:
        raise DatasetError(f"{where}: unknown key {unknown[0]!r} (known keys: {', '.join(RECORD_KEYS)})")
    item_id = _required(fields.get("id"), where, "id")
    question = _required(fields.get("question"), where, "question")
    if item_id in seen:
        raise DatasetError(f"{where}: id {item_id!r} is already used at {seen[item_id]}")
    seen[item_id] = where
    answers = fields.get("answers")
    if answers is not None and fields.get("answer") is not None:
        raise DatasetError(f"{where}: both answers and answer are set; use answers for several")
    if answers is None:
        answer = _optional(fields.get("answer"), where, "answer")
        references: tuple[str, ...] = (answer,) if answer is not None else ()
    elif isinstance(answers, list):
        references = tuple(_required(each, where, f"answers[{i}]") for i, each in enumerate(answers))
    else:
        raise DatasetError(f"{where}: answers must be a list of strings, not {type(answers).__name__}")
    image = _optional(fields.get("image"), where, "image")
    return _Record(
        id=item_id,
        image=base / image if image is not None else None,
        question=question,
        references=references,
        answer_type=_optional(fields.get("answer_type"), where, "answer_type"),
    )


def _read_jsonl(path: Path) -> list[_Record]:
    """One object a line; blank lines are skipped, every error names the line."""
    records: list[_Record] = []
    seen: dict[str, str] = {}
    for number, line in enumerate(_read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{where}:{error.colno}: invalid JSON: {error.msg}") from None
        if not isinstance(fields, dict):
            raise DatasetError(f"{where}: expected a JSON object, found {type(fields).__name__}")
        records.append(_record(fields, where, path.parent, seen))
    return records


def _read_csv(path: Path) -> list[_Record]:
    """A header row naming the columns, then one item a row; ``answers`` split on ``|``."""
    rows = csv.reader(io.StringIO(_read_text(path), newline=""))
    header = next(rows, None)
    if not header:
        raise DatasetError(f"{path}:1: no header row (columns: {', '.join(RECORD_KEYS)})")
    header = [name.strip() for name in header]
    records: list[_Record] = []
    seen: dict[str, str] = {}
    for row in rows:
        where = f"{path}:{rows.line_num}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DatasetError(f"{where}: {len(row)} cells where the header has {len(header)} columns")
        fields: dict[str, Any] = dict(zip(header, row, strict=True))
        if "answers" in fields:
            split = [answer.strip() for answer in fields["answers"].split(CSV_ANSWER_SEPARATOR)]
            fields["answers"] = [answer for answer in split if answer] or None
        records.append(_record(fields, where, path.parent, seen))
    return records


def _entries(document: Any, path: Path, key: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The objects of a VQA file's top-level list (``questions`` or ``annotations``), each with its place."""
    entries = document.get(key) if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise DatasetError(f'{path}: not a VQA v2 {key} file: no top-level "{key}" list')
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DatasetError(f"{path}: {key}[{index}]: expected an object, found {type(entry).__name__}")
        yield f"{path}: {key}[{index}]", entry


def _whole(entry: dict[str, Any], where: str, key: str) -> int:
    """A required whole-number field of a VQA entry (question_id, image_id)."""
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DatasetError(f"{where}: {key} must be a whole number, found {value!r}")
    return value


def _read_vqa2(questions: Path, annotations: Path | None) -> list[_Record]:
    """VQA v2's questions JSON joined to its annotations JSON by question_id (item id = question_id)."""
    answers: dict[int, tuple[tuple[str, ...], str | None]] = {}
    if annotations is not None:
        for where, entry in _entries(_load_json(annotations), annotations, "annotations"):
            question_id = _whole(entry, where, "question_id")
            if question_id in answers:
                raise DatasetError(f"{where}: question_id {question_id} is annotated twice")
            given = entry.get("answers")
            if not isinstance(given, list) or not all(isinstance(a, dict) for a in given):
                raise DatasetError(f"{where}: answers must be a list of {{\"answer\": ...}} objects")
            texts = tuple(_required(a.get("answer"), f"{where}: answers[{i}]", "answer") for i, a in enumerate(given))
            answers[question_id] = texts, _optional(entry.get("answer_type"), where, "answer_type")
    records: list[_Record] = []
    seen: set[int] = set()
    for where, entry in _entries(_load_json(questions), questions, "questions"):
        question_id = _whole(entry, where, "question_id")
        if question_id in seen:
            raise DatasetError(f"{where}: question_id {question_id} appears twice")
        seen.add(question_id)
        question = _required(entry.get("question"), where, "question")
        if annotations is not None and question_id not in answers:
            raise DatasetError(f"{where}: question_id {question_id} has no entry in {annotations}")
        references, answer_type = answers.get(question_id, ((), None))
        records.append(_Record(str(question_id), _whole(entry, where, "image_id"), question, references, answer_type))
    return records


# ----------------------------------------------------------------------------- finding images


def _image_index(folder: Path) -> dict[int, Path]:
    """VQA images by image id, from one listing of the folder (val2014 holds 40,504 files)."""
    try:
        names = sorted(entry.name for entry in os.scandir(folder) if entry.is_file())
    except FileNotFoundError:
        raise DatasetError(f"{folder}: images folder not found") from None
    except NotADirectoryError:
        raise DatasetError(f"{folder}: images is not a folder") from None
    index: dict[int, Path] = {}
    for name in names:
        match = _VQA_IMAGE_NAME.search(name)
        if match:
            index.setdefault(int(match.group(1)), folder / name)
    return index


def _find_images(source: DatasetSource, records: list[_Record]) -> tuple[list[DatasetItem], list[MissingImage]]:
    """Items whose image is there (or who need none), and the missing images of the rest."""
    index = _image_index(source.images) if source.images is not None and records else {}
    items: list[DatasetItem] = []
    missing: list[MissingImage] = []
    for record in records:
        image: Path | None
        if isinstance(record.image, int):
            image = index.get(record.image)
            looked_for = f"{source.images}/*_{record.image:012d}.jpg|png or {source.images}/{record.image}.jpg|png"
        else:
            image = record.image
            looked_for = str(image)
            if image is not None and not image.is_file():
                image = None
        if image is None and record.image is not None:
            missing.append(MissingImage(record.id, looked_for, source.file, record.references, record.answer_type))
            continue
        items.append(DatasetItem(record.id, image, record.question, record.references, record.answer_type))
    return items, missing
