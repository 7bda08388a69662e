"""Schema creation and upgrades; the office and its channels as rows.

Schema upgrades use a small versioned runner (``_MIGRATIONS``) rather than Alembic: the schema is a
handful of tables, it must upgrade the same way on SQLite and PostgreSQL, and an office's IT person
should never have to run a separate migration tool — opening the store upgrades it.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, select, text
from sqlmodel import SQLModel

from channelwatch.errors import ConfigError
from channelwatch.store import jobstate  # noqa: F401  registers the daemon's tables before create_all
from channelwatch.store.counts import install_counts
from channelwatch.store.db import write
from channelwatch.store.models import Channel, Office, SchemaVersion

# --- schema -----------------------------------------------------------------------------------------


def _create_v1(conn: Connection) -> None:
    SQLModel.metadata.create_all(conn)


def _add_counts_v2(conn: Connection) -> None:
    # Counts per channel and period kept by triggers beside the publications (store/counts.py): figures
    # in time that does not grow with the store. Filled here from what an older store already holds.
    install_counts(conn)


# Each entry upgrades the schema from version i to i + 1. Append; never edit a released step.
_MIGRATIONS: list[Callable[[Connection], None]] = [_create_v1, _add_counts_v2]
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
