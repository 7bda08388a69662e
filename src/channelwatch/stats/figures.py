"""Counts per channel per period: the figures of the report and the quarterly statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, select

from channelwatch.store.counts import PUSH, TITLE, period_code
from channelwatch.store.models import Channel, Office, Publication


@dataclass(frozen=True)
class Period:
    year: int
    quarter: int | None = None
    month: int | None = None

    def __post_init__(self) -> None:
        if self.quarter is not None and self.month is not None:
            raise ValueError("a period is a year, a quarter or a month, not both")
        if self.quarter is not None and not 1 <= self.quarter <= 4:
            raise ValueError("quarter must be 1–4")
        if self.month is not None and not 1 <= self.month <= 12:
            raise ValueError("month must be 1–12")

    @property
    def months(self) -> list[int]:
        if self.month is not None:
            return [self.month]
        if self.quarter is not None:
            first = (self.quarter - 1) * 3 + 1
            return [first, first + 1, first + 2]
        return list(range(1, 13))

    @property
    def start(self) -> date:
        return date(self.year, self.months[0], 1)

    @property
    def end(self) -> date:
        last = self.months[-1]
        following = date(self.year + 1, 1, 1) if last == 12 else date(self.year, last + 1, 1)
        return following - timedelta(days=1)

    @property
    def label(self) -> str:
        """Chinese label used in report sentences: 2020年, 2020年第四季度, 2020年6月."""
        if self.month is not None:
            return f"{self.year}年{self.month}月"
        if self.quarter is not None:
            return f"{self.year}年第{'一二三四'[self.quarter - 1]}季度"
        return f"{self.year}年"

    def as_json(self) -> dict[str, Any]:
        return {
            "year": self.year,
            "quarter": self.quarter,
            "month": self.month,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }


@dataclass
class ChannelFigures:
    key: str
    kind: str
    name: str
    total: int = 0
    reposts: int = 0
    pushes: int | None = None  # WeChat only: pushes (群发/发布) beside the article count
    by_month: dict[int, int] = field(default_factory=dict)
    reposts_by_month: dict[int, int] = field(default_factory=dict)

    @property
    def original(self) -> int:
        return self.total - self.reposts

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": self.key,
            "kind": self.kind,
            "name": self.name,
            "total": self.total,
            "reposts": self.reposts,
            "original": self.original,
        }
        if self.pushes is not None:
            entry["pushes"] = self.pushes
        return entry


@dataclass
class Summary:
    office: str
    short_name: str
    period: Period
    channels: list[ChannelFigures]
    unique_items: int

    @property
    def total(self) -> int:
        return sum(c.total for c in self.channels)

    @property
    def reposts(self) -> int:
        return sum(c.reposts for c in self.channels)

    @property
    def original(self) -> int:
        return self.total - self.reposts

    @property
    def comparable(self) -> bool:
        """Enough data to compare against: publications in at least half of the period's months.

        A store that began in December holds a few posts of the previous year; comparing a full
        year with those would tell the reader a false story of growth.
        """
        covered = {m for c in self.channels for m, n in c.by_month.items() if n}
        return len(covered) * 2 >= len(self.period.months)

    def month_rows(self) -> list[tuple[str, int, dict[str, int]]]:
        rows = []
        for month in self.period.months:
            per = {c.key: c.by_month.get(month, 0) for c in self.channels}
            rows.append((f"{self.period.year}-{month:02d}", sum(per.values()), per))
        return rows

    def quarter_rows(self) -> list[tuple[int, int, dict[str, int]]]:
        quarters = sorted({(m - 1) // 3 + 1 for m in self.period.months})
        rows = []
        for quarter in quarters:
            months = range((quarter - 1) * 3 + 1, quarter * 3 + 1)
            per = {c.key: sum(c.by_month.get(m, 0) for m in months) for c in self.channels}
            rows.append((quarter, sum(per.values()), per))
        return rows

    def as_json(self) -> dict[str, Any]:
        """The JSON contract of `summary --format json` (docs/configuration.md, JSON output)."""
        return {
            "office": self.office,
            "period": self.period.as_json(),
            "total": self.total,
            "reposts": self.reposts,
            "unique_items": self.unique_items,
            "channels": [c.as_json() for c in self.channels],
            "months": [{"month": m, "total": t, "channels": per} for m, t, per in self.month_rows()],
            "quarters": [{"quarter": q, "total": t, "channels": per} for q, t, per in self.quarter_rows()],
        }


def _covers_half(figures: ChannelFigures, months: list[int]) -> bool:
    covered = sum(1 for m in months if figures.by_month.get(m, 0))
    return covered * 2 >= len(months)


def comparison_base(current: Summary, previous: Summary) -> Summary | None:
    """``previous`` when a year-on-year sentence compares like with like, else ``None`` (no sentence).

    Like with like (docs/counting-rules.md, year-on-year): every channel that has publications in one
    of the two periods has publications in the other, and in each period it covers at least half of
    the period's months; a month compares only with the same month of the year before, so both must
    hold data. A store that starts in December holds a few of last year's posts, a channel added this
    year has nothing last year, and one read early in January holds a few of this year's: comparing
    any of these tells a false story of growth or decline.
    """
    now = {c.key: c for c in current.channels}
    before = {c.key: c for c in previous.channels}
    active = {key for key, c in now.items() if c.total} | {key for key, c in before.items() if c.total}
    if not active:
        return None
    for key in active:
        for figures, period in ((now.get(key), current.period), (before.get(key), previous.period)):
            if figures is None or not figures.total or not _covers_half(figures, period.months):
                return None
    return previous


def publication_tables() -> tuple[Any, Any, Any]:
    return (
        Publication.__table__,  # type: ignore[attr-defined]
        Channel.__table__,  # type: ignore[attr-defined]
        Office.__table__,  # type: ignore[attr-defined]
    )


def _office_channels(
    conn: Connection, office_id: int, period: Period, channel_keys: list[str] | None
) -> tuple[Any, dict[int, ChannelFigures], list[int]]:
    """The office row, the figures to fill (in configured order) and the ids of the office's other channels."""
    _pub, channel, office = publication_tables()
    office_row = conn.execute(select(office).where(office.c.id == office_id)).one()
    query = select(channel).where(channel.c.office_id == office_id).order_by(channel.c.id)
    all_rows = list(conn.execute(query))
    channel_rows = all_rows
    if channel_keys is not None:
        order = {key: i for i, key in enumerate(channel_keys)}
        channel_rows = sorted((r for r in all_rows if r.key in order), key=lambda r: order[r.key])
    figures = {r.id: ChannelFigures(key=r.key, kind=r.kind, name=r.name) for r in channel_rows}
    return office_row, figures, [r.id for r in all_rows if r.id not in figures]


def summarise(conn: Connection, office_id: int, period: Period, channel_keys: list[str] | None = None) -> Summary:
    """The figures of one office for one period, channels in their configured (stored) order.

    Read from the counts the database keeps beside the publications (``store/counts.py``): a few dozen
    rows whatever the size of the store. The one figure counts cannot always give is the unique-items
    figure when the office has publications in the period on a channel left out of ``channel_keys``
    (a channel removed from the configuration): then titles are counted from the publications.
    """
    office_row, figures, others = _office_channels(conn, office_id, period, channel_keys)
    if not figures:
        return Summary(office_row.name, office_row.short_name, period, [], 0)
    ids = ", ".join(str(int(i)) for i in figures)
    months = f"local_year = {int(period.year)} AND local_month BETWEEN {period.months[0]} AND {period.months[-1]}"
    untitled = 0
    unpushed: dict[int, int] = {}
    for channel_id, month, is_repost, count, no_title, no_push in conn.exec_driver_sql(
        "SELECT channel_id, local_month, is_repost, publications, untitled, unpushed FROM publication_count "
        f"WHERE channel_id IN ({ids}) AND {months} AND publications > 0 "
        "ORDER BY channel_id, local_month, is_repost"
    ):
        figure = figures[channel_id]
        figure.total += count
        figure.by_month[month] = figure.by_month.get(month, 0) + count
        untitled += no_title
        unpushed[channel_id] = unpushed.get(channel_id, 0) + no_push
        if is_repost:
            figure.reposts += count
            figure.reposts_by_month[month] = figure.reposts_by_month.get(month, 0) + count

    code = period_code(period.year, period.quarter, period.month)
    distinct = {
        (kind, owner): int(n)
        for kind, owner, n in conn.exec_driver_sql(
            "SELECT kind, owner_id, distinct_values FROM figure_distinct "
            f"WHERE period = {code} AND ((kind = '{TITLE}' AND owner_id = {int(office_id)}) "
            f"OR (kind = '{PUSH}' AND owner_id IN ({ids})))"
        )
    }
    for channel_id, figure in figures.items():
        if figure.kind == "wechat":
            # A push is one article_id; an article known without its push counts as a push of its own.
            figure.pushes = distinct.get((PUSH, channel_id), 0) + unpushed.get(channel_id, 0)

    left_out = (
        others
        and conn.exec_driver_sql(
            "SELECT 1 FROM publication_count WHERE channel_id IN ({}) AND {} AND publications > 0 LIMIT 1".format(
                ", ".join(str(int(i)) for i in others), months
            )
        ).first()
    )
    if left_out:
        titled = _distinct_titles(conn, period, list(figures))
    else:
        titled = distinct.get((TITLE, office_id), 0)
    return Summary(
        office=office_row.name,
        short_name=office_row.short_name,
        period=period,
        channels=list(figures.values()),
        unique_items=titled + untitled,
    )


def _in_period(period: Period, channel_ids: list[int]) -> Any:
    pub = Publication.__table__  # type: ignore[attr-defined]
    return and_(
        pub.c.local_year == period.year,
        pub.c.channel_id.in_(channel_ids),
        pub.c.local_month.between(period.months[0], period.months[-1]),
    )


def _distinct_titles(conn: Connection, period: Period, channel_ids: list[int]) -> int:
    # One item posted on several channels (same normalised title) counts once; GROUP BY in a subquery
    # rather than count(DISTINCT): both databases hash or sort it faster.
    pub = Publication.__table__  # type: ignore[attr-defined]
    in_period = _in_period(period, channel_ids)
    titles = select(pub.c.title_key).where(in_period, pub.c.title_key.is_not(None)).group_by(pub.c.title_key)
    return int(conn.execute(select(func.count()).select_from(titles.subquery())).scalar_one())


def summarise_publications(
    conn: Connection, office_id: int, period: Period, channel_keys: list[str] | None = None
) -> Summary:
    """The same figures as ``summarise``, counted from the publications themselves (time grows with the store).

    Kept as the reference the counts are tested against, and for ``recount`` to compare with.
    """
    pub, channel, office = publication_tables()
    office_row = conn.execute(select(office).where(office.c.id == office_id)).one()
    query = select(channel).where(channel.c.office_id == office_id).order_by(channel.c.id)
    channel_rows = list(conn.execute(query))
    if channel_keys is not None:
        order = {key: i for i, key in enumerate(channel_keys)}
        channel_rows = sorted((r for r in channel_rows if r.key in order), key=lambda r: order[r.key])
    figures = {r.id: ChannelFigures(key=r.key, kind=r.kind, name=r.name) for r in channel_rows}
    if not figures:
        return Summary(office_row.name, office_row.short_name, period, [], 0)

    in_period = and_(
        pub.c.local_year == period.year,
        pub.c.channel_id.in_(list(figures)),
        pub.c.local_month.between(period.months[0], period.months[-1]),
    )
    grouped = conn.execute(
        select(pub.c.channel_id, pub.c.local_month, pub.c.is_repost, func.count(), func.count(pub.c.title_key))
        .where(in_period)
        .group_by(pub.c.channel_id, pub.c.local_month, pub.c.is_repost)
    )
    untitled = 0
    for channel_id, month, is_repost, count, titled_count in grouped:
        figure = figures[channel_id]
        figure.total += count
        figure.by_month[month] = figure.by_month.get(month, 0) + count
        untitled += count - titled_count
        if is_repost:
            figure.reposts += count
            figure.reposts_by_month[month] = figure.reposts_by_month.get(month, 0) + count

    wechat_ids = [cid for cid, f in figures.items() if f.kind == "wechat"]
    if wechat_ids:
        # A push is one article_id; an article known without its push counts as a push of its own.
        pushes = conn.execute(
            select(
                pub.c.channel_id,
                func.count(func.distinct(pub.c.push_id)),
                func.count().filter(pub.c.push_id.is_(None)),
            )
            .where(in_period, pub.c.channel_id.in_(wechat_ids))
            .group_by(pub.c.channel_id)
        )
        for channel_id, distinct_pushes, loose in pushes:
            figures[channel_id].pushes = int(distinct_pushes) + int(loose)
        for channel_id in wechat_ids:
            if figures[channel_id].pushes is None:
                figures[channel_id].pushes = 0

    # One item posted on several channels (same normalised title) counts once here; items without a
    # title cannot be matched across channels and count one each. GROUP BY in a subquery rather than
    # count(DISTINCT): both databases hash or sort it faster (0.5 s instead of 1.1 s for a year of a
    # million publications on SQLite, scripts/benchmark.py summary).
    distinct_titles = (
        select(pub.c.title_key).where(in_period, pub.c.title_key.is_not(None)).group_by(pub.c.title_key).subquery()
    )
    titled = conn.execute(select(func.count()).select_from(distinct_titles)).scalar_one()
    return Summary(
        office=office_row.name,
        short_name=office_row.short_name,
        period=period,
        channels=list(figures.values()),
        unique_items=int(titled) + int(untitled),
    )
