"""Importing exported files: one file, one transaction, stored whole or not at all."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from channelwatch import store
from channelwatch.errors import InputError
from channelwatch.failures import describe
from channelwatch.ingest.readahead import READAHEAD_MIN_BYTES, RejectedRows, parsed_in_child
from channelwatch.ingest.runs import _finish_run, finish_run, record_of, records_of_columns, start_run
from channelwatch.instance.config import KIND_LABELS, ChannelConfig
from channelwatch.sources.base import Observed
from channelwatch.sources.columns import match_headers, normalise_header
from channelwatch.sources.fastcsv import Undecided
from channelwatch.sources.files import ExportFile, _quote, open_export, shown, write_rejected
from channelwatch.store import Store

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]


class FileChanged(InputError):
    """The file changed while it was read: what was read is rolled back, the settled file is read later."""


# --- imports ------------------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    path: Path
    channel: str
    run_id: int | None  # None for a dry run: it records no run
    format: str = ""
    encoding: str | None = None
    rows_read: int = 0
    rows_new: int = 0
    rows_known: int = 0
    rows_rejected: int = 0
    rejected_file: Path | None = None
    dry_run: bool = False
    warning: str | None = None  # e.g. a saved Weibo answer saying the account has no posts there

    @property
    def no_rows(self) -> str | None:
        """A file without a single data row imports (nothing) without error, but its result line says so."""
        if self.rows_read:
            return None
        return "文件中没有数据行（只有表头）" if self.format in {"csv", "xlsx"} else "文件中没有数据行"

    def counts(self) -> str:
        """The result line's figures: rows read, new, already stored, rejected; or that the file had no row."""
        if self.no_rows:
            return f"{self.no_rows}，" + ("导入时不会新增任何记录" if self.dry_run else "没有导入任何记录")
        new = "将新增" if self.dry_run else "新增"
        return f"读取 {self.rows_read} 行，{new} {self.rows_new}，已有 {self.rows_known}，拒收 {self.rows_rejected}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def rejected_path(path: Path) -> Path:
    """``<name>.rejected.csv`` beside ``path``; if that exists (the clerk may be correcting it), the first free
    ``<name>（2）.rejected.csv``, ``<name>（3）.rejected.csv``, …: a rejected file is never written over."""
    candidate, number = path.with_name(path.stem + ".rejected.csv"), 1
    while os.path.lexists(candidate):
        number += 1
        candidate = path.with_name(f"{path.stem}（{number}）.rejected.csv")
    return candidate


class LinkKinds:
    """Counts the links of a file that belong to a platform the channel is not (see ``mismatch``).

    Only the hosts that would contradict the channel's kind are looked at, and only after a cheap
    substring test, so that the check costs next to nothing per row of a large import.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.links = 0
        self.weibo = 0
        self.wechat = 0
        self._weibo = kind != "weibo"
        self._wechat = kind != "wechat"

    def watch(self, records: Iterable[Any]) -> Iterator[Any]:
        weibo, wechat = self._weibo, self._wechat
        for record in records:
            url = record[3]  # PublicationRecord.url, also in the reader child's tuples
            if url:
                self.links += 1
                if weibo and "weibo." in url and _WEIBO_HOST.match(url):
                    self.weibo += 1
                elif wechat and "mp.weixin" in url and _WECHAT_HOST.match(url):
                    self.wechat += 1
            yield record

    def mismatch(self) -> tuple[str, int] | None:
        """``(kind the file looks like, links of that kind)`` when more than half the links say so."""
        for kind, count in (("weibo", self.weibo), ("wechat", self.wechat)):
            if count * 2 > self.links:
                return kind, count
        return None


_WEIBO_HOST = re.compile(r"^(?:https?://)?(?:[\w-]+\.)*weibo\.(?:com|cn)(?:[:/?#]|$)", re.IGNORECASE)
_WECHAT_HOST = re.compile(r"^(?:https?://)?mp\.weixin\.qq\.com(?:[:/?#]|$)", re.IGNORECASE)
_LOOKS_LIKE = {"weibo": ("微博", "weibo.com/weibo.cn"), "wechat": ("微信公众号", "mp.weixin.qq.com")}


class KindMismatch(InputError):
    """The file's links belong to another kind of channel; the command line adds how to insist (``--force``)."""


class RowNumbers:
    """Watches a file's ``编号``/``id`` column for the rows' own numbers (1, 2, 3 … or 0, 1, 2 …).

    Such a column numbers the rows of each export afresh: taken as each item's platform ID, the second file's
    row 1 is "already known" as the first file's row 1, and a different notice is lost. A column whose every
    value is a whole number no larger than the file's row count (plus one) is such a numbering; the file is
    refused (``check``), whole, before anything is committed. Columns named for a platform's IDs (微博ID, mid,
    文章ID …) are not watched: their values are the platform's.
    """

    GENERIC = frozenset({"编号", "id"})

    def __init__(self, header: list[str]) -> None:
        found = match_headers(list(header)).get("id")
        self.name = header[found].strip() if found is not None else ""
        self.active = normalise_header(self.name) in self.GENERIC
        self.rows = 0
        self.smallest: int | None = None
        self.largest = -1

    def watch(self, records: Iterable[Any]) -> Iterable[Any]:
        # Most files have no such column (or a platform's): their records pass untouched, at no cost per row.
        return self._watched(records) if self.active else records

    def _watched(self, records: Iterable[Any]) -> Iterator[Any]:
        for record in records:
            if self.active:
                value = record[1]  # PublicationRecord.platform_id, also in the reader child's tuples
                if value is not None and value.isascii() and value.isdigit():
                    number = int(value)
                    self.largest = max(self.largest, number)
                    self.smallest = number if self.smallest is None else min(self.smallest, number)
                    self.rows += 1
                else:
                    self.active = False  # an ID that is not a whole number: not a numbering of the rows
            yield record

    def check(self, path: Path) -> None:
        if self.active and self.rows and self.largest <= self.rows + 1:
            raise InputError(
                f"{shown(path)}：「{_quote(self.name)}」列的值都是不大于行数的整数（{self.smallest}–{self.largest}，"
                f"共 {self.rows} 行），是行的序号，不是每条信息自己的编号；按它识别，其他文件中序号相同的不同信息"
                "会被当成同一条而漏计，整个文件未导入。请删除这一列，或把列名改为“序号”（不作为编号），再导入"
            )


def _check_kind(path: Path, channel: ChannelConfig, links: LinkKinds | None) -> None:
    found = links.mismatch() if links is not None else None
    if found is None:
        return
    kind, count = found
    label, hosts = _LOOKS_LIKE[kind]
    raise KindMismatch(
        f"{path}：文件看起来是{label}的导出（{links.links if links else 0} 条链接中 {count} 条在 {hosts}），"
        f"而渠道「{channel.id}」的类型是 {channel.kind}（{KIND_LABELS[channel.kind]}），未导入：请确认是否选错了渠道"
    )


def import_file(
    opened: Store,
    channel_key: str,
    path: Path,
    *,
    format: str | None = None,
    encoding: str | None = None,
    skip_invalid: bool = False,
    progress: ProgressCallback | None = None,
    job_id: str | None = None,
    unchanged: Callable[[], bool] | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> ImportResult:
    """Import one exported log into one channel: stored whole, or (on any invalid row) not at all.

    With ``skip_invalid`` the valid rows are stored and the invalid ones written, unchanged, to
    ``<name>.rejected.csv`` beside the input. Raises ``InputError`` for a rejected file; the run is
    recorded either way. ``unchanged`` (the inbox's check of size, mtime and SHA-256) is asked just
    before the commit; when it answers False nothing is stored and ``FileChanged`` is raised.
    A file whose links mostly belong to another kind of channel (Weibo or WeChat links into a
    channel that is not) is rejected unless ``force``. With ``dry_run`` the file is read and checked
    the same way and the counts are computed against the store, read only: nothing is stored, no run
    is recorded, no ``.rejected.csv`` is written.
    """
    instance = opened.instance
    channel: ChannelConfig = instance.channel(channel_key)
    channel_id = opened.channel_id(channel_key)
    zone = instance.timezone
    path = Path(path)
    if dry_run:
        return _dry_run(opened, channel, channel_id, path, format, encoding, skip_invalid, force)
    try:
        sha = file_sha256(path) if path.is_file() else None
    except OSError:
        sha = None  # open_export below says why the file cannot be read
    run_id = start_run(opened.engine, channel_id, "import", shown(path.name), sha256=sha, job_id=job_id)
    result = ImportResult(path=path, channel=channel_key, run_id=run_id)
    latest = datetime.now(UTC)
    export: ExportFile | None = None
    rejected = RejectedRows(keep_all=skip_invalid)
    try:
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC) if path.is_file() else None
        export = open_export(
            path, zone=zone, kind=channel.kind, format=format, encoding=encoding, now=mtime, latest=latest
        )
        result.format, result.encoding = export.format, export.encoding
        # A large CSV is first read by columns (sources/fastcsv.py); a row that reader cannot decide sends
        # the whole file, from scratch and in a new transaction, through the row-by-row reader.
        for fast in (True, False):
            try:
                with store.write(opened.engine) as conn:
                    records: Iterable[Any]
                    # An XLSX file is compressed about tenfold and slower to parse per byte: a smaller one
                    # already pays for the reading process.
                    least = READAHEAD_MIN_BYTES // 8 if export.format == "xlsx" else READAHEAD_MIN_BYTES
                    # An XLSX file python-calamine reads (sources/fastxlsx.py) is read here: calamine parses the whole
                    # sheet before its first row, so a reading process could not start the writes sooner, and would
                    # first spend about 0.3 s starting and opening the workbook this process has open already.
                    columns = (
                        fast
                        and export.format == "xlsx"
                        and export.columnar is not None
                        and conn.dialect.name == "sqlite"
                        and channel.kind != "wechat"
                    )
                    in_child = not columns and export.format in {"csv", "xlsx"} and path.stat().st_size >= least
                    if columns:
                        records = _columnar_records(export, channel.kind, result, progress)
                    elif in_child:
                        export.close()

                        def on_read(count: int) -> None:
                            result.rows_read = count

                        records = parsed_in_child(
                            path,
                            zone=zone,
                            kind=channel.kind,
                            format=export.format,
                            encoding=export.encoding,
                            now=mtime,
                            latest=latest,
                            sqlite=conn.dialect.name == "sqlite",
                            fast=fast,
                            rejected=rejected,
                            on_read=on_read,
                            progress=progress,
                        )
                    else:
                        records = _valid_records(export, zone, channel.kind, rejected, result, progress)
                    links = None if force else LinkKinds(channel.kind)
                    if links is not None:
                        records = links.watch(records)
                    numbers = RowNumbers(export.header)
                    records = numbers.watch(records)
                    counts = store.upsert_publications(
                        conn, channel_id, records, run_id=run_id, checked=in_child or columns
                    )
                    result.rows_new, result.rows_known = counts.new, counts.known
                    result.rows_rejected = len(rejected)
                    numbers.check(path)
                    _check_kind(path, channel, links)
                    if rejected and not skip_invalid:
                        problems = [p for row in rejected for p in row.problems]
                        raise InputError(
                            f"{shown(path)}：有 {len(rejected)} 行无效，整个文件未导入（可修正后重新导入，"
                            "或加 --skip-invalid 只导入有效行）：",
                            problems,
                        )
                    if unchanged is not None and not unchanged():
                        raise FileChanged(
                            f"{shown(path)}：导入期间文件被改动，本次未导入任何内容，文件写完后会重新导入"
                        )
                    if rejected:
                        result.rejected_file = rejected_path(path)
                        write_rejected(export, rejected, result.rejected_file)
                    result.warning = export.warning
                    notes = [export.warning] if export.warning else []
                    if result.rejected_file:
                        notes.append(f"拒收 {len(rejected)} 行，见 {shown(result.rejected_file.name)}")
                    _finish_run(
                        conn,
                        run_id,
                        "ok",
                        "；".join(notes) or None,
                        rows_read=result.rows_read,
                        rows_new=result.rows_new,
                        rows_known=result.rows_known,
                        rows_rejected=result.rows_rejected,
                    )
            except Undecided:
                if not fast:
                    raise
                log.info("import %s: read again row by row", shown(path.name))
                rejected.close()
                rejected = RejectedRows(keep_all=skip_invalid)
                result.rows_read = result.rows_new = result.rows_known = 0
                continue
            break
    except InputError as exc:
        finish_run(
            opened.engine,
            run_id,
            "rejected",
            str(exc),
            rows_read=result.rows_read,
            rows_rejected=len(rejected),
        )
        raise
    except BaseException as exc:
        # Whatever happened, the run this import opened is closed: ``runs`` never shows a finished
        # process as still running.
        finish_run(opened.engine, run_id, "failed", shown(describe(exc))[:2000])
        raise
    finally:
        rejected.close()
        if export is not None:
            export.close()
    log.info(
        "import %s into %s: read=%d new=%d known=%d rejected=%d",
        shown(path.name),
        channel_key,
        result.rows_read,
        result.rows_new,
        result.rows_known,
        result.rows_rejected,
    )
    return result


def _valid_records(
    export: ExportFile,
    zone: str,
    kind: str,
    rejected: RejectedRows,
    result: ImportResult,
    progress: ProgressCallback | None,
) -> Iterator[store.PublicationRecord]:
    # Valid rows are stored even after an invalid one: the transaction is rolled back at the end
    # unless --skip-invalid, and storing on keeps "new / already known" exact either way.
    read = 0
    for entry in export.rows():
        read += 1
        if entry.__class__ is Observed:
            yield record_of(entry, zone, kind)
        else:
            rejected.append(entry)  # type: ignore[arg-type]
        if progress is not None and read % 5000 == 0:
            progress(export.position(), export.size)
            result.rows_read = read
    result.rows_read = read
    if progress is not None:
        progress(export.size, export.size)


def _columnar_records(
    export: ExportFile, kind: str, result: ImportResult, progress: ProgressCallback | None
) -> Iterator[tuple[Any, ...]]:
    """Store-ready SQLite tuples of an export's columnar reader; its ``Undecided`` reaches the caller."""
    read = 0
    assert export.columnar is not None
    for batch in export.columnar():
        read += batch.rows
        result.rows_read = read
        if progress is not None:
            progress(min(read, export.size), export.size)
        yield from records_of_columns(batch, kind)
    result.rows_read = read
    if progress is not None:
        progress(export.size, export.size)


def _dry_run(
    opened: Store,
    channel: ChannelConfig,
    channel_id: int,
    path: Path,
    format: str | None,
    encoding: str | None,
    skip_invalid: bool,
    force: bool,
) -> ImportResult:
    """``import --dry-run``: the real import's reading and checks, counted against the store read only."""
    from sqlalchemy import select

    from channelwatch.store.models import Publication

    zone = opened.instance.timezone
    result = ImportResult(path=path, channel=channel.id, run_id=None, dry_run=True)
    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC) if path.is_file() else None
    export = open_export(
        path, zone=zone, kind=channel.kind, format=format, encoding=encoding, now=mtime, latest=datetime.now(UTC)
    )
    result.format, result.encoding = export.format, export.encoding
    rejected = RejectedRows()  # a dry run writes no .rejected.csv: the first rows for the message are enough
    pub = Publication.__table__  # type: ignore[attr-defined]
    links = None if force else LinkKinds(channel.kind)
    try:
        records: Iterable[Any] = _valid_records(export, zone, channel.kind, rejected, result, None)
        if links is not None:
            records = links.watch(records)
        numbers = RowNumbers(export.header)
        records = numbers.watch(records)
        new_in_file: set[str] = set()
        with store.read(opened.engine) as conn:
            for batch in _batches(records, store.BATCH_SIZE):
                identities = list({record[0] for record in batch})
                stored = set(
                    conn.execute(
                        select(pub.c.identity).where(pub.c.channel_id == channel_id, pub.c.identity.in_(identities))
                    ).scalars()
                )
                for record in batch:
                    identity = record[0]
                    if identity in stored or identity in new_in_file:
                        result.rows_known += 1
                    else:
                        new_in_file.add(identity)
                        result.rows_new += 1
        result.warning = export.warning
    finally:
        export.close()
    result.rows_rejected = len(rejected)
    numbers.check(path)
    _check_kind(path, channel, links)
    if rejected and not skip_invalid:
        problems = [p for row in rejected for p in row.problems]
        raise InputError(
            f"{path}：（预演）有 {len(rejected)} 行无效，实际导入时整个文件会被拒收（可修正后重新导入，"
            "或加 --skip-invalid 只导入有效行）：",
            problems,
        )
    return result


def _batches(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(records)
    while batch := list(islice(iterator, size)):
        yield batch
