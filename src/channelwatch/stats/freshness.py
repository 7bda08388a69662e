"""Days since each channel last published, against the two-week update rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, func, select

from channelwatch.dates import to_office
from channelwatch.instance.config import ChannelConfig
from channelwatch.stats.figures import publication_tables
from channelwatch.store.db import as_utc


@dataclass
class Freshness:
    key: str
    name: str
    kind: str
    total: int | None  # None when the caller asked for no count (count_totals=False)
    last_published: datetime | None  # office time
    days_since: int | None
    warn_days: int
    limit_days: int

    @property
    def status(self) -> str:
        """ok | warn | overdue | empty"""
        if self.days_since is None:
            return "empty"
        if self.days_since >= self.limit_days:
            return "overdue"
        if self.days_since >= self.warn_days:
            return "warn"
        return "ok"

    @property
    def days_left(self) -> int | None:
        return None if self.days_since is None else self.limit_days - self.days_since


def newest_publications(conn: Connection, channel_ids: list[int]) -> dict[int, datetime]:
    """Each channel's newest publication time (UTC), for all the channels in one statement.

    Newest year, then newest month in it, then the newest time in that month: three index probes per
    channel (the period index, then ``ix_publication_listing``), so the answer costs the same for ten
    publications or ten million. Correlated subqueries, not a join: SQLite would scan the publications
    to join them to a list of channels.
    """
    if not channel_ids:
        return {}
    pub, channel, _office = publication_tables()
    year = select(func.max(pub.c.local_year)).where(pub.c.channel_id == channel.c.id).scalar_subquery()
    years = select(channel.c.id.label("cid"), year.label("yr")).where(channel.c.id.in_(channel_ids)).cte("newest_year")
    in_year = pub.alias("in_year")
    month = (
        select(func.max(in_year.c.local_month))
        .where(in_year.c.channel_id == years.c.cid, in_year.c.local_year == years.c.yr)
        .scalar_subquery()
    )
    months = select(years.c.cid, years.c.yr, month.label("mo")).where(years.c.yr.is_not(None)).cte("newest_month")
    in_month = pub.alias("in_month")
    moment = (
        select(func.max(in_month.c.published_at))
        .where(
            in_month.c.channel_id == months.c.cid,
            in_month.c.local_year == months.c.yr,
            in_month.c.local_month == months.c.mo,
        )
        .scalar_subquery()
    )
    return {
        int(cid): as_utc(found)
        for cid, found in conn.execute(select(months.c.cid, moment.label("newest")))
        if found is not None
    }


def configured_freshness(
    channels: list[ChannelConfig],
    channel_ids: dict[str, int],
    newest: dict[int, datetime],
    zone: str,
    *,
    warn_days: int,
    limit_days: int,
    now: datetime | None = None,
) -> dict[str, Freshness]:
    """``Freshness`` of configured channels (by channel id) from ``newest_publications``; no totals."""
    today = to_office(now or datetime.now(UTC), zone).date()
    found = {}
    for channel in channels:
        moment = newest.get(channel_ids.get(channel.id, -1))
        local = to_office(moment, zone) if moment is not None else None
        days = (today - local.date()).days if local is not None else None
        found[channel.id] = Freshness(channel.id, channel.name, channel.kind, None, local, days, warn_days, limit_days)
    return found


def freshness(
    conn: Connection,
    office_id: int,
    zone: str,
    *,
    warn_days: int = 10,
    limit_days: int = 14,
    now: datetime | None = None,
    count_totals: bool = True,
) -> list[Freshness]:
    """Per stored channel of the office: total stored, newest publication, and whole days since it in office time.

    ``count_totals=False`` leaves the total out: counting every stored row of a channel reads its
    whole index range (170 ms for seven million on SQLite), too slow for a page that does not show it.
    """
    pub, channel, _office = publication_tables()
    today = to_office(now or datetime.now(UTC), zone).date()
    rows = list(
        conn.execute(
            select(channel.c.id, channel.c.key, channel.c.name, channel.c.kind)
            .where(channel.c.office_id == office_id)
            .order_by(channel.c.id)
        )
    )
    newest = newest_publications(conn, [int(r[0]) for r in rows])
    result = []
    for channel_id, key, name, kind in rows:
        total = (
            int(conn.execute(select(func.count()).where(pub.c.channel_id == channel_id)).scalar_one())
            if count_totals
            else None
        )
        local = None
        days = None
        latest = newest.get(int(channel_id))
        if latest is not None:
            local = to_office(latest, zone)
            days = (today - local.date()).days
        result.append(Freshness(key, name, kind, total, local, days, warn_days, limit_days))
    return result
