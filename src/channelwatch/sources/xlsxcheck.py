"""Checks of an XLSX sheet's bytes for the fast reader (sources/fastxlsx.py), and the text of its typed cells.

Standard library only: for a large sheet this runs as its own small process (``python xlsxcheck.py``), beside
the importing process while python-calamine reads the same sheet there; for a small one, in that process.
What is checked, and why, is said in sources/fastxlsx.py.
"""

from __future__ import annotations

import json
import pickle
import re
import sys
import zipfile
from typing import Any

# Line → (t, s, <v> text) of one column's typed cells, as in the file.
Typed = dict[bytes, dict[int, tuple[bytes, bytes, bytes]]]


class Mismatch(Exception):
    """The sheet holds what calamine reads otherwise than the row-by-row reader."""


# What makes calamine's reading of a part differ from the row-by-row reader's (see the module docstring).
_FORMULA = re.compile(rb"<f[\s/>]")
_PREFIXED = re.compile(rb"<[A-Za-z_][\w.-]*:(?:c|v|f|is|t|r|row|si)[\s>/]")
_ODD_TYPE = re.compile(rb' t="(?!(?:s|n|b|inlineStr|str)")')
_SINGLE_QUOTED = re.compile(rb"='")
_ESCAPE = re.compile(rb"_x[0-9A-Fa-f]{4}_")
_LEADING_SPACE = re.compile(rb"<t>[ \t\r\n]")
_RUN = re.compile(rb"<r[\s>]")
_TRAILING_SPACE = re.compile(rb"[ \t\r\n]</t>")
# A <v> holding anything but a plain number: a text or error value, whitespace, "1_000", non-ASCII digits.
_ODD_VALUE = re.compile(rb"<v>[0-9.eE+\-]*[^0-9.eE+\-<]")
_ROW_NUMBER = re.compile(rb'<row r="(\d+)"')
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*encoding=["']([^"']*)["']""")


def _prescan(sheet_xml: bytes, strings_xml: list[bytes]) -> None:
    """Raise ``Mismatch`` when the sheet or its shared strings hold what calamine reads otherwise.

    Each check is one regular expression with a literal start over the part's bytes (faster than ``in``).
    """
    _well_formed(sheet_xml)
    if _FORMULA.search(sheet_xml):
        raise Mismatch("a formula")
    if _ODD_TYPE.search(sheet_xml) or _SINGLE_QUOTED.search(sheet_xml):
        raise Mismatch("an error, ISO date or oddly written cell")
    if _ODD_VALUE.search(sheet_xml):
        raise Mismatch("a value that is not a plain number")
    for part in (sheet_xml, *strings_xml):
        if _PREFIXED.search(part):
            raise Mismatch("prefixed element names")
        if _ESCAPE.search(part):
            raise Mismatch("an _xHHHH_ escape")
        # calamine trims the text of a <t> without xml:space="preserve": the outer spaces of a cell go anyway
        # (the converter strips them), but a text of spaces only, or the spaces between rich-text runs, stay.
        if _LEADING_SPACE.search(part):
            raise Mismatch("text beginning with whitespace")
        if _RUN.search(part) and _TRAILING_SPACE.search(part):
            raise Mismatch("a rich-text run ending with whitespace")


def _well_formed(sheet_xml: bytes) -> None:
    """The sheet as libxml2 reads it: well-formed UTF-8 XML without control characters (expat, in C).

    lxml (the row-by-row reader) refuses a sheet that calamine reads, such as one holding ``&#1;``.
    """
    from xml.parsers import expat

    declared = _DECLARED.match(sheet_xml[:200])
    if declared and declared.group(1).lower().replace(b"-", b"") != b"utf8":
        raise Mismatch("a sheet in another encoding")
    if sheet_xml[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise Mismatch("a sheet in UTF-16")
    parser = expat.ParserCreate()
    try:
        parser.Parse(sheet_xml, True)
    except expat.ExpatError:
        raise Mismatch("a sheet that is not well-formed XML") from None


def _rows_in_order(sheet_xml: bytes) -> None:
    """Rows numbered in increasing order, ``r`` first: calamine places rows by number, the other reader in order."""
    numbers = _ROW_NUMBER.findall(sheet_xml)
    if len(numbers) != sheet_xml.count(b"<row"):
        raise Mismatch("a row without its number first")
    previous = 0
    for number in map(int, numbers):
        if number <= previous:
            raise Mismatch("rows out of order")
        previous = number


# The typed cells the fast reader takes from the sheet's own text: written the way Excel, WPS and openpyxl
# write a number or a boolean. A typed cell written otherwise gives the file back. Only the columns asked
# for are matched: the cells of other columns then fail at their first letter, about half the time of all.
_TYPED_CELL = rb'<c r="({letters})(\d+)"(?: s="(\d+)")?(?: t="([nb])")?><v>([^<&]+)</v></c>'


def typed_cells(path: str, part: str, letters: list[str]) -> Typed:
    """Check the sheet ``part`` and its shared strings; the typed cells of the columns ``letters``.

    Raises ``Mismatch``, or what zipfile raises for a damaged archive.
    """
    xml, strings = _unpacked(path, part)
    check(xml, strings)
    return _typed(xml, letters)


def _unpacked(path: str, part: str) -> tuple[bytearray, list[bytes]]:
    """The sheet ``part`` and the shared strings parts of the workbook at ``path``."""
    with zipfile.ZipFile(path) as archive:
        strings = [archive.read(n) for n in archive.namelist() if n.lower().endswith("sharedstrings.xml")]
        info = archive.getinfo(part)
        # Unpacked into one buffer of the part's size, without the copies of a plain read().
        xml = bytearray(info.file_size)
        view = memoryview(xml)
        done = 0
        source: Any
        with archive.open(info) as source:
            while done < len(xml) and (count := source.readinto(view[done : done + (1 << 20)])):
                done += count
            if done != len(xml) or source.read(1):
                raise Mismatch("a sheet of another size than its entry says")
        view.release()
    return xml, strings


def check(xml: bytearray, strings: list[bytes]) -> None:
    """Raise ``Mismatch`` when calamine reads the sheet or its shared strings otherwise than the row-by-row reader."""
    _prescan(xml, strings)  # type: ignore[arg-type]
    _rows_in_order(xml)  # type: ignore[arg-type]


def _typed(xml: bytearray, letters: list[str]) -> Typed:
    found: Typed = {letter.encode(): {} for letter in letters}
    if not letters:
        return found
    # Letters are A–Z only (fastxlsx._column_letters): nothing to escape.
    pattern = re.compile(_TYPED_CELL.replace(b"{letters}", b"|".join(found)))
    for column, number, style, kind, text in pattern.findall(xml):
        found[column][int(number)] = (kind, style, text)
    return found


def main(arguments: str) -> None:
    """Check one sheet, writing two pickles to standard output: ``("typed", cells)``, then ``("ok",)``.

    The typed cells go first, before the checks (two thirds of the work): the importing process starts on its
    rows with them and asks for the checks' answer only before its last row is stored. ``("mismatch", reason)``
    takes the place of either pickle, and ends the output.
    """
    spec = json.loads(arguments)

    def send(answer: tuple[Any, ...]) -> None:
        pickle.dump(answer, sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
        sys.stdout.buffer.flush()

    try:
        xml, strings = _unpacked(spec["path"], spec["part"])
        send(("typed", _typed(xml, spec["letters"])))
        check(xml, strings)
        send(("ok",))
    except BrokenPipeError:
        pass  # the importing process has stopped listening (it gave the file back for another reason)
    except Mismatch as exc:
        send(("mismatch", str(exc)))
    except Exception as exc:  # a damaged archive: the row-by-row reader says what
        send(("mismatch", type(exc).__name__))


if __name__ == "__main__":
    main(sys.argv[1])
