"""Schema creation and upgrades; the office and its channels as rows.

Schema upgrades use a small versioned runner (``_MIGRATIONS``) rather than Alembic: the schema is a
handful of tables, it must upgrade the same way on SQLite and PostgreSQL, and an office's IT person
should never have to run a separate migration tool — opening the store upgrades it.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select, text
from sqlmodel import SQLModel

from channelwatch.errors import ConfigError
from channelwatch.store import (
    jobstate,  # noqa: F401  registers the daemon's tables before create_all
    reported,  # noqa: F401  registers the reported-figures tables before create_all
)
from channelwatch.store.db import write
from channelwatch.store.models import Channel, Office, SchemaVersion

# --- schema -----------------------------------------------------------------------------------------


def _create_v1(conn: Connection) -> None:
    SQLModel.metadata.create_all(conn)


def _office_key_v2(conn: Connection) -> None:
    """The office's stable key (``[office] id``). A new database got it from ``create_all`` already."""
    if "key" in {column["name"] for column in inspect(conn).get_columns("office")}:
        return
    conn.execute(text("ALTER TABLE office ADD COLUMN key VARCHAR"))
    conn.execute(text("CREATE UNIQUE INDEX ix_office_key ON office (key)"))


def _reported_figures_v3(conn: Connection) -> None:
    """The figures offices report on quarterly sheets (store/reported.py); ``create_all`` skips existing tables."""
    SQLModel.metadata.create_all(conn)


# Each entry upgrades the schema from version i to i + 1. Append; never edit a released step.
# Steps after the first must accept a database that ``_create_v1`` made from today's models.
_MIGRATIONS: list[Callable[[Connection], None]] = [_create_v1, _office_key_v2, _reported_figures_v3]
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


def sync_office(conn: Connection, name: str, short_name: str, timezone: str, key: str | None = None) -> int:
    """The office's row: found by ``key`` when it has one (its name is then a label that may change),
    else by name; an office first stored by name takes its key the first time the key is known."""
    office = Office.__table__  # type: ignore[attr-defined]
    found = None
    if key is not None:
        found = conn.execute(select(office.c.id).where(office.c.key == key)).scalar()
        if found is None:
            found = conn.execute(select(office.c.id).where(office.c.name == name, office.c.key.is_(None))).scalar()
    else:
        found = conn.execute(select(office.c.id).where(office.c.name == name)).scalar()
    if found is None:
        return int(
            conn.execute(
                office.insert().values(key=key, name=name, short_name=short_name, timezone=timezone)
            ).inserted_primary_key[0]  # type: ignore[index]
        )
    values = {"short_name": short_name, "timezone": timezone}
    if key is not None:
        values |= {"key": key, "name": name}
    conn.execute(office.update().where(office.c.id == found).values(**values))
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
