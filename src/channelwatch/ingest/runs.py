"""The one path from a source to the store, shared by ``import``, ``poll`` and every job.

``record_of`` turns each ``Observed`` publication into a ``PublicationRecord`` (identity key, UTC time,
office-time date); every import and poll is recorded as a ``Run`` in its own transaction before the
work starts, so that a crash leaves a visible ``running`` run and never a half-stored file.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from sqlalchemy import Connection, Engine

from channelwatch import store
from channelwatch.dates import to_office
from channelwatch.identity import title_key, wechat_push_estimate, wechat_push_id, wechat_push_key
from channelwatch.ingest.columnar import columns_of_batch, identity_of, rows_of_columns
from channelwatch.sources.base import Observed
from channelwatch.sources.fastcsv import ColumnBatch
from channelwatch.store.models import Run
from channelwatch.store.upsert import storable

log = logging.getLogger(__name__)


# A poll sees the same entries at every run, and asks each entry's identity twice (is it new? then storing
# it): remembered, the URL's normalisation and the title's hash are paid once per entry, not per poll. An
# import's rows are all different, so it does without (the lookup would only cost).
_remembered_identity = functools.lru_cache(maxsize=32768)(identity_of)
_remembered_title_key = functools.lru_cache(maxsize=32768)(title_key)


def record_of(observed: Observed, zone: str, kind: str, *, remember: bool = False) -> store.PublicationRecord:
    """Apply the counting rules (docs/counting-rules.md) to one observed publication.

    ``remember``: for polls, whose entries come back run after run (see ``_remembered_identity``).
    """
    local = to_office(observed.published_at, zone)
    push_id = observed.push_id
    platform_id, url, title = observed.platform_id, observed.url, observed.title
    if kind == "wechat" and url:
        # The URL's mid names the push in every export, the API's article_id only in API answers:
        # deriving pushes from the URL keeps the push count right across overlapping sources.
        push_id = wechat_push_key(url) or push_id
    elif kind == "wechat" and platform_id and not push_id:
        push_id = wechat_push_id(platform_id)  # an export's 消息ID names the push
    if kind == "wechat" and not push_id:
        # Short /s/<code> links (RSS feeds) name no push: one push's articles share their second.
        push_id = wechat_push_estimate(local)
    if remember:
        identity = _remembered_identity(platform_id, url, title, local.date(), kind)
        key = _remembered_title_key(title) if title else None
    else:
        identity = identity_of(platform_id, url, title, local.date(), kind)
        key = title_key(title) if title else None
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
            key,
        ),
    )


def records_of_columns(batch: ColumnBatch, kind: str) -> list[tuple[Any, ...]]:
    """``record_of`` for a batch of the columnar reader, as store-ready SQLite tuples (``storable`` applied).

    Not for WeChat channels, whose push rules read every row (the row-by-row path reads their files).
    """
    records = rows_of_columns(columns_of_batch(batch, kind))
    if batch.plain_text:
        return list(records)  # what storable would hand back untouched (identities are short already)
    return [storable(record) for record in records]


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
    records = (record_of(o, zone, kind, remember=True) for o in observed)
    return store.upsert_publications(conn, channel_id, records, run_id=run_id)
