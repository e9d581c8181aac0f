"""A suite's ``[[conversations]]``: multi-turn cases, the image with the first turn, checked turn by turn.

::

    [[conversations]]
    id = "context"
    images = ["photos/*.jpg"]     # one conversation per image per model; omit for a text-only one
    max_tokens = 128              # optional, else the model's or the suite's
    metrics = ["relaxed"]         # optional: how turns with answers are scored (the first decides)
    pass_at = 0.5                 # optional: the primary score a turn with answers needs
    turns = [
      "Describe this image in detail.",
      { text = "What were the most prominent colours?", expect = { regex = "(?i)red|blue" } },
      { text = "Is there a person?", answers = ["no"] },
    ]

Every mistake is one line naming the file, the key and the line (``suite.checks``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmtui.reports.case_scores import DEFAULT_PASS_AT
from vlmtui.scoring.metrics import MetricError, parse_metric
from vlmtui.suite.checks import Where, number, str_list, typed, unknown
from vlmtui.wire.spec import Expect

TABLE = "conversations"
KEYS = {"id", "images", "max_tokens", "turns", "metrics", "pass_at"}
TURN_KEYS = {"text", "expect", "answers"}
DEFAULT_METRICS = ("relaxed",)
"""How a turn's answer is scored against its ``answers`` when the conversation names no metrics: VQA's
consensus with a relaxed match, which a verbose answer ("No, nobody is in it.") can meet."""

ReadExpect = Callable[[Where, Any, str, str | None, int], Expect]
"""The suite's expectation reader: ``(where, data, key, table, index)``."""
ReadImages = Callable[[Where, Any, str | None, int], tuple[Path, ...]]
"""The suite's image glob reader: ``(where, patterns, table, index)``."""


@dataclass(frozen=True)
class Turn:
    """One turn: the user's prompt and what its answer must satisfy (the suite's and model's expect under it)."""

    text: str
    expect: Expect = field(default_factory=Expect)
    answers: tuple[str, ...] = ()
    """Reference answers: the turn is scored by ``metrics`` (vlmtui.scoring) and fails under ``pass_at``."""
    metrics: tuple[str, ...] = ()
    """The conversation's metrics, the primary first; only for a turn with ``answers``."""
    pass_at: float = DEFAULT_PASS_AT


@dataclass(frozen=True)
class Conversation:
    """One ``[[conversations]]`` table: its turns, run on each image (or once, text-only) on every model."""

    id: str
    turns: tuple[Turn, ...]
    images: tuple[Path, ...] = ()
    """Empty: a text-only conversation."""
    max_tokens: int | None = None
    """Per turn; ``None``: the model's, else the suite's."""


def parse_conversations(where: Where, raw: Any, base_expect: Expect, read_expect: ReadExpect,
                        read_images: ReadImages, taken_ids: set[str]) -> tuple[Conversation, ...]:
    """Every ``[[conversations]]`` table; ``taken_ids`` are the dataset ids their case ids must not meet."""
    typed(where, raw, list, TABLE)
    conversations: list[Conversation] = []
    seen: set[str] = set()
    for index, data in enumerate(raw):
        conversation = _conversation(where, data, index, base_expect, read_expect, read_images)
        if conversation.id in seen:
            raise where.error(f"conversation id {conversation.id!r} is used twice", "id", TABLE, index)
        if conversation.id in taken_ids:
            raise where.error(f"conversation id {conversation.id!r} is also a dataset's id: their case ids would "
                              "clash", "id", TABLE, index)
        seen.add(conversation.id)
        conversations.append(conversation)
    return tuple(conversations)


def _conversation(where: Where, data: Any, index: int, base_expect: Expect, read_expect: ReadExpect,
                  read_images: ReadImages) -> Conversation:
    typed(where, data, dict, TABLE, TABLE, index)
    unknown(where, data, KEYS, "", TABLE, index)
    if "id" not in data:
        raise where.error("a conversation needs id = \"…\"", "id", TABLE, index)
    conversation_id = typed(where, data["id"], str, "id", TABLE, index)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", conversation_id):
        raise where.error("use letters, digits, '.', '_' and '-' only", "id", TABLE, index)
    turns_raw = data.get("turns")
    if not turns_raw:
        raise where.error("a conversation needs turns = [\"first prompt\", …]", "turns", TABLE, index)
    typed(where, turns_raw, list, "turns", TABLE, index)
    metrics = _metrics(where, data, index)
    pass_at = number(where, data, "pass_at", DEFAULT_PASS_AT, lo=0, hi=1, table=TABLE, index=index)
    turns = tuple(_turn(where, item, index, base_expect, read_expect, metrics, pass_at) for item in turns_raw)
    images = read_images(where, data["images"], TABLE, index) if "images" in data else ()
    stems = [image.stem for image in images]
    if dupes := sorted({stem for stem in stems if stems.count(stem) > 1}):
        raise where.error(f"two images share the name {dupes[0]!r}: a conversation's case id is "
                          "<model>/<conversation>/<image name without its suffix>", "images", TABLE, index)
    max_tokens = number(where, data, "max_tokens", 0, lo=1, hi=1_000_000, table=TABLE, index=index,
                                                 integer=True) \
        if "max_tokens" in data else None
    return Conversation(conversation_id, turns, images, max_tokens)


def _metrics(where: Where, data: Any, index: int) -> tuple[str, ...]:
    """The conversation's built-in metrics (a judge metric scores datasets only), else ``DEFAULT_METRICS``."""
    if "metrics" not in data:
        return DEFAULT_METRICS
    names = str_list(where, data["metrics"], "metrics", TABLE, index)
    if not names:
        raise where.error('name at least one metric, e.g. ["relaxed"]', "metrics", TABLE, index)
    for name in names:
        try:
            judge = parse_metric(name).is_judge
        except MetricError as exc:
            raise where.error(str(exc), "metrics", TABLE, index) from None
        if judge:
            raise where.error(f"{name!r}: a judge grades dataset answers only; score turns with a built-in metric",
                              "metrics", TABLE, index)
    return names


def _turn(where: Where, item: Any, index: int, base_expect: Expect, read_expect: ReadExpect,
          metrics: tuple[str, ...], pass_at: float) -> Turn:
    if isinstance(item, str):
        return Turn(item, base_expect)
    typed(where, item, (str, dict), "turns", TABLE, index)
    unknown(where, item, TURN_KEYS, "turns.", TABLE, index)
    if "text" not in item:
        raise where.error("a turn table needs a text = \"…\"", "turns", TABLE, index)
    text = typed(where, item["text"], str, "turns.text", TABLE, index)
    expect = read_expect(where, item["expect"], "turns.expect", TABLE, index) if "expect" in item else Expect()
    answers = str_list(where, item["answers"], "turns.answers", TABLE, index) if "answers" in item else ()
    if "answers" in item and not any(answer.strip() for answer in answers):
        raise where.error("give at least one non-empty answer", "turns.answers", TABLE, index)
    return Turn(text, base_expect.merged(expect), answers, metrics if answers else (), pass_at)
