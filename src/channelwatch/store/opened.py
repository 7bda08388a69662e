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
    notices: list[str] = field(default_factory=list)  # what opening changed (an office renamed, an id recorded)

    def channel_id(self, key: str) -> int:
        self.instance.channel(key)  # raises ChannelNotFound with the list of configured channels
        return self.channel_ids[key]

    def database_label(self) -> str:
        """The database as the user may be shown it: the URL without its password."""
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(instance: Instance) -> Store:
    """Open (create or upgrade) the instance's database and sync its office and channels into it."""
    engine = db.open_engine(instance.database_url, base_dir=instance.root)
    schema.ensure_schema(engine)
    office = instance.config.office
    with db.write(engine) as conn:
        match = schema.sync_office(conn, office.name, office.short_name, office.timezone, key=office.id)
        channel_ids = {
            c.id: schema.sync_channel(conn, match.id, c.id, c.kind, c.name) for c in instance.config.channels
        }
    return Store(engine=engine, instance=instance, office_id=match.id, channel_ids=channel_ids, notices=match.notices)
