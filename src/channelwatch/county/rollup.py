"""The county roll-up: one row per office, per channel kind, grouped, with subtotals and the county total.

Offices on the county's database (``source = "store"``) are counted from their publications with the
office's counting rules (docs/counting-rules.md): per channel, reposts apart, and the office's items
deduplicated across its channels by normalised title (不同渠道相同信息计1条). All offices are counted with
two grouped queries over the period index, not one query per office: the roll-up of a hundred offices
costs about what one office's summary does.

Offices that keep their own server send their quarterly sheet (``county import-stats``); their rows come
from the reported figures (``source = "report"``). A sheet states no cross-channel deduplication unless it
has the template's 不同渠道相同信息计1条 line: without it the office's total stands in for it.

Flags: 未报送 (a reporting office with no sheet for the period; 未报送第N季度 for an ended quarter
missing from a longer period), 无发布 (no publication in the period), and 超期未更新 for channels past
the two-week rule today.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select

from channelwatch.dates import to_office
from channelwatch.instance.config import CHANNEL_KINDS, KIND_LABELS, Instance
from channelwatch.stats.figures import Period, publication_tables
from channelwatch.stats.freshness import _newest
from channelwatch.store import Store
from channelwatch.store.reported import ReportedFigure, ReportedSheet

__all__ = ["KIND_COLUMNS", "NO_GROUP", "CountyRollup", "GroupRow", "OfficeRow", "build_rollup"]

NO_GROUP = "未分组"
KIND_COLUMNS = [(kind, KIND_LABELS[kind]) for kind in CHANNEL_KINDS]


@dataclass
class OfficeRow:
    id: str
    name: str
    group: str
    source: str  # store | report
    by_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANNEL_KINDS, 0))
    reposts: int = 0
    unique_items: int = 0
    year_to_date: int = 0
    flags: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "group": self.group,
            "source": self.source,
            "total": self.total,
            "reposts": self.reposts,
            "unique_items": self.unique_items,
            "by_kind": dict(self.by_kind),
            "year_to_date": self.year_to_date,
            "flags": list(self.flags),
        }


@dataclass
class GroupRow:
    """A group's subtotal (or, with ``group = None``, the county total)."""

    group: str | None
    offices: list[OfficeRow]

    @property
    def total(self) -> int:
        return sum(o.total for o in self.offices)

    @property
    def reposts(self) -> int:
        return sum(o.reposts for o in self.offices)

    @property
    def unique_items(self) -> int:
        return sum(o.unique_items for o in self.offices)

    @property
    def year_to_date(self) -> int:
        return sum(o.year_to_date for o in self.offices)

    @property
    def by_kind(self) -> dict[str, int]:
        return {kind: sum(o.by_kind[kind] for o in self.offices) for kind in CHANNEL_KINDS}

    def as_json(self) -> dict[str, Any]:
        return {"group": self.group, "total": self.total, "offices": [o.id for o in self.offices]}


@dataclass
class CountyRollup:
    county: str
    period: Period
    groups: list[GroupRow]
    generated_on: date

    @property
    def offices(self) -> list[OfficeRow]:
        return [o for g in self.groups for o in g.offices]

    @property
    def county_total(self) -> GroupRow:
        return GroupRow(None, self.offices)

    @property
    def title(self) -> str:
        return f"{self.county}{self.period.label}各单位信息发布情况汇总"

    def as_json(self) -> dict[str, Any]:
        """The JSON contract of ``county summary --format json`` (README, county section)."""
        total = self.county_total
        return {
            "county": self.county,
            "period": self.period.as_json(),
            "total": total.total,
            "reposts": total.reposts,
            "unique_items": total.unique_items,
            "offices": [o.as_json() for o in self.offices],
            "groups": [g.as_json() for g in self.groups],
        }


def _ended_quarters(period: Period, today: date) -> list[int]:
    quarters = sorted({(m - 1) // 3 + 1 for m in period.months})
    ended = []
    for quarter in quarters:
        last = Period(period.year, quarter=quarter).end
        if last < today:
            ended.append(quarter)
    return ended


def _store_rows(conn: Connection, stores: dict[str, Store], period: Period) -> dict[str, OfficeRow]:
    """Every store office's figures in two grouped queries (counts, then distinct titles)."""
    pub, channel, _office = publication_tables()
    kind_of: dict[int, tuple[str, str]] = {}  # channel row id → (office key, kind)
    for key, opened in stores.items():
        for channel_config in opened.instance.config.channels:
            kind_of[opened.channel_ids[channel_config.id]] = (key, channel_config.kind)
    rows = {
        key: OfficeRow(
            id=key,
            name=opened.instance.config.office.name,
            group=opened.instance.group or NO_GROUP,
            source="store",
        )
        for key, opened in stores.items()
    }
    if not kind_of:
        return rows
    first, last = period.months[0], period.months[-1]
    year_to_end = and_(
        pub.c.local_year == period.year,
        pub.c.local_month <= last,
        pub.c.channel_id.in_(list(kind_of)),
    )
    counts = conn.execute(
        select(pub.c.channel_id, pub.c.local_month, pub.c.is_repost, func.count(), func.count(pub.c.title_key))
        .where(year_to_end)
        .group_by(pub.c.channel_id, pub.c.local_month, pub.c.is_repost)
    )
    untitled: dict[str, int] = defaultdict(int)
    for channel_id, month, is_repost, count, titled in counts:
        key, kind = kind_of[channel_id]
        row = rows[key]
        row.year_to_date += count
        if month >= first:
            row.by_kind[kind] += count
            untitled[key] += count - titled
            if is_repost:
                row.reposts += count
    # 不同渠道相同信息计1条: an office's distinct titles across its channels (items without a title
    # cannot be matched and count one each), for every office at once.
    in_period = and_(
        pub.c.local_year == period.year,
        pub.c.local_month.between(first, last),
        pub.c.channel_id.in_(list(kind_of)),
        pub.c.title_key.is_not(None),
    )
    distinct = (
        select(channel.c.office_id, pub.c.title_key)
        .join(channel, channel.c.id == pub.c.channel_id)
        .where(in_period)
        .group_by(channel.c.office_id, pub.c.title_key)
        .subquery()
    )
    by_office_id = {opened.office_id: key for key, opened in stores.items()}
    for office_id, titled in conn.execute(select(distinct.c.office_id, func.count()).group_by(distinct.c.office_id)):
        rows[by_office_id[office_id]].unique_items = int(titled)
    for key, count in untitled.items():
        rows[key].unique_items += count
    return rows


def _overdue(conn: Connection, opened: Store, limit_days: int, now: datetime) -> list[str]:
    """The office's channels past the two-week rule today (or never published): one flag each."""
    pub, _channel, _office = publication_tables()
    zone = opened.instance.timezone
    today = to_office(now, zone).date()
    late = []
    for channel_config in opened.instance.config.channels:
        newest = _newest(conn, pub, opened.channel_ids[channel_config.id])
        if newest is None:
            late.append(f"{channel_config.name}无发布记录")
            continue
        moment = newest.replace(tzinfo=UTC) if newest.tzinfo is None else newest
        days = (today - to_office(moment, zone).date()).days
        if days >= limit_days:
            late.append(f"{channel_config.name}已{days}天未更新")
    return [f"超期未更新：{'、'.join(late)}"] if late else []


def _report_row(conn: Connection, opened: Store, period: Period, today: date) -> OfficeRow:
    sheets_table = ReportedSheet.__table__  # type: ignore[attr-defined]
    figures_table = ReportedFigure.__table__  # type: ignore[attr-defined]
    instance = opened.instance
    row = OfficeRow(
        id=instance.office_key or "",
        name=instance.config.office.name,
        group=instance.group or NO_GROUP,
        source="report",
    )
    last = period.months[-1]
    sheets = {
        s.quarter: s
        for s in conn.execute(
            select(sheets_table).where(
                sheets_table.c.office_id == opened.office_id,
                sheets_table.c.year == period.year,
                sheets_table.c.quarter <= (last - 1) // 3 + 1,
            )
        )
    }
    quarters = sorted({(m - 1) // 3 + 1 for m in period.months})
    missing = [q for q in _ended_quarters(period, today) if q not in sheets]
    if sheets:
        figures = list(
            conn.execute(select(figures_table).where(figures_table.c.sheet_id.in_([s.id for s in sheets.values()])))
        )
        months_summed = 0
        for figure in figures:
            if figure.month == 0:
                continue
            if figure.month <= last:
                months_summed += figure.total
            if figure.month in period.months:
                row.by_kind[figure.kind] += figure.total
                row.reposts += figure.reposts
        end_quarter = (last - 1) // 3 + 1
        if last % 3 == 0 and end_quarter in sheets:
            # The sheet's own 本年累计 stands, even when earlier quarters' sheets never arrived.
            sheet_id = sheets[end_quarter].id
            row.year_to_date = sum(f.total for f in figures if f.month == 0 and f.sheet_id == sheet_id)
        else:
            row.year_to_date = months_summed
        uniques = [sheets[q].unique_items for q in quarters if q in sheets]
        whole_quarters = period.month is None
        if whole_quarters and uniques and all(u is not None for u in uniques):
            row.unique_items = sum(int(u) for u in uniques)
        else:
            row.unique_items = row.total
    if not any(q in sheets for q in quarters):
        row.flags.append("未报送")  # nothing reported for the period (yet): never shown as 无发布
    elif missing:
        labels = "、".join(f"第{'一二三四'[q - 1]}季度" for q in missing)
        row.flags.append(f"未报送{labels}")
    if row.total == 0 and "未报送" not in row.flags:
        row.flags.append("无发布")
    return row


def build_rollup(
    county: Instance,
    own: Store,
    stores: dict[str, Store],
    period: Period,
    *,
    now: datetime | None = None,
) -> CountyRollup:
    """The roll-up of ``period`` over every office of the county instance, in office-file order."""
    from channelwatch.store import read

    moment = now or datetime.now(UTC)
    today = to_office(moment, county.timezone).date()
    on_store = {key: s for key, s in stores.items() if s.instance.config.channels}
    limit_days = county.config.freshness.limit_days
    with read(own.engine) as conn:
        rows = _store_rows(conn, on_store, period)
        for key, opened in stores.items():
            if key in on_store:
                row = rows[key]
                if row.total == 0:
                    row.flags.append("无发布")
                row.flags.extend(_overdue(conn, opened, limit_days, moment))
            else:
                rows[key] = _report_row(conn, opened, period, today)
    groups: dict[str, list[OfficeRow]] = {}
    for key in stores:
        row = rows[key]
        groups.setdefault(row.group, []).append(row)
    assert county.county is not None
    return CountyRollup(
        county=county.county.name,
        period=period,
        groups=[GroupRow(name, offices) for name, offices in groups.items()],
        generated_on=today,
    )
