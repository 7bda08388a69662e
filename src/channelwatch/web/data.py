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
from channelwatch.store.checkstate import latest_verdicts
from channelwatch.store.counts import MonthCounts, channel_months
from channelwatch.store.models import Channel, Office, Publication, Run
from channelwatch.store.opened import Store

__all__ = [
    "PAGE_SIZE",
    "VERDICT_LABELS",
    "NoStore",
    "PublicationItem",
    "PublicationPage",
    "ReadOnlyStore",
    "RunItem",
    "Verdict",
    "month_counts",
    "open_readonly",
    "publication_page",
    "recent_runs",
    "verdicts",
    "worst_verdict",
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
    _office_ids: dict[str, int] = field(default_factory=dict, repr=False)

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        """A read transaction; ``NoStore`` while the SQLite file does not exist yet."""
        if self.sqlite_path is not None and not self.sqlite_path.exists():
            raise NoStore(f"统计库 {self.sqlite_path} 还不存在：请先运行 channelwatch import 或 poll")
        with store.read(self.engine) as conn:
            yield conn

    def office_id(self, conn: Connection, instance: Instance | None = None) -> int | None:
        """The stored office of ``instance`` (default: the view's own); a county's offices by their id."""
        chosen = instance or self.instance
        county_office = chosen.parent is not None and chosen.office_key is not None
        cache = f"key:{chosen.office_key}" if county_office else f"name:{chosen.config.office.name}"
        if cache not in self._office_ids:
            if not conn.dialect.has_table(conn, "office"):
                return None
            _pub, _channel, office, _run = _tables()
            by_name = office.c.name == chosen.config.office.name
            condition = office.c.key == chosen.office_key if county_office else by_name
            found = conn.execute(select(office.c.id).where(condition)).scalar()
            if found is None:
                return None
            self._office_ids[cache] = int(found)
        return self._office_ids[cache]

    def county_offices(self, conn: Connection) -> dict[str, int]:
        """A county's offices as stored: office id (its file name) → row id; one query for all of them."""
        if not conn.dialect.has_table(conn, "office"):
            return {}
        _pub, _channel, office, _run = _tables()
        keys = list(self.instance.offices)
        rows = conn.execute(select(office.c.key, office.c.id).where(office.c.key.in_(keys)))
        found = {str(key): int(oid) for key, oid in rows}
        self._office_ids.update({f"key:{key}": oid for key, oid in found.items()})
        return found

    def office_channels(self, conn: Connection, office_ids: list[int]) -> dict[int, dict[str, int]]:
        """Several offices' stored channels (office row id → channel id → channel row id) in one query."""
        _pub, channel, _office, _run = _tables()
        found: dict[int, dict[str, int]] = {oid: {} for oid in office_ids}
        rows = conn.execute(
            select(channel.c.office_id, channel.c.key, channel.c.id).where(channel.c.office_id.in_(office_ids))
        )
        for office_id, key, channel_id in rows:
            found[int(office_id)][str(key)] = int(channel_id)
        return found

    def channel_ids(self, conn: Connection, office_id: int) -> dict[str, int]:
        _pub, channel, _office, _run = _tables()
        rows = conn.execute(select(channel.c.key, channel.c.id).where(channel.c.office_id == office_id))
        return {key: int(cid) for key, cid in rows}

    def as_store(self, conn: Connection, instance: Instance | None = None) -> Store | None:
        """The ``Store`` the report builders take, without ``open_store``'s schema and sync writes."""
        chosen = instance or self.instance
        office_id = self.office_id(conn, chosen)
        if office_id is None:
            return None
        return Store(
            engine=self.engine,
            instance=chosen,
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


def month_counts(conn: Connection, channel_id: int, year: int) -> MonthCounts:
    """Publications of one channel and year per month and repost mark, from the counts table (store/counts.py)."""
    return channel_months(conn, [channel_id], year)[channel_id]


def year_figures(conn: Connection, office_id: int, year: int, channel_keys: list[str]) -> Summary:
    """The channel figures of a year (totals, reposts, per month) from the counts table (store/counts.py).

    The same counts as ``stats.figures.summarise`` without the unique-items figure and WeChat's pushes,
    which the overview does not show: ``unique_items`` is 0 here and ``pushes`` is None. The summary
    download computes both.
    """
    _pub, channel, office, _run = _tables()
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
    for channel_id, counts in channel_months(conn, list(figures), year).items():
        figure = figures[channel_id]
        for (month, is_repost), count in sorted(counts.items()):
            figure.total += count
            figure.by_month[month] = figure.by_month.get(month, 0) + count
            if is_repost:
                figure.reposts += count
                figure.reposts_by_month[month] = figure.reposts_by_month.get(month, 0) + count
    return Summary(office_row.name, office_row.short_name, Period(year), list(figures.values()), unique_items=0)


# --- inspection verdicts -----------------------------------------------------------------------------------

VERDICT_LABELS = {"veto": "否决风险", "warning": "预警", "ok": "正常", "unchecked": "无检查项", "none": "未检查"}
VERDICT_RANK = {"veto": 0, "warning": 1, "none": 2, "ok": 3, "unchecked": 4}


@dataclass
class Verdict:
    """A channel's verdict as the latest inspection stored it (``inspect`` or its job); ``none``: never inspected."""

    verdict: str = "none"
    reasons: str = ""
    as_of: str = ""

    @property
    def label(self) -> str:
        return VERDICT_LABELS.get(self.verdict, self.verdict)

    @property
    def rules(self) -> str:
        """The findings' rule names, for the short line under the verdict (the details are on hover)."""
        names = [line.split("（", 1)[0] for line in self.reasons.splitlines() if line]
        return "、".join(dict.fromkeys(names))

    @property
    def hover(self) -> str:
        if self.verdict == "none":
            return "还没有运行过检查预警（channelwatch inspect 或 inspect 任务）"
        head = f"按 {self.as_of} 检查"
        return head + ("：\n" + self.reasons if self.reasons else "：没有问题" if self.verdict == "ok" else "")


def verdicts(conn: Connection, office_ids: list[int]) -> dict[int, dict[str, Verdict]]:
    """office id → channel key → the latest stored verdict (only channels ever inspected)."""
    return {
        office_id: {key: Verdict(row.verdict, row.reasons or "", row.as_of) for key, row in rows.items()}
        for office_id, rows in latest_verdicts(conn, office_ids).items()
    }


def worst_verdict(found: list[Verdict]) -> Verdict:
    """An office's verdict: its worst channel's (never inspected counts as 未检查)."""
    return min(found, key=lambda v: VERDICT_RANK.get(v.verdict, 2), default=Verdict())


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
    office_name: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "rejected", "interrupted")


def recent_runs(
    conn: Connection,
    office_id: int | list[int],
    zone: str,
    *,
    limit: int,
    channel_id: int | None = None,
    before: int | None = None,
    failures_only: bool = False,
) -> list[RunItem]:
    """Newest runs first, by primary key (``before`` pages on): an index walk, never a sort of the log.

    ``office_id``: one office, or several (a county's), each run then named with its office.
    """
    _pub, channel, office, run = _tables()
    offices = office_id if isinstance(office_id, list) else [office_id]
    query = (
        select(run, channel.c.key, channel.c.name, office.c.name.label("office_name"))
        .join(channel, channel.c.id == run.c.channel_id)
        .join(office, office.c.id == channel.c.office_id)
        .where(channel.c.office_id.in_(offices))
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
            office_name=r.office_name,
        )
        for r in conn.execute(query)
    ]


def office_today(zone: str, now: datetime | None = None) -> datetime:
    return to_office(now or datetime.now(UTC), zone)


# --- the county's offices ------------------------------------------------------------------------------------

STATE_RANK = {"overdue": 0, "empty": 0, "warn": 1, "ok": 2, "report": 3, "none": 4}


@dataclass
class OfficeOverview:
    """One office on a county's ``/``: its year figures, its worst channel's two-week state, its verdict."""

    key: str
    name: str
    group: str
    channels: int  # configured channels (0: the office reports by sheet)
    total: int = 0
    month_total: int | None = None
    reposts: int = 0
    state: str = "none"  # overdue | empty | warn | ok (worst channel); report (sheet office); none (not stored)
    worst: Any = None  # the worst channel's Freshness
    late: list[str] = field(default_factory=list)  # channels past the limit or never published
    warned: list[str] = field(default_factory=list)
    verdict: Verdict = field(default_factory=Verdict)
    flags: list[str] = field(default_factory=list)  # 无发布, and a sheet office's 未报送 …

    @property
    def no_publication(self) -> bool:
        return "无发布" in self.flags

    @property
    def stored(self) -> bool:
        return self.state != "none"

    def severity(self) -> tuple[int, int, str]:
        """Worst first: past the limit (the longest silence first), then about to pass it, then fine."""
        days = self.worst.days_since if self.worst is not None and self.worst.days_since is not None else 10**6
        if self.state in ("overdue", "empty"):
            return (0, -days, self.key)
        return (STATE_RANK[self.state], -days, self.key)


def county_office_row(
    key: str,
    office: Instance,
    office_id: int | None,
    channel_ids: dict[str, int],
    counts: dict[int, MonthCounts],
    fresh: dict[str, Any],
    judged: dict[str, Verdict],
    current_month: int | None,
    sheet: Any = None,
    unrecorded_after: list[str] | None = None,
) -> OfficeOverview:
    """``OfficeOverview`` of one office from what the county page read for all of them at once.

    ``unrecorded_after``: its channels without any record up to the year's end, whose 0 is no count (无数据).
    """
    configured = office.config.channels
    row = OfficeOverview(
        key=key, name=office.config.office.name, group=office.group or "未分组", channels=len(configured)
    )
    if office_id is None:
        return row
    if not configured:
        row.state = "report"
        if sheet is not None:
            row.total, row.reposts, row.flags = sheet.total, sheet.reposts, list(sheet.flags)
        return row
    row.month_total = 0 if current_month else None
    for channel in configured:
        for (month, is_repost), count in counts.get(channel_ids.get(channel.id, -1), {}).items():
            row.total += count
            row.reposts += count if is_repost else 0
            if current_month and month == current_month:
                row.month_total = (row.month_total or 0) + count
    states = [fresh[c.id] for c in configured if c.id in fresh]
    row.late = [f.name for f in states if f.status in ("overdue", "empty")]
    row.warned = [f.name for f in states if f.status == "warn"]
    if states:
        row.worst = min(
            states,
            key=lambda f: (STATE_RANK[f.status], -(f.days_since if f.days_since is not None else 10**6)),
        )
        row.state = row.worst.status
    row.verdict = worst_verdict([judged.get(c.id, Verdict()) for c in configured])
    missing = unrecorded_after or []
    if missing and len(missing) == len(configured):
        row.flags.append("无数据")  # as the county roll-up says it: nothing recorded, not "published nothing"
    else:
        if row.total == 0:
            row.flags.append("无发布")
        if missing:
            row.flags.append(f"无数据：{'、'.join(missing)}")
    return row


# --- many channels at once (a county's) ----------------------------------------------------------------------


def year_range(conn: Connection, channel_ids: list[int]) -> tuple[int | None, int | None]:
    """The oldest and newest office-time year with a publication on any of the channels, in one statement.

    Two index probes per channel (min and max under the channel's prefix of the period index), done by
    the database as correlated subqueries rather than two round trips per channel.
    """
    if not channel_ids:
        return None, None
    pub, channel, _office, _run = _tables()
    low = select(func.min(pub.c.local_year)).where(pub.c.channel_id == channel.c.id).scalar_subquery()
    high = select(func.max(pub.c.local_year)).where(pub.c.channel_id == channel.c.id).scalar_subquery()
    per_channel = select(low.label("low"), high.label("high")).where(channel.c.id.in_(channel_ids)).subquery()
    first, last = conn.execute(select(func.min(per_channel.c.low), func.max(per_channel.c.high))).one()
    return (None if first is None else int(first)), (None if last is None else int(last))
