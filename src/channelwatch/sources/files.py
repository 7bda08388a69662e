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
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from channelwatch.dates import DateParseError, parse_datetime
from channelwatch.errors import InputError, RowProblem
from channelwatch.identity import is_original_value, is_repost_value
from channelwatch.sources.base import Observed
from channelwatch.sources.columns import FIELD_HEADERS, FIELD_LABELS, match_headers
from channelwatch.sources.rows import Entry, Row
from channelwatch.spreadsheet import write_csv

__all__ = ["FORMATS", "ExportFile", "detect_encoding", "open_export"]

FORMATS = ("csv", "xlsx", "json")
_SAMPLE_BYTES = 1 << 20


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


# --- row conversion --------------------------------------------------------------------------------


class _RowConverter:
    """Turns one tabular row (cells by column index) into a ``Row``."""

    def __init__(self, path: Path, header: list[str], zone: str) -> None:
        self.zone = zone
        self.header = header
        self.columns = match_headers(list(header))
        if "published_at" not in self.columns:
            raise InputError(
                f"{path}：找不到发布时间列。表头为：{'、'.join(h for h in header if h) or '（空）'}；"
                f"可接受的列名：{'、'.join(FIELD_HEADERS['published_at'])}"
            )
        if "title" not in self.columns and "url" not in self.columns:
            raise InputError(
                f"{path}：找不到标题列或链接列（至少需要一个）。表头为：{'、'.join(h for h in header if h)}；"
                f"标题可用列名：{'、'.join(FIELD_HEADERS['title'])}；链接可用列名：{'、'.join(FIELD_HEADERS['url'])}"
            )
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
        if raw_date and (title or url) and repost is not None:
            try:
                published = parse_datetime(raw_date, self.zone)
            except DateParseError:
                return self.convert(line, cells, origin)
            platform_id = cells[id_i].strip() if id_i < width else ""
            column = cells[column_i].strip() if column_i < width else ""
            return Observed(
                published, platform_id or None, title or None, url or None, repost, column or None, None, origin
            )
        return self.convert(line, cells, origin)

    def _label(self, index: int) -> str:
        return str(self.header[index]) if index < len(self.header) else ""

    def convert(self, line: int, cells: list[Any], origin: str) -> Entry:
        # This runs once per row of files with millions of rows: cells are read inline, and the
        # text copy of the row (for the rejected file) is only made for invalid rows.
        width = len(cells)
        raw_date = _cell(cells, self._date, width)
        title = _cell(cells, self._title, width)
        url = _cell(cells, self._url, width)
        published: datetime | None = None
        repost = False
        problems: list[RowProblem] | None = None
        if raw_date is None:
            problems = [RowProblem(line, self._label(self._date), "", "缺少发布时间")]
        else:
            try:
                published = parse_datetime(raw_date, self.zone)
            except DateParseError as exc:
                problems = [RowProblem(line, self._label(self._date), str(raw_date), str(exc))]
        if title is None and url is None:
            label = self._label(self._title) if self._title is not None else self._label(self._url or 0)
            problems = (problems or []) + [RowProblem(line, label, "", "标题和链接都为空")]
        if self._repost is not None:
            raw_repost = _cell(cells, self._repost, width)
            marked = self._marker(raw_repost)
            if marked is None:
                accepted = (
                    "是、true、1（原创）或 否、false、0、转发（转发）"
                    if self._marker is _repost_from_original
                    else "转发、转载、是、原创、否、true、false、1、0"
                )
                problems = (problems or []) + [
                    RowProblem(
                        line, self._label(self._repost), str(raw_repost), f"无法识别的转发标记（可用：{accepted}）"
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


def _repost_from_original(value: object) -> bool | None:
    """A repost marker read from an inverse column (是否原创: True means original)."""
    original = is_original_value(value)
    return None if original is None else not original


def _cell(cells: list[Any], index: int | None, width: int) -> Any:
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


# --- CSV -------------------------------------------------------------------------------------------


def _open_csv(path: Path, zone: str, encoding: str | None) -> ExportFile:
    raw = path.open("rb")
    try:
        sample = raw.read(_SAMPLE_BYTES)
        raw.seek(0)
        chosen = encoding or detect_encoding(sample)
        codecs.lookup(chosen)
    except LookupError:
        raw.close()
        raise InputError(f"{path}：未知的编码「{encoding}」") from None
    text = io.TextIOWrapper(raw, encoding=chosen, newline="", errors="strict")
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.excel
        sniff = sample.decode(chosen if chosen != "utf-8-sig" else "utf-8-sig", errors="ignore")[:8192]
        if sniff.count("\t") > sniff.count(",") and sniff.count("\t") > sniff.count(";"):
            dialect = csv.excel_tab
        reader = csv.reader(text, dialect)
        header = next(reader, None)
    except (UnicodeDecodeError, csv.Error) as exc:
        raw.close()
        raise InputError(f"{path}：无法按 {chosen} 编码读取表头（{exc}），可用 --encoding 指定编码") from None
    if header is None:
        raw.close()
        raise InputError(f"{path}：文件是空的")
    converter = _RowConverter(path, [h.strip().lstrip("\ufeff") for h in header], zone)
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
                f"{path}：第{reader.line_num + 1}行附近无法按 {chosen} 编码解码（{exc.reason}），"
                "文件可能混用了编码；可用 --encoding 指定编码"
            ) from None
        except csv.Error as exc:
            raise InputError(f"{path}：第{reader.line_num}行不是有效的 CSV（{exc}）") from None

    return ExportFile(
        path=path,
        format="csv",
        header=converter.header,
        rows=rows,
        encoding=chosen,
        position=raw.tell,
        size=path.stat().st_size,
        close=raw.close,
    )


# --- XLSX ------------------------------------------------------------------------------------------


def _open_xlsx(path: Path, zone: str) -> ExportFile:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException
        raise InputError(f"{path}：不是有效的 XLSX 文件（{type(exc).__name__}）") from None
    sheet = workbook.worksheets[0]
    rows_iter = sheet.iter_rows(values_only=True)
    header_line = 0
    header: list[str] | None = None
    for values in rows_iter:
        header_line += 1
        if any(v not in (None, "") for v in values):
            header = [_as_text(v).strip() for v in values]
            break
    if header is None:
        workbook.close()
        raise InputError(f"{path}：工作表「{sheet.title}」是空的")
    converter = _RowConverter(path, header, zone)
    done = [header_line]

    def rows() -> Iterator[Entry]:
        line = header_line
        for values in rows_iter:
            line += 1
            done[0] = line
            if not any(v not in (None, "") for v in values):
                continue
            yield converter.convert(line, list(values), f"{path.name}:{line}")

    total = sheet.max_row or 0
    return ExportFile(
        path=path,
        format="xlsx",
        header=header,
        rows=rows,
        position=lambda: done[0],
        size=total,
        close=workbook.close,
    )


# --- JSON ------------------------------------------------------------------------------------------


def _open_json(path: Path, zone: str, kind: str, now: datetime | None) -> ExportFile:
    try:
        with path.open("rb") as handle:
            payload = json.loads(handle.read().decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InputError(f"{path}：JSON 文件须为 UTF-8 编码") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}：第{exc.lineno}行第{exc.colno}列不是有效的 JSON（{exc.msg}）") from None

    from channelwatch.sources import wechat, weibo

    if weibo.is_weibo_answer(payload):
        # An ok == 0 answer that is a refusal raises here; one saying the list is empty is a warning.
        export = _from_observed(path, "weibo-json", weibo.rows_from_getindex(payload, zone, now, path.name))
        status, message = weibo.answer_message(payload)
        if status == "empty":
            export.warning = f"{path.name}：微博回答「{message}」（ok = 0）：该账号在这一页没有微博，没有可导入的内容"
        elif export.size == 0:
            export.warning = f"{path.name}：这一页微博接口的回答中没有微博，没有可导入的内容"
        return export
    if weibo.is_crawler_payload(payload):
        return _from_observed(path, "weibo-json", weibo.rows_from_crawler(payload, zone, now, path.name))
    if wechat.is_error_answer(payload):
        raise InputError(
            f"{path}：这是微信接口的错误回答（errcode {payload.get('errcode')}：{payload.get('errmsg', '')}），"
            "不是发布记录，未导入"
        )
    if wechat.is_batchget_payload(payload):
        export = _from_observed(path, "wechat-json", wechat.rows_from_batchget(payload, zone, path.name))
        if export.size == 0:
            export.warning = (
                f"{path.name}：微信回答中没有发布记录（item 为空，total_count = {payload.get('total_count')}），"
                "没有可导入的内容"
            )
        return export
    if wechat.is_articlesummary_payload(payload):
        return _from_observed(path, "wechat-json", wechat.rows_from_articlesummary(payload, zone, path.name))
    if isinstance(payload, dict):
        for key in ("items", "data", "list", "records", "rows"):
            if isinstance(payload.get(key), list):
                payload = payload[key]
                break
    if not isinstance(payload, list):
        raise InputError(
            f"{path}：无法识别的 JSON 结构：应为对象列表，或保存的微博 getIndex / 微信 freepublish/batchget 响应，"
            '或 weibo-crawler、weiboSpider 导出的 {"user": …, "weibo": […]}'
        )
    header: list[str] = []
    for entry in payload:
        if isinstance(entry, dict):
            for key in entry:
                if str(key) not in header:
                    header.append(str(key))
    converter = _RowConverter(path, header, zone)

    def rows() -> Iterator[Entry]:
        for index, entry in enumerate(payload, 1):
            if not isinstance(entry, dict):
                yield Row(index, [_as_text(entry)], None, [RowProblem(index, "", _as_text(entry), "不是对象")])
                continue
            cells = [entry.get(key) for key in header]
            yield converter.convert(index, cells, f"{path.name}#{index}")

    return ExportFile(path=path, format="json", header=header, rows=rows, size=len(payload))


def _from_observed(path: Path, fmt: str, produced: list[Row]) -> ExportFile:
    """Rows parsed from a saved API answer: valid ones are handed on as their publication."""
    header = [FIELD_LABELS[f] for f in ("id", "title", "url", "published_at", "repost")]
    entries: list[Entry] = [row.observed if row.observed is not None else row for row in produced]
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
        raise InputError(f"{path}：不支持旧版 .xls 格式，请在 Excel/WPS 中另存为 .xlsx 或 .csv")
    return "csv"


def open_export(
    path: Path,
    *,
    zone: str,
    kind: str = "other",
    format: str | None = None,
    encoding: str | None = None,
    now: datetime | None = None,
) -> ExportFile:
    """Open an exported log for streaming. Raises ``InputError`` for unreadable files."""
    if not path.is_file():
        raise InputError(f"找不到文件 {path}")
    chosen = (format or sniff_format(path)).lower()
    if chosen == "csv":
        return _open_csv(path, zone, encoding)
    if chosen == "xlsx":
        return _open_xlsx(path, zone)
    if chosen == "json":
        return _open_json(path, zone, kind, now)
    raise InputError(f"未知的格式「{format}」，可选：{'、'.join(FORMATS)}")


def write_rejected(export: ExportFile, rejected: list[Row], target: Path) -> None:
    """The rejected rows as read, with the reason in a last column, as UTF-8 with BOM for Excel.

    A cell that a spreadsheet would run as a formula gets a leading ``'`` (see ``spreadsheet.py``).
    """
    header = [*export.header, "拒收原因"]
    write_csv(target, [header, *([*row.cells, "；".join(p.describe() for p in row.problems)] for row in rejected)])
