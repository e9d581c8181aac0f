"""One table model — columns, rows of cells that know their number and their text — and its renderers:
Markdown, HTML and a Rich table.

Cell text is untrusted (model output, errors, names): each renderer makes it safe for its format —
one line and no markup in Markdown, escaped in HTML, plain ``Text`` in Rich.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rich import box
from rich.table import Table as RichTable
from rich.text import Text

from vlmtui.peak_kind import format_peak
from vlmtui.reports.accuracy import Accuracy
from vlmtui.reports.case_scores import value_text
from vlmtui.reports.summary import Stat
from vlmtui.text import clean, excerpt
from vlmtui.vocab import CaseStatus

MISSING = "—"
"""What a cell shows for an unknown value."""


@dataclass(frozen=True)
class Cell:
    """One cell: the text shown, the number behind it (None for words and unknowns), and its marks."""

    text: str
    number: float | None = None
    status: CaseStatus | None = None
    """A case status: the cell is coloured as the vocabulary shows that status."""
    note: str = ""
    """A quieter remark after the text (``warm-up``)."""

    @classmethod
    def decimal(cls, value: float | None, digits: int = 2) -> Cell:
        """``1.50``; ``—`` for unknown."""
        return cls(MISSING if value is None else f"{value:.{digits}f}", value)

    @classmethod
    def count(cls, value: int | None) -> Cell:
        """``40``; ``—`` for unknown."""
        return cls(MISSING if value is None else str(value), None if value is None else float(value))

    @classmethod
    def size(cls, value: float | None, kind: str | None = None) -> Cell:
        """``1.4 GiB``; with a peak's ``kind``, what it measured (``409.0 MiB RSS``); ``—`` for unknown."""
        return cls(format_peak(value, kind), value)

    @classmethod
    def stat(cls, stat: Stat, digits: int = 2) -> Cell:
        """``1.20 ± 0.20`` (mean ± standard deviation); the number is the mean."""
        return cls(stat.text(digits), stat.mean)

    @classmethod
    def score(cls, value: float | None) -> Cell:
        """One score: ``0.60``; ``—`` for none."""
        return cls(value_text(value), value)

    @classmethod
    def accuracy(cls, found: Accuracy | None, *, interval: bool = True) -> Cell:
        """A primary accuracy: ``0.80 (0.49–0.94)``, the interval from 10 scored answers on (``interval``); the
        number is the mean."""
        if found is None:
            return cls(MISSING)
        return cls(found.text if interval else value_text(found.summary.mean), found.summary.mean)

    @classmethod
    def when(cls, t: float | None) -> Cell:
        """A Unix time as local ``YYYY-MM-DD HH:MM:SS``; the number is the time."""
        return cls(format_time(t), t)


@dataclass(frozen=True)
class Column:
    """A column's heading and how its cells are laid out in each format."""

    name: str
    numeric: bool = False
    """Right-aligned, tabular figures."""
    limit: int = 80
    """Markdown: the text on one line, cut at this many characters."""
    html_limit: int | None = None
    """HTML: the text on one line, cut here (None: the whole text as it is)."""
    title_limit: int | None = None
    """HTML: the text (cut here) also as the cell's tooltip."""
    code: bool = False
    """Monospace: model output and errors."""


@dataclass(frozen=True)
class Table:
    """Columns and rows of cells, each row as long as the columns."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]
    title: str = ""

    def column(self, name: str) -> list[Cell]:
        """The cells of one column, top to bottom."""
        index = [c.name for c in self.columns].index(name)
        return [row[index] for row in self.rows]


def format_time(t: float | None) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS`` (``—`` for unknown)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else MISSING


# ----------------------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_cell(text: str, limit: int = 80) -> str:
    """One line of untrusted text for a Markdown table cell: no HTML, no markup, no cell breaks."""
    flat = excerpt(text, limit)
    flat = _MD_SPECIAL.sub(r"\\\1", flat)
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def to_markdown(table: Table) -> list[str]:
    """The table as GitHub-flavoured Markdown lines: heading row, alignment row, one line per row."""
    lines = [_md_row([c.name for c in table.columns]),
             _md_row(["--:" if c.numeric else "---" for c in table.columns])]
    for row in table.rows:
        lines.append(_md_row([md_cell(cell.text, column.limit) + (f" ({cell.note})" if cell.note else "")
                              for column, cell in zip(table.columns, row, strict=True)]))
    return lines


# ----------------------------------------------------------------------------- HTML


def escape(text: Any) -> str:
    """Text for HTML, attribute values included (lone surrogates become U+FFFD)."""
    return html.escape(clean(str(text)), quote=True)


def _html_cell(column: Column, cell: Cell) -> str:
    classes = [name for name, wanted in (("n", column.numeric), ("out", column.code)) if wanted]
    if cell.status is not None:
        classes.append(cell.status.css_class)
    attributes = f' class="{" ".join(classes)}"' if classes else ""
    if column.title_limit is not None:
        attributes += f' title="{escape(excerpt(cell.text, column.title_limit))}"'
    body = escape(cell.text if column.html_limit is None else excerpt(cell.text, column.html_limit))
    note = f' <span class="meta">({escape(cell.note)})</span>' if cell.note else ""
    return f"<td{attributes}>{body}{note}</td>"


def to_html(table: Table) -> list[str]:
    """The table as HTML lines: ``<table>`` with the heading row, one line per row, ``</table>``."""
    lines = ["<table><tr>" + "".join(f"<th>{escape(c.name)}</th>" for c in table.columns) + "</tr>"]
    for row in table.rows:
        lines.append("<tr>" + "".join(_html_cell(c, cell) for c, cell in zip(table.columns, row, strict=True))
                     + "</tr>")
    lines.append("</table>")
    return lines


# ----------------------------------------------------------------------------- Rich

Justify = Literal["left", "right"]


def to_rich(table: Table) -> RichTable:
    """The table for a terminal, compact (fits 80 columns): the first column gives way, numbers never wrap."""
    out = RichTable(title=table.title or None, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                    collapse_padding=True, padding=(0, 1))
    for i, column in enumerate(table.columns):
        if i == 0:
            out.add_column(column.name, no_wrap=True, overflow="ellipsis")
        else:
            justify: Justify = "right" if column.numeric else "left"
            widest = max((len(row[i].text) for row in table.rows), default=0) if column.numeric else 0
            out.add_column(column.name, justify=justify, no_wrap=True, min_width=max(len(column.name), widest))
    for row in table.rows:
        out.add_row(*(Text(cell.text, style=cell.status.look.style if cell.status else "") for cell in row))
    return out
