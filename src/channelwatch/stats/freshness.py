"""Days since each channel last published, against the two-week update rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from channelwatch.dates import to_office
from channelwatch.stats.figures import publication_tables


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


def _newest(conn: Connection, pub: Any, channel_id: int) -> datetime | None:
    """The newest publication time of a channel, found through the period index.

    The newest (year, month) comes from the index alone; only that month's rows are read for the
    exact time, so the answer costs the same for ten publications or ten million.
    """
    top = conn.execute(
        select(pub.c.local_year, pub.c.local_month)
        .where(pub.c.channel_id == channel_id)
        .order_by(pub.c.local_year.desc(), pub.c.local_month.desc())
        .limit(1)
    ).first()
    if top is None:
        return None
    found: datetime | None = conn.execute(
        select(func.max(pub.c.published_at)).where(
            pub.c.channel_id == channel_id, pub.c.local_year == top[0], pub.c.local_month == top[1]
        )
    ).scalar()
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
    """Per channel: total stored, newest publication, and whole days since it in office time.

    ``count_totals=False`` leaves the total out: counting every stored row of a channel reads its
    whole index range (170 ms for seven million on SQLite), too slow for a page that does not show it.
    """
    pub, channel, _office = publication_tables()
    today = to_office(now or datetime.now(UTC), zone).date()
    rows = conn.execute(
        select(channel.c.id, channel.c.key, channel.c.name, channel.c.kind)
        .where(channel.c.office_id == office_id)
        .order_by(channel.c.id)
    )
    result = []
    for channel_id, key, name, kind in list(rows):
        latest = _newest(conn, pub, channel_id)
        total = (
            int(conn.execute(select(func.count()).where(pub.c.channel_id == channel_id)).scalar_one())
            if count_totals
            else None
        )
        local = None
        days = None
        if latest is not None:
            moment = latest.replace(tzinfo=UTC) if latest.tzinfo is None else latest
            local = to_office(moment, zone)
            days = (today - local.date()).days
        result.append(Freshness(key, name, kind, total, local, days, warn_days, limit_days))
    return result
