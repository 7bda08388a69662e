"""The dedup-aware bulk upsert of publications.

What reaches the database is the same on SQLite and PostgreSQL (docs/architecture.md): PostgreSQL
refuses NUL characters and lone surrogates in text, and its B-tree index entries are limited to
about 2,700 bytes, so ``storable`` removes NULs, replaces lone surrogates with U+FFFD and keeps a
long identity (an 8,000-character URL) as its SHA-256 on both databases.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, NamedTuple

from sqlalchemy import Connection, func, select

from channelwatch.store.counts import count_deferred, defer_counts
from channelwatch.store.db import utc_now
from channelwatch.store.models import Channel, Publication

BATCH_SIZE = 2000
# Longest identity stored as it is; a longer one is stored as "h:" + its SHA-256. 500 characters of
# four-byte UTF-8 still fit PostgreSQL's index entry limit with the channel id beside them.
IDENTITY_MAX = 500
_PUSH_ID_MAX = 200  # push ids sit in the covering period index too
_SURROGATES = re.compile("[\ud800-\udfff]")


# --- publications ---------------------------------------------------------------------------------------


class PublicationRecord(NamedTuple):
    """A publication ready to store: identity computed, time in UTC, office-time period resolved.

    The fields are in the order of the upsert's parameters, so that a batch of records goes to the
    driver's ``executemany`` as it is, with no per-row copying (import speed).
    """

    identity: str
    platform_id: str | None
    title: str | None
    url: str | None
    column_name: str | None
    push_id: str | None
    is_repost: bool
    published_at: datetime  # aware, UTC
    local_year: int
    local_month: int
    local_date: str  # the office-time day, ISO 8601
    title_key: str | None


@dataclass
class UpsertCounts:
    new: int = 0
    known: int = 0


_COLUMNS = (
    "identity, platform_id, title, url, column_name, push_id, is_repost, published_at, "
    "local_year, local_month, local_date, title_key, channel_id, first_seen, last_seen, first_run_id"
)
# Seeing an identity again never adds a row: it fills what was missing and moves last_seen
# (docs/counting-rules.md, rule 2). A repost mark, once seen, stays: exports without a repost column say nothing.
_ON_CONFLICT = (
    "ON CONFLICT (channel_id, identity) DO UPDATE SET "
    "last_seen = excluded.last_seen, "
    "platform_id = COALESCE(publication.platform_id, excluded.platform_id), "
    "title = COALESCE(publication.title, excluded.title), "
    "title_key = COALESCE(publication.title_key, excluded.title_key), "
    "url = COALESCE(publication.url, excluded.url), "
    "column_name = COALESCE(publication.column_name, excluded.column_name), "
    "push_id = COALESCE(publication.push_id, excluded.push_id), "
    "is_repost = (publication.is_repost OR excluded.is_repost)"
)


# One constant statement per database: the driver prepares it once and keeps it in its statement
# cache. (Inlining a batch's channel, run and time made every poll of every channel a new statement
# to prepare, which cost more than storing its rows; scripts/bench_poll.py.)
_SQLITE_UPSERT = f"INSERT INTO publication ({_COLUMNS}) VALUES ({', '.join(['?'] * 16)}) {_ON_CONFLICT}"
_PG_UPSERT = (
    f"INSERT INTO publication ({_COLUMNS}) VALUES ("
    + ", ".join(["%s"] * 10 + ["CAST(%s AS date)"] + ["%s"] * 5)
    + f") {_ON_CONFLICT}"
)


def long_identity(identity: str) -> str:
    """The stored form of an identity: itself, or ``h:<sha256>`` when longer than ``IDENTITY_MAX``."""
    if len(identity) <= IDENTITY_MAX:
        return identity
    return "h:" + hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()


def _clean(value: Any) -> Any:
    if value.__class__ is not str:
        return value
    return _SURROGATES.sub("\ufffd", value.replace("\x00", ""))


def storable(record: Any) -> Any:
    """``record`` as both databases can store it identically (see the module docstring).

    Runs once per stored row: the common record (short identity, no NUL, valid UTF-8) is checked
    with one joined string and handed back untouched.
    """
    identity = record[0]
    joined = f"{identity}{record[1]}{record[2]}{record[3]}{record[4]}{record[5]}"
    if len(identity) <= IDENTITY_MAX and "\x00" not in joined and (record[5] is None or len(record[5]) <= _PUSH_ID_MAX):
        try:
            joined.encode("utf-8")
            return record
        except UnicodeEncodeError:
            pass
    cleaned = [_clean(v) for v in record]
    cleaned[0] = long_identity(cleaned[0])
    if cleaned[5] is not None and len(cleaned[5]) > _PUSH_ID_MAX:
        cleaned[5] = long_identity(cleaned[5])[:_PUSH_ID_MAX]
    return tuple(cleaned)


def sqlite_time(moment: datetime) -> str:
    # The text form SQLAlchemy's SQLite DateTime type reads back (UTC, naive, always microseconds).
    return moment.astimezone(UTC).isoformat(" ", "microseconds")[:26]  # without the "+00:00"


# Raw executemany hands datetimes to the sqlite3 module itself; store them exactly as SQLAlchemy
# does (its own DateTime binds are strings already, so they never reach this adapter).
sqlite3.register_adapter(datetime, sqlite_time)


def _batches(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(records)
    while batch := list(islice(iterator, size)):
        yield batch


def upsert_publications(
    conn: Connection,
    channel_id: int,
    records: Iterable[PublicationRecord | tuple[Any, ...]],
    *,
    run_id: int | None,
    seen_at: datetime | None = None,
) -> UpsertCounts:
    """Store ``records`` (streamed, in batches) inside the caller's transaction; count new vs known.

    ``new`` is measured, not guessed: on SQLite, rowids of new rows are allocated as max + 1 inside
    our exclusive write transaction, so the growth of max(id) is the number of inserted rows; on
    PostgreSQL the channel's row is locked and its publications counted before and after.
    """
    dialect = conn.dialect.name
    pub = Publication.__table__  # type: ignore[attr-defined]
    if dialect == "sqlite":
        before = conn.execute(select(func.coalesce(func.max(pub.c.id), 0))).scalar_one()
    else:
        channel = Channel.__table__  # type: ignore[attr-defined]
        conn.execute(select(channel.c.id).where(channel.c.id == channel_id).with_for_update())
        before = conn.execute(select(func.count()).where(pub.c.channel_id == channel_id)).scalar_one()
    # Taken once the channel is ours: a later run's last_seen is then always after an earlier run
    # finished, which is how ``runs undo`` tells what a later run saw again (docs/counting-rules.md).
    seen = seen_at or utc_now()

    sql = _SQLITE_UPSERT if dialect == "sqlite" else _PG_UPSERT
    seen_value: str | datetime = sqlite_time(seen) if dialect == "sqlite" else seen
    tail = (channel_id, seen_value, seen_value, run_id)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    total = 0
    deferred: int | None = None
    try:
        for number, batch in enumerate(_batches(records, BATCH_SIZE)):
            if number == 1:
                # A second batch: a bulk import. Its rows are counted set-based at the end rather than by
                # the per-row triggers (store/counts.py); a poll's few rows stay with the triggers,
                # which cost less than the grouped statements for a handful of rows.
                deferred = defer_counts(conn)
            total += len(batch)
            cursor.executemany(sql, [(*storable(record), *tail) for record in batch])
    finally:
        cursor.close()
    count_deferred(conn, deferred)

    if dialect == "sqlite":
        after = conn.execute(select(func.coalesce(func.max(pub.c.id), 0))).scalar_one()
    else:
        after = conn.execute(select(func.count()).where(pub.c.channel_id == channel_id)).scalar_one()
    new = int(after) - int(before)
    return UpsertCounts(new=new, known=total - new)
