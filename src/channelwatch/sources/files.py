"""Exported publication logs: CSV, XLSX, JSON lists and saved Weibo/WeChat API responses.

``open_export`` picks the format from the extension and the content (``--format`` forces it) and
returns an ``ExportFile`` whose ``rows()`` streams one ``Row`` per data row: either an ``Observed``
publication or the reasons the row is invalid. Nothing here decides whether a file is accepted:
``ingest`` does, after seeing every row.

Encodings of CSV files are detected with charset-normalizer (UTF-8 with or without BOM is checked
first, because it is by far the most common and detectors can mistake short UTF-8 for others);
GBK and GB2312 are read as GB18030, their superset, so rare characters in names never fail.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import os
import re
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from channelwatch.dates import EARLIEST, DateParseError, check_plausible, parse_datetime, to_office
from channelwatch.errors import InputError, RowProblem
from channelwatch.identity import is_original_value, is_repost_value
from channelwatch.sources.base import Observed
from channelwatch.sources.columns import FIELD_HEADERS, FIELD_LABELS, match_headers, repeated_headers
from channelwatch.sources.rows import Entry, Row
from channelwatch.spreadsheet import write_csv

__all__ = [
    "FORMATS",
    "FORMULA_WITHOUT_VALUE",
    "XLSX_DAMAGED",
    "ExportFile",
    "check_xlsx_archive",
    "detect_encoding",
    "open_export",
    "shown",
]

FORMATS = ("csv", "xlsx", "json")
_SAMPLE_BYTES = 1 << 20
# What an error message may quote of one cell or of a header: enough to find it, never the file.
QUOTE_LIMIT = 200
FORMULA_WITHOUT_VALUE = "公式单元格没有保存的计算结果，请在 Excel/WPS 中打开后另存"

# openpyxl warns on stderr about parts it skips (data validation extensions, out-of-range date
# cells it turns into #VALUE!); the row's own problem says what matters, once, in Chinese.
warnings.filterwarnings("ignore", module=r"openpyxl(\..*)?")


def shown(path: Path | str) -> str:
    """A path as text that can always be printed and stored: a name that is not UTF-8 keeps its bytes as \\xNN."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def _quote(text: str) -> str:
    return text if len(text) <= QUOTE_LIMIT else text[:QUOTE_LIMIT] + "…"


@dataclass
class ExportFile:
    """An opened export: its header (for the rejected file) and a stream of rows."""

    path: Path
    format: str
    header: list[str]
    rows: Callable[[], Iterator[Entry]]
    encoding: str | None = None
    position: Callable[[], int] = field(default=lambda: 0)
    size: int = 0
    close: Callable[[], None] = field(default=lambda: None)
    warning: str | None = None  # said to the user and kept on the run, the import still succeeds
    # The columnar reader of the same rows (sources/fastcsv.py), where the file is one it can read.
    columnar: Callable[[], Iterator[Any]] | None = None


# --- encodings -----------------------------------------------------------------------------------


def detect_encoding(sample: bytes) -> str:
    """The encoding of a CSV sample: utf-8-sig, utf-8, gb18030, or what charset-normalizer finds.

    When the sample is not valid UTF-8, the header decides between the two families Chinese
    exports come in: the encoding under which the first line holds known column names wins. A file
    that is UTF-8 but for a few GBK rows (pasted from elsewhere) is thus read as UTF-8 and fails at
    the bad row with its line number, instead of being read whole as mojibake.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    without_bom = _utf16_without_bom(sample)
    if without_bom:
        return without_bom
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    first_line = sample.split(b"\n", 1)[0]
    for candidate in ("gb18030", "utf-8"):
        try:
            header = next(csv.reader([first_line.decode(candidate)]), [])
        except UnicodeDecodeError:
            continue
        if "published_at" in match_headers(list(header)):
            return candidate
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is None:
        return "gb18030"
    name = best.encoding.lower().replace("-", "_")
    return "gb18030" if name in {"gbk", "gb2312", "gb18030", "cp936", "hz", "euc_cn"} else best.encoding


def _utf16_without_bom(sample: bytes) -> str | None:
    """UTF-16 saved without a BOM (some Windows tools): every other byte of Latin text or digits is NUL.

    A NUL is valid UTF-8, so without this check such a file decodes "successfully" into a header
    nobody can read. Chinese text has few NULs, but exports always hold dates and digits.
    """
    head = sample[:4096]
    if len(head) < 8 or head.count(0) < len(head) // 8:
        return None
    even, odd = head[0::2].count(0), head[1::2].count(0)
    if odd > 4 * max(even, 1):
        candidate = "utf-16-le"
    elif even > 4 * max(odd, 1):
        candidate = "utf-16-be"
    else:
        return None
    try:
        head[: len(head) // 2 * 2].decode(candidate)
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # only a pair cut at the sample's end is allowed
            return None
    return candidate


# --- row conversion --------------------------------------------------------------------------------


class _RowConverter:
    """Turns one tabular row (cells by column index) into a ``Row``.

    ``latest`` is the moment of the import: a publication date more than a day after it, or before
    2000, makes the row invalid (``dates.check_plausible``).
    """

    def __init__(self, path: Path, header: list[str], zone: str, latest: datetime | None = None) -> None:
        self.zone = zone
        self.header = header
        self.columns = match_headers(list(header))
        listed = _quote("、".join(h for h in header if h)) or "（空）"
        if "published_at" not in self.columns:
            raise InputError(
                f"{shown(path)}：找不到发布时间列。表头为：{listed}；"
                f"可接受的列名：{'、'.join(FIELD_HEADERS['published_at'])}"
            )
        if "title" not in self.columns and "url" not in self.columns:
            raise InputError(
                f"{shown(path)}：找不到标题列或链接列（至少需要一个）。表头为：{listed}；"
                f"标题可用列名：{'、'.join(FIELD_HEADERS['title'])}；链接可用列名：{'、'.join(FIELD_HEADERS['url'])}"
            )
        repeated = repeated_headers(list(header), self.columns)
        # Said with the import's result (the file is still imported: the first column is the documented choice).
        self.note = (
            "；".join(
                f"表头中第{unused + 1}列「{_quote(name)}」与第{used + 1}列重名，只读取了第{used + 1}列"
                for used, unused, name in repeated
            )
            or None
        )
        self.latest = latest or datetime.now(UTC)
        # Bounds of the inline check; a row outside them takes the general path, which decides exactly.
        self._earliest = EARLIEST.replace(tzinfo=UTC)
        self._latest = to_office(self.latest, zone) + timedelta(days=1)
        c = self.columns
        self._id = c.get("id")
        self._title = c.get("title")
        self._url = c.get("url")
        self._date = c["published_at"]
        self._repost = c.get("repost")
        # An inverse column (是否原创) is read through a marker function of its own, so the hot path
        # below stays one call per row either way.
        self._marker: Callable[[object], bool | None] = is_repost_value
        if self._repost is None and "original" in c:
            self._repost = c["original"]
            self._marker = _repost_from_original
        self._column = c.get("column")
        # Column indices for convert_text; a missing column gets one past any row's width.
        absent = sys.maxsize
        self._text_indices = tuple(
            absent if i is None else i
            for i in (self._date, self._title, self._url, self._repost, self._id, self._column)
        )

    def convert_text(self, line: int, cells: list[str], origin: str) -> Entry:
        """``convert`` for rows of text cells (CSV), the path of files with millions of rows.

        Reads the cells inline and takes the general path only for a row that is not plainly
        valid, so that every problem is still described by one piece of code.
        """
        width = len(cells)
        date_i, title_i, url_i, repost_i, id_i, column_i = self._text_indices
        raw_date = cells[date_i].strip() if date_i < width else ""
        title = cells[title_i].strip() if title_i < width else ""
        url = cells[url_i].strip() if url_i < width else ""
        repost = self._marker(cells[repost_i].strip()) if repost_i < width else False
        if raw_date and (title or url) and repost is not None and not (url and _url_problem(url)):
            try:
                published = parse_datetime(raw_date, self.zone)
            except DateParseError:
                return self.convert(line, cells, origin)
            if not self._earliest < published <= self._latest:
                return self.convert(line, cells, origin)
            platform_id = cells[id_i].strip() if id_i < width else ""
            column = cells[column_i].strip() if column_i < width else ""
            return Observed(
                published, platform_id or None, title or None, url or None, repost, column or None, None, origin
            )
        return self.convert(line, cells, origin)

    def _label(self, index: int) -> str:
        return str(self.header[index]) if index < len(self.header) else ""

    def convert(self, line: int, cells: Sequence[Any], origin: str) -> Entry:
        # This runs once per row of files with millions of rows: cells are read inline, and the
        # text copy of the row (for the rejected file) is only made for invalid rows.
        width = len(cells)
        raw_date = _cell(cells, self._date, width)
        title = _cell(cells, self._title, width)
        url = _cell(cells, self._url, width)
        published: datetime | None = None
        repost = False
        problems: list[RowProblem] | None = None
        formulas = [
            self._label(i)
            for i in (self._date, self._title, self._url, self._repost, self._id, self._column)
            if i is not None and i < width and cells[i] is _FORMULA
        ]
        if formulas:
            problems = [RowProblem(line, label, "", FORMULA_WITHOUT_VALUE) for label in formulas]
        elif raw_date is None:
            problems = [RowProblem(line, self._label(self._date), "", "缺少发布时间")]
        else:
            try:
                published = check_plausible(parse_datetime(raw_date, self.zone), self.latest)
            except DateParseError as exc:
                problems = [RowProblem(line, self._label(self._date), _quote(_as_text(raw_date)), str(exc))]
        # A JSON export's object or list where text belongs is no title: its repr would be stored as one.
        for index in (self._title, self._url, self._id, self._column):
            value = cells[index] if index is not None and index < width else None
            if value.__class__ in _CONTAINERS and index is not None:
                kind = "对象（{…}）" if isinstance(value, dict) else "列表（[…]）"
                problems = (problems or []) + [
                    RowProblem(line, self._label(index), _quote(_as_text(value)[:80]), f"这里应是文字，却是一个{kind}")
                ]
        if title is None and url is None and not formulas:
            label = self._label(self._title) if self._title is not None else self._label(self._url or 0)
            problems = (problems or []) + [RowProblem(line, label, "", "标题和链接都为空")]
        if url is not None and url is not _FORMULA:
            reason = _url_problem(_as_text(url))
            if reason:
                problems = (problems or []) + [
                    RowProblem(line, self._label(self._url or 0), _quote(_as_text(url)), reason)
                ]
        if self._repost is not None:
            raw_repost = _cell(cells, self._repost, width)
            marked = False if raw_repost is _FORMULA else self._marker(raw_repost)
            if marked is None:
                accepted = (
                    "是、true、1（原创）或 否、false、0、转发（转发）"
                    if self._marker is _repost_from_original
                    else "转发、转载、是、原创、否、true、false、1、0"
                )
                problems = (problems or []) + [
                    RowProblem(
                        line,
                        self._label(self._repost),
                        _quote(_as_text(raw_repost)),
                        f"无法识别的转发标记（可用：{accepted}）",
                    )
                ]
            else:
                repost = marked
        if problems:
            return Row(line, [_as_text(v) for v in cells], None, problems)
        assert published is not None
        platform_id = _cell(cells, self._id, width)
        column = _cell(cells, self._column, width)
        return Observed(
            published_at=published,
            platform_id=None if platform_id is None else _as_text(platform_id),
            title=None if title is None else _as_text(title),
            url=None if url is None else _as_text(url),
            is_repost=repost,
            column_name=None if column is None else _as_text(column),
            origin=origin,
        )


_CONTAINERS = (dict, list)


def _repost_from_original(value: object) -> bool | None:
    """A repost marker read from an inverse column (是否原创: True means original)."""
    original = is_original_value(value)
    return None if original is None else not original


class _Formula(str):
    """A formula cell without a saved result: only Excel or WPS can compute it."""

    __slots__ = ()


_FORMULA = _Formula("")


def _url_problem(url: str) -> str | None:
    """Why a link cannot be a web address (a broken IPv6 literal or port), or None.

    Most links have neither brackets nor a port: those are taken as they are, without parsing.
    """
    if "[" not in url and "]" not in url and url.count(":") <= 1:
        return None
    try:
        urlsplit(url).port  # noqa: B018  parsing is the check
    except ValueError as exc:
        return f"链接无效（{'端口' if 'Port' in str(exc) or 'port' in str(exc) else 'IPv6 地址'}格式错误）"
    return None


def _cell(cells: Sequence[Any], index: int | None, width: int) -> Any:
    """A cell's value, stripped; None for a missing or blank cell."""
    if index is None or index >= width:
        return None
    value = cells[index]
    if value.__class__ is str:
        value = value.strip()
        return value or None
    return value


def _as_text(value: Any) -> str:
    if value.__class__ is str:
        return value
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        # An id typed into Excel comes back as 4.5e15-style floats; keep its digits.
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


# --- CSV ---------------------------------------------------------------------------------------------


def _text_encoding(path: Path, chosen: str, forced: bool) -> None:
    """Refuse names that are no text encoding at all (``rot13``, ``zip``, a typo) with one message."""
    try:
        "".encode(chosen)
        b"".decode(chosen)
    except (LookupError, TypeError, ValueError):
        if forced:
            raise InputError(
                f"{shown(path)}：未知的编码「{_quote(chosen)}」（可用如 utf-8、gbk、gb18030、utf-16）"
            ) from None
        raise InputError(f"{shown(path)}：无法识别文件的编码，可用 --encoding 指定编码（如 utf-8、gbk）") from None


def _open_csv(path: Path, zone: str, encoding: str | None, latest: datetime | None) -> ExportFile:
    raw = path.open("rb")
    try:
        sample = raw.read(_SAMPLE_BYTES)
        raw.seek(0)
        chosen = encoding or detect_encoding(sample)
        _text_encoding(path, chosen, forced=encoding is not None)
        # The way out of an encoding that does not read the file: a clerk who chose it already needs another one.
        advice = (
            f"按指定的 --encoding {chosen} 读不通，可换一个编码（如 utf-8、gb18030），或去掉 --encoding 自动识别"
            if encoding is not None
            else "可用 --encoding 指定编码（如 utf-8、gbk）"
        )
        text = io.TextIOWrapper(raw, encoding=chosen, newline="", errors="strict")
    except BaseException:
        raw.close()
        raise
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.excel
        try:
            sniff = sample[:65536].decode(chosen, errors="ignore")[:8192]
        except (UnicodeError, LookupError, ValueError):
            sniff = ""  # codecs that take no error handler (idna): the header read below says more
        if sniff.count("\t") > sniff.count(",") and sniff.count("\t") > sniff.count(";"):
            dialect = csv.excel_tab
        reader = csv.reader(text, dialect)
        header = next(reader, None)
    except (UnicodeError, csv.Error, LookupError, ValueError) as exc:
        raw.close()
        detail = exc.reason if isinstance(exc, UnicodeDecodeError) else type(exc).__name__
        raise InputError(f"{shown(path)}：无法按 {chosen} 编码读取表头（{_quote(str(detail))}），{advice}") from None
    if header is None:
        raw.close()
        raise InputError(f"{shown(path)}：文件是空的")
    try:
        converter = _RowConverter(path, [h.strip().lstrip("\ufeff") for h in header], zone, latest)
    except BaseException:
        raw.close()
        raise
    name = path.name

    def rows() -> Iterator[Entry]:
        convert = converter.convert_text
        try:
            for cells in reader:
                if not "".join(cells).strip():
                    continue  # a blank line or a row of empty cells holds no data
                line = reader.line_num
                yield convert(line, cells, name)
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{shown(path)}：第{reader.line_num + 1}行附近无法按 {chosen} 编码解码（{exc.reason}），"
                f"文件可能混用了编码；{advice}"
            ) from None
        except csv.Error as exc:
            raise InputError(f"{shown(path)}：第{reader.line_num}行不是有效的 CSV（{_quote(str(exc))}）") from None
        except (UnicodeError, LookupError, ValueError) as exc:
            raise InputError(
                f"{shown(path)}：第{reader.line_num + 1}行附近无法按 {chosen} 编码读取"
                f"（{type(exc).__name__}）；{advice}"
            ) from None

    columnar: Callable[[], Iterator[Any]] | None = None
    # The columnar reader skips the header as one line: a header cell holding a line break keeps it away.
    one_line = not any("\n" in cell or "\r" in cell for cell in header)
    if chosen.lower().replace("_", "-") in {"utf-8", "utf8", "utf-8-sig"} and dialect is csv.excel and one_line:

        def columnar() -> Iterator[Any]:
            from channelwatch.sources.fastcsv import csv_columns

            return csv_columns(path, converter, chosen, zone, with_bom=chosen == "utf-8-sig")

    return ExportFile(
        path=path,
        format="csv",
        warning=f"{shown(path)}：{converter.note}" if converter.note else None,
        header=converter.header,
        rows=rows,
        encoding=chosen,
        position=raw.tell,
        size=path.stat().st_size,
        close=raw.close,
        columnar=columnar,
    )


# --- XLSX ------------------------------------------------------------------------------------------

# A 1 MB file can unpack to gigabytes (a "zip bomb"); openpyxl holds the shared strings in memory
# and parses every sheet XML byte. Real exports unpack to well under 20 times their size.
_XLSX_MAX_UNPACKED = 200 << 20
_XLSX_MAX_SHARED_STRINGS = 32 << 20
_XLSX_MAX_RATIO = 100
_XLSX_RATIO_FLOOR = 4 << 20  # small parts may compress far better (a column of blank cells)


XLSX_DAMAGED = "内容不完整或已损坏；请用 Excel/WPS 打开后另存为 XLSX"


def check_xlsx_archive(path: Path) -> None:
    """Refuse an XLSX whose parts would unpack to more than it can honestly hold, before reading any."""
    try:
        with zipfile.ZipFile(path) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise InputError(f"{shown(path)}：不是有效的 XLSX 文件（无法作为 ZIP 压缩包打开）") from None
    total = 0
    for part in parts:
        total += part.file_size
        too_dense = part.file_size > _XLSX_RATIO_FLOOR and part.file_size > _XLSX_MAX_RATIO * max(part.compress_size, 1)
        too_many_strings = part.filename.lower().endswith("sharedstrings.xml") and (
            part.file_size > _XLSX_MAX_SHARED_STRINGS
        )
        if too_dense or too_many_strings or total > _XLSX_MAX_UNPACKED:
            raise InputError(
                f"{shown(path)}：XLSX 文件解压后过大（{_quote(shown(part.filename))} 为 {part.file_size >> 20} MB，"
                f"压缩包共 {path.stat().st_size >> 20} MB），疑似压缩炸弹，未读取；"
                "如确为导出文件，请另存为 CSV 后导入"
            )


def _xlsx_broken(path: Path, exc: BaseException) -> InputError:
    return InputError(
        f"{shown(path)}：XLSX 文件已损坏，无法读取（{type(exc).__name__}）；请在 Excel/WPS 中打开后另存，或另存为 CSV"
    )


_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_ROW, _CELL, _VALUE, _FORMULA_TAG = f"{_MAIN}row", f"{_MAIN}c", f"{_MAIN}v", f"{_MAIN}f"
_INLINE, _TEXT, _RUN, _STRING_ITEM = f"{_MAIN}is", f"{_MAIN}t", f"{_MAIN}r", f"{_MAIN}si"
_DIMENSION, _SHEET_DATA = f"{_MAIN}dimension", f"{_MAIN}sheetData"


@lru_cache(maxsize=1024)
def _column_index(letters: str) -> int:
    index = 0
    for letter in letters.upper():
        index = index * 26 + ord(letter) - 64
    return index


def _iter_elements(source: Any, tag: str) -> Iterator[Any]:
    """Each ``tag`` element of an XML part, dropped from the tree once handed out: memory stays flat.

    lxml without entity expansion or network access, and with libxml2's limits on huge nodes: a part
    built to expand (a "billion laughs") yields nothing rather than gigabytes.
    """
    from lxml import etree

    for _event, element in etree.iterparse(
        source, events=("end",), tag=tag, resolve_entities=False, no_network=True, huge_tree=False, recover=False
    ):
        yield element
        element.clear()
        parent = element.getparent()
        if parent is not None:
            while element.getprevious() is not None:
                del parent[0]


def _inline_text(cell: Any) -> str | None:
    inline = cell.find(_INLINE)
    if inline is None:
        return None
    if len(inline) == 1 and inline[0].tag == _TEXT:  # plain text, by far the most common
        return inline[0].text or ""
    # Plain text and rich-text runs; phonetic guides (<rPh>) are not part of the value.
    text = inline.findtext(_TEXT) or ""
    return text + "".join(run.findtext(_TEXT) or "" for run in inline.iterfind(_RUN))


def _sheet_rows(path: Path, workbook: Any, sheet: Any) -> Iterator[tuple[int, list[Any]]]:
    """(row number, cell values) of every row the sheet's XML holds, whatever its ``<dimension>`` says.

    openpyxl's read-only rows stop at the declared dimension, and files from other tools often
    declare a wrong one (8 of 10 rows, a column cut off). Reading the XML rows directly also tells a
    formula without a saved result (``<f>`` without ``<v>``: the file was never opened in Excel)
    from an empty cell: it becomes ``_FORMULA``, which makes its row invalid. It is also several
    times faster than openpyxl's cell objects, and keeps nothing of a row once read.
    """
    from openpyxl.utils.datetime import from_ISO8601

    strings = sheet._shared_strings
    date_styles = set(workbook._date_formats)
    duration_styles = set(workbook._timedelta_formats)
    epoch = workbook.epoch

    def value_of(cell: Any) -> Any:
        kind = cell.get("t", "n")
        if kind == "s":  # the common case first: a shared string
            raw = cell.findtext(_VALUE)
            if raw:
                return strings[int(raw)]
        if kind == "inlineStr":
            return _inline_text(cell)
        raw = cell.findtext(_VALUE)
        if not raw:
            if cell.find(_FORMULA_TAG) is not None and kind not in ("str", "s"):
                return _FORMULA  # a formula whose result was never computed and saved
            return None
        if kind == "n" or kind == "b":
            return _typed_value(kind, raw, cell.get("s"), date_styles, duration_styles, epoch)
        if kind == "s":
            return strings[int(raw)]
        if kind == "d":
            try:
                return from_ISO8601(raw)
            except (ValueError, TypeError):
                return raw
        return raw  # str (a formula's text result), e (an error such as #REF!)

    counter = 0
    with sheet._get_source() as source:
        for row in _iter_elements(source, _ROW):
            number = row.get("r")
            counter = int(number) if number else counter + 1
            values: list[Any] = []
            column = 0
            for cell in row.iterfind(_CELL):
                reference = cell.get("r")
                if reference:
                    letters = reference.rstrip("0123456789").lstrip("$").rstrip("$")
                    column = _column_index(letters) if letters.isalpha() and len(letters) <= 3 else column + 1
                else:
                    column += 1
                if column > len(values):
                    values.extend([None] * (column - len(values)))
                values[column - 1] = value_of(cell)
            if values:
                yield counter, values


def _typed_value(
    kind: str, raw: str, style: str | None, date_styles: set[int], duration_styles: set[int], epoch: datetime
) -> Any:
    """A number (``t="n"``, dates by their style) or boolean (``t="b"``) cell from its ``<v>`` text.

    The fast reader (sources/fastxlsx.py) types the cells calamine would type otherwise with this same function.
    """
    if kind == "b":
        return raw.strip() in ("1", "true")
    try:
        number: Any = float(raw) if any(c in raw for c in ".eE") or raw.lower() in ("nan", "inf") else int(raw)
    except ValueError:
        return raw
    index = int(style or 0)
    if index in date_styles:
        from openpyxl.utils.datetime import from_excel

        try:
            return from_excel(number, epoch, timedelta=index in duration_styles)
        except (OverflowError, ValueError, TypeError):
            return number  # the date parser names what is wrong with it
    return number


def _other_sheets_with_cells(workbook: Any, rows: int = 20) -> list[str]:
    """The titles of the worksheets after the first that hold a value in their first ``rows`` rows.

    Only the first worksheet is imported: rows on another one (an export split into 1-6月 and 7-12月) must
    not pass unseen. The first rows are read as a stream; a notes sheet counts too (the warning says what to do).
    """
    found = []
    for sheet in workbook.worksheets[1:]:
        for values in sheet.iter_rows(max_row=rows, values_only=True):
            if any(v not in (None, "") for v in values):
                found.append(str(sheet.title))
                break
    return found


def _load_workbook(path: Path) -> Any:
    """openpyxl's read-only workbook, with the shared strings read into a plain list as they stream by.

    openpyxl's own reader keeps every parsed ``<si>`` element in the tree until the end: about 250
    bytes per string, 400 MB for a 4 MB file of short strings.
    """
    from openpyxl.reader.excel import SHARED_STRINGS, ExcelReader

    class Reader(ExcelReader):
        def read_strings(self) -> None:
            part = self.package.find(SHARED_STRINGS)
            if part is None:
                return
            strings: list[str] = []
            with self.archive.open(part.PartName[1:]) as source:
                for item in _iter_elements(source, _STRING_ITEM):
                    if len(item) == 1 and item[0].tag == _TEXT:  # plain text, by far the most common
                        text = item[0].text or ""
                    else:
                        text = (item.findtext(_TEXT) or "") + "".join(
                            run.findtext(_TEXT) or "" for run in item.iterfind(_RUN)
                        )
                    strings.append(text.replace("_x005F_", "_") if "_x005F_" in text else text)
            self.shared_strings = strings

    reader = Reader(path, read_only=True, data_only=True, keep_links=False)
    reader.read()
    return reader.wb


def _ignore_bad_dimension() -> None:
    """Let openpyxl open a sheet whose ``<dimension ref>`` is no range at all (``garbage``, ``Z99:A1``).

    Its read-only sheets parse the dimension when they are created and fail on such a value; we never
    use the dimension (``_sheet_rows`` reads every row), so a value it cannot parse is dropped.
    """
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

    if getattr(ReadOnlyWorksheet._get_size, "tolerant", False):
        return

    def _get_size(self: Any) -> None:
        # openpyxl looks for <dimension> with "end" events, so a sheet without one (openpyxl's own write-only
        # files, other tools) is parsed whole before the first row is read: stop at <sheetData>'s start.
        from lxml import etree
        from openpyxl.utils.cell import range_boundaries

        self._min_column, self._min_row, self._max_column, self._max_row = 1, 1, None, None
        try:
            with self._get_source() as source:
                for _event, element in etree.iterparse(
                    source, events=("start",), resolve_entities=False, no_network=True, huge_tree=False
                ):
                    if element.tag == _DIMENSION:
                        bounds = range_boundaries(element.get("ref") or "")
                        self._min_column, self._min_row, self._max_column, self._max_row = bounds
                        break
                    if element.tag == _SHEET_DATA:
                        break
        except (ValueError, TypeError, KeyError, etree.XMLSyntaxError):
            self._min_column, self._min_row, self._max_column, self._max_row = 1, 1, None, None

    _get_size.tolerant = True  # type: ignore[attr-defined]
    ReadOnlyWorksheet._get_size = _get_size


def _open_xlsx(path: Path, zone: str, latest: datetime | None) -> ExportFile:
    check_xlsx_archive(path)
    _ignore_bad_dimension()
    try:
        workbook = _load_workbook(path)
    except Exception:  # zipfile.BadZipFile, KeyError, InvalidFileException, XML errors
        raise InputError(f"{shown(path)}：不是有效的 XLSX 文件（{XLSX_DAMAGED}）") from None
    try:
        if not workbook.worksheets:
            raise InputError(f"{shown(path)}：XLSX 文件中没有工作表")
        sheet = workbook.worksheets[0]
        rows_iter = _sheet_rows(path, workbook, sheet)
        header_line = 0
        header: list[str] | None = None
        for number, values in rows_iter:
            if any(v not in (None, "") for v in values):
                header_line, header = number, [_as_text(v).strip() for v in values]
                break
        if header is None:
            raise InputError(f"{shown(path)}：工作表「{_quote(str(sheet.title))}」是空的")
        converter = _RowConverter(path, header, zone, latest)
        others = _other_sheets_with_cells(workbook)
    except InputError:
        workbook.close()
        raise
    except Exception as exc:
        workbook.close()
        raise _xlsx_broken(path, exc) from None
    done = [header_line]

    used = [i for i in converter._text_indices if i != sys.maxsize]
    name = path.name

    def rows() -> Iterator[Entry]:
        convert, convert_text = converter.convert, converter.convert_text
        try:
            for line, values in rows_iter:
                done[0] = line
                if not any(v not in (None, "") for v in values):
                    continue
                width = len(values)
                # Rows whose used cells are all text take the CSV fast path; numbers, dates, blanks
                # and formulas the general one.
                if all(i >= width or values[i].__class__ is str for i in used):
                    yield convert_text(line, values, f"{name}:{line}")
                else:
                    yield convert(line, values, f"{name}:{line}")
        except InputError:
            raise
        except Exception as exc:
            raise _xlsx_broken(path, exc) from None

    def columnar() -> Iterator[Any]:
        # python-calamine (Rust) for the rows it reads exactly as above; Undecided gives the file back.
        from channelwatch.sources.fastxlsx import xlsx_columns

        return xlsx_columns(path, converter, workbook, sheet, header_line, _typed_value, _as_text)

    total = sheet.max_row or 0
    warning = f"{shown(path)}：{converter.note}" if converter.note else None
    if others:
        names = "、".join(f"「{_quote(name)}」" for name in others[:5]) + (" 等" if len(others) > 5 else "")
        sheets = (
            f"{shown(path)}：只导入了第一个工作表「{_quote(str(sheet.title))}」，另有 {len(others)} 个工作表有内容，"
            f"未导入：{names}；如果它们也是发布记录，请把每个工作表另存为单独的文件再导入"
        )
        warning = f"{sheets}；{converter.note}" if converter.note else sheets
    return ExportFile(
        warning=warning,
        path=path,
        format="xlsx",
        header=header,
        rows=rows,
        position=lambda: done[0],
        size=total,
        close=workbook.close,
        columnar=columnar if _part_size(path, sheet._worksheet_path) <= _CALAMINE_MAX_SHEET else None,
    )


# calamine holds a whole sheet in memory, and so does the check of its bytes: a sheet larger than this
# (unpacked; about 150,000 rows of a Weibo export) is streamed row by row, whose memory does not grow with it.
_CALAMINE_MAX_SHEET = 64 << 20


def _part_size(path: Path, part: str) -> int:
    """The unpacked size of one part of an XLSX archive (checked already by ``check_xlsx_archive``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.getinfo(part.lstrip("/")).file_size
    except (KeyError, OSError, zipfile.BadZipFile):
        return sys.maxsize  # the row-by-row reader says what is wrong


# --- JSON ------------------------------------------------------------------------------------------

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_surrogates(value: Any) -> Any:
    """A JSON value with lone surrogates (``"\\ud800"``, which no database can store) replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


class _JsonCells(Sequence[Any]):
    """One JSON object seen as a row of the file's header, without building the row.

    Objects with 100,000 keys (or lists whose objects all have different keys) would otherwise
    cost keys × rows per file; the converter reads only the few columns it matched.
    """

    __slots__ = ("_entry", "_header")

    def __init__(self, entry: dict[str, Any], header: list[str]) -> None:
        self._entry, self._header = entry, header

    def __len__(self) -> int:
        return len(self._header)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._entry.get(key) for key in self._header[index]]
        return self._entry.get(self._header[index])


def _open_json(path: Path, zone: str, kind: str, now: datetime | None, latest: datetime | None) -> ExportFile:
    try:
        with path.open("rb") as handle:
            data = handle.read()
        payload = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InputError(f"{shown(path)}：JSON 文件须为 UTF-8 编码") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{shown(path)}：第{exc.lineno}行第{exc.colno}列不是有效的 JSON（{exc.msg}）") from None
    except RecursionError:
        raise InputError(f"{shown(path)}：JSON 嵌套层数过深，不是导出的发布记录") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise InputError(f"{shown(path)}：JSON 中有无法读取的值（{_quote(str(exc))}）") from None
    if _SURROGATE_ESCAPE.search(data):
        try:
            payload = _without_surrogates(payload)
        except RecursionError:
            raise InputError(f"{shown(path)}：JSON 嵌套层数过深，不是导出的发布记录") from None
    del data

    from channelwatch.sources import wechat, weibo

    try:
        if weibo.is_weibo_answer(payload):
            # An ok == 0 answer that is a refusal raises here; one saying the list is empty is a warning.
            produced = weibo.rows_from_getindex(payload, zone, now, path.name)
            export = _from_observed(path, "weibo-json", produced, latest)
            status, message = weibo.answer_message(payload)
            if status == "empty":
                export.warning = (
                    f"{path.name}：微博回答「{message}」（ok = 0）：该账号在这一页没有微博，没有可导入的内容"
                )
            elif export.size == 0:
                export.warning = f"{path.name}：这一页微博接口的回答中没有微博，没有可导入的内容"
            return export
        if weibo.is_crawler_payload(payload):
            produced = weibo.rows_from_crawler(payload, zone, now, path.name)
            return _from_observed(path, "weibo-json", produced, latest)
        if wechat.is_error_answer(payload):
            raise InputError(
                f"{shown(path)}：这是微信接口的错误回答（errcode {_quote(str(payload.get('errcode')))}："
                f"{_quote(str(payload.get('errmsg', '')))}），不是发布记录，未导入"
            )
        if wechat.is_batchget_payload(payload):
            export = _from_observed(path, "wechat-json", wechat.rows_from_batchget(payload, zone, path.name), latest)
            if export.size == 0:
                export.warning = (
                    f"{path.name}：微信回答中没有发布记录（item 为空，total_count = {payload.get('total_count')}），"
                    "没有可导入的内容"
                )
            return export
        if wechat.is_articlesummary_payload(payload):
            produced = wechat.rows_from_articlesummary(payload, zone, path.name)
            return _from_observed(path, "wechat-json", produced, latest)
    except InputError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError) as exc:
        raise InputError(
            f"{shown(path)}：保存的微博/微信响应中有无法读取的内容（{type(exc).__name__}），未导入"
        ) from None
    if isinstance(payload, dict):
        for key in ("items", "data", "list", "records", "rows"):
            if isinstance(payload.get(key), list):
                payload = payload[key]
                break
    if not isinstance(payload, list):
        raise InputError(
            f"{shown(path)}：无法识别的 JSON 结构：应为对象列表，或保存的微博 getIndex / "
            '微信 freepublish/batchget 响应，或 weibo-crawler、weiboSpider 导出的 {"user": …, "weibo": […]}'
        )
    # Keys in first-seen order, through a dict: linear in the number of keys.
    seen: dict[str, None] = {}
    for entry in payload:
        if isinstance(entry, dict):
            seen.update(dict.fromkeys(entry))
    header = [str(key) for key in seen]
    converter = _RowConverter(path, header, zone, latest)
    entries: list[Any] = payload

    def rows() -> Iterator[Entry]:
        for index, entry in enumerate(entries, 1):
            if not isinstance(entry, dict):
                text = _as_text(entry) if not isinstance(entry, list | dict) else type(entry).__name__
                yield Row(index, [_quote(text)], None, [RowProblem(index, "", _quote(text), "不是对象")])
                continue
            yield converter.convert(index, _JsonCells(entry, header), f"{path.name}#{index}")

    return ExportFile(path=path, format="json", header=header, rows=rows, size=len(payload))


def _from_observed(path: Path, fmt: str, produced: list[Row], latest: datetime | None) -> ExportFile:
    """Rows parsed from a saved API answer: valid ones are handed on as their publication."""
    header = [FIELD_LABELS[f] for f in ("id", "title", "url", "published_at", "repost")]
    limit = latest or datetime.now(UTC)
    entries: list[Entry] = []
    for row in produced:
        observed = row.observed
        if observed is None:
            entries.append(row)
            continue
        try:
            check_plausible(observed.published_at, limit)
        except DateParseError as exc:
            problem = RowProblem(row.line, FIELD_LABELS["published_at"], observed.published_at.isoformat(), str(exc))
            entries.append(Row(row.line, row.cells, None, [problem]))
            continue
        entries.append(observed)
    return ExportFile(path=path, format=fmt, header=header, rows=lambda: iter(entries), size=len(entries))


# --- entry point -----------------------------------------------------------------------------------


def sniff_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in {".csv", ".tsv", ".txt"}:
        return "csv"
    if suffix in {".xlsx", ".xlsm"}:
        return "xlsx"
    if suffix == ".json":
        return "json"
    with path.open("rb") as handle:
        head = handle.read(4096)
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in {b"[", b"{"}:
        return "json"
    if suffix == ".xls":
        raise InputError(f"{shown(path)}：不支持旧版 .xls 格式，请在 Excel/WPS 中另存为 .xlsx 或 .csv")
    return "csv"


def open_export(
    path: Path,
    *,
    zone: str,
    kind: str = "other",
    format: str | None = None,
    encoding: str | None = None,
    now: datetime | None = None,
    latest: datetime | None = None,
) -> ExportFile:
    """Open an exported log for streaming. Raises ``InputError`` for unreadable files.

    ``now`` resolves Weibo's relative dates (the time the file was saved); ``latest`` is the
    import's own time, past which (by more than a day) no publication date is plausible.
    """
    if not path.is_file():
        raise InputError(f"找不到文件 {shown(path)}")
    chosen = (format or sniff_format(path)).lower()
    try:
        if chosen == "csv":
            return _open_csv(path, zone, encoding, latest)
        if chosen == "xlsx":
            return _open_xlsx(path, zone, latest)
        if chosen == "json":
            return _open_json(path, zone, kind, now, latest)
    except MemoryError:
        raise InputError(f"{shown(path)}：文件内容过大，内存不足，未导入") from None
    except OSError as exc:
        raise InputError(f"{shown(path)}：无法读取文件（{exc.strerror or type(exc).__name__}）") from None
    raise InputError(f"未知的格式「{_quote(str(format))}」，可选：{'、'.join(FORMATS)}")


def write_rejected(export: ExportFile, rejected: Iterable[Row], target: Path) -> None:
    """The rejected rows as read, with the reason in a last column, as UTF-8 with BOM for Excel.

    A cell that a spreadsheet would run as a formula gets a leading ``'`` (see ``spreadsheet.py``).
    """
    header = [*export.header, "拒收原因"]
    # One row at a time: with --skip-invalid a hostile file may have millions of them.
    lines = ([*row.cells, "；".join(p.describe() for p in row.problems)] for row in rejected)
    write_csv(target, itertools.chain([header], lines))
