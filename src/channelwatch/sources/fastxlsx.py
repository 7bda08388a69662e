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
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
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
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


_TYPED = (float, int, bool, datetime, date, time, timedelta)
_UNIX_EPOCH = datetime(1970, 1, 1)
# Serials the vectorised date path takes: 1999-12-30 to 9999-12-31 in either epoch, away from openpyxl's
# special cases (times of day below 1, the 1900 leap-year day below 61); others take the row-by-row path.
_SERIAL_LOW, _SERIAL_HIGH = 36000.0, 2958465.0


def xlsx_columns(path: Path, converter: Any, workbook: Any, sheet: Any, header_line: int) -> Iterator[ColumnBatch]:
    """The publications of the sheet the row-by-row reader reads, batch by batch; raises ``Undecided``.

    ``converter`` is that reader's ``files._RowConverter``, ``workbook`` and ``sheet`` its openpyxl read-only
    workbook and first worksheet, ``header_line`` the line of the header it found.
    """
    try:
        grid, raw = _read(path, converter, sheet)
        yield from _batches(path, converter, workbook, grid, raw, header_line)
    except Undecided:
        raise
    except Exception as exc:  # calamine refusing a cell, a damaged part: the row-by-row reader says what
        raise Undecided(type(exc).__name__) from None


def _read(path: Path, converter: Any, sheet: Any) -> tuple[list[list[Any]], dict[int, dict[int, tuple[str, str, str]]]]:
    """calamine's cells of the sheet, and (column → line → (t, s, ``<v>`` text)) of its typed cells in used columns."""
    from python_calamine import CalamineWorkbook

    with zipfile.ZipFile(path) as archive:
        sheet_xml = archive.read(sheet._worksheet_path)
        strings = [archive.read(n) for n in archive.namelist() if n.lower().endswith("sharedstrings.xml")]
    _prescan(sheet_xml, strings)
    del strings
    _rows_in_order(sheet_xml)
    with CalamineWorkbook.from_path(str(path)) as book:
        calamine_sheet = book.get_sheet_by_name(sheet.title)
        end = calamine_sheet.end
        if end is not None and end[1] >= _MAX_COLUMNS:
            raise Undecided("a column past XFD")
        grid: list[list[Any]] = calamine_sheet.to_python(skip_empty_area=False)
    width = len(grid[0]) if grid else 0
    raw: dict[int, dict[int, tuple[str, str, str]]] = {}
    for column in converter._text_indices:
        if column >= width:
            continue
        lines = [i + 1 for i, row in enumerate(grid) if row[column].__class__ in _TYPED]
        if not lines:
            continue
        cells = _raw_cells(sheet_xml, column)
        for line in lines:
            if line not in cells:
                raise Undecided("a typed cell in another form")
        raw[column] = {line: cells[line] for line in lines}
    return grid, raw


def _raw_cells(sheet_xml: bytes, column: int) -> dict[int, tuple[str, str, str]]:
    """Line → (t, s, ``<v>`` text) of the cells of one column written as ``<c r="C2" s="1" t="n"><v>…</v></c>``."""
    pattern = re.compile(
        rb'<c r="' + _column_letters(column).encode() + rb'(\d+)"(?: s="(\d+)")?(?: t="([nb])")?><v>([^<&]+)</v></c>'
    )
    return {
        int(number): ((kind or b"n").decode(), style.decode(), value.decode("ascii"))
        for number, style, kind, value in pattern.findall(sheet_xml)
    }


def _batches(
    path: Path,
    converter: Any,
    workbook: Any,
    grid: list[list[Any]],
    raw: dict[int, dict[int, tuple[str, str, str]]],
    header_line: int,
) -> Iterator[ColumnBatch]:
    import numpy as np

    from channelwatch.sources.files import _as_text, _typed_value

    tz = _zone(converter.zone)
    name = path.name
    date_styles, duration_styles, epoch = set(workbook._date_formats), set(workbook._timedelta_formats), workbook.epoch
    width = len(grid[0]) if grid else 0
    date_i, title_i, url_i, repost_i, id_i, column_i = (i if i < width else -1 for i in converter._text_indices)
    marks: dict[str, bool | None] = {}

    def exact(column: int, line: int) -> Any:
        kind, style, text = raw[column][line]
        return _typed_value(kind, text, style, date_styles, duration_styles, epoch)

    # Typed cells outside the date column (numeric ids, 0/1 repost marks) as the row-by-row reader types them.
    typed = {column: {line: exact(column, line) for line in cells} for column, cells in raw.items() if column != date_i}
    # Date cells the vectorised path reads: numbers with a date (not duration) style.
    serials: dict[int, float] = {}
    for line, (kind, style, text) in raw.get(date_i, {}).items():
        index = int(style or 0)
        if kind == "n" and index in date_styles and index not in duration_styles:
            try:
                serial = float(text)
            except ValueError:
                continue
            if _SERIAL_LOW <= serial <= _SERIAL_HIGH:
                serials[line] = serial
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

    for start in range(header_line, len(grid), _BATCH_ROWS):
        stop = min(start + _BATCH_ROWS, len(grid))
        lines = [line for line in range(start + 1, stop + 1) if line in serials]
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

        batch = _plain_batch(grid[start:stop], len(fast), converter, marks, utc_text, years, months, local_date)
        if batch is not None:  # the usual batch: every row a dated publication with text cells
            yield batch
            continue
        out = ColumnBatch([], [], [], [], [], [], [], [], [], 0, True)
        for index in range(start, stop):
            row = grid[index]
            line = index + 1
            if not any(row) and all(v.__class__ is str for v in row):
                continue  # a row of empty cells
            out.rows += 1
            k = fast.get(line)
            if k is not None:
                title = row[title_i] if title_i >= 0 else ""
                url = row[url_i] if url_i >= 0 else ""
                mark = row[repost_i] if repost_i >= 0 else ""
                if title.__class__ is str and url.__class__ is str and mark.__class__ is str:
                    title, url = title.strip(), url.strip()
                    repost = _mark(mark, marks, converter._marker) if repost_i >= 0 else False
                    if (title or url) and repost is not None and not ("[" in url or "]" in url or url.count(":") > 1):
                        out.platform_id.append(_text(row, id_i, line, typed, _as_text))
                        out.title.append(title or None)
                        out.url.append(url or None)
                        out.column_name.append(_text(row, column_i, line, typed, _as_text))
                        out.is_repost.append(repost)
                        text = utc_text[k]
                        out.published_utc.append(text[:10] + " " + text[11:])
                        out.local_year.append(years[k])
                        out.local_month.append(months[k])
                        out.local_date.append(local_date[k])
                        continue
            # Every other row: the row-by-row reader's converter, on the cells that reader would give it.
            cells = list(row)
            for column, values in typed.items():
                if line in values:
                    cells[column] = values[line]
            if date_i >= 0 and line in raw.get(date_i, {}):
                cells[date_i] = exact(date_i, line)
            if all(i >= width or cells[i].__class__ is str for i in converter._text_indices):
                entry = converter.convert_text(line, cells, f"{name}:{line}")
            else:
                entry = converter.convert(line, cells, f"{name}:{line}")
            if entry.__class__ is not Observed:
                raise Undecided("an invalid row")
            _append_observed(out, entry, tz)
        if out.rows:
            yield out


def _mark(mark: str, marks: dict[str, bool | None], marker: Any) -> bool | None:
    """The converter's repost marker of one cell's text, once per distinct text."""
    found = marks.get(mark, _UNSEEN)
    if found is _UNSEEN:
        found = marks[mark] = marker(mark.strip())
    return found  # type: ignore[return-value]


_UNSEEN = object()


def _plain_batch(
    rows: list[list[Any]],
    dated: int,
    converter: Any,
    marks: dict[str, bool | None],
    utc_text: list[str],
    years: list[int],
    months: list[int],
    local_date: list[str],
) -> ColumnBatch | None:
    """A batch whose every row has a vectorised date and text cells, by columns; None when any row has not."""
    count = len(rows)
    width = len(rows[0]) if rows else 0
    if dated != count:
        return None
    empty = [""] * count
    _date_i, title_i, url_i, repost_i, id_i, column_i = converter._text_indices
    columns = [[r[i] for r in rows] if i < width else empty for i in (title_i, url_i, repost_i, id_i, column_i)]
    if not all(v.__class__ is str for column in columns for v in column):
        return None
    titles, urls, mark_cells, ids, names = columns
    titles = [t.strip() for t in titles]
    urls = [u.strip() for u in urls]
    if repost_i < width:
        marker = converter._marker
        reposts = [_mark(m, marks, marker) for m in mark_cells]
    else:
        reposts = [False] * count
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


def _text(row: list[Any], column: int, line: int, typed: dict[int, dict[int, Any]], as_text: Any) -> str | None:
    """An id or column name as the converter reads it: text stripped, a typed cell as ``_as_text`` writes it."""
    if column < 0:
        return None
    value = row[column]
    if value.__class__ is str:
        return value.strip() or None
    value = typed[column][line]
    if value.__class__ is str:
        return value.strip() or None
    return None if value is None else as_text(value)
