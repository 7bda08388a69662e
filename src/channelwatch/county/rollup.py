"""The county roll-up: one row per office, per channel kind, grouped, with subtotals and the county total.

Offices on the county's database (``source = "store"``) are counted from their publications with the
office's counting rules (docs/counting-rules.md): per channel, reposts apart, and the office's items
deduplicated across its channels by normalised title (不同渠道相同信息计1条). All offices are counted with
two statements over the counts kept beside the publications (store/counts.py), not one query per office
and not over the publications: the roll-up of a hundred offices over ten years costs about what one
office's summary does.

Offices that keep their own server send their quarterly sheet (``county import-stats``); their rows come
from the reported figures (``source = "report"``). 不同渠道相同信息计1条 comes from the sheet's line of that
name; a sheet without it (written before channelwatch wrote that line, or a template left blank there)
leaves the figure unknown: ``None``, shown as — and null in JSON, and so are the subtotal and total
it belongs to, since a sum that leaves an office out would pass for the county's figure.

A full year of a sheet office is its fourth quarter's sheet's own 本年累计 when that sheet came (the office's
latest word on January to December, even if an earlier quarter's sheet never arrived); otherwise the months its
sheets cover.

Flags: 未报送 (a reporting office with no sheet for an ended period; 未报送第N季度 for an ended quarter missing
from a longer period; 本期尚未结束 when no quarter of the period has ended yet and no sheet came), 无发布 (no
publication in the period), 无数据 (channels without any record up to the period's end: their 0 is no count),
and 超期未更新 for channels past the two-week rule today.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, select

from channelwatch.dates import to_office
from channelwatch.instance.config import CHANNEL_KINDS, KIND_LABELS, Instance
from channelwatch.stats.figures import Period, _distinct_titles
from channelwatch.stats.freshness import configured_freshness, newest_publications
from channelwatch.store import Store
from channelwatch.store.counts import TITLE, period_code
from channelwatch.store.reported import ReportedFigure, ReportedSheet

__all__ = ["KIND_COLUMNS", "NO_GROUP", "CountyRollup", "GroupRow", "OfficeRow", "build_rollup", "rollup_queries"]

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
    # None when unknown: a sheet that does not state it (an older sheet, a template left blank there), or
    # a month of a sheet office. Shown as —, never as zero or as the total.
    unique_items: int | None = 0
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
    def unique_items(self) -> int | None:
        """None when any office's figure is unknown: a sum that leaves an office out is no subtotal."""
        found = [o.unique_items for o in self.offices]
        return None if None in found else sum(n for n in found if n is not None)

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


def rollup_queries(office_ids: list[int], period: Period) -> tuple[str, str]:
    """The roll-up's two statements over the counts table (``store/counts.py``), for every office at once.

    The first gives publications and untitled ones per channel, repost mark and in-period or earlier in
    the year (本年累计); the second the distinct titles of each office in the period (不同渠道相同信息计1条).
    Both read a few rows per channel and month, whatever the size of the store. Public so that
    ``scripts/bench_county.py`` times ``psql`` running exactly these statements.
    """
    offices = ", ".join(str(int(i)) for i in office_ids)
    first, last = period.months[0], period.months[-1]
    counts = (
        f"SELECT pc.channel_id, c.office_id, CASE WHEN pc.local_month >= {first} THEN 1 ELSE 0 END AS in_period, "
        "pc.is_repost, sum(pc.publications), sum(pc.untitled) "
        "FROM publication_count pc JOIN channel c ON c.id = pc.channel_id "
        f"WHERE c.office_id IN ({offices}) AND pc.local_year = {int(period.year)} AND pc.local_month <= {last} "
        "AND pc.publications > 0 "
        f"GROUP BY pc.channel_id, c.office_id, CASE WHEN pc.local_month >= {first} THEN 1 ELSE 0 END, pc.is_repost"
    )
    code = period_code(period.year, period.quarter, period.month)
    distinct = (
        "SELECT owner_id, distinct_values FROM figure_distinct "
        f"WHERE kind = '{TITLE}' AND period = {code} AND owner_id IN ({offices})"
    )
    return counts, distinct


def _store_rows(conn: Connection, stores: dict[str, Store], period: Period) -> dict[str, OfficeRow]:
    """Every store office's figures from the counts table, in two statements (``rollup_queries``)."""
    kind_of: dict[int, str] = {}  # configured channel row id → kind
    for opened in stores.values():
        for channel_config in opened.instance.config.channels:
            kind_of[opened.channel_ids[channel_config.id]] = channel_config.kind
    rows = {
        key: OfficeRow(
            id=key,
            name=opened.instance.config.office.name,
            group=opened.instance.group or NO_GROUP,
            source="store",
        )
        for key, opened in stores.items()
    }
    if not stores:
        return rows
    by_office_id = {opened.office_id: key for key, opened in stores.items()}
    counts, distinct = rollup_queries(list(by_office_id), period)
    untitled: dict[str, int] = defaultdict(int)
    left_out: set[str] = set()  # offices with publications in the period on a channel no longer configured
    for channel_id, office_id, in_period, is_repost, count, no_title in conn.exec_driver_sql(counts):
        key = by_office_id[office_id]
        kind = kind_of.get(channel_id)
        if kind is None:
            if in_period:
                left_out.add(key)
            continue
        row = rows[key]
        row.year_to_date += int(count)
        if in_period:
            row.by_kind[kind] += int(count)
            untitled[key] += int(no_title)
            if is_repost:
                row.reposts += int(count)
    titled = {by_office_id[owner]: int(n) for owner, n in conn.exec_driver_sql(distinct)}
    for key, row in rows.items():
        if key in left_out:
            # The office's distinct titles in the counts include a channel left out of its configuration:
            # counted from its configured channels' publications instead (as ``summarise`` does).
            ids = [stores[key].channel_ids[c.id] for c in stores[key].instance.config.channels]
            row.unique_items = _distinct_titles(conn, period, ids) + untitled[key]
        else:
            row.unique_items = titled.get(key, 0) + untitled[key]
    return rows


def _overdue(opened: Store, newest: dict[int, datetime], limit_days: int, now: datetime) -> list[str]:
    """The office's channels past the two-week rule today (or never published): one flag each."""
    channels = opened.instance.config.channels
    found = configured_freshness(
        channels,
        opened.channel_ids,
        newest,
        opened.instance.timezone,
        warn_days=limit_days,
        limit_days=limit_days,
        now=now,
    )
    late = [
        f"{f.name}无发布记录" if f.status == "empty" else f"{f.name}已{f.days_since}天未更新"
        for f in (found[c.id] for c in channels)
        if f.status in ("empty", "overdue")
    ]
    return [f"超期未更新：{'、'.join(late)}"] if late else []


def _reported_unique(period: Period, sheets: dict[int, Any]) -> int | None:
    """不同渠道相同信息计1条 of a sheet office for ``period``, from what its sheets state; None if they cannot say.

    A quarter is its sheet's figure. A year is the January-to-quarter-end figure of its latest sheet when
    every quarter before it has a sheet (the months counted are exactly those); quarters' figures are not
    added up, since an item published in two quarters counts once in the year. A month is never stated.
    """
    if period.month is not None:
        return None
    if period.quarter is not None:
        sheet = sheets.get(period.quarter)
        return None if sheet is None else sheet.unique_items
    if not sheets:
        return None
    latest = max(sheets)
    if any(q not in sheets for q in range(1, latest)):
        return None
    sheet = sheets[latest]
    if sheet.unique_year_to_date is not None:
        return int(sheet.unique_year_to_date)
    return sheet.unique_items if latest == 1 else None


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
    ended = _ended_quarters(period, today)
    missing = [q for q in ended if q not in sheets]
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
            to_date = [f for f in figures if f.month == 0 and f.sheet_id == sheet_id]
            row.year_to_date = sum(f.total for f in to_date)
            if period.quarter is None and period.month is None:
                # A whole year is exactly January to the fourth quarter's end: the office's own figures for it.
                row.by_kind = dict.fromkeys(CHANNEL_KINDS, 0)
                for figure in to_date:
                    row.by_kind[figure.kind] += figure.total
                row.reposts = sum(f.reposts for f in to_date)
        else:
            row.year_to_date = months_summed
    # Unknown without a sheet that states it (a month, a quarter or year not reported): —, never 0, and the
    # subtotal and county total it belongs to are unknown too.
    row.unique_items = _reported_unique(period, sheets)
    if not any(q in sheets for q in quarters):
        # Nothing reported for the period: never shown as 无发布. Before any of its quarters has ended
        # nothing can be reported yet.
        row.flags.append("未报送" if ended else "本期尚未结束")
    elif missing:
        labels = "、".join(f"第{'一二三四'[q - 1]}季度" for q in missing)
        row.flags.append(f"未报送{labels}")
    if row.total == 0 and not any(flag in row.flags for flag in ("未报送", "本期尚未结束")):
        row.flags.append("无发布")
    return row


NO_DATA = "无数据"


def _no_data(conn: Any, opened: Store, last: tuple[int, int], total: int) -> list[str]:
    """无发布 for a period without publications; 无数据 where a channel has no record up to the period's end.

    A channel nothing was imported or polled from (a town's new account, an export never imported) shows 0: that
    0 counts nothing, and the county must not add it up as "published nothing" without being told.
    """
    from channelwatch.store.schema import unrecorded_channels

    missing = [name for _key, name, _first in unrecorded_channels(conn, opened.office_id, opened.instance, last)]
    if missing and len(missing) == len(opened.instance.config.channels):
        return [f"{NO_DATA}：各渠道在本期结束前都没有发布记录，0 不是统计结果"]
    flags = ["无发布"] if total == 0 else []
    if missing:
        flags.append(f"{NO_DATA}的渠道：{'、'.join(missing)}（本期结束前没有发布记录，其 0 不是统计结果）")
    return flags


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
        newest = newest_publications(conn, [i for opened in on_store.values() for i in opened.channel_ids.values()])
        last = (period.year, period.months[-1])
        for key, opened in stores.items():
            if key in on_store:
                row = rows[key]
                row.flags.extend(_no_data(conn, opened, last, row.total))
                row.flags.extend(_overdue(opened, newest, limit_days, moment))
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
