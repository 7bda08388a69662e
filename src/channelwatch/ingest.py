"""The one path from a source to the store, shared by ``import``, ``poll`` and every job.

``ingest`` turns each ``Observed`` publication into a ``PublicationRecord`` (identity key, UTC time,
office-time date), stores a file's rows in one transaction, and records a ``Run`` for every import
and poll, in its own transaction, before the work starts, so that a crash leaves a visible
``running`` run and never a half-stored file.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from channelwatch import store
from channelwatch.config import ChannelConfig, Instance
from channelwatch.dates import to_office
from channelwatch.errors import InputError
from channelwatch.identity import identity_key, title_key, wechat_push_id, wechat_push_key
from channelwatch.models import Run
from channelwatch.readahead import READAHEAD_MIN_BYTES, parsed_in_child
from channelwatch.sources.base import Observed
from channelwatch.sources.files import ExportFile, Row, open_export, write_rejected

__all__ = [
    "ImportResult",
    "finish_run",
    "import_file",
    "open_store",
    "record_of",
    "start_run",
]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]


@dataclass
class Store:
    """An opened store for one instance: the engine and the ids of its office and channels."""

    engine: Engine
    instance: Instance
    office_id: int
    channel_ids: dict[str, int] = field(default_factory=dict)

    def channel_id(self, key: str) -> int:
        self.instance.channel(key)  # raises ChannelNotFound with the list of configured channels
        return self.channel_ids[key]

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(instance: Instance) -> Store:
    """Open (create or upgrade) the instance's database and sync its office and channels into it."""
    engine = store.open_engine(instance.database_url, base_dir=instance.root)
    store.ensure_schema(engine)
    office = instance.config.office
    with store.write(engine) as conn:
        office_id = store.sync_office(conn, office.name, office.short_name, office.timezone)
        channel_ids = {
            c.id: store.sync_channel(conn, office_id, c.id, c.kind, c.name) for c in instance.config.channels
        }
    return Store(engine=engine, instance=instance, office_id=office_id, channel_ids=channel_ids)


def record_of(observed: Observed, zone: str, kind: str) -> store.PublicationRecord:
    """Apply the counting rules (DESIGN §3) to one observed publication."""
    local = to_office(observed.published_at, zone)
    push_id = observed.push_id
    platform_id, url, title = observed.platform_id, observed.url, observed.title
    if kind == "wechat" and url:
        # The URL's mid names the push in every export, the API's article_id only in API answers:
        # deriving pushes from the URL keeps the push count right across overlapping sources.
        push_id = wechat_push_key(url) or push_id
    elif kind == "wechat" and platform_id and not push_id:
        push_id = wechat_push_id(platform_id)  # an export's 消息ID names the push
    if platform_id and kind != "wechat":
        identity = "id:" + platform_id.strip()  # the common case, without the general function's checks
    else:
        identity = identity_key(platform_id=platform_id, url=url, title=title, local_day=local.date(), kind=kind)
    # tuple.__new__ skips the named tuple's Python-level constructor: this runs once per imported row.
    return tuple.__new__(
        store.PublicationRecord,
        (
            identity,
            platform_id,
            title,
            url,
            observed.column_name,
            push_id,
            observed.is_repost,
            local.astimezone(UTC),
            local.year,
            local.month,
            f"{local.year:04d}-{local.month:02d}-{local.day:02d}",
            title_key(title) if title else None,
        ),
    )


# --- runs ------------------------------------------------------------------------------------------------


def start_run(
    engine: Engine,
    channel_id: int,
    kind: str,
    source: str,
    *,
    sha256: str | None = None,
    job_id: str | None = None,
) -> int:
    with store.write(engine) as conn:
        result = conn.execute(
            Run.__table__.insert().values(  # type: ignore[attr-defined]
                channel_id=channel_id,
                kind=kind,
                source=source,
                sha256=sha256,
                job_id=job_id,
                started_at=store.utc_now(),
                status="running",
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


def finish_run(engine: Engine, run_id: int, status: str, message: str | None = None, **counts: Any) -> None:
    with store.write(engine) as conn:
        _finish_run(conn, run_id, status, message, **counts)


def _finish_run(conn: Connection, run_id: int, status: str, message: str | None, **counts: Any) -> None:
    table = Run.__table__  # type: ignore[attr-defined]
    conn.execute(
        table.update()
        .where(table.c.id == run_id)
        .values(status=status, message=message, finished_at=store.utc_now(), **counts)
    )


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
) -> ImportResult:
    """Import one exported log into one channel: stored whole, or (on any invalid row) not at all.

    With ``skip_invalid`` the valid rows are stored and the invalid ones written, unchanged, to
    ``<name>.rejected.csv`` beside the input. Raises ``InputError`` for a rejected file; the run is
    recorded either way.
    """
    instance = opened.instance
    channel: ChannelConfig = instance.channel(channel_key)
    channel_id = opened.channel_id(channel_key)
    zone = instance.timezone
    path = Path(path)
    sha = file_sha256(path) if path.is_file() else None
    run_id = start_run(opened.engine, channel_id, "import", path.name, sha256=sha, job_id=job_id)
    result = ImportResult(path=path, channel=channel_key, run_id=run_id)
    try:
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC) if path.is_file() else None
        export = open_export(path, zone=zone, kind=channel.kind, format=format, encoding=encoding, now=mtime)
    except InputError as exc:
        finish_run(opened.engine, run_id, "rejected", str(exc))
        raise
    result.format, result.encoding = export.format, export.encoding
    rejected: list[Row] = []
    try:
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
                    sqlite=conn.dialect.name == "sqlite",
                    rejected=rejected,
                    on_read=on_read,
                    progress=progress,
                )
            else:
                records = _valid_records(export, zone, channel.kind, rejected, result, progress)
            counts = store.upsert_publications(conn, channel_id, records, run_id=run_id)
            result.rows_new, result.rows_known = counts.new, counts.known
            result.rows_rejected = sum(1 for _ in rejected)
            if rejected and not skip_invalid:
                problems = [p for row in rejected for p in row.problems]
                raise InputError(
                    f"{path}：有 {len(rejected)} 行无效，整个文件未导入（可修正后重新导入，"
                    "或加 --skip-invalid 只导入有效行）：",
                    problems,
                )
            if rejected:
                result.rejected_file = rejected_path(path)
                write_rejected(export, rejected, result.rejected_file)
            _finish_run(
                conn,
                run_id,
                "ok",
                f"拒收 {len(rejected)} 行，见 {result.rejected_file.name}" if result.rejected_file else None,
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
        finish_run(opened.engine, run_id, "failed", f"{type(exc).__name__}: {exc}"[:2000])
        raise
    finally:
        export.close()
    log.info(
        "import %s into %s: read=%d new=%d known=%d rejected=%d",
        path.name,
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
    rejected: list[Row],
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


def store_observed(
    conn: Connection,
    channel_id: int,
    observed: Iterable[Observed],
    *,
    zone: str,
    kind: str,
    run_id: int | None,
) -> store.UpsertCounts:
    """Store publications a poll observed, inside the caller's transaction."""
    return store.upsert_publications(conn, channel_id, (record_of(o, zone, kind) for o in observed), run_id=run_id)
