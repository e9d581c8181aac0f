"""The model spec and its expectations: what the suite declares and the worker receives as a dict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from vlmtui.wire.source import ModelSource


@dataclass(frozen=True)
class Expect:
    """What a case's output must satisfy to pass (empty: a completed, non-empty output passes)."""

    contains: tuple[str, ...] = ()
    not_contains: tuple[str, ...] = ()
    regex: str | None = None
    min_tokens: int | None = None
    max_total_s: float | None = None
    max_peak_memory: int | None = None

    def is_empty(self) -> bool:
        """True when nothing beyond a completed, non-empty output is asked for."""
        return self == Expect()

    def merged(self, other: Expect) -> Expect:
        """This expectation with ``other``'s set fields on top (a prompt's over a model's)."""
        return Expect(
            contains=self.contains + other.contains,
            not_contains=self.not_contains + other.not_contains,
            regex=other.regex if other.regex is not None else self.regex,
            min_tokens=other.min_tokens if other.min_tokens is not None else self.min_tokens,
            max_total_s=other.max_total_s if other.max_total_s is not None else self.max_total_s,
            max_peak_memory=(
                other.max_peak_memory if other.max_peak_memory is not None else self.max_peak_memory
            ),
        )



@dataclass(frozen=True)
class ModelSpec:
    """One ``[[models]]`` entry; travels to the worker as a dict."""

    id: str
    backend: str
    path: str
    revision: str | None = None
    trust_remote_code: bool = False
    capabilities: tuple[str, ...] = ()
    """Empty: the backend's and family's defaults decide."""
    force: bool = False
    """Load even when the preflight estimate says it will not fit."""
    max_image_size: int | None = None
    """Longest image side the model sees; larger images are downscaled first."""
    max_tokens: int | None = None
    temperature: float | None = None
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    """The backend's own options (``device``, ``command``, …), as its declaration in vlmtui.plugins types them."""
    expect: Expect = field(default_factory=Expect)

    @cached_property
    def source(self) -> ModelSource:
        """Where the weights come from: ``path`` and ``revision`` read by the one rule of wire/source.py."""
        return ModelSource.parse(self.path, self.revision)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-able data, for the worker and the log."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """The inverse of ``to_dict``."""
        values = dict(data)
        values["capabilities"] = tuple(values.get("capabilities", ()))
        values["options"] = dict(values.get("options") or {})
        exp = values.get("expect") or {}
        values["expect"] = Expect(
            **{
                **exp,
                "contains": tuple(exp.get("contains", ())),
                "not_contains": tuple(exp.get("not_contains", ())),
            }
        )
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})
