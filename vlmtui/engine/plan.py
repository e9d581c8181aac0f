"""A suite turned into cases: model × image × prompt, and model × text prompt, with capability skips.

A case a model cannot do is planned as skipped with its reason, so it can never be reported as passed
(the seed script once reported a vision-only model's text-only test as a success). What a model can do
is the suite's ``capabilities`` where given, else its own config's ``model_type`` (wire/capabilities.py),
read here where it can be before any load, else reported by the worker when it loads (the scheduler then
skips with ``skip_reason`` below).

A dataset's items (``[[datasets]]``) run on every model as cases ``<model>/<dataset>/<item id>`` that carry
their item (``CaseItem``); a ``judge:<model-id>`` metric adds one judge case per judged answer,
``<judge>/judge/<judged case id>``, planned last: the queue starts it once the dataset's answers are all in.

A conversation (``[[conversations]]``) is one case per image per model, ``<model>/<conversation>/<image stem>``
(text-only: ``<model>/<conversation>``), of kind ``conversation``, carrying its turns; engine/conversation.py
runs it turn by turn in one worker. It runs once: no warm-up, no repeats.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmtui.engine.model_config import read_model_type
from vlmtui.plugins import BackendNotFound, find_backend
from vlmtui.reports.case_scores import JUDGE_KIND
from vlmtui.scoring.metrics import JUDGE_PREFIX
from vlmtui.suite.conversations import Conversation, Turn
from vlmtui.suite.dataset_tables import DatasetEntry
from vlmtui.suite.loader import Suite
from vlmtui.wire.capabilities import ALL, IMAGE, TEXT, capabilities_of
from vlmtui.wire.spec import Expect, ModelSpec

CONVERSATION_KIND = "conversation"


@dataclass(frozen=True)
class CaseItem:
    """A dataset case's item: the question, what its answer is scored against, and how."""

    dataset: str
    item_id: str
    question: str
    references: tuple[str, ...]
    answer_type: str | None
    metrics: tuple[str, ...]
    """The dataset's metrics, the primary first."""
    pass_at: float


@dataclass(frozen=True)
class JudgeTask:
    """What a judge case grades: one dataset case's answer, under one ``judge:<model-id>`` metric."""

    judged_case_id: str
    metric: str
    template: str
    """The rubric (``judge_prompt``), filled in when the judged answer is there."""
    attempt: int | None = None
    """The judged case's attempt whose answer the prompt holds; set when the case is about to run."""


@dataclass(frozen=True)
class Case:
    """One unit of work: one prompt (with or without an image) on one model."""

    case_id: str
    model: ModelSpec
    prompt: str
    image: Path | None
    prompt_index: int
    max_tokens: int
    temperature: float
    expect: Expect
    repeat_index: int = 0
    warmup: bool = False
    skip_reason: str | None = None
    """Set when the case cannot run on this model; it ends ``skipped`` without reaching a worker."""
    item: CaseItem | None = None
    """A dataset case's item (a judge case's: the judged case's item)."""
    judging: JudgeTask | None = None
    """A judge case: the answer it grades."""
    turns: tuple[Turn, ...] = ()
    """A conversation's turns (``prompt`` is the first's, ``expect`` unused); empty for every other case."""

    @property
    def kind(self) -> str:
        """``image``, ``text``, ``judge`` for a case that grades another's answer, or ``conversation``."""
        if self.judging is not None:
            return JUDGE_KIND
        return CONVERSATION_KIND if self.turns else self.capability

    @property
    def capability(self) -> str:
        """What the model must be able to take: ``image``, or ``text`` (a judge reads text only)."""
        return TEXT if self.image is None else IMAGE

    @property
    def image_name(self) -> str:
        """The image's file name, or ``—`` for a text-only case."""
        return self.image.name if self.image else "—"


def model_capabilities(model: ModelSpec, model_type: str | None = None) -> frozenset[str]:
    """What the model can be asked, ``image`` and/or ``text``: the suite's list, else its model type's."""
    if model.capabilities:
        caps = set(model.capabilities)
        return frozenset({IMAGE}) if "vision-only" in caps else frozenset(caps)
    return capabilities_of(model_type) if model_type else ALL


def _backend_cannot(model: ModelSpec, kind: str) -> str | None:
    """Why the model's backend cannot run a case of ``kind`` at all (missing here, or its declared
    capabilities), or None."""
    try:
        declaration = find_backend(model.backend)
    except BackendNotFound:  # registered only inside a test's own worker
        return None
    if declaration.unavailable is not None and (missing := declaration.unavailable(model.options, model.source)):
        return missing
    caps = declaration.capabilities
    if kind == TEXT and not caps.text_only:
        return f"the {model.backend} backend cannot run a prompt without an image"
    if kind == IMAGE and not caps.images:
        return f"the {model.backend} backend cannot take an image"
    return None


def skip_reason(model: ModelSpec, kind: str, model_type: str | None,
                found: Collection[str] | None = None) -> str | None:
    """Why a case of ``kind`` (``image``, ``text``) cannot run on ``model``, or ``None``.

    What the backend declares it cannot do comes first; then the suite's ``capabilities``; then what the
    worker ``found`` when it loaded the model; then what ``model_type`` (from its config) says.
    """
    if (cannot := _backend_cannot(model, kind)) is not None:
        return cannot
    if model.capabilities:
        caps, why = model_capabilities(model), "capabilities in the suite"
    elif found:
        caps, why = frozenset(found), f"model type {model_type}" if model_type else "as its backend loads it"
    elif model_type:
        caps, why = capabilities_of(model_type), f"model type {model_type}"
    else:
        return None
    if kind in caps:
        return None
    if kind == TEXT:
        return f"{model.id} is vision-only ({why}): a text-only prompt does not test it"
    return f"{model.id} is text-only ({why}): it cannot see images"


def case_info(case: Case) -> dict[str, Any]:
    """A planned case as ``SessionStarted.cases`` carries it."""
    return {
        "case_id": case.case_id, "model": case.model.id, "backend": case.model.backend,
        "image": str(case.image) if case.image else None, "prompt": case.prompt, "kind": case.kind,
        "warmup": case.warmup, "skip_reason": case.skip_reason,
        "trust_remote_code": case.model.trust_remote_code,
        # A conversation's prompts: the dashboard shows "turn 2/3" and each prompt as its turn starts.
        **({"turns": [turn.text for turn in case.turns]} if case.turns else {}),
    }


def plan_cases(suite: Suite) -> list[Case]:
    """Every case of the suite, grouped by model in suite order (warm-ups first within a model), its
    datasets' items last for each model; then the judge cases."""
    cases: list[Case] = []
    for model in suite.models:
        model_type = None if model.capabilities else read_model_type(model)
        max_tokens = model.max_tokens or suite.max_tokens
        temperature = model.temperature if model.temperature is not None else suite.temperature
        work: list[tuple[str, Path | None, int, str, Expect]] = []
        for image_path in suite.images:
            for i, prompt in enumerate(suite.prompts):
                work.append((f"{model.id}/{image_path.name}/p{i}", image_path, i, prompt.text,
                             model.expect.merged(prompt.expect)))
        for i, prompt in enumerate(suite.text_prompts):
            work.append((f"{model.id}/text/t{i}", None, i, prompt.text, model.expect.merged(prompt.expect)))
        for base_id, image, index, text, expect in work:
            skip = skip_reason(model, TEXT if image is None else IMAGE, model_type)
            runs = [(f"{base_id}#w{w}", w, True) for w in range(suite.warmup)] if skip is None else []
            runs += [
                (base_id if suite.repeat == 1 else f"{base_id}#r{r}", r, False) for r in range(suite.repeat)
            ]
            for case_id, rep, warm in runs:
                cases.append(Case(case_id, model, text, image, index, max_tokens, temperature, expect,
                                  repeat_index=rep, warmup=warm, skip_reason=skip))
        for entry in suite.datasets:
            cases.extend(_dataset_cases(entry, model, model_type, max_tokens, temperature))
        for conversation in suite.conversations:
            cases.extend(_conversation_cases(conversation, model, model_type, max_tokens, temperature))
    for entry in suite.datasets:
        for judge_id in entry.judges:
            judge = next(m for m in suite.models if m.id == judge_id)
            judged = [c for c in cases if c.item is not None and c.item.dataset == entry.id and c.judging is None]
            cases.extend(_judge_cases(suite, entry, judge, judged))
    return cases


def _dataset_cases(entry: DatasetEntry, model: ModelSpec, model_type: str | None, max_tokens: int,
                   temperature: float) -> list[Case]:
    """One case per selected item of the dataset on this model: run once, no warm-up, no repeats."""
    cases = []
    for index, item in enumerate(entry.dataset.items):
        case_item = CaseItem(entry.id, item.id, item.question, item.references, item.answer_type, entry.metrics,
                             entry.pass_at)
        skip = skip_reason(model, TEXT if item.image is None else IMAGE, model_type)
        cases.append(Case(f"{model.id}/{entry.id}/{item.id}", model, entry.prompt(item), item.image, index,
                          max_tokens, temperature, model.expect, skip_reason=skip, item=case_item))
    return cases


def _conversation_cases(conversation: Conversation, model: ModelSpec, model_type: str | None, max_tokens: int,
                        temperature: float) -> list[Case]:
    """One case per image of the conversation (one text-only case without images) on this model; each turn's
    expectations over the model's."""
    turns = tuple(dataclasses.replace(turn, expect=model.expect.merged(turn.expect)) for turn in conversation.turns)
    tokens = conversation.max_tokens or max_tokens
    where: list[tuple[str, Path | None]] = [
        (f"{model.id}/{conversation.id}/{image.stem}", image) for image in conversation.images
    ] or [(f"{model.id}/{conversation.id}", None)]
    return [Case(case_id, model, turns[0].text, image, index, tokens, temperature, turns[0].expect, turns=turns,
                 skip_reason=skip_reason(model, TEXT if image is None else IMAGE, model_type))
            for index, (case_id, image) in enumerate(where)]


def _judge_cases(suite: Suite, entry: DatasetEntry, judge: ModelSpec, judged: list[Case]) -> list[Case]:
    """The judge's case for each judged answer: text only, its prompt written once the answer is there."""
    model_type = None if judge.capabilities else read_model_type(judge)
    skip = skip_reason(judge, TEXT, model_type)
    max_tokens = judge.max_tokens or suite.max_tokens
    temperature = judge.temperature if judge.temperature is not None else suite.temperature
    metric = f"{JUDGE_PREFIX}{judge.id}"
    return [
        Case(f"{judge.id}/judge/{case.case_id}", judge, f"(the rubric, once {case.case_id} has answered)", None,
             case.prompt_index, max_tokens, temperature, judge.expect, skip_reason=skip, item=case.item,
             judging=JudgeTask(case.case_id, metric, entry.judge_prompt))
        for case in judged
    ]
