"""Engines and transactions.

SQLite is the embedded default: WAL so that readers never wait for the writer, a busy timeout so
that the daemon and the CLI can write the same file at once, and ``BEGIN IMMEDIATE`` for write
transactions so that two writers queue on the lock instead of failing with "database is locked"
half way through. PostgreSQL is used by URL (``postgresql+psycopg://``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from channelwatch.errors import ConfigError


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


def resolved_url(url: str, base_dir: Path | None = None) -> URL:
    """``url`` as the store opens it: psycopg 3 for PostgreSQL, a relative SQLite path under ``base_dir``."""
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError
        raise ConfigError(f"数据库地址无效：{_redact(url)}") from exc
    path = _sqlite_file(parsed)
    if path is not None and not path.is_absolute() and base_dir is not None:
        parsed = parsed.set(database=str(base_dir / path))
    return parsed


def _sqlite_file(parsed: URL) -> Path | None:
    """The file of a SQLite URL (not ``:memory:`` or a ``file:`` URI); None for any other database."""
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def open_engine(url: str, *, base_dir: Path | None = None) -> Engine:
    """An engine for ``url``; relative SQLite paths are relative to ``base_dir`` (the instance)."""
    parsed = resolved_url(url, base_dir)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None:
            _ensure_folder(path, base_dir, normalise_url(url))
        engine = create_engine(parsed, connect_args={"timeout": 60, "check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    raise ConfigError(f"不支持的数据库类型：{parsed.get_backend_name()}（仅支持 sqlite 与 postgresql）")


def _ensure_folder(path: Path, base_dir: Path | None, url: str) -> None:
    """The folder of a SQLite file must exist: a typo in the URL must not quietly start a new, empty database.

    The one exception is the instance's own ``data/`` folder (the default URL's folder), which is
    created on first use (docs/configuration.md, ``[database]``).
    """
    folder = path.parent
    if folder.is_dir():
        return
    if base_dir is not None and folder.resolve() == (base_dir / "data").resolve():
        folder.mkdir(parents=True, exist_ok=True)
        return
    raise ConfigError(
        f"数据库地址 {_redact(url)} 所在的文件夹 {folder} 不存在：请检查 [database] url"
        "（或环境变量 CHANNELWATCH_DATABASE_URL）是否写错；确要在那里新建数据库，请先创建该文件夹"
    )


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
        # 32 MiB of page cache, a fixed cap whatever the file's size. Imports of 1 and 2 million rows took
        # the same time with 64 MiB, which only added its 64 MiB to their peak memory (scripts/benchmark.py import).
        cursor.execute("PRAGMA cache_size=-32768")
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
