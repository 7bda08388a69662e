"""The store: publications, runs and the daemon's state, in SQLite or PostgreSQL.

``from channelwatch import store`` gives the public API; the modules behind it are
``db`` (engines, transactions), ``models`` and ``jobstate`` (tables), ``schema`` (creation,
upgrades, the office and its channels), ``upsert`` (the dedup-aware bulk upsert), ``counts``
(counts kept by triggers beside the publications) and ``opened`` (an instance's opened store).
Modules inside this package import each other directly, never through this file.
"""

from __future__ import annotations

from channelwatch.store.counts import period_code, rebuild_counts
from channelwatch.store.db import as_utc, normalise_url, open_engine, read, utc_now, write
from channelwatch.store.opened import Store, open_offices, open_store
from channelwatch.store.schema import SCHEMA_VERSION, ensure_schema, schema_version, sync_channel, sync_office
from channelwatch.store.upsert import (
    BATCH_SIZE,
    IDENTITY_MAX,
    PublicationRecord,
    UpsertCounts,
    long_identity,
    sqlite_time,
    upsert_publications,
)

__all__ = [
    "BATCH_SIZE",
    "IDENTITY_MAX",
    "SCHEMA_VERSION",
    "PublicationRecord",
    "Store",
    "UpsertCounts",
    "as_utc",
    "ensure_schema",
    "long_identity",
    "normalise_url",
    "open_engine",
    "open_offices",
    "open_store",
    "period_code",
    "read",
    "rebuild_counts",
    "schema_version",
    "sqlite_time",
    "sync_channel",
    "sync_office",
    "upsert_publications",
    "utc_now",
    "write",
]
