"""A row of an export as read: line, cells, and what is wrong with it."""

from __future__ import annotations

from dataclasses import dataclass

from channelwatch.errors import RowProblem
from channelwatch.sources.base import Observed

_NO_PROBLEMS: tuple[RowProblem, ...] = ()


@dataclass(slots=True)
class Row:
    """A row as read, with its problems; readers yield these only for invalid rows."""

    line: int
    cells: list[str]
    observed: Observed | None
    problems: tuple[RowProblem, ...] | list[RowProblem] = _NO_PROBLEMS


Entry = Observed | Row  # what ExportFile.rows() yields: a valid publication, or an invalid row
