"""The dedup-aware bulk upsert of publications.

What reaches the database is the same on SQLite and PostgreSQL (docs/architecture.md): PostgreSQL
refuses NUL characters and lone surrogates in text, and its B-tree index entries are limited to
about 2,700 bytes, so ``storable`` removes NULs, replaces lone surrogates with U+FFFD and keeps a
long identity (an 8,000-character URL) as its SHA-256 on both databases.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, islice
from typing import Any, NamedTuple

from sqlalchemy import Connection

from channelwatch.store.counts import count_deferred, counts_held, defer_counts, lock_channel, note_inserted
from channelwatch.store.db import utc_now

BATCH_SIZE = 2000
# Longest identity stored as it is; a longer one is stored as "h:" + its SHA-256. 500 characters of
# four-byte UTF-8 still fit PostgreSQL's index entry limit with the channel id beside them.
IDENTITY_MAX = 500
_PUSH_ID_MAX = 200  # push ids sit in the covering period index too
_SURROGATES = re.compile("[\ud800-\udfff]")
_MAX_ID = "SELECT coalesce(max(id), 0) FROM publication"


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
    checked: bool = False,
) -> UpsertCounts:
    """Store ``records`` (streamed, in batches) inside the caller's transaction; count new vs known.

    ``checked`` records went through ``storable`` already and, on SQLite, hold their time as the
    store's text (the import's reading process prepares them): they are bound as they are.

    ``new`` is measured, not guessed: on SQLite, rowids of new rows are allocated as max + 1 inside
    our exclusive write transaction, so the growth of max(id) is the number of inserted rows. On
    PostgreSQL the channel's row is locked; a single batch (a poll's rows) says row by row whether
    it inserted (``xmax = 0``), and a larger upsert counts the channel's publications before and after.
    """
    dialect = conn.dialect.name
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    batches = _batches(records, BATCH_SIZE)
    first = next(batches, [])
    # An import's reading process (``checked``) only hands over large files: bulk from the first row.
    # Inside a group whose counts are held (``hold_counts``, a poll's grouped write), its end counts them.
    bulk_from = -1 if counts_held(conn) else 0 if checked else 1
    # Counting a channel's publications costs milliseconds in a county store of ten years (two counts per
    # channel made a county poll 4 s on 10 million rows, scripts/bench_county.py); one plain batch needs none.
    returning = dialect != "sqlite" and len(first) < BATCH_SIZE and bulk_from != 0
    if dialect == "sqlite":
        # Said to the driver: a poll stores a thousand channels' few rows, and SQLAlchemy's compiled-statement
        # path costs more than this lookup of the rowid tree's last entry (scripts/bench_poll.py).
        before = cursor.execute(_MAX_ID).fetchone()[0]
    else:
        lock_channel(conn, cursor, channel_id, run_id)
        before = 0 if returning else _channel_rows(cursor, channel_id)
    # Taken once the channel is ours: a later run's last_seen is then always after an earlier run
    # finished, which is how ``runs undo`` tells what a later run saw again (docs/counting-rules.md).
    seen = seen_at or utc_now()

    sql = _SQLITE_UPSERT if dialect == "sqlite" else _PG_UPSERT
    seen_value: str | datetime = sqlite_time(seen) if dialect == "sqlite" else seen
    tail = (channel_id, seen_value, seen_value, run_id)
    as_is = checked and dialect == "sqlite"
    if as_is:
        # One statement per import, its constants written into it: the rows go to the driver untouched.
        constants = f"{int(channel_id)}, '{seen_value}', '{seen_value}', {'NULL' if run_id is None else int(run_id)}"
        sql = f"INSERT INTO publication ({_COLUMNS}) VALUES ({', '.join(['?'] * 12)}, {constants}) {_ON_CONFLICT}"
    if returning:
        sql += " RETURNING (xmax = 0)"
    total = inserted = 0
    deferred: int | None = None
    bulk: _KnownRows | None = None
    copied: _Copied | None = None
    try:
        for number, batch in enumerate(chain([first], batches) if first else ()):
            if number == bulk_from:
                # A second batch: a bulk import. Its rows are counted set-based at the end rather than by
                # the per-row triggers (store/counts.py); a single batch outside a poll's group stays with the
                # triggers, which cost less than the grouped statements for a handful of rows. Deferred from
                # the first batch, a channel empty before the import has no stored row to look up at all.
                deferred = defer_counts(conn, run_id)
                if dialect != "sqlite":
                    # PostgreSQL keeps its UPDATE trigger through the batch: no known row needs holding back.
                    copied = _Copied(cursor)
                elif deferred is not None:
                    bulk = _KnownRows(cursor, channel_id, deferred, seen_value)
                    if int(before) == 0:
                        bulk.drop_indexes()
            total += len(batch)
            if as_is:
                rows = batch
            elif checked:
                rows = [(*record, *tail) for record in batch]
            else:
                rows = [(*storable(record), *tail) for record in batch]
            if bulk is not None:
                rows = bulk.sort(rows)
            if copied is not None:
                copied.write(rows)
            elif rows and returning:
                inserted += _inserted(cursor, sql, rows)
            elif rows:
                cursor.executemany(sql, rows)
            if bulk is not None and len(bulk.held) >= _HELD_MAX:
                # Many known rows change a counted column (a file that now says which posts are reposts):
                # count what is deferred, store them with the triggers, and go on deferring.
                _end_bulk(conn, cursor, sql, bulk, deferred)
                deferred = defer_counts(conn)
                bulk = _KnownRows(cursor, channel_id, deferred or 0, seen_value)
        if copied is not None:
            copied.store(tail)
            copied = None
        if bulk is not None:
            _end_bulk(conn, cursor, sql, bulk, deferred)
        else:
            count_deferred(conn, deferred, run_id)
        if dialect == "sqlite":
            after = cursor.execute(_MAX_ID).fetchone()[0]
        else:
            after = inserted if returning else _channel_rows(cursor, channel_id)
    except BaseException as exc:
        if copied is not None:
            copied.abort(exc)  # ends the COPY, so that the caller's rollback reaches the server
        raise
    finally:
        cursor.close()
    new = int(after) - int(before)
    note_inserted(conn, new)
    return UpsertCounts(new=new, known=total - new)


def _first(column: str) -> str:
    return f"(array_agg({column} ORDER BY seq) FILTER (WHERE {column} IS NOT NULL))[1]"


# The rows of one COPY, one per identity, merged as the upsert would have merged them row after row: the
# first row's time and period, each filled column's first value, the repost mark if any row has it.
_PG_MERGED = (
    f"INSERT INTO publication ({_COLUMNS}) SELECT identity, {_first('platform_id')}, {_first('title')}, "
    f"{_first('url')}, {_first('column_name')}, {_first('push_id')}, bool_or(is_repost), "
    "(array_agg(published_at ORDER BY seq))[1], (array_agg(local_year ORDER BY seq))[1], "
    "(array_agg(local_month ORDER BY seq))[1], (array_agg(local_date ORDER BY seq))[1], "
    f"{_first('title_key')}, %s, %s, %s, %s FROM channelwatch_incoming GROUP BY identity ORDER BY min(seq) "
    f"{_ON_CONFLICT}"
)


class _Copied:
    """PostgreSQL: a bulk upsert's rows streamed by ``COPY`` into a temporary table, then stored by one
    ``INSERT … SELECT … ON CONFLICT`` (an ``INSERT`` per row cost most of a large import there).

    One statement may change a row only once, so the rows of an identity are merged first (``_PG_MERGED``).
    """

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        cursor.execute("DROP TABLE IF EXISTS channelwatch_incoming")
        cursor.execute(
            "CREATE TEMPORARY TABLE channelwatch_incoming (seq BIGINT, identity TEXT, platform_id TEXT, title TEXT, "
            "url TEXT, column_name TEXT, push_id TEXT, is_repost BOOLEAN, published_at TIMESTAMPTZ, "
            "local_year INTEGER, local_month INTEGER, local_date DATE, title_key TEXT) ON COMMIT DROP"
        )
        self._copying = cursor.copy("COPY channelwatch_incoming FROM STDIN")
        self._copy = self._copying.__enter__()
        self._seq = 0

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        write, seq = self._copy.write_row, self._seq
        for row in rows:
            seq += 1
            write((seq, *row[:12]))
        self._seq = seq

    def store(self, tail: tuple[Any, ...]) -> None:
        self._copying.__exit__(None, None, None)
        self.cursor.execute(_PG_MERGED, tail)
        self.cursor.execute("DROP TABLE channelwatch_incoming")

    def abort(self, exc: BaseException) -> None:
        # The COPY fails as asked: the caller's own exception is the one to raise.
        with contextlib.suppress(Exception):
            self._copying.__exit__(type(exc), exc, exc.__traceback__)


def _channel_rows(cursor: Any, channel_id: int) -> int:
    cursor.execute("SELECT count(*) FROM publication WHERE channel_id = %s", (channel_id,))
    return int(cursor.fetchone()[0])


def _inserted(cursor: Any, sql: str, rows: list[tuple[Any, ...]]) -> int:
    """``executemany`` of an upsert ending in ``RETURNING (xmax = 0)``: how many rows it inserted.

    A row PostgreSQL inserted has no deleting or locking transaction yet (``xmax`` 0); a row the upsert
    updated (known before, or inserted by an earlier row of the same call) has this transaction's.
    """
    cursor.executemany(sql, rows, returning=True)
    inserted = 0
    while True:
        inserted += sum(1 for (fresh,) in cursor.fetchall() if fresh)
        if not cursor.nextset():
            return inserted


def _end_bulk(conn: Connection, cursor: Any, sql: str, bulk: _KnownRows, deferred: int | None) -> None:
    bulk.touch()
    bulk.create_indexes()  # before the counting, which probes the title index
    count_deferred(conn, deferred)
    if bulk.held:
        # Counted by the UPDATE trigger, which is back: the rows it changes were counted before.
        cursor.executemany(sql, bulk.held)
        bulk.held = []


_HELD_MAX = 20000
# Stored columns an upsert fills when they are empty, by their place in a record: platform_id, title,
# url, column_name, push_id, title_key. The last two (and is_repost) are counted.
_FILLED = (1, 2, 3, 4, 5, 11)
_FIRST_COUNTED = 5
_KNOWN = (
    "SELECT identity, id, (platform_id IS NULL) + 2 * (title IS NULL) + 4 * (url IS NULL) + 8 * (column_name IS NULL) "
    "+ 16 * (push_id IS NULL) + 32 * (title_key IS NULL), is_repost "
    "FROM publication WHERE channel_id = ? AND identity IN ({marks})"
)
# The record places of the empty columns, by the bit mask _KNOWN gives.
_EMPTY = [tuple(i for bit, i in enumerate(_FILLED) if mask >> bit & 1) for mask in range(64)]


class _KnownRows:
    """The rows of a bulk upsert on SQLite that are already stored, found by identity before they are written.

    While the counting triggers are dropped (``defer_counts``), a row stored before the batch began must not
    change a counted column uncounted: such rows (a repost mark or a title or push filled in) are held back
    and upserted once the triggers are back, together with every later row of the same identity, so that
    the file's order still decides what is filled in. A known row that would change nothing but its
    last_seen (every row of a re-import) only has last_seen set, by id, which touches no index.
    """

    def __init__(self, cursor: Any, channel_id: int, after: int, seen: Any) -> None:
        self.cursor = cursor
        self.channel_id = channel_id
        self.after = after
        self.seen = seen
        self.held: list[tuple[Any, ...]] = []
        self._dropped: list[str] = []
        self._held_identities: set[str] = set()
        self._touched: list[tuple[Any, int]] = []
        # A channel without publications before the batch has nothing to find.
        self._empty = cursor.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM publication WHERE channel_id = ? AND id <= ?)", (channel_id, after)
        ).fetchone()[0]

    def sort(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows to upsert now; known rows that only move last_seen are kept for ``touch``, others held."""
        if self._empty:
            return rows
        identities = list({row[0] for row in rows})
        found: dict[str, tuple[int, tuple[int, ...], Any]] = {}
        for start in range(0, len(identities), 10000):
            chunk = identities[start : start + 10000]
            query = _KNOWN.format(marks=", ".join("?" * len(chunk)))
            # Which of the filled columns are empty in the store: usually none, or the few a kind never has.
            found.update(
                (identity, (row_id, _EMPTY[mask], repost))
                for identity, row_id, mask, repost in self.cursor.execute(query, (self.channel_id, *chunk))
            )
        if not found and not self._held_identities:
            return rows
        now: list[tuple[Any, ...]] = []
        held, touched, after, seen = self._held_identities, self._touched, self.after, self.seen
        for row in rows:
            identity = row[0]
            stored = found.get(identity)
            if stored is None or stored[0] > after:
                if held and identity in held:
                    self.held.append(row)
                else:
                    now.append(row)  # new, or first stored by this batch: counted at its end either way
                continue
            row_id, empty, repost = stored
            if held and identity in held:
                self.held.append(row)
                continue
            fills = [i for i in empty if row[i] is not None] if empty else None
            if not fills:
                if row[6] and not repost:
                    held.add(identity)
                    self.held.append(row)
                else:
                    touched.append((seen, row_id))
            elif (row[6] and not repost) or fills[-1] >= _FIRST_COUNTED:
                held.add(identity)
                self.held.append(row)
            else:
                now.append(row)  # fills a column no figure depends on
        if len(touched) >= 50000:
            self.touch()
        return now

    def drop_indexes(self) -> None:
        """The first rows of an empty store: its secondary indexes are built once at the end, by sorting.

        Building an index from the table once costs less than keeping it row by row (about a tenth of the
        writing, scripts/benchmark.py import); in a store that already holds rows it would cost a sort of all
        of them, so only an empty one does this. The unique key stays: it decides new and known. Schema
        changes are transactional in SQLite.
        """
        self._dropped = [
            sql
            for (sql,) in self.cursor.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'publication' AND sql IS NOT NULL"
            ).fetchall()
        ]
        for (name,) in self.cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'publication' AND sql IS NOT NULL"
        ).fetchall():
            self.cursor.execute(f'DROP INDEX "{name}"')

    def create_indexes(self) -> None:
        for sql in self._dropped:
            self.cursor.execute(sql)
        self._dropped = []

    def touch(self) -> None:
        if self._touched:
            self.cursor.executemany("UPDATE publication SET last_seen = ? WHERE id = ?", self._touched)
            self._touched = []
