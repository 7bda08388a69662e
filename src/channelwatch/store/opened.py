"""An opened store for one instance: engine, office and channel ids."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from channelwatch.instance.config import Instance
from channelwatch.store import db, schema


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


def open_store(instance: Instance, engine: Engine | None = None) -> Store:
    """Open (create or upgrade) the instance's database and sync its office and channels into it.

    ``engine``: an engine already open on the same database (a county's offices share one).
    """
    if engine is None:
        engine = db.open_engine(instance.database_url, base_dir=instance.root)
        schema.ensure_schema(engine)
    office = instance.config.office
    with db.write(engine) as conn:
        office_id = schema.sync_office(conn, office.name, office.short_name, office.timezone, instance.office_key)
        channel_ids = {
            c.id: schema.sync_channel(conn, office_id, c.id, c.kind, c.name) for c in instance.config.channels
        }
    return Store(engine=engine, instance=instance, office_id=office_id, channel_ids=channel_ids)


def open_offices(county: Instance) -> tuple[Store, dict[str, Store]]:
    """A county instance opened once: the county's own store and one store per office, one engine."""
    own = open_store(county)
    return own, {key: open_store(office, own.engine) for key, office in county.offices.items()}
