"""The inspection checks as of a date: findings, verdicts and the figures behind them (docs/inspection.md).

Every check compares a number with two lines from ``[inspection]``: the national veto line (单项否决)
and an early-warning line below it. Ages are whole days in office time from the *as-of* date (the
day of the check, default today): an item published on the as-of date is 0 days old. Probes and link
checks count when they ran in the window that ends with the as-of date.

- 首页不更新 (``homepage_stale``): days since the newest item on the homepage — the newest date shown
  on it, or the newest publication it links to; a homepage that shows neither (a page of navigation
  only) is judged by its second-level pages, the columns.
- 栏目不更新 (``columns_stale``): a column is stale when its newest dated entry is at least its limit old
  (by class, or ``max_age``); a column whose entries carry no date is stale (undated counts as not
  updated). ``static`` columns have no update rule.
- 空白栏目 (``blank_columns``): a column whose page lists no entry, or could not be opened.
- 站点无法访问 (``site_unreachable``): the share of failed homepage probes in the window.
- 链接不可用 (``dead_links``): the dead links of the latest link check in the window.
- 政务新媒体 (``newmedia_stale``): days since a Weibo/WeChat/other channel last published.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select

from channelwatch import store
from channelwatch.checks.linkcheck import latest_findings
from channelwatch.dates import to_office
from channelwatch.errors import UserError
from channelwatch.instance.config import ChannelConfig, ColumnConfig, InspectionConfig
from channelwatch.store import Store
from channelwatch.store.checkstate import ProbeResult, latest_pages
from channelwatch.store.models import Publication

__all__ = [
    "ACTIONS",
    "LEVEL_LABELS",
    "RULE_LABELS",
    "Finding",
    "Inspection",
    "inspect",
    "inspect_offices",
    "store_verdicts",
    "worst",
]

LEVEL_RANK = {"ok": 0, "warning": 1, "veto": 2}
LEVEL_LABELS = {"veto": "否决风险", "warning": "预警", "ok": "正常"}
CLASS_LABELS = {"dynamic": "动态/要闻", "notice": "通知公告/政策文件", "plan": "人事/规划计划", "static": "静态"}
STATUS_LABELS = {"ok": "正常", "warning": "预警", "stale": "超期未更新", "blank": "空白"}
RULE_ORDER = ["site_unreachable", "homepage_stale", "columns_stale", "blank_columns", "newmedia_stale", "dead_links"]
RULE_LABELS = {
    "site_unreachable": "站点无法访问",
    "homepage_stale": "首页不更新",
    "columns_stale": "栏目不更新",
    "blank_columns": "空白栏目",
    "newmedia_stale": "政务新媒体不更新",
    "dead_links": "链接不可用",
}
ACTIONS = {
    "site_unreachable": "检查服务器、网络和域名解析，确保首页在 15 秒内能够打开，并查明失败时段的原因。",
    "homepage_stale": "在首页发布或更新内容（要闻、通知公告等），并确认首页显示的是最新信息。",
    "columns_stale": (
        "按栏目类别及时更新所列栏目（动态/要闻类每两周、通知公告/政策文件类每半年、人事/规划计划类每年至少一条），"
        "并确保每条信息都标注发布日期；确实不再更新的栏目应整合或下线。"
    ),
    "blank_columns": "为空白栏目补充内容，或将其整合、下线；无法打开的栏目页面请修复。",
    "newmedia_stale": "两周内至少发布一条信息，并注意原创内容的比例；长期不用的账号应按规定注销。",
    "dead_links": "修复或删除不可用的链接（确定项优先）；疑似项请人工打开复核后处理。",
}
NEWMEDIA_KINDS = ("weibo", "wechat", "other")


def worst(levels: list[str]) -> str:
    return max(levels, key=lambda level: LEVEL_RANK[level], default="ok")


@dataclass
class Finding:
    rule: str
    level: str  # veto | warning
    channel: str  # channel id
    channel_name: str
    detail: str
    # What "gets worse" means for alerts: more stale or blank columns, more dead links. Day counts and
    # rates are 0 here, so that a lasting finding is not mailed again every day as its age grows.
    measure: int = 0

    @property
    def action(self) -> str:
        return ACTIONS[self.rule]

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "level": self.level,
            "channel": self.channel,
            "detail": self.detail,
            "action": self.action,
            "rule_label": RULE_LABELS[self.rule],
            "level_label": LEVEL_LABELS[self.level],
        }


@dataclass
class ColumnStatus:
    channel: str
    name: str
    column_class: str
    url: str
    items: int
    undated: int
    last_published: date | None
    age_days: int | None
    limit_days: int | None
    status: str  # ok | warning | stale | blank
    problem: str | None = None  # why the page could not be read

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "name": self.name,
            "class": self.column_class,
            "url": self.url,
            "items": self.items,
            "undated": self.undated,
            "last_published": self.last_published.isoformat() if self.last_published else None,
            "age_days": self.age_days,
            "limit_days": self.limit_days,
            "status": self.status,
        }


@dataclass
class HomepageStatus:
    channel: str
    url: str
    last_updated: date | None
    age_days: int | None
    read: bool  # the latest poll could read the homepage

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "url": self.url,
            "last_updated": self.last_updated.isoformat() if self.last_updated else None,
            "age_days": self.age_days,
        }


@dataclass
class Availability:
    channel: str
    probes: int
    failed: int
    enough: bool  # at least ``min_probes`` probes: the rate is judged

    @property
    def rate(self) -> float | None:
        return round(self.failed / self.probes, 4) if self.probes else None

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "probes": self.probes,
            "failed": self.failed,
            "rate": self.rate,
            "enough": self.enough,
        }


@dataclass
class DeadLinkRow:
    channel: str
    url: str
    found_on: str
    status: str
    certainty: str

    def as_json(self) -> dict[str, Any]:
        status: int | str = int(self.status) if self.status.isdigit() else self.status
        return {
            "channel": self.channel,
            "url": self.url,
            "found_on": self.found_on,
            "status": status,
            "certainty": self.certainty,
        }


@dataclass
class NewMediaStatus:
    channel: str
    last_published: date | None
    days_since: int | None
    longest_gap_days: int | None
    days_over_limit: int
    repost_share: float | None
    posts: int  # in the period

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "last_published": self.last_published.isoformat() if self.last_published else None,
            "days_since": self.days_since,
            "longest_gap_days": self.longest_gap_days,
            "days_over_limit": self.days_over_limit,
            "repost_share": self.repost_share,
            "posts": self.posts,
        }


@dataclass
class ChannelVerdict:
    channel: str
    name: str
    kind: str
    verdict: str
    checked: bool = True  # False: a website without homepage or columns, nothing to judge

    @property
    def label(self) -> str:
        """The verdict as every output shows it: what was never looked at is 未检查, not 正常."""
        return LEVEL_LABELS[self.verdict] if self.checked else "未检查"

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "name": self.name,
            "kind": self.kind,
            "verdict": self.verdict,
            "verdict_label": LEVEL_LABELS[self.verdict],
            "checked": self.checked,
        }


@dataclass
class Inspection:
    office: str
    as_of: date
    findings: list[Finding] = field(default_factory=list)
    channels: list[ChannelVerdict] = field(default_factory=list)
    homepages: list[HomepageStatus] = field(default_factory=list)
    columns: list[ColumnStatus] = field(default_factory=list)
    availability: list[Availability] = field(default_factory=list)
    dead_links: list[DeadLinkRow] = field(default_factory=list)
    newmedia: list[NewMediaStatus] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return worst([f.level for f in self.findings])

    @property
    def verdict_label(self) -> str:
        return LEVEL_LABELS[self.verdict]

    def as_json(self) -> dict[str, Any]:
        return {
            "office": self.office,
            "as_of": self.as_of.isoformat(),
            "verdict": self.verdict,
            "verdict_label": self.verdict_label,
            "findings": [f.as_json() for f in self.findings],
            "channels": [c.as_json() for c in self.channels],
            "homepages": [h.as_json() for h in self.homepages],
            "columns": [c.as_json() for c in self.columns],
            "availability": [a.as_json() for a in self.availability],
            "dead_links": [d.as_json() for d in self.dead_links],
            "newmedia": [n.as_json() for n in self.newmedia],
        }


# --- the checks ------------------------------------------------------------------------------------------


def _level(value: float, warning: float, veto: float) -> str | None:
    if value >= veto:
        return "veto"
    if value >= warning:
        return "warning"
    return None


def _column_limits(column: ColumnConfig, settings: InspectionConfig) -> tuple[int, int] | None:
    """(warning, limit) days of a column: its class's, or ``max_age`` with the class's proportion."""
    days = settings.class_days(column.column_class)
    if column.max_age is None:
        return days
    if days is None:  # a static column given a max_age: warn at the dynamic class's proportion
        days = (settings.dynamic_warn_days, settings.dynamic_days)
    warning = max(1, min(column.max_age, round(column.max_age * days[0] / days[1])))
    return warning, column.max_age


def _entry_dates(row: Any, as_of: date) -> tuple[int, int, date | None]:
    """(entries, undated, newest date not after ``as_of``) of a page observation."""
    entries = json.loads(row.entries or "[]")
    dated = [date.fromisoformat(day) for _, day, _ in entries if day]
    shown = [d for d in dated if d <= as_of]
    return len(entries), len(entries) - len(dated), max(shown, default=None)


def _column_status(
    channel: ChannelConfig, column: ColumnConfig, row: Any, as_of: date, settings: InspectionConfig
) -> ColumnStatus:
    limits = _column_limits(column, settings)
    limit = limits[1] if limits else None
    base = {"channel": channel.id, "name": column.name, "column_class": column.column_class, "url": column.url}
    if row is None or row.error:
        problem = "尚未抓取" if row is None else str(row.error)
        return ColumnStatus(
            **base,
            items=0,
            undated=0,
            last_published=None,
            age_days=None,
            limit_days=limit,
            status="blank",
            problem=problem,
        )
    items, undated, newest = _entry_dates(row, as_of)
    age = (as_of - newest).days if newest else None
    if items == 0:
        status = "blank"
    elif limits is None:
        status = "ok"
    elif age is None or age >= limits[1]:
        status = "stale"  # no dated entry: the inspectors count undated items as not updated
    elif age >= limits[0]:
        status = "warning"
    else:
        status = "ok"
    return ColumnStatus(
        **base, items=items, undated=undated, last_published=newest, age_days=age, limit_days=limit, status=status
    )


def _columns_findings(channel: ChannelConfig, columns: list[ColumnStatus], settings: InspectionConfig) -> list[Finding]:
    findings: list[Finding] = []
    stale = [c for c in columns if c.status == "stale"]
    hot = [c for c in stale if c.column_class in ("dynamic", "notice")]
    level = None
    if len(hot) >= settings.stale_veto_dynamic_notice or len(stale) >= settings.stale_veto_any:
        level = "veto"
    elif len(stale) >= settings.stale_warning:
        level = "warning"
    if level:

        def one(c: ColumnStatus) -> str:
            age = f"{c.age_days}天未更新" if c.age_days is not None else "条目均无发布日期"
            return f"{c.name}（{CLASS_LABELS[c.column_class]}，{age}，期限{c.limit_days}天）"

        detail = (
            f"{len(stale)} 个栏目超期未更新（其中动态/通知公告类 {len(hot)} 个；"
            f"否决线：动态/通知公告类 {settings.stale_veto_dynamic_notice} 个或任意 {settings.stale_veto_any} 个，"
            f"预警线 {settings.stale_warning} 个）：" + "、".join(one(c) for c in stale)
        )
        findings.append(Finding("columns_stale", level, channel.id, channel.name, detail, len(stale)))
    blank = [c for c in columns if c.status == "blank"]
    level = _level(len(blank), settings.blank_warning, settings.blank_veto)
    if level:
        names = "、".join(c.name + (f"（{c.problem}）" if c.problem else "") for c in blank)
        detail = (
            f"{len(blank)} 个空白栏目（否决线 {settings.blank_veto} 个，预警线 {settings.blank_warning} 个）：{names}"
        )
        findings.append(Finding("blank_columns", level, channel.id, channel.name, detail, len(blank)))
    return findings


def _homepage(
    conn: Any,
    channel: ChannelConfig,
    channel_id: int,
    pages: dict[tuple[str, str], Any],
    as_of: date,
    settings: InspectionConfig,
) -> tuple[HomepageStatus, Finding | None] | None:
    url = channel.homepage
    if url is None:
        return None
    row = pages.get(("homepage", url))
    if row is None or row.error:
        return HomepageStatus(channel.id, url, None, None, read=False), None
    candidates = [d for d in (date.fromisoformat(t) for t in json.loads(row.dates or "[]")) if d <= as_of]
    links = json.loads(row.links or "[]")
    pub = Publication.__table__  # type: ignore[attr-defined]
    for start in range(0, len(links), 500):
        newest = conn.execute(
            select(func.max(pub.c.local_date)).where(
                pub.c.channel_id == channel_id, pub.c.url.in_(links[start : start + 500]), pub.c.local_date <= as_of
            )
        ).scalar()
        if newest is not None:
            candidates.append(newest if isinstance(newest, date) else date.fromisoformat(str(newest)))
    if not candidates:
        # A homepage of navigation only: judged by its second-level pages (the columns).
        for key, page in pages.items():
            if key[0] == "column" and not page.error:
                newest_entry = _entry_dates(page, as_of)[2]
                if newest_entry is not None:
                    candidates.append(newest_entry)
    last = max(candidates, default=None)
    age = (as_of - last).days if last else None
    status = HomepageStatus(channel.id, url, last, age, read=True)
    shown = settings.homepage_limit_days
    if age is None:
        detail = f"首页 {url} 及其栏目上没有任何带发布日期的信息（无日期视为未更新）"
        return status, Finding("homepage_stale", "veto", channel.id, channel.name, detail)
    level = _level(age, settings.homepage_warn_days, shown)
    if level is None:
        return status, None
    detail = (
        f"首页已 {age} 天没有新信息（最新 {last.isoformat() if last else ''}；"
        f"否决线 {shown} 天，预警线 {settings.homepage_warn_days} 天）"
    )
    return status, Finding("homepage_stale", level, channel.id, channel.name, detail)


def _window(as_of: date, days: int, zone: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC: the ``days`` office-time days that end with ``as_of``."""
    tz = ZoneInfo(zone)
    end = datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return end - timedelta(days=days), end


def _availability(
    conn: Any, channel: ChannelConfig, channel_id: int, as_of: date, zone: str, settings: InspectionConfig
) -> tuple[Availability, Finding | None] | None:
    if channel.homepage is None:
        return None
    since, until = _window(as_of, settings.availability_days, zone)
    probes = ProbeResult.__table__  # type: ignore[attr-defined]
    total, failed = conn.execute(
        select(func.count(), func.coalesce(func.sum(case((probes.c.ok.is_(False), 1), else_=0)), 0)).where(
            probes.c.channel_id == channel_id, probes.c.probed_at >= since, probes.c.probed_at < until
        )
    ).one()
    row = Availability(channel.id, int(total), int(failed), enough=int(total) >= settings.min_probes)
    if not row.enough or row.rate is None:
        return row, None
    level = _level(row.failed / row.probes, settings.unreachable_warning, settings.unreachable_veto)
    if level is None:
        return row, None
    detail = (
        f"近 {settings.availability_days} 天首页探测 {row.probes} 次，失败 {row.failed} 次（{row.rate:.2%}；"
        f"否决线 {settings.unreachable_veto:.0%}，预警线 {settings.unreachable_warning:.0%}）"
    )
    return row, Finding("site_unreachable", level, channel.id, channel.name, detail)


def _dead_links(
    conn: Any, channel: ChannelConfig, channel_id: int, as_of: date, zone: str, settings: InspectionConfig
) -> tuple[list[DeadLinkRow], Finding | None]:
    since, until = _window(as_of, settings.link_window_days, zone)
    _check, rows = latest_findings(conn, channel_id, since, until)
    dead = [DeadLinkRow(channel.id, r.url, r.found_on, r.status, r.certainty) for r in rows]
    if not dead:
        return dead, None
    certain = sum(1 for d in dead if d.certainty == "确定")
    detail = f"{len(dead)} 个链接不可用（确定 {certain} 个，疑似 {len(dead) - certain} 个，疑似项已复查仍失败）"
    return dead, Finding("dead_links", "warning", channel.id, channel.name, detail, len(dead))


def _newmedia(
    conn: Any, channel: ChannelConfig, channel_id: int, as_of: date, settings: InspectionConfig
) -> tuple[NewMediaStatus, Finding | None]:
    pub = Publication.__table__  # type: ignore[attr-defined]
    start = as_of - timedelta(days=settings.newmedia_period_days)

    def day(value: Any) -> date:
        return value if isinstance(value, date) else date.fromisoformat(str(value))

    newest = conn.execute(
        # local_year bounds let the period index narrow the rows before local_date is read.
        select(func.max(pub.c.local_date)).where(
            pub.c.channel_id == channel_id, pub.c.local_year <= as_of.year, pub.c.local_date <= as_of
        )
    ).scalar()
    rows = list(
        conn.execute(
            select(pub.c.local_date, func.count(), func.sum(case((pub.c.is_repost.is_(True), 1), else_=0)))
            .where(
                pub.c.channel_id == channel_id,
                pub.c.local_year.between(start.year, as_of.year),
                pub.c.local_date > start,
                pub.c.local_date <= as_of,
            )
            .group_by(pub.c.local_date)
            .order_by(pub.c.local_date)
        )
    )
    days = [day(r[0]) for r in rows]
    posts = sum(int(r[1]) for r in rows)
    reposts = sum(int(r[2] or 0) for r in rows)
    limit = settings.newmedia_limit_days
    gaps = [(b - a).days for a, b in pairwise(days)] + ([(as_of - days[-1]).days] if days else [])
    last = day(newest) if newest is not None else None
    since = (as_of - last).days if last else None
    status = NewMediaStatus(
        channel=channel.id,
        last_published=last,
        days_since=since,
        longest_gap_days=max(gaps) if gaps else None,
        days_over_limit=sum(max(0, g - limit) for g in gaps),
        repost_share=round(reposts / posts, 4) if posts else None,
        posts=posts,
    )
    if since is None:
        detail = f"{channel.name}尚无任何发布记录（请确认账号已接入统计，或已按规定注销）"
        return status, Finding("newmedia_stale", "veto", channel.id, channel.name, detail)
    level = _level(since, settings.newmedia_warn_days, limit)
    if level is None:
        return status, None
    period = settings.newmedia_period_days
    history = (
        f"近 {period} 天最长间隔 {status.longest_gap_days} 天，超期累计 {status.days_over_limit} 天"
        if status.longest_gap_days is not None
        else f"近 {period} 天内没有发布"
    )
    detail = (
        f"已 {since} 天未发布（最新 {last.isoformat() if last else ''}；否决线 {limit} 天，"
        f"预警线 {settings.newmedia_warn_days} 天）；{history}"
    )
    return status, Finding("newmedia_stale", level, channel.id, channel.name, detail)


def office_today(opened: Store) -> date:
    return to_office(datetime.now(UTC), opened.instance.timezone).date()


def check_office(opened: Store, office: str | None) -> None:
    """``--office``: this instance holds one office; a different one is a user error."""
    if office is None:
        return
    config = opened.instance.config.office
    keys = (getattr(config, "id", None), getattr(opened.instance, "office_key", None))
    accepted = {config.name, config.short_name, str(opened.office_id), *(str(k) for k in keys if k)}
    if office not in accepted:
        raise UserError(f"本实例只有单位「{config.name}」（{opened.instance.config_path}），没有「{office}」")


def inspect(opened: Store, as_of: date | None = None, channel_keys: list[str] | None = None) -> Inspection:
    """Run every check as of ``as_of`` (default: today in office time)."""
    settings = opened.instance.config.inspection
    zone = opened.instance.timezone
    day = as_of or office_today(opened)
    result = Inspection(office=opened.instance.config.office.name, as_of=day)
    _, end = _window(day, 1, zone)
    with store.read(opened.engine) as conn:
        for channel in opened.instance.channels(channel_keys):
            channel_id = opened.channel_id(channel.id)
            findings: list[Finding] = []
            if channel.kind == "website":
                pages = latest_pages(conn, channel_id, before=end)
                columns = [
                    _column_status(channel, column, pages.get(("column", column.url)), day, settings)
                    for column in channel.columns
                ]
                result.columns.extend(columns)
                findings.extend(_columns_findings(channel, columns, settings))
                homepage = _homepage(conn, channel, channel_id, pages, day, settings)
                if homepage is not None:
                    result.homepages.append(homepage[0])
                    findings.extend([homepage[1]] if homepage[1] else [])
                probed = _availability(conn, channel, channel_id, day, zone, settings)
                if probed is not None:
                    result.availability.append(probed[0])
                    findings.extend([probed[1]] if probed[1] else [])
                dead, finding = _dead_links(conn, channel, channel_id, day, zone, settings)
                result.dead_links.extend(dead)
                findings.extend([finding] if finding else [])
            elif channel.kind in NEWMEDIA_KINDS:
                media, finding = _newmedia(conn, channel, channel_id, day, settings)
                result.newmedia.append(media)
                findings.extend([finding] if finding else [])
            result.findings.extend(findings)
            verdict = worst([f.level for f in findings])
            checked = channel.kind != "website" or bool(channel.columns or channel.homepage)
            result.channels.append(ChannelVerdict(channel.id, channel.name, channel.kind, verdict, checked))
    result.findings.sort(key=lambda f: (-LEVEL_RANK[f.level], RULE_ORDER.index(f.rule), f.channel))
    result.channels.sort(key=lambda c: -LEVEL_RANK[c.verdict])
    return result


def inspect_offices(stores: dict[str, Store], as_of: date | None = None) -> list[tuple[str, Inspection]]:
    """Every office's inspection (a county's offices, keyed by office id), worst first.

    Worst first: the verdict, then the number of veto findings, then of warnings, then the office id.
    """
    results = [(key, inspect(opened, as_of)) for key, opened in stores.items()]

    def severity(item: tuple[str, Inspection]) -> tuple[int, int, int, str]:
        key, found = item
        vetoes = sum(1 for f in found.findings if f.level == "veto")
        return (-LEVEL_RANK[found.verdict], -vetoes, -(len(found.findings) - vetoes), key)

    return sorted(results, key=severity)


def store_verdicts(opened: Store, result: Inspection) -> None:
    """Keep each channel's verdict and its reasons, for the web view (which never judges by itself)."""
    from channelwatch.store.checkstate import VerdictRecord, record_verdicts

    records = [
        VerdictRecord(
            channel_key=channel.channel,
            verdict=channel.verdict if channel.checked else "unchecked",
            reasons="\n".join(
                f"{RULE_LABELS[f.rule]}（{LEVEL_LABELS[f.level]}）：{f.detail}"
                for f in result.findings
                if f.channel == channel.channel
            ),
        )
        for channel in result.channels
    ]
    with store.write(opened.engine) as conn:
        record_verdicts(conn, opened.office_id, result.as_of.isoformat(), records)
