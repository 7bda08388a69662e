"""Importing exported files: one file, one transaction, stored whole or not at all."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from channelwatch import store
from channelwatch.errors import InputError
from channelwatch.ingest.readahead import READAHEAD_MIN_BYTES, RejectedRows, parsed_in_child
from channelwatch.ingest.runs import _finish_run, finish_run, record_of, start_run
from channelwatch.instance.config import ChannelConfig
from channelwatch.sources.base import Observed
from channelwatch.sources.files import ExportFile, open_export, shown, write_rejected
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
    run_id: int
    format: str = ""
    encoding: str | None = None
    rows_read: int = 0
    rows_new: int = 0
    rows_known: int = 0
    rows_rejected: int = 0
    rejected_file: Path | None = None
    warning: str | None = None  # e.g. a saved Weibo answer saying the account has no posts there


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def rejected_path(path: Path) -> Path:
    return path.with_name(path.stem + ".rejected.csv")


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
) -> ImportResult:
    """Import one exported log into one channel: stored whole, or (on any invalid row) not at all.

    With ``skip_invalid`` the valid rows are stored and the invalid ones written, unchanged, to
    ``<name>.rejected.csv`` beside the input. Raises ``InputError`` for a rejected file; the run is
    recorded either way. ``unchanged`` (the inbox's check of size, mtime and SHA-256) is asked just
    before the commit; when it answers False nothing is stored and ``FileChanged`` is raised.
    """
    instance = opened.instance
    channel: ChannelConfig = instance.channel(channel_key)
    channel_id = opened.channel_id(channel_key)
    zone = instance.timezone
    path = Path(path)
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
        with store.write(opened.engine) as conn:
            records: Iterable[Any]
            if export.format in {"csv", "xlsx"} and path.stat().st_size >= READAHEAD_MIN_BYTES:
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
                    rejected=rejected,
                    on_read=on_read,
                    progress=progress,
                )
            else:
                records = _valid_records(export, zone, channel.kind, rejected, result, progress)
            counts = store.upsert_publications(conn, channel_id, records, run_id=run_id)
            result.rows_new, result.rows_known = counts.new, counts.known
            result.rows_rejected = len(rejected)
            if rejected and not skip_invalid:
                problems = [p for row in rejected for p in row.problems]
                raise InputError(
                    f"{shown(path)}：有 {len(rejected)} 行无效，整个文件未导入（可修正后重新导入，"
                    "或加 --skip-invalid 只导入有效行）：",
                    problems,
                )
            if unchanged is not None and not unchanged():
                raise FileChanged(f"{shown(path)}：导入期间文件被改动，本次未导入任何内容，文件写完后会重新导入")
            if rejected:
                result.rejected_file = rejected_path(path)
                write_rejected(export, list(rejected), result.rejected_file)
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
        finish_run(opened.engine, run_id, "failed", shown(f"{type(exc).__name__}: {exc}")[:2000])
        raise
    finally:
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
