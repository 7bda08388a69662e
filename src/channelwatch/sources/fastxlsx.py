"""The fast reader of XLSX exports: python-calamine (Rust) reads the sheet, the row-by-row rules decide.

The row-by-row reader (``files._sheet_rows``) walks the sheet's XML with lxml, one Python call per cell, which
is most of an XLSX import's time. python-calamine parses the same XML in Rust about ten times faster, but it
does not give every cell the way that reader does:

- it gives every number as a float and turns date-styled numbers into dates by its own rounding (about one
  fractional-millisecond serial in a few thousand comes out a millisecond apart), and it does not tell which
  date formats it takes for dates;
- it gives an empty string for an error cell (``#REF!``) and for a formula without a saved result, unescapes
  ``_x000D_``-style escapes, trims the whitespace of each text run that does not say ``xml:space``, and
  reads some XML that lxml refuses (``&#1;``).

So calamine is trusted only for what it reads the same way: the row structure and the text of string cells
(compared after ``str.strip``, as the converter reads them). Every other cell of a column the converter uses
(numbers, booleans, dates) is taken from the sheet's own ``<v>`` text and typed by the row-by-row reader's own
function (``files._typed_value``), with openpyxl's date styles and epoch; dates of whole batches are computed
with numpy by the same arithmetic as openpyxl's ``from_excel``. What the checks of the sheet's bytes
(sources/xlsxcheck.py) cannot vouch for — a formula, an error cell, an escape, text with edge whitespace,
a sheet that is not well-formed XML, a cell written in another form than ``<c r="B2" s="1"><v>…</v></c>`` —
raises ``Undecided``, as does any row the converter finds invalid: the caller then reads the whole file again
row by row (``ingest.imports``), which names the file, line, field and value of every invalid row exactly as
before. Rows are handed on while a large sheet's bytes are still being checked; the checks' answer comes before
the reader's end, so a caller that stores every row before it commits never keeps a row the checks refuse.
tests/sources/test_fastxlsx.py compares both readers on generated workbooks.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any

from channelwatch.dates import EARLIEST, _zone
from channelwatch.sources import xlsxcheck
from channelwatch.sources.base import Observed
from channelwatch.sources.fastcsv import ColumnBatch, Undecided, _append_observed

__all__ = ["xlsx_columns"]

_BATCH_ROWS = 8192
# A sheet this large (unpacked) is checked by a process of its own while calamine reads it (``_Checks``).
CHECK_IN_PROCESS_BYTES = 4 << 20
# Excel's last column is XFD; the row-by-row reader places a longer reference after the previous cell.
_MAX_COLUMNS = 16384


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
Raw = dict[int, dict[int, tuple[bytes, bytes, bytes]]]  # column → line → (t, s, <v> text), as in the file


def xlsx_columns(
    path: Path, converter: Any, workbook: Any, sheet: Any, header_line: int, typed_value: Any, as_text: Any
) -> Iterator[ColumnBatch]:
    """The publications of the sheet the row-by-row reader reads, batch by batch; raises ``Undecided``.

    ``converter`` is that reader's ``files._RowConverter``, ``workbook`` and ``sheet`` its openpyxl read-only
    workbook and first worksheet, ``header_line`` the line of the header it found; ``typed_value`` and
    ``as_text`` are its ``files._typed_value`` and ``files._as_text`` (handed in: files imports this module).
    """
    from python_calamine import CalamineWorkbook

    checks: Any = None
    try:
        used = [i for i in converter._text_indices if i < _MAX_COLUMNS]
        checks = _Checks(path, sheet._worksheet_path, used)
        with CalamineWorkbook.from_path(str(path)) as book:
            reading = _Reading(book, sheet.title)
            try:  # while calamine reads, without the GIL: the typed cells, and the date cells among them
                raw = checks.result()
                serials = _date_serials(raw, converter._text_indices[0], workbook)
            finally:
                found = reading.sheet()
            start, end = found.start, found.end
            if end is not None and end[1] >= _MAX_COLUMNS:
                raise Undecided("a column past XFD")
            # iter_rows makes Python rows one at a time (memory), from row 0 and from the first used column.
            rows = found.iter_rows()
            offset = start[1] if start else 0
            yield from _batches(
                path, converter, workbook, rows, offset, raw, serials, header_line, typed_value, as_text
            )
            # Asked when the caller wants a row after the last one, before it can commit: the rows handed on were
            # read while the sheet's bytes were being checked, and go back with the file if the checks fail.
            checks.verdict()
    except Undecided:
        raise
    except Exception as exc:  # calamine refusing a cell, a damaged part: the row-by-row reader says what
        raise Undecided(type(exc).__name__) from None
    finally:
        if checks is not None:
            checks.close()


class _Checks:
    """``xlsxcheck`` of the sheet: in a process of its own for a large sheet, while calamine reads it.

    The checks (about a third of the reading) then take the machine's other core instead of adding to this one;
    a small sheet is checked here, where a process would cost more than the checks. The process sends the typed
    cells first (``result``) and its checks' answer once they are done (``verdict``): rows go on to the store
    while it checks, and are rolled back with the file if the answer is a mismatch.
    """

    def __init__(self, path: Path, part: str, columns: list[int]) -> None:
        self._letters = {_column_letters(i): i for i in columns}
        self._process: subprocess.Popen[bytes] | None = None
        self._typed: Any = None
        self._mismatch: str | None = None
        self._answered = False
        with zipfile.ZipFile(path) as archive:
            size = archive.getinfo(part).file_size
        spec = {"path": str(path), "part": part, "letters": list(self._letters)}
        if size >= CHECK_IN_PROCESS_BYTES:
            self._process = subprocess.Popen(
                # -I: the script's folder (which has an http.py) is not put on the module path.
                [sys.executable, "-I", xlsxcheck.__file__, json.dumps(spec)],
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
            return
        self._answered = True
        try:
            self._typed = xlsxcheck.typed_cells(str(path), part, list(self._letters))
        except xlsxcheck.Mismatch as exc:
            self._mismatch = str(exc)

    def _receive(self) -> tuple[Any, ...]:
        assert self._process is not None and self._process.stdout is not None
        try:
            answer: tuple[Any, ...] = pickle.load(self._process.stdout)
        except (EOFError, pickle.UnpicklingError):
            answer = ("mismatch", f"the checking process ended ({self._process.wait()})")
        if answer[0] == "mismatch":
            self._mismatch = str(answer[1])
            self._answered = True
        return answer

    def result(self) -> Raw:
        """Column → line → (t, s, ``<v>`` text) of the typed cells; raises ``Undecided``.

        From a process, before its checks are done: ``verdict`` must be asked before what was read is kept.
        """
        if self._typed is None and self._mismatch is None:
            answer = self._receive()
            if answer[0] == "typed":
                self._typed = answer[1]
        if self._mismatch is not None:
            raise Undecided(self._mismatch)
        typed: xlsxcheck.Typed = self._typed
        self._typed = None  # memory: the caller holds it now
        return {self._letters[letters.decode()]: cells for letters, cells in typed.items()}

    def verdict(self) -> None:
        """Wait for the checks of the sheet's bytes; ``Undecided`` if they found what calamine reads otherwise."""
        if not self._answered:
            answer = self._receive()
            self._answered = True
            if answer[0] != "ok" and self._mismatch is None:
                self._mismatch = f"an unexpected answer of the checking process ({answer[0]})"
        if self._mismatch is not None:
            raise Undecided(self._mismatch)

    def close(self) -> None:
        if self._process is not None:
            assert self._process.stdout is not None
            self._process.stdout.close()
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()


class _Reading:
    """calamine reading a sheet in a thread of its own: it holds no GIL while it parses, so that the importing
    thread meanwhile takes the checking process's typed cells and prepares the date cells (``_date_serials``)."""

    def __init__(self, book: Any, name: str) -> None:
        self._found: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, args=(book, name), name="calamine", daemon=True)
        self._thread.start()

    def _read(self, book: Any, name: str) -> None:
        try:
            self._found = book.get_sheet_by_name(name)
        except BaseException as exc:  # raised in the importing thread by ``sheet``
            self._error = exc

    def sheet(self) -> Any:
        """The sheet, once read; what calamine raised, if it could not."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._found


def _date_serials(raw: Raw, date_column: int, workbook: Any) -> dict[int, float]:
    """Line → serial of the date cells the vectorised path reads: numbers with a date (not duration) style.

    Taken out of ``raw`` (memory: each is kept once, as its serial).
    """
    date_styles, duration_styles = set(workbook._date_formats), set(workbook._timedelta_formats)
    serials: dict[int, float] = {}
    cells = raw.get(date_column, {})
    for line, (kind, style, text) in cells.items():
        index = int(style or 0)
        if kind in (b"", b"n") and index in date_styles and index not in duration_styles:
            try:
                serial = float(text)
            except ValueError:
                continue
            if _SERIAL_LOW <= serial <= _SERIAL_HIGH:
                serials[line] = serial
    for line in serials:
        del cells[line]
    return serials


def _batches(
    path: Path,
    converter: Any,
    workbook: Any,
    rows: Iterator[list[Any]],
    offset: int,
    raw: Raw,
    serials: dict[int, float],
    header_line: int,
    typed_value: Any,
    as_text: Any,
) -> Iterator[ColumnBatch]:
    import numpy as np
    from openpyxl.utils.datetime import from_excel

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
        return typed_value(kind.decode() or "n", text.decode(), style.decode(), date_styles, duration_styles, epoch)

    def shifted(index: int, line: int) -> Any:
        return exact(index + offset, line)

    date_column = converter._text_indices[0]
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
                entry = _plain_row(row, used, line, marks, converter._marker, shifted, as_text)
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
    # Column by column, with C-level map/set where the rule allows (this runs for every row of large files).
    columns = [list(map(itemgetter(i), rows)) if i >= 0 else empty for i in (title_i, url_i, repost_i, id_i, column_i)]
    if not all(set(map(type, column)) <= {str} for column in columns):
        return None
    titles, urls, mark_cells, ids, names = columns
    titles = list(map(str.strip, titles))
    urls = list(map(str.strip, urls))
    if repost_i >= 0:
        for mark in set(mark_cells) - marks.keys():
            marks[mark] = marker(mark.strip())
        reposts = list(map(marks.__getitem__, mark_cells))
    else:
        reposts = [False] * count
    if None in reposts or ("" in titles and not all(title or url for title, url in zip(titles, urls, strict=True))):
        return None
    for url in urls:
        if "[" in url or "]" in url or url.count(":") > 1:
            return None
    return ColumnBatch(
        [v.strip() or None for v in ids],
        [t or None for t in titles],
        [u or None for u in urls],
        [v.strip() or None for v in names],
        reposts,
        [t[:10] + " " + t[11:] for t in utc_text],
        years,
        months,
        local_date,
        count,
        True,
    )
