"""Where a model's weights come from: a tiny demo family, a local directory, or a hub repo at a revision.

One rule, written once, for a suite's ``path`` (and ``revision``):

- ``tiny:<family>``: a tiny offline model (the family's aliases are resolved here);
- empty: no model files (an OpenAI-compatible server that already knows its model);
- a path that starts with ``/``, ``.`` or ``~``: a local directory (or weight file);
- ``name`` or ``org/name`` in the hub's alphabet: a hub repo — unless a directory of that name exists
  under the base directory (by default the working directory), which wins, as transformers'
  ``from_pretrained`` decides it too;
- anything else (``a/b/c``, ``llava:7b``): a local path, relative to the base directory.

The suite parses it; the worker, preflight and doctor read ``ModelSpec.source`` and never look at the
string again. Both processes import this module, so it is standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

TINY_PREFIX = "tiny:"
TINY_ALIASES = {
    "smolvlm": "idefics3", "llava": "llava-next", "llava_next": "llava-next", "llava15": "llava-1.5",
    "moondream": "moondream2",
}
"""Other names of the tiny families, as users write them."""

PATH_PREFIXES = ("/", ".", "~")
"""How a path that can only be local starts."""
HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?")
"""``name`` or ``org/name``: the shape of a Hugging Face repo id."""

SourceKind = Literal["tiny", "local", "hub", "none"]


@dataclass(frozen=True)
class ModelSource:
    """A parsed model path: ``kind`` says which of the four it is, ``name`` what it names."""

    kind: SourceKind
    name: str
    """The family (tiny), the path as written (local), the repo id (hub), or ``""`` (none)."""
    revision: str | None = None
    """The hub revision (branch, tag or commit); ``None`` for the default branch and for other kinds."""

    @classmethod
    def parse(cls, text: str, revision: str | None = None, *, base_dir: Path | None = None) -> ModelSource:
        """The source named by a suite's ``path`` (and ``revision``, which only a hub repo keeps)."""
        text = text.strip()
        if not text:
            return cls("none", "")
        if text.startswith(TINY_PREFIX):
            family = text.removeprefix(TINY_PREFIX).strip().lower()
            return cls("tiny", TINY_ALIASES.get(family, family))
        if text.startswith(PATH_PREFIXES) or not HUB_ID.fullmatch(text):
            return cls("local", text)
        if ((base_dir or Path.cwd()) / text).is_dir():
            return cls("local", text)
        return cls("hub", text, revision or None)

    @property
    def is_tiny(self) -> bool:
        """A ``tiny:<family>`` demo model."""
        return self.kind == "tiny"

    @property
    def is_local(self) -> bool:
        """A directory or file on this machine."""
        return self.kind == "local"

    @property
    def is_hub(self) -> bool:
        """A Hugging Face hub repo (cached or to download)."""
        return self.kind == "hub"

    def local_path(self, base_dir: Path | None = None) -> Path:
        """A local source's path, ``~`` expanded and relative ones anchored at ``base_dir`` (default: cwd)."""
        if self.kind != "local":
            raise ValueError(f"{self} is not a local path")
        path = Path(self.name).expanduser()
        return path if path.is_absolute() or base_dir is None else base_dir / path

    def anchored(self, base_dir: Path) -> ModelSource:
        """A path written as one (``/``, ``./``, ``../``, ``~``) made absolute against ``base_dir`` (a suite's
        folder); any other source as it is (a bare relative path stays relative to the working directory)."""
        if self.kind != "local" or not self.name.startswith(PATH_PREFIXES):
            return self
        return ModelSource("local", str((base_dir / Path(self.name).expanduser()).resolve()))

    def __str__(self) -> str:
        if self.kind == "tiny":
            return f"{TINY_PREFIX}{self.name}"
        if self.kind == "hub" and self.revision:
            return f"{self.name}@{self.revision}"
        return self.name
