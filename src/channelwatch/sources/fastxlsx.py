"""The fast reader of large XLSX exports: python-calamine (Rust) reads the sheet, the row-by-row rules decide.

The row-by-row reader (``files._sheet_rows``) walks the sheet's XML with lxml, one Python call per cell, which
is most of an XLSX import's time. python-calamine parses the same XML in Rust about ten times faster, but it
does not give every cell the way that reader does:

- it gives every number as a float and turns date-styled numbers into dates by its own rounding (about one
  fractional-millisecond serial in a few thousand comes out a millisecond apart), and it does not tell which
  date formats it takes for dates;
- it gives an empty string for an error cell (``#REF!``) and for a formula without a saved result, unescapes
  ``_x000D_``-style escapes, and trims the whitespace of each rich-text run that does not say ``xml:space``.

So calamine is trusted only for what it reads the same way: the row structure and the text of string cells
(compared after ``str.strip``, as the converter reads them). Every other cell of a column the converter uses
(numbers, booleans, dates) is taken from the sheet's own ``<v>`` text and typed by the row-by-row reader's own
function (``files._typed_value``), with openpyxl's date styles and epoch. Anything these checks cannot vouch
for — a formula, an error cell, an escape, a rich-text run with edge whitespace, a cell written in another
form than ``<c r="B2" s="1"><v>…</v></c>`` — raises ``Undecided``, as does any row the converter finds
invalid: the caller then reads the whole file again row by row (``ingest.imports``), which names the file,
line, field and value of every invalid row exactly as before. tests/sources/test_fastxlsx.py compares both
readers on generated workbooks.
"""

from __future__ import annotations

import re
import sys
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from channelwatch.dates import EARLIEST, _zone
from channelwatch.sources.base import Observed
from channelwatch.sources.fastcsv import ColumnBatch, Undecided, _append_observed

__all__ = ["xlsx_columns"]

_BATCH_ROWS = 8192
# Excel's last column is XFD; the row-by-row reader places a longer reference after the previous cell.
_MAX_COLUMNS = 16384

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
    """Raise ``Undecided`` when the sheet or its shared strings hold what calamine reads otherwise.

    Each check is one regular expression with a literal start over the part's bytes (faster than ``in``).
    """
    _well_formed(sheet_xml)
    if _FORMULA.search(sheet_xml):
        raise Undecided("a formula")
    if _ODD_TYPE.search(sheet_xml) or _SINGLE_QUOTED.search(sheet_xml):
        raise Undecided("an error, ISO date or oddly written cell")
    if _ODD_VALUE.search(sheet_xml):
        raise Undecided("a value that is not a plain number")
    for part in (sheet_xml, *strings_xml):
        if _PREFIXED.search(part):
            raise Undecided("prefixed element names")
        if _ESCAPE.search(part):
            raise Undecided("an _xHHHH_ escape")
        # calamine trims the text of a <t> without xml:space="preserve": the outer spaces of a cell go anyway
        # (the converter strips them), but a text of spaces only, or the spaces between rich-text runs, stay.
        if _LEADING_SPACE.search(part):
            raise Undecided("text beginning with whitespace")
        if _RUN.search(part) and _TRAILING_SPACE.search(part):
            raise Undecided("a rich-text run ending with whitespace")


def _well_formed(sheet_xml: bytes) -> None:
    """The sheet as libxml2 reads it: well-formed UTF-8 XML without control characters (expat, in C).

    lxml (the row-by-row reader) refuses a sheet that calamine reads, such as one holding ``&#1;``.
    """
    from xml.parsers import expat

    declared = _DECLARED.match(sheet_xml[:200])
    if declared and declared.group(1).lower().replace(b"-", b"") != b"utf8":
        raise Undecided("a sheet in another encoding")
    if sheet_xml[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise Undecided("a sheet in UTF-16")
    parser = expat.ParserCreate()
    try:
        parser.Parse(sheet_xml, True)
    except expat.ExpatError:
        raise Undecided("a sheet that is not well-formed XML") from None


def _rows_in_order(sheet_xml: bytes) -> None:
    """Rows numbered in increasing order, ``r`` first: calamine places rows by number, the other reader in order."""
    numbers = _ROW_NUMBER.findall(sheet_xml)
    if len(numbers) != sheet_xml.count(b"<row"):
        raise Undecided("a row without its number first")
    previous = 0
    for number in map(int, numbers):
        if number <= previous:
            raise Undecided("rows out of order")
        previous = number


def _column_letters(index: int) -> str:
    """Excel's letters of a column index (0 → A, 26 → AA)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


_TYPED = (float, int, bool, datetime, date, time, timedelta)
_UNIX_EPOCH = datetime(1970, 1, 1)
# Serials the vectorised date path takes: 1999-07-23 to 9999-12-31 in either epoch, away from openpyxl's
# special cases (times of day below 1, the 1900 leap-year day below 61); others take the row-by-row path.
_SERIAL_LOW, _SERIAL_HIGH = 36000.0, 2958465.0
# The typed cells the fast reader takes from the sheet's own text: written the way Excel, WPS and openpyxl
# write a number or a boolean. A typed cell written otherwise gives the file back.
_TYPED_CELL = re.compile(rb'<c r="([A-Z]{1,3})(\d+)"(?: s="(\d+)")?(?: t="([nb])")?><v>([^<&]+)</v></c>')

Raw = dict[int, dict[int, tuple[bytes, bytes, bytes]]]  # column → line → (t, s, <v> text), as in the file


def xlsx_columns(path: Path, converter: Any, workbook: Any, sheet: Any, header_line: int) -> Iterator[ColumnBatch]:
    """The publications of the sheet the row-by-row reader reads, batch by batch; raises ``Undecided``.

    ``converter`` is that reader's ``files._RowConverter``, ``workbook`` and ``sheet`` its openpyxl read-only
    workbook and first worksheet, ``header_line`` the line of the header it found.
    """
    from python_calamine import CalamineWorkbook

    try:
        raw = _checked_typed_cells(path, sheet, converter)
        with CalamineWorkbook.from_path(str(path)) as book:
            found = book.get_sheet_by_name(sheet.title)
            start, end = found.start, found.end
            if end is not None and end[1] >= _MAX_COLUMNS:
                raise Undecided("a column past XFD")
            # iter_rows makes Python rows one at a time (memory), from row 0 and from the first used column.
            rows = found.iter_rows()
            yield from _batches(path, converter, workbook, rows, start[1] if start else 0, raw, header_line)
    except Undecided:
        raise
    except Exception as exc:  # calamine refusing a cell, a damaged part: the row-by-row reader says what
        raise Undecided(type(exc).__name__) from None


def _checked_typed_cells(path: Path, sheet: Any, converter: Any) -> Raw:
    """Check the sheet's bytes (``_prescan``) and keep the text of the typed cells of the columns the converter uses.

    The unpacked sheet is dropped before calamine reads it (memory).
    """
    with zipfile.ZipFile(path) as archive:
        strings = [archive.read(n) for n in archive.namelist() if n.lower().endswith("sharedstrings.xml")]
        info = archive.getinfo(sheet._worksheet_path)
        # Unpacked into one buffer of the part's size, without the copies of a plain read().
        xml = bytearray(info.file_size)
        view = memoryview(xml)
        done = 0
        source: Any
        with archive.open(info) as source:
            while done < len(xml) and (count := source.readinto(view[done : done + (1 << 20)])):
                done += count
            if done != len(xml) or source.read(1):
                raise Undecided("a sheet of another size than its entry says")
        view.release()
    _prescan(xml, strings)  # type: ignore[arg-type]
    del strings
    _rows_in_order(xml)  # type: ignore[arg-type]
    used = {_column_letters(i).encode(): i for i in converter._text_indices if i < _MAX_COLUMNS}
    raw: Raw = {i: {} for i in used.values()}
    for letters, number, style, kind, text in _TYPED_CELL.findall(xml):
        column = used.get(letters)
        if column is not None:
            raw[column][int(number)] = (kind, style, text)
    return raw


def _batches(
    path: Path,
    converter: Any,
    workbook: Any,
    rows: Iterator[list[Any]],
    offset: int,
    raw: Raw,
    header_line: int,
) -> Iterator[ColumnBatch]:
    import numpy as np
    from openpyxl.utils.datetime import from_excel

    from channelwatch.sources.files import _as_text, _typed_value

    tz = _zone(converter.zone)
    name = path.name
    date_styles, duration_styles, epoch = set(workbook._date_formats), set(workbook._timedelta_formats), workbook.epoch
    # Column indices in calamine's rows, which start at the first used column; -1 for a column left of it.
    # (A used column left of calamine's first column is empty in every row: read as a missing cell.)
    used = [i - offset if i != sys.maxsize and i >= offset else -1 for i in converter._text_indices]
    marks: dict[str, bool | None] = {}

    def exact(column: int, line: int) -> Any:
        """A typed cell as the row-by-row reader types it (``column`` as in the file)."""
        if column == date_column and line in serials:
            # A date-styled number below 2**53: from_excel gives the same for its int and float forms.
            return from_excel(serials[line], epoch)
        cell = raw.get(column, {}).get(line)
        if cell is None:
            raise Undecided("a typed cell written in another form")
        kind, style, text = cell
        return _typed_value(kind.decode() or "n", text.decode(), style.decode(), date_styles, duration_styles, epoch)

    def shifted(index: int, line: int) -> Any:
        return exact(index + offset, line)

    # Date cells the vectorised path reads: numbers with a date (not duration) style.
    serials: dict[int, float] = {}
    date_column = converter._text_indices[0]
    for line, (kind, style, text) in raw.get(date_column, {}).items():
        index = int(style or 0)
        if kind in (b"", b"n") and index in date_styles and index not in duration_styles:
            try:
                serial = float(text)
            except ValueError:
                continue
            if _SERIAL_LOW <= serial <= _SERIAL_HIGH:
                serials[line] = serial
    for line in serials:
        del raw[date_column][line]  # memory: kept once, as the serial
    epoch_days = (epoch - _UNIX_EPOCH).days
    earliest_ms = (EARLIEST - _UNIX_EPOCH) // timedelta(milliseconds=1)
    latest_us = (converter._latest - _UNIX_EPOCH.replace(tzinfo=UTC)) // timedelta(microseconds=1)
    offsets: dict[int, int | None] = {}

    def offset_of_hour(hour: int) -> int | None:
        """The zone's offset (ms) for every wall time of one hour, or None if it changes within the hour."""
        found = offsets.get(hour, -1)
        if found != -1:
            return found
        start = _UNIX_EPOCH + timedelta(hours=hour)
        first = start.replace(tzinfo=tz).utcoffset()
        last = (start + timedelta(seconds=3599, microseconds=999999)).replace(tzinfo=tz).utcoffset()
        value = first // timedelta(milliseconds=1) if first is not None and first == last else None
        offsets[hour] = value
        return value

    for _ in islice(rows, header_line):
        pass  # the header and what is above it
    first = header_line + 1
    while chunk := list(islice(rows, _BATCH_ROWS)):
        lines = [line for line in range(first, first + len(chunk)) if line in serials]
        # openpyxl's from_excel, vectorised: day and fraction, the fraction rounded (half to even) to milliseconds.
        value = np.array([serials[line] for line in lines], dtype=np.float64)
        day = np.floor(value)
        wall = (day.astype(np.int64) + epoch_days) * 86_400_000 + np.rint((value - day) * 86400 * 1000).astype(np.int64)
        hours = wall // 3_600_000
        unique_hours, where = np.unique(hours, return_inverse=True)
        found = [offset_of_hour(int(h)) for h in unique_hours.tolist()]
        steady = np.array([o is not None for o in found], dtype=bool)[where]
        utc = wall - np.array([o or 0 for o in found], dtype=np.int64)[where]
        plain = steady & (wall >= earliest_ms) & (utc * 1000 <= latest_us)
        utc_text = np.datetime_as_string(utc.astype("datetime64[ms]").astype("datetime64[us]"), unit="us").tolist()
        local_days = wall.astype("datetime64[ms]").astype("datetime64[D]")
        local_date = np.datetime_as_string(local_days).tolist()
        years = (local_days.astype("datetime64[Y]").astype(np.int64) + 1970).tolist()
        months = (local_days.astype("datetime64[M]").astype(np.int64) % 12 + 1).tolist()
        fast = {line: k for k, (line, ok) in enumerate(zip(lines, plain.tolist(), strict=True)) if ok}

        batch = None
        if len(fast) == len(chunk):
            batch = _plain_batch(chunk, used, marks, converter._marker, utc_text, years, months, local_date)
        if batch is not None:  # the usual batch: every row a dated publication with text cells
            yield batch
            first += len(chunk)
            continue
        # The sheet is well-formed XML (expat) and its shared strings were read by lxml with the workbook:
        # no text holds a NUL or a lone surrogate, so the records need no ``storable`` (plain_text).
        out = ColumnBatch([], [], [], [], [], [], [], [], [], 0, True)
        for line, row in enumerate(chunk, first):
            if not any(row) and all(v.__class__ is str for v in row):
                continue  # a row of empty cells
            out.rows += 1
            k = fast.get(line)
            if k is not None:
                entry = _plain_row(row, used, line, marks, converter._marker, shifted, _as_text)
                if entry is not None:
                    platform_id, title, url, column, repost = entry
                    out.platform_id.append(platform_id)
                    out.title.append(title)
                    out.url.append(url)
                    out.column_name.append(column)
                    out.is_repost.append(repost)
                    text = utc_text[k]
                    out.published_utc.append(text[:10] + " " + text[11:])
                    out.local_year.append(years[k])
                    out.local_month.append(months[k])
                    out.local_date.append(local_date[k])
                    continue
            # Every other row: the row-by-row reader's converter, on the cells that reader would give it.
            cells = [""] * offset + row if offset else list(row)
            for column in converter._text_indices:
                if column < len(cells) and cells[column].__class__ in _TYPED:
                    cells[column] = exact(column, line)
            if all(i >= len(cells) or cells[i].__class__ is str for i in converter._text_indices):
                entry = converter.convert_text(line, cells, f"{name}:{line}")
            else:
                entry = converter.convert(line, cells, f"{name}:{line}")
            if entry.__class__ is not Observed:
                raise Undecided("an invalid row")
            _append_observed(out, entry, tz)
        if out.rows:
            yield out
        first += len(chunk)


def _plain_row(
    row: list[Any], used: list[int], line: int, marks: dict[str, bool | None], marker: Any, exact: Any, as_text: Any
) -> tuple[str | None, str | None, str | None, str | None, bool] | None:  # fmt: skip
    """(id, title, url, column, repost) of a row with a vectorised date, if it is plainly valid; else None."""
    _date_i, title_i, url_i, repost_i, id_i, column_i = used
    title = row[title_i] if title_i >= 0 else ""
    url = row[url_i] if url_i >= 0 else ""
    mark = row[repost_i] if repost_i >= 0 else ""
    if title.__class__ is not str or url.__class__ is not str or mark.__class__ is not str:
        return None
    title, url = title.strip(), url.strip()
    repost = _mark(mark, marks, marker) if repost_i >= 0 else False
    if not (title or url) or repost is None or "[" in url or "]" in url or url.count(":") > 1:
        return None
    return (
        _text(row, id_i, line, exact, as_text),
        title or None,
        url or None,
        _text(row, column_i, line, exact, as_text),
        repost,
    )


def _text(row: list[Any], index: int, line: int, exact: Any, as_text: Any) -> str | None:
    """An id or column name as the converter reads it: text stripped, a typed cell as ``_as_text`` writes it."""
    if index < 0:
        return None
    value = row[index]
    if value.__class__ is str:
        return value.strip() or None
    value = exact(index, line)
    if value.__class__ is str:
        return value.strip() or None
    return None if value is None else as_text(value)


def _mark(mark: str, marks: dict[str, bool | None], marker: Any) -> bool | None:
    """The converter's repost marker of one cell's text, once per distinct text."""
    found = marks.get(mark, _UNSEEN)
    if found is _UNSEEN:
        found = marks[mark] = marker(mark.strip())
    return found  # type: ignore[return-value]


_UNSEEN = object()


def _plain_batch(
    rows: list[list[Any]],
    used: list[int],
    marks: dict[str, bool | None],
    marker: Any,
    utc_text: list[str],
    years: list[int],
    months: list[int],
    local_date: list[str],
) -> ColumnBatch | None:
    """A batch whose every row has a vectorised date and text cells, by columns; None when any row has not."""
    count = len(rows)
    empty = [""] * count
    _date_i, title_i, url_i, repost_i, id_i, column_i = used
    columns = [[r[i] for r in rows] if i >= 0 else empty for i in (title_i, url_i, repost_i, id_i, column_i)]
    if not all(v.__class__ is str for column in columns for v in column):
        return None
    titles, urls, mark_cells, ids, names = columns
    titles = [t.strip() for t in titles]
    urls = [u.strip() for u in urls]
    reposts = [_mark(m, marks, marker) for m in mark_cells] if repost_i >= 0 else [False] * count
    for title, url, repost in zip(titles, urls, reposts, strict=True):
        if not (title or url) or repost is None or "[" in url or "]" in url or url.count(":") > 1:
            return None
    return ColumnBatch(
        [v.strip() or None for v in ids],
        [t or None for t in titles],
        [u or None for u in urls],
        [v.strip() or None for v in names],
        reposts,  # type: ignore[arg-type]
        [t[:10] + " " + t[11:] for t in utc_text],
        years,
        months,
        local_date,
        count,
        True,
    )
