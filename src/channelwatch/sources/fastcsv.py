"""The columnar reader of large CSV exports: Arrow parses, whole columns are checked at once.

The row-by-row reader (``files._open_csv``) spends most of an import's time on per-row Python: splitting,
stripping, parsing each date. This reader gives the same publications for the rows it can decide by
columns alone — UTF-8 text, dates written ``2020-06-01[ 08:00[:00]]``, known repost marks, plain links —
and hands every other row to the row-by-row converter, one row at a time, so that an unusual date form is
still read by ``dates.parse_datetime``. A row that converter finds invalid (or a row Arrow cannot split
the way ``csv`` would, such as one with more cells than the header) raises ``Undecided``: the caller then
reads the whole file again row by row, which names the file, line, field and value of every invalid row
exactly as before. Tests compare both readers on generated files (tests/sources/test_fastcsv.py).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from channelwatch.dates import _zone
from channelwatch.sources.base import Observed

__all__ = ["BLOCK_BYTES", "ColumnBatch", "Undecided", "csv_columns"]

# What ``str.strip()`` removes: Arrow's own whitespace trimming knows fewer characters (\x1c–\x1f, \x85).
_PY_SPACE = (  # tests/sources/test_fastcsv.py checks it
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_PLAIN_DATE = r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?$"
BLOCK_BYTES = 1 << 20
_EARLIEST_UTC = 946684800  # 2000-01-01T00:00:00Z, dates.EARLIEST as the inline check compares it


class Undecided(Exception):
    """A row the columnar reader cannot decide: the file is read again row by row."""


@dataclass
class ColumnBatch:
    """Valid publications of consecutive rows, by column (one entry per publication).

    A batch whose rows were all decided by columns holds Arrow arrays (``arrow``; null where the list would
    hold None), so that the import's reading process can send them on without making a Python object of
    every cell; a batch with a row read by the row-by-row converter holds lists.
    """

    platform_id: Any  # list[str | None] or an Arrow string array
    title: Any
    url: Any
    column_name: Any
    is_repost: Any  # list[bool] or an Arrow boolean array
    published_utc: Any  # ``YYYY-MM-DD HH:MM:SS.ffffff``, UTC, as the SQLite store keeps it
    local_year: Any  # list[int] or an Arrow int64 array
    local_month: Any
    local_date: Any
    rows: int  # rows of the file read (not counting those with every cell blank)
    # No NUL in any text: as valid UTF-8 (Arrow checks it) the rows are then what ``store.storable`` keeps.
    plain_text: bool = False
    arrow: bool = False


def _days_from_civil(y: Any, m: Any, d: Any) -> Any:
    """Days since 1970-01-01 of proleptic Gregorian dates, for numpy integer arrays."""
    y = y - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def csv_columns(path: Path, converter: Any, encoding: str, zone: str, *, with_bom: bool) -> Iterator[ColumnBatch]:
    """The publications of a comma-separated UTF-8 export, batch by batch; raises ``Undecided``.

    ``converter`` is the row-by-row reader's ``files._RowConverter`` for the file's header.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    width = len(converter.header)
    names = [f"c{i}" for i in range(width)]
    invalid: list[int] = []

    def on_invalid(row: Any) -> str:
        invalid.append(1)
        return "skip"

    def open_reader() -> Any:
        return pcsv.open_csv(
            str(path),
            read_options=pcsv.ReadOptions(
                skip_rows=1, column_names=names, block_size=BLOCK_BYTES, encoding="utf8", use_threads=False
            ),
            parse_options=pcsv.ParseOptions(
                delimiter=",",
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=True,
                ignore_empty_lines=True,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    del with_bom  # the header line, BOM included, is skipped by the reader
    reader: Any = None
    tz = _zone(zone)
    latest_wall = converter._latest.replace(tzinfo=None)
    latest_seconds = int((latest_wall - datetime(1970, 1, 1)).total_seconds() // 1)
    absent = sys.maxsize
    date_i, title_i, url_i, repost_i, id_i, column_i = converter._text_indices
    marker = converter._marker
    offsets: dict[int, int | None] = {}
    field_limit = csv.field_size_limit()
    name = path.name

    def offset_of_hour(hour: int) -> int | None:
        """The zone's offset (seconds) for every wall time of one hour, or None if it changes within the hour."""
        found = offsets.get(hour, -1)
        if found != -1:
            return found
        start = datetime(1970, 1, 1) + (hour * 3600 - 0) * _SECOND
        first = start.replace(tzinfo=tz).utcoffset()
        last = (start + 3599 * _SECOND).replace(tzinfo=tz).utcoffset()
        value = int(first.total_seconds()) if first is not None and first == last else None
        offsets[hour] = value
        return value

    def batches() -> Iterator[ColumnBatch]:
        for batch in reader:
            if invalid:
                raise Undecided("a row Arrow splits otherwise")
            count = batch.num_rows
            if count == 0:
                continue
            # Python's csv refuses a cell longer than its field size limit (the file is then rejected):
            # a cell anywhere near it is left to the row-by-row reader.
            longest = max((pc.max(pc.utf8_length(batch.column(i))).as_py() or 0) for i in range(width))
            if longest >= field_limit // 2:
                raise Undecided("a cell near csv's field size limit")
            columns = [pc.utf8_trim(batch.column(i), characters=_PY_SPACE) for i in range(width)]
            empty = pa.scalar("")

            date, title, url, repost, ident, col = (
                _column(columns, k, count) for k in (date_i, title_i, url_i, repost_i, id_i, column_i)
            )  # fmt: skip
            blank = pc.and_(pc.equal(title, empty), pc.equal(url, empty))
            # Rows with every cell blank are skipped, as by the row-by-row reader; other blank ones are invalid.
            all_blank = pc.equal(columns[0], empty)
            for array in columns[1:]:
                all_blank = pc.and_(all_blank, pc.equal(array, empty))
            keep = pc.invert(all_blank)
            # Repost marks: few distinct values, each read by the converter's own function.
            if repost_i != absent:
                values = pc.unique(repost).to_pylist()
                marks = [marker(v) for v in values]
                marked = pc.take(pa.array(marks, pa.bool_()), pc.index_in(repost, pa.array(values, pa.string())))
            else:
                marked = pa.repeat(pa.scalar(False), count)
            odd_url = pc.or_(
                pc.or_(pc.match_substring(url, "["), pc.match_substring(url, "]")),
                pc.greater(pc.count_substring(url, ":"), 1),
            )
            plain = pc.and_(
                pc.and_(pc.match_substring_regex(date, _PLAIN_DATE), pc.invert(blank)),
                pc.and_(pc.is_valid(marked), pc.invert(odd_url)),
            )
            plain = pc.fill_null(plain, False)
            texts = pc.if_else(plain, date, pa.scalar("2000-01-01 00:00:00"))
            year, month, day, hour, minute, second = _date_parts(texts)
            month_ok = (month >= 1) & (month <= 12)
            safe_month = np.where(month_ok, month, 1)
            next_year = np.where(safe_month == 12, year + 1, year)
            next_month = np.where(safe_month == 12, 1, safe_month + 1)
            days_in = _days_from_civil(next_year, next_month, 1) - _days_from_civil(year, safe_month, 1)
            ok = np.asarray(plain, dtype=bool) & month_ok & (day >= 1) & (day <= days_in)
            ok &= (hour <= 23) & (minute <= 59) & (second <= 59)
            local = (_days_from_civil(year, safe_month, np.where(ok, day, 1)) * 86400 + hour * 3600 + minute * 60
                     + second)  # fmt: skip
            hours = local // 3600
            unique_hours, where = np.unique(hours, return_inverse=True)
            hour_offsets = np.array([offset_of_hour(int(h)) for h in unique_hours.tolist()], dtype=object)
            steady = np.array([o is not None for o in hour_offsets], dtype=bool)[where]
            offset = np.array([0 if o is None else o for o in hour_offsets], dtype=np.int64)[where]
            utc = local - offset
            ok &= steady & (utc > _EARLIEST_UTC) & (local <= latest_seconds)
            ok &= np.asarray(keep, dtype=bool)
            keep_mask = np.asarray(keep, dtype=bool)

            rows = int(keep_mask.sum())
            # Seconds as microseconds: Arrow's cast writes the store's ``YYYY-MM-DD HH:MM:SS.ffffff`` itself.
            utc_texts = pc.cast(pa.array(utc * 1_000_000, pa.timestamp("us")), pa.string())
            dates = pc.utf8_slice_codeunits(texts, 0, 10)
            plain_text = not any(_holds_nul(c) for c in (ident, title, url, col))
            if rows == count and ok.all():  # the usual batch: every row decided by its columns
                yield ColumnBatch(
                    _none_if_empty(ident), _none_if_empty(title), _none_if_empty(url), _none_if_empty(col),
                    pc.fill_null(marked, False), utc_texts, pa.array(year, pa.int64()), pa.array(month, pa.int64()),
                    dates, rows, plain_text, arrow=True,
                )  # fmt: skip
                continue
            platform = ident.to_pylist()
            titles, urls, cols = title.to_pylist(), url.to_pylist(), col.to_pylist()
            reposts = pc.fill_null(marked, False).to_pylist()
            utc_text = utc_texts.to_pylist()
            dates = dates.to_pylist()
            years, months = year.tolist(), month.tolist()
            out = ColumnBatch([], [], [], [], [], [], [], [], [], rows, plain_text)
            decided = ok.tolist()
            kept = keep_mask.tolist()
            raw: list[list[str]] | None = None
            for i in range(count):
                if decided[i]:
                    out.platform_id.append(platform[i] or None)
                    out.title.append(titles[i] or None)
                    out.url.append(urls[i] or None)
                    out.column_name.append(cols[i] or None)
                    out.is_repost.append(reposts[i])
                    out.published_utc.append(utc_text[i])
                    out.local_year.append(years[i])
                    out.local_month.append(months[i])
                    out.local_date.append(dates[i])
                    continue
                if not kept[i]:
                    continue
                if raw is None:
                    raw = [batch.column(c).to_pylist() for c in range(width)]
                entry = converter.convert_text(0, [cells[i] for cells in raw], name)
                if entry.__class__ is not Observed:
                    raise Undecided("an invalid row")
                _append_observed(out, entry, tz)
            yield out
        if invalid:
            raise Undecided("a row Arrow splits otherwise")

    try:
        reader = open_reader()
        yield from batches()
    except Undecided:
        raise
    except Exception as exc:  # invalid UTF-8, a cell Arrow refuses: the row-by-row reader says which line
        raise Undecided(type(exc).__name__) from None


def _date_parts(texts: Any) -> tuple[Any, ...]:
    """Year, month, day, hour, minute and second of texts ``YYYY-MM-DD[ HH:MM[:SS]]`` (``_PLAIN_DATE``), as integers.

    Every text is ASCII in that one layout, so its digits are read at fixed places of Arrow's data buffer,
    nineteen bytes from each text's start; a time the text does not hold is 0.
    """
    import numpy as np

    count = len(texts)
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int32)[texts.offset : texts.offset + count + 1]
    starts = offsets[:-1].astype(np.int64)
    length = offsets[1:] - offsets[:-1]
    data = np.frombuffer(texts.buffers()[2], dtype=np.uint8)
    # Places beyond a short text's end (or the buffer's) read other bytes: masked out below.
    places = np.minimum(starts[:, None] + np.arange(19), len(data) - 1)
    digits = data[places].astype(np.int64) - 48

    def number(first: int, size: int) -> Any:
        value = digits[:, first]
        for place in range(first + 1, first + size):
            value = value * 10 + digits[:, place]
        return value

    with_time, with_seconds = length >= 16, length == 19
    hour = np.where(with_time, number(11, 2), 0)
    minute = np.where(with_time, number(14, 2), 0)
    second = np.where(with_seconds, number(17, 2), 0)
    return number(0, 4), number(5, 2), number(8, 2), hour, minute, second


def _none_if_empty(array: Any) -> Any:
    """Empty texts as nulls: what ``v or None`` gives on each cell."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.if_else(pc.equal(array, pa.scalar("")), pa.scalar(None, pa.string()), array)


def _holds_nul(array: Any) -> bool:
    """Whether a text of ``array`` holds a NUL character; the whole data buffer is looked at first (one pass)."""
    import numpy as np
    import pyarrow.compute as pc

    data = array.buffers()[2]
    if data is None or not np.frombuffer(data, dtype=np.uint8).all():
        return bool(pc.any(pc.match_substring(array, "\x00")).as_py())
    return False


def _column(columns: list[Any], index: int, count: int) -> Any:
    import pyarrow as pa

    return columns[index] if index != sys.maxsize else pa.repeat(pa.scalar(""), count)


_SECOND = datetime(1970, 1, 1, 0, 0, 1) - datetime(1970, 1, 1)


def _append_observed(out: ColumnBatch, observed: Observed, tz: Any) -> None:
    """A publication the row-by-row converter read, as ``record_of`` and the store see it."""
    moment = observed.published_at
    local = moment if moment.tzinfo is tz else moment.replace(tzinfo=tz) if moment.tzinfo is None else None
    if local is None:
        local = moment.astimezone(tz)
    out.platform_id.append(observed.platform_id)
    out.title.append(observed.title)
    out.url.append(observed.url)
    out.column_name.append(observed.column_name)
    out.is_repost.append(observed.is_repost)
    out.published_utc.append(local.astimezone(UTC).isoformat(" ", "microseconds")[:26])
    out.local_year.append(local.year)
    out.local_month.append(local.month)
    out.local_date.append(f"{local.year:04d}-{local.month:02d}-{local.day:02d}")
