"""What an annual report draft is made of: sections of text and grids of figures."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from channelwatch.reports.annual_checks import Mismatch
from channelwatch.reports.annual_formats import (
    AnnualFormat,
)
from channelwatch.reports.annual_inputs import AnnualInputs
from channelwatch.stats.figures import Summary

if TYPE_CHECKING:
    pass


ANNUAL_FORMATS = ("docx", "markdown", "html")
MARK = "※"  # beside a figure or paragraph that failed a check, in a draft written with --force


@dataclass
class Cell:
    text: str
    rowspan: int = 1
    colspan: int = 1
    header: bool = False
    marked: bool = False
    align: str = "center"


@dataclass
class Grid:
    """A table as the national template draws it. ``rows[r][c]`` is the cell that starts at (r, c), or
    None where a span from above or from the left covers that position."""

    rows: list[list[Cell | None]]
    header_rows: int
    label_columns: int = 1
    font_size: float = 10.5
    caption: str = ""

    @property
    def width(self) -> int:
        return len(self.rows[0]) if self.rows else 0

    def text_rows(self) -> list[list[str]]:
        """Every position's text: a spanned cell's text at its origin, empty where covered."""
        return [[cell.text if cell is not None else "" for cell in row] for row in self.rows]

    def cells(self) -> list[tuple[int, int, Cell]]:
        return [(r, c, cell) for r, row in enumerate(self.rows) for c, cell in enumerate(row) if cell is not None]


class Layout:
    """Builds a Grid by placing spanned cells; positions a span covers stay None."""

    def __init__(self, height: int, width: int) -> None:
        self.rows: list[list[Cell | None]] = [[None] * width for _ in range(height)]

    def put(self, row: int, column: int, cell: Cell) -> None:
        self.rows[row][column] = cell


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Grid] = field(default_factory=list)
    marked_paragraphs: set[int] = field(default_factory=set)
    chart_after: int | None = None  # the chart goes after this paragraph (section 一 only)


@dataclass
class AnnualReport:
    title: str
    year: int
    office: str
    format: AnnualFormat
    preamble: list[str]
    sections: list[Section]
    channel_sentence: str
    summary: Summary
    previous: Summary | None
    inputs: AnnualInputs
    mismatches: list[Mismatch]
    warnings: list[str]
    chart_png: bytes | None = None

    @property
    def chart_data_uri(self) -> str:
        if self.chart_png is None:
            return ""
        return "data:image/png;base64," + base64.b64encode(self.chart_png).decode("ascii")
