"""What the web view reads from the store: a read-only store and the queries behind each page.

The view never writes. Its engine is opened read-only at the database level (SQLite
``PRAGMA query_only``, PostgreSQL ``default_transaction_read_only``), so a bug here cannot change a
figure, and it reads inside short read transactions: with SQLite in WAL mode a reader sees the last
committed state while the daemon writes, and never blocks it.

Every query is an index range scan or an aggregate over ``ix_publication_period`` (channel, office-time
year, month, repost): no page reads the whole publication table, whatever its size
(``scripts/bench_web.py`` measures each page over ten million publications).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event, func, select
from sqlalchemy.engine import make_url

from channelwatch import store
from channelwatch.dates import to_office
from channelwatch.errors import ConfigError, UserError
from channelwatch.instance.config import Instance
from channelwatch.stats.figures import ChannelFigures, Period, Summary
from channelwatch.store.models import Channel, Office, Publication, Run
from channelwatch.store.opened import Store

__all__ = [
    "PAGE_SIZE",
    "NoStore",
    "PublicationItem",
    "PublicationPage",
    "ReadOnlyStore",
    "RunItem",
    "month_counts",
    "open_readonly",
    "publication_page",
    "recent_runs",
    "year_figures",
]

PAGE_SIZE = 50


class NoStore(UserError):
    """The store has not been created yet (a fresh deployment before the first import or poll)."""


def _tables() -> tuple[Any, Any, Any, Any]:
    return (
        Publication.__table__,  # type: ignore[attr-defined]
        Channel.__table__,  # type: ignore[attr-defined]
        Office.__table__,  # type: ignore[attr-defined]
        Run.__table__,  # type: ignore[attr-defined]
    )


def _read_only(engine: Engine) -> None:
    """Refuse every write on this engine's connections, at the database."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        if engine.dialect.name == "sqlite":
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA query_only = ON")
            cursor.close()
        else:
            dbapi_conn.execute("SET default_transaction_read_only = on")
            dbapi_conn.commit()


@dataclass
class ReadOnlyStore:
    """The instance's store as the web view sees it: found lazily, never created or upgraded.

    The view may start before the daemon has created the database (a fresh deployment): pages then
    say that there is nothing yet, and the office is looked up again on the next request.
    """

    instance: Instance
    engine: Engine
    sqlite_path: Path | None = None  # the SQLite file: connecting to a missing one would create it
    _office_id: int | None = field(default=None, repr=False)

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        """A read transaction; ``NoStore`` while the SQLite file does not exist yet."""
        if self.sqlite_path is not None and not self.sqlite_path.exists():
            raise NoStore(f"统计库 {self.sqlite_path} 还不存在：请先运行 channelwatch import 或 poll")
        with store.read(self.engine) as conn:
            yield conn

    def office_id(self, conn: Connection) -> int | None:
        if self._office_id is None:
            if not conn.dialect.has_table(conn, "office"):
                return None
            _pub, _channel, office, _run = _tables()
            found = conn.execute(select(office.c.id).where(office.c.name == self.instance.config.office.name)).scalar()
            self._office_id = None if found is None else int(found)
        return self._office_id

    def channel_ids(self, conn: Connection, office_id: int) -> dict[str, int]:
        _pub, channel, _office, _run = _tables()
        rows = conn.execute(select(channel.c.key, channel.c.id).where(channel.c.office_id == office_id))
        return {key: int(cid) for key, cid in rows}

    def as_store(self, conn: Connection) -> Store | None:
        """The ``Store`` the report builders take, without ``open_store``'s schema and sync writes."""
        office_id = self.office_id(conn)
        if office_id is None:
            return None
        return Store(
            engine=self.engine,
            instance=self.instance,
            office_id=office_id,
            channel_ids=self.channel_ids(conn, office_id),
        )

    def dispose(self) -> None:
        self.engine.dispose()


def open_readonly(instance: Instance) -> ReadOnlyStore:
    url = store.normalise_url(instance.database_url)
    try:
        parsed = make_url(url)
    except Exception:
        parsed = None
    sqlite_path = None
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        path = Path(database)
        if database and not database.startswith("file:") and database != ":memory:":
            path = path if path.is_absolute() else instance.root / path
            sqlite_path = path
            if not path.parent.is_dir():
                # open_engine would create the folder: the view writes nothing, not even that.
                raise ConfigError(
                    f"数据库所在目录 {path.parent} 不存在：请先运行 channelwatch import 或 poll 建立统计库"
                )
    engine = store.open_engine(url, base_dir=instance.root)
    _read_only(engine)
    return ReadOnlyStore(instance=instance, engine=engine, sqlite_path=sqlite_path)


# --- publications ------------------------------------------------------------------------------------------


@dataclass
class PublicationItem:
    published_at: str
    is_repost: bool
    title: str
    url: str
    column: str

    @property
    def link(self) -> str:
        """The URL when it is a web address; ``javascript:`` or ``data:`` from a hostile export is never linked."""
        return self.url if self.url.lower().startswith(("http://", "https://")) else ""


@dataclass
class PublicationPage:
    items: list[PublicationItem]
    total: int
    page: int
    pages: int


MonthCounts = dict[tuple[int, bool], int]  # (office-time month, is_repost) → publications


def month_counts(conn: Connection, channel_id: int, year: int) -> MonthCounts:
    """Publications of one channel and year per month and repost mark: one aggregate over the period index."""
    pub, _channel, _office, _run = _tables()
    query = (
        select(pub.c.local_month, pub.c.is_repost, func.count())
        .where(pub.c.channel_id == channel_id, pub.c.local_year == year)
        .group_by(pub.c.local_month, pub.c.is_repost)
    )
    return {(int(month), bool(repost)): int(count) for month, repost, count in conn.execute(query)}


def year_figures(conn: Connection, office_id: int, year: int, channel_keys: list[str]) -> Summary:
    """The channel figures of a year (totals, reposts, per month) in one aggregate over the period index.

    The same counts as ``stats.figures.summarise`` without its two extra passes over the year (the
    unique-items grouping by title and WeChat's distinct pushes), which the overview does not show and
    which would take it past its time budget on a large store: ``unique_items`` is 0 here and
    ``pushes`` is None. The summary download computes both.
    """
    pub, channel, office, _run = _tables()
    office_row = conn.execute(select(office.c.name, office.c.short_name).where(office.c.id == office_id)).one()
    rows = conn.execute(
        select(channel.c.id, channel.c.key, channel.c.kind, channel.c.name).where(channel.c.office_id == office_id)
    )
    by_key = {key: (int(cid), kind, name) for cid, key, kind, name in rows}
    figures = {
        by_key[key][0]: ChannelFigures(key=key, kind=by_key[key][1], name=by_key[key][2])
        for key in channel_keys
        if key in by_key
    }
    if figures:
        grouped = conn.execute(
            select(pub.c.channel_id, pub.c.local_month, pub.c.is_repost, func.count())
            .where(pub.c.channel_id.in_(list(figures)), pub.c.local_year == year)
            .group_by(pub.c.channel_id, pub.c.local_month, pub.c.is_repost)
        )
        for channel_id, month, is_repost, count in grouped:
            figure = figures[channel_id]
            figure.total += count
            figure.by_month[month] = figure.by_month.get(month, 0) + count
            if is_repost:
                figure.reposts += count
                figure.reposts_by_month[month] = figure.reposts_by_month.get(month, 0) + count
    return Summary(office_row.name, office_row.short_name, Period(year), list(figures.values()), unique_items=0)


def publication_page(
    conn: Connection,
    channel_id: int,
    year: int,
    zone: str,
    *,
    counts: MonthCounts | None = None,
    month: int | None = None,
    repost: bool | None = None,
    page: int = 1,
    size: int = PAGE_SIZE,
) -> PublicationPage:
    """One page of a channel's publications of a year, newest first.

    Sorting a whole year by time would read every row of it. The page is located with the per-month
    counts (an index aggregate, ``month_counts``; pass them when already read) instead, and only the
    one or two months that hold it are read and sorted: the cost of a page is the size of a month, not
    of the store. A page in the older half of a month is read from the month's oldest end.
    """
    pub, _channel, _office, _run = _tables()
    if counts is None:
        counts = month_counts(conn, channel_id, year)
    wanted: dict[int, int] = {}
    for (in_month, is_repost), count in counts.items():
        if (month is None or in_month == month) and (repost is None or is_repost == repost):
            wanted[in_month] = wanted.get(in_month, 0) + count
    total = sum(wanted.values())
    pages = max(1, -(-total // size))
    page = min(max(1, page), pages)
    skip = (page - 1) * size
    items: list[PublicationItem] = []
    for current in sorted(wanted, reverse=True):
        if len(items) >= size:
            break
        in_month = wanted[current]
        if skip >= in_month:
            skip -= in_month
            continue
        take = min(size - len(items), in_month - skip)
        query = select(pub.c.published_at, pub.c.is_repost, pub.c.title, pub.c.url, pub.c.column_name).where(
            pub.c.channel_id == channel_id, pub.c.local_year == year, pub.c.local_month == current
        )
        if repost is not None:
            query = query.where(pub.c.is_repost == repost)
        from_oldest = skip > in_month // 2
        if from_oldest:
            query = query.order_by(pub.c.published_at, pub.c.id).offset(in_month - skip - take)
        else:
            query = query.order_by(pub.c.published_at.desc(), pub.c.id.desc()).offset(skip)
        found = list(conn.execute(query.limit(take)))
        if from_oldest:
            found.reverse()
        for published_at, is_repost, title, url, column in found:
            items.append(
                PublicationItem(
                    published_at=to_office(store.as_utc(published_at), zone).strftime("%Y-%m-%d %H:%M"),
                    is_repost=bool(is_repost),
                    title=title or "",
                    url=url or "",
                    column=column or "",
                )
            )
        skip = 0
    return PublicationPage(items=items, total=total, page=page, pages=pages)


# --- runs ------------------------------------------------------------------------------------------------


@dataclass
class RunItem:
    id: int
    channel_key: str
    channel_name: str
    kind: str
    source: str
    status: str
    started_at: str
    seconds: float | None
    rows_read: int
    rows_new: int
    rows_known: int
    rows_rejected: int
    pages_fetched: int
    message: str

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "rejected", "interrupted")


def recent_runs(
    conn: Connection,
    office_id: int,
    zone: str,
    *,
    limit: int,
    channel_id: int | None = None,
    before: int | None = None,
    failures_only: bool = False,
) -> list[RunItem]:
    """Newest runs first, by primary key (``before`` pages on): an index walk, never a sort of the log."""
    _pub, channel, _office, run = _tables()
    query = (
        select(run, channel.c.key, channel.c.name)
        .join(channel, channel.c.id == run.c.channel_id)
        .where(channel.c.office_id == office_id)
        .order_by(run.c.id.desc())
        .limit(limit)
    )
    if channel_id is not None:
        query = query.where(run.c.channel_id == channel_id)
    if before is not None:
        query = query.where(run.c.id < before)
    if failures_only:
        query = query.where(run.c.status.in_(("failed", "rejected", "running", "interrupted")))

    def seconds(started: datetime | None, finished: datetime | None) -> float | None:
        if started is None or finished is None:
            return None
        return round((store.as_utc(finished) - store.as_utc(started)).total_seconds(), 1)

    return [
        RunItem(
            id=int(r.id),
            channel_key=r.key,
            channel_name=r.name,
            kind=r.kind,
            source=r.source,
            status=r.status,
            started_at=to_office(store.as_utc(r.started_at), zone).strftime("%Y-%m-%d %H:%M:%S"),
            seconds=seconds(r.started_at, r.finished_at),
            rows_read=r.rows_read,
            rows_new=r.rows_new,
            rows_known=r.rows_known,
            rows_rejected=r.rows_rejected,
            pages_fetched=r.pages_fetched,
            message=r.message or "",
        )
        for r in conn.execute(query)
    ]


def office_today(zone: str, now: datetime | None = None) -> datetime:
    return to_office(now or datetime.now(UTC), zone)
