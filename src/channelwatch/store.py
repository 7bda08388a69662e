"""Engine, schema and the dedup-aware bulk upsert.

SQLite is the embedded default: WAL so that readers never wait for the writer, a busy timeout so
that the daemon and the CLI can write the same file at once, and ``BEGIN IMMEDIATE`` for write
transactions so that two writers queue on the lock instead of failing with "database is locked"
half way through. PostgreSQL is used by URL (``postgresql+psycopg://``).

Schema upgrades use a small versioned runner (``_MIGRATIONS``) rather than Alembic: the schema is a
handful of tables, it must upgrade the same way on SQLite and PostgreSQL, and an office's IT person
should never have to run a separate migration tool — opening the store upgrades it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from channelwatch.errors import ConfigError
from channelwatch.models import Channel, Office, Publication, SchemaVersion

__all__ = [
    "SCHEMA_VERSION",
    "PublicationRecord",
    "UpsertCounts",
    "ensure_schema",
    "open_engine",
    "read",
    "upsert_publications",
    "utc_now",
    "write",
]

BATCH_SIZE = 2000


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3, the driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_engine(url: str, *, base_dir: Path | None = None) -> Engine:
    """An engine for ``url``; relative SQLite paths are relative to ``base_dir`` (the instance)."""
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError
        raise ConfigError(f"数据库地址无效：{_redact(url)}") from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            path.parent.mkdir(parents=True, exist_ok=True)
            parsed = parsed.set(database=str(path))
        engine = create_engine(parsed, connect_args={"timeout": 60, "check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    raise ConfigError(f"不支持的数据库类型：{parsed.get_backend_name()}（仅支持 sqlite 与 postgresql）")


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "（无法解析）"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event issue BEGIN itself, so that writers can ask for IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # 64 MiB of page cache: index pages of a large import stay in memory (a fixed cap, not per file).
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """One write transaction: committed when the block ends, rolled back on any exception."""
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_immediate=True)
        with conn.begin():
            yield conn


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


# --- schema -----------------------------------------------------------------------------------------


def _create_v1(conn: Connection) -> None:
    SQLModel.metadata.create_all(conn)


# Each entry upgrades the schema from version i to i + 1. Append; never edit a released step.
_MIGRATIONS: list[Callable[[Connection], None]] = [_create_v1]
SCHEMA_VERSION = len(_MIGRATIONS)


def schema_version(conn: Connection) -> int:
    if not conn.dialect.has_table(conn, "schema_version"):
        return 0
    found = conn.execute(select(SchemaVersion.version)).scalar()  # type: ignore[call-overload]
    return int(found or 0)


def ensure_schema(engine: Engine) -> int:
    """Create or upgrade the schema to ``SCHEMA_VERSION``; returns the version found before."""
    with write(engine) as conn:
        if conn.dialect.name == "postgresql":
            # Two processes opening a fresh database at once must not both create the tables.
            conn.execute(text("SELECT pg_advisory_xact_lock(727001)"))
        before = schema_version(conn)
        if before > SCHEMA_VERSION:
            raise ConfigError(f"数据库结构版本为 {before}，高于本程序支持的 {SCHEMA_VERSION}：请升级 channelwatch")
        for step in _MIGRATIONS[before:]:
            step(conn)
        if before != SCHEMA_VERSION:
            table = SchemaVersion.__table__  # type: ignore[attr-defined]
            conn.execute(table.delete())
            conn.execute(table.insert().values(id=1, version=SCHEMA_VERSION))
    return before


# --- offices and channels ------------------------------------------------------------------------------


def sync_office(conn: Connection, name: str, short_name: str, timezone: str) -> int:
    office = Office.__table__  # type: ignore[attr-defined]
    found = conn.execute(select(office.c.id).where(office.c.name == name)).scalar()
    if found is None:
        return int(
            conn.execute(
                office.insert().values(name=name, short_name=short_name, timezone=timezone)
            ).inserted_primary_key[0]  # type: ignore[index]
        )
    conn.execute(office.update().where(office.c.id == found).values(short_name=short_name, timezone=timezone))
    return int(found)


def sync_channel(conn: Connection, office_id: int, key: str, kind: str, name: str) -> int:
    channel = Channel.__table__  # type: ignore[attr-defined]
    found = conn.execute(select(channel.c.id).where(channel.c.office_id == office_id, channel.c.key == key)).scalar()
    if found is None:
        return int(
            conn.execute(
                channel.insert().values(office_id=office_id, key=key, kind=kind, name=name)
            ).inserted_primary_key[0]  # type: ignore[index]
        )
    conn.execute(channel.update().where(channel.c.id == found).values(kind=kind, name=name))
    return int(found)


# --- publications ---------------------------------------------------------------------------------------


class PublicationRecord(NamedTuple):
    """A publication ready to store: identity computed, time in UTC, office-time period resolved.

    The fields are in the order of the upsert's parameters, so that a batch of records goes to the
    driver's ``executemany`` as it is, with no per-row copying (import speed, DESIGN §8).
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
# (DESIGN §3 rule 2). A repost mark, once seen, stays: exports without a repost column say nothing.
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
    seen = seen_at or utc_now()
    dialect = conn.dialect.name
    pub = Publication.__table__  # type: ignore[attr-defined]
    if dialect == "sqlite":
        before = conn.execute(select(func.coalesce(func.max(pub.c.id), 0))).scalar_one()
    else:
        channel = Channel.__table__  # type: ignore[attr-defined]
        conn.execute(select(channel.c.id).where(channel.c.id == channel_id).with_for_update())
        before = conn.execute(select(func.count()).where(pub.c.channel_id == channel_id)).scalar_one()

    sql = _SQLITE_UPSERT if dialect == "sqlite" else _PG_UPSERT
    seen_value: str | datetime = sqlite_time(seen) if dialect == "sqlite" else seen
    tail = (channel_id, seen_value, seen_value, run_id)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    total = 0
    try:
        for batch in _batches(records, BATCH_SIZE):
            total += len(batch)
            cursor.executemany(sql, [(*record, *tail) for record in batch])
    finally:
        cursor.close()

    if dialect == "sqlite":
        after = conn.execute(select(func.coalesce(func.max(pub.c.id), 0))).scalar_one()
    else:
        after = conn.execute(select(func.count()).where(pub.c.channel_id == channel_id)).scalar_one()
    new = int(after) - int(before)
    return UpsertCounts(new=new, known=total - new)
