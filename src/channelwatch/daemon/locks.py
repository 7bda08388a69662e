"""One daemon per database, one run of a job at a time.

A file lock beside the SQLite file, ``pg_try_advisory_lock`` on PostgreSQL. Both locks die with the
process, so a ``kill -9`` never leaves a stale lock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import text

from channelwatch.errors import UserError
from channelwatch.store import Store


class Lock(Protocol):
    description: str

    def release(self) -> None: ...


@dataclass
class _FileLock:
    lock: Any
    description: str

    def release(self) -> None:
        self.lock.release()


@dataclass
class _AdvisoryLock:
    connection: Any
    key: int
    description: str

    def release(self) -> None:
        try:
            self.connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            self.connection.commit()
        finally:
            self.connection.close()


def _advisory_key(name: str) -> int:
    digest = hashlib.sha256(f"channelwatch:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def sqlite_path(opened: Store) -> Path | None:
    url = opened.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def try_lock(opened: Store, name: str) -> Lock | None:
    """Take the named lock for this database without waiting; ``None`` when another process holds it."""
    database = sqlite_path(opened)
    if database is not None:
        from filelock import FileLock, Timeout

        path = database.with_name(f"{database.name}.{name}.lock")
        lock = FileLock(path, thread_local=False, fallback_to_soft=False, preserve_lock_file=True)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return None
        return _FileLock(lock, f"锁文件 {path}")
    if opened.engine.url.get_backend_name() == "postgresql":
        key = _advisory_key(name)
        connection = opened.engine.connect()
        got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
        connection.commit()
        if not got:
            connection.close()
            return None
        return _AdvisoryLock(connection, key, f"PostgreSQL 咨询锁 {key}")
    raise UserError(f"不支持为数据库 {opened.engine.url.get_backend_name()} 加锁")


def _job_lock_name(opened: Store, job_id: str) -> str:
    return f"job-{opened.office_id}-{job_id}"
