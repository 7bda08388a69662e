"""An opened store for one instance: engine, office and channel ids."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from channelwatch.instance.config import Instance
from channelwatch.store import db, schema
from channelwatch.store.models import Channel, Office


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


def open_store(instance: Instance, engine: Engine | None = None) -> Store:
    """Open (create or upgrade) the instance's database and sync its office and channels into it.

    ``engine``: an engine already open on the same database (a county's offices share one).
    """
    if engine is None:
        engine = db.open_engine(instance.database_url, base_dir=instance.root)
        schema.ensure_schema(engine)
    office = instance.config.office
    with db.write(engine) as conn:
        match = schema.sync_office(conn, office.name, office.short_name, office.timezone, key=instance.office_key)
        channel_ids = {
            c.id: schema.sync_channel(conn, match.id, c.id, c.kind, c.name) for c in instance.config.channels
        }
    return Store(engine=engine, instance=instance, office_id=match.id, channel_ids=channel_ids, notices=match.notices)


def open_offices(county: Instance) -> tuple[Store, dict[str, Store]]:
    """A county instance opened once: the county's own store and one store per office, one engine.

    Offices and channels already stored as configured are read in two queries and left alone; only the
    new or changed ones are written, all in one transaction: opening a county of a hundred offices costs
    one commit, not a hundred.
    """
    own = open_store(county)
    office_table = Office.__table__  # type: ignore[attr-defined]
    channel_table = Channel.__table__  # type: ignore[attr-defined]
    with db.read(own.engine) as conn:
        offices = {r.key: r for r in conn.execute(select(office_table)) if r.key is not None}
        channels = {(r.office_id, r.key): r for r in conn.execute(select(channel_table))}
    stores: dict[str, Store] = {}
    with db.write(own.engine) as conn:
        for key, office in county.offices.items():
            config = office.config.office
            row = offices.get(key)
            if row is None or (row.name, row.short_name, row.timezone) != (
                config.name,
                config.short_name,
                config.timezone,
            ):
                office_id = schema.sync_office(conn, config.name, config.short_name, config.timezone, key).id
            else:
                office_id = int(row.id)
            channel_ids = {}
            for channel in office.config.channels:
                known = channels.get((office_id, channel.id))
                if known is None or (known.kind, known.name) != (channel.kind, channel.name):
                    channel_ids[channel.id] = schema.sync_channel(
                        conn, office_id, channel.id, channel.kind, channel.name
                    )
                else:
                    channel_ids[channel.id] = int(known.id)
            stores[key] = Store(engine=own.engine, instance=office, office_id=office_id, channel_ids=channel_ids)
    return own, stores
