"""The checks every suite table shares: typed values, known keys, and errors that point at a line.

An error names the file, the key and, where it can be found, the line: a person fixes a suite in an
editor, not by reading a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class SuiteError(Exception):
    """A suite the user must fix; ``str()`` is the one line to print."""


class Where:
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


def typed(
    where: Where, value: Any, kinds: type | tuple[type, ...], key: str,
    table: str | None = None, index: int = 0,
) -> Any:
    """``value`` if it is of ``kinds`` (a boolean is not a number), else the error pointing at ``key``."""
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


def unknown(
    where: Where, data: Mapping[str, Any], allowed: set[str], prefix: str,
    table: str | None = None, index: int = 0,
) -> None:
    """Raise the error naming the first key of ``data`` that is not ``allowed``, with the known keys."""
    for key in data:
        if key not in allowed:
            hint = ", ".join(sorted(allowed))
            raise where.error(f"unknown key (known keys: {hint})", f"{prefix}{key}", table, index)


def str_list(where: Where, value: Any, key: str, table: str | None = None, index: int = 0) -> tuple[str, ...]:
    """A string or a list of strings, as a tuple."""
    if isinstance(value, str):
        return (value,)
    typed(where, value, list, key, table, index)
    for item in value:
        typed(where, item, str, key, table, index)
    return tuple(value)


def number(where: Where, data: Mapping[str, Any], key: str, default: float, *, lo: float, hi: float,
            table: str | None = None, index: int = 0, integer: bool = False) -> Any:
    """``data[key]`` as a number in [lo, hi] (a whole one with ``integer``), or ``default`` when absent."""
    if key not in data:
        return default
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    value = typed(where, data[key], kinds, key, table, index)
    if not lo <= value <= hi:
        raise where.error(f"must be between {lo:g} and {hi:g}, got {value}", key, table, index)
    return value if integer else float(value)
