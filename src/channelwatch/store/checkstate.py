"""What the inspection checks remember: pages read by polls, homepage probes, link checks, alerts mailed.

- ``PageObservation``: one read of a website's homepage or of a column's first page by a poll: how
  many entries it listed, which of them carried a date, and every link on it. The checks judge the
  latest read; the links feed the link check. One read per page and (UTC) day is kept. Entries
  without a date are kept here (they cannot be publications: a publication needs a date), because
  an undated entry counts as *not updated*.
- ``ProbeResult``: one request of a homepage by the ``probe`` job (opened within the time limit or not).
- ``LinkCheck`` / ``LinkFinding``: one run of the ``link-check`` job and the links it found dead.
- ``InspectionAlert``: the last finding of each (channel, rule) that was mailed, so that a finding
  is mailed when it appears or gets worse, at most once a day (docs/inspection.md).
- ``InspectionVerdict``: each channel's verdict from the latest inspection (``inspect``, the ``inspect``
  job, ``county inspect``), with its reasons, so that the web view shows it without judging anything.

Each row is written in its own short transaction (or inside the poll's own), like ``jobstate``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, Connection, DateTime, Index, Text, UniqueConstraint, func, select
from sqlmodel import Field, SQLModel

from channelwatch.store import db

__all__ = [
    "InspectionAlert",
    "InspectionVerdict",
    "LinkCheck",
    "LinkFinding",
    "PageObservation",
    "PageRecord",
    "ProbeResult",
    "VerdictRecord",
    "latest_verdicts",
    "record_pages",
    "record_verdicts",
]


def _utc(nullable: bool = True) -> Any:
    return Column(DateTime(timezone=True), nullable=nullable)


class PageObservation(SQLModel, table=True):
    __tablename__ = "page_observation"
    __table_args__ = (Index("ix_page_observation_url", "channel_id", "kind", "url", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id")
    kind: str  # homepage | column | list
    name: str  # the column's name, 首页 for the homepage
    url: str = Field(sa_type=Text)
    observed_at: datetime = Field(sa_column=_utc(nullable=False))
    http_status: int | None = None
    error: str | None = Field(default=None, sa_type=Text)  # why the page could not be read
    items: int = 0  # entries listed (columns) — 0 is a blank column
    undated: int = 0  # entries without a recognisable date
    entries: str = Field(default="[]", sa_type=Text)  # JSON: [[link, "YYYY-MM-DD" | null, title], …]
    links: str = Field(default="[]", sa_type=Text)  # JSON: every http(s) link on the page
    dates: str = Field(default="[]", sa_type=Text)  # JSON: homepage only, every date shown on it


class ProbeResult(SQLModel, table=True):
    __tablename__ = "probe_result"
    __table_args__ = (Index("ix_probe_result_time", "channel_id", "probed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id")
    url: str = Field(sa_type=Text)
    probed_at: datetime = Field(sa_column=_utc(nullable=False))
    ok: bool
    http_status: int | None = None
    elapsed_ms: int | None = None
    error: str | None = Field(default=None, sa_type=Text)


class LinkCheck(SQLModel, table=True):
    __tablename__ = "link_check"
    __table_args__ = (Index("ix_link_check_time", "channel_id", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id")
    started_at: datetime = Field(sa_column=_utc(nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=_utc())
    status: str = "running"  # running | ok
    checked: int = 0
    failed: int = 0


class LinkFinding(SQLModel, table=True):
    __tablename__ = "link_finding"
    __table_args__ = (Index("ix_link_finding_check", "check_id"),)

    id: int | None = Field(default=None, primary_key=True)
    check_id: int = Field(foreign_key="link_check.id")
    channel_id: int = Field(foreign_key="channel.id")
    url: str = Field(sa_type=Text)
    found_on: str = Field(sa_type=Text)
    status: str  # an HTTP status ("404") or timeout | error
    certainty: str  # 确定 | 疑似
    checked_at: datetime = Field(sa_column=_utc(nullable=False))


class InspectionAlert(SQLModel, table=True):
    __tablename__ = "inspection_alert"
    __table_args__ = (UniqueConstraint("office_id", "channel_key", "rule", name="uq_inspection_alert"),)

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id")
    channel_key: str
    rule: str
    level: str  # veto | warning
    measure: int = 0  # what got worse: stale columns, dead links, days, ‰ of failed probes
    mailed_on: str  # office-time date of the last mail about it
    updated_at: datetime = Field(sa_column=_utc(nullable=False))


class InspectionVerdict(SQLModel, table=True):
    """A channel's verdict from the latest inspection: one row per (office, channel), replaced by a newer one."""

    __tablename__ = "inspection_verdict"
    __table_args__ = (UniqueConstraint("office_id", "channel_key", name="uq_inspection_verdict"),)

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id")
    channel_key: str
    verdict: str  # veto | warning | ok | unchecked (a website with neither homepage nor columns to check)
    reasons: str = Field(default="", sa_type=Text)  # one finding a line: 规则（级别）：detail
    as_of: str  # the office-time date the inspection judged (YYYY-MM-DD)
    inspected_at: datetime = Field(sa_column=_utc(nullable=False))


@dataclass
class VerdictRecord:
    channel_key: str
    verdict: str
    reasons: str


def record_verdicts(
    conn: Connection, office_id: int, as_of: str, verdicts: list[VerdictRecord], moment: datetime | None = None
) -> None:
    """Keep each channel's verdict, inside the caller's transaction.

    A verdict replaces the stored one unless that one judged a later date: ``inspect --as-of`` a past day
    must not pass for the office's state today.
    """
    table = _table(InspectionVerdict)
    when = moment or db.utc_now()
    stored = {
        key: day
        for key, day in conn.execute(select(table.c.channel_key, table.c.as_of).where(table.c.office_id == office_id))
    }
    for record in verdicts:
        known = stored.get(record.channel_key)
        if known is not None and known > as_of:
            continue
        if known is not None:
            conn.execute(
                table.delete().where(table.c.office_id == office_id, table.c.channel_key == record.channel_key)
            )
        conn.execute(
            table.insert().values(
                office_id=office_id,
                channel_key=record.channel_key,
                verdict=record.verdict,
                reasons=record.reasons,
                as_of=as_of,
                inspected_at=when,
            )
        )


def latest_verdicts(conn: Connection, office_ids: list[int]) -> dict[int, dict[str, Any]]:
    """office id → channel key → the stored verdict row (empty where no inspection ever ran)."""
    found: dict[int, dict[str, Any]] = {}
    if not office_ids or not conn.dialect.has_table(conn, "inspection_verdict"):
        return found
    table = _table(InspectionVerdict)
    for row in conn.execute(select(table).where(table.c.office_id.in_(office_ids))):
        found.setdefault(int(row.office_id), {})[row.channel_key] = row
    return found


def _table(model: Any) -> Any:
    return model.__table__


@dataclass
class PageRecord:
    """One page as a poll read it, ready to store (see ``PageObservation``)."""

    kind: str
    name: str
    url: str
    http_status: int | None
    error: str | None
    entries: list[tuple[str | None, str | None, str | None]]
    links: list[str]
    dates: list[str]

    @property
    def undated(self) -> int:
        return sum(1 for _, day, _ in self.entries if day is None)


def record_pages(conn: Connection, channel_id: int, pages: list[PageRecord], moment: datetime | None = None) -> None:
    """Store what a poll read of a channel's homepage and columns, inside the caller's transaction."""
    if not pages:
        return
    when = moment or db.utc_now()
    table = _table(PageObservation)
    # The checks judge a page by its latest read of a day: earlier reads of the same day are dropped, so a
    # poll every 30 minutes keeps one row per page and day, not 48.
    day_start = when.replace(hour=0, minute=0, second=0, microsecond=0)
    for page in pages:
        same_day = table.delete().where(
            table.c.channel_id == channel_id,
            table.c.kind == page.kind,
            table.c.url == page.url,
            table.c.observed_at >= day_start,
        )
        # A failed read keeps the day's good one: a page that fails once is not judged by that failure.
        conn.execute(same_day.where(table.c.error.is_not(None)) if page.error else same_day)
    conn.execute(
        table.insert(),
        [
            {
                "channel_id": channel_id,
                "kind": page.kind,
                "name": page.name[:250],
                "url": page.url,
                "observed_at": when,
                "http_status": page.http_status,
                "error": page.error,
                "items": len(page.entries),
                "undated": page.undated,
                "entries": json.dumps(page.entries, ensure_ascii=False),
                "links": json.dumps(page.links, ensure_ascii=False),
                "dates": json.dumps(page.dates),
            }
            for page in pages
        ],
    )


def latest_pages(conn: Connection, channel_id: int, before: datetime | None = None) -> dict[tuple[str, str], Any]:
    """The latest observation of each (kind, url) of a channel read before ``before`` (default: ever).

    A page never read before ``before`` falls back to its first read after it, so that a date in
    the past still judges every configured column (its entries dated later are ignored by the rules).
    """
    table = _table(PageObservation)
    earlier = select(func.max(table.c.id)).where(table.c.channel_id == channel_id)
    if before is not None:
        earlier = earlier.where(table.c.observed_at < before)
    ids = set(conn.execute(earlier.group_by(table.c.kind, table.c.url)).scalars())
    if before is not None:
        later = (
            select(func.min(table.c.id))
            .where(table.c.channel_id == channel_id, table.c.observed_at >= before)
            .group_by(table.c.kind, table.c.url)
        )
        ids |= set(conn.execute(later).scalars())
    found: dict[tuple[str, str], Any] = {}
    if not ids:
        return found
    for row in conn.execute(select(table).where(table.c.id.in_(ids)).order_by(table.c.id)):
        key = (row.kind, row.url)
        if key not in found or before is None or db.as_utc(row.observed_at) < before:
            found[key] = row
    for key, row in list(found.items()):
        if row.error:
            # A page that failed once is judged by its good read of the day before, if it had one: only a
            # page that stays unreadable for a day counts as one the inspectors cannot open.
            good = conn.execute(
                select(table)
                .where(
                    table.c.channel_id == channel_id,
                    table.c.kind == row.kind,
                    table.c.url == row.url,
                    table.c.error.is_(None),
                    table.c.id < row.id,
                    table.c.observed_at >= db.as_utc(row.observed_at) - timedelta(days=1),
                )
                .order_by(table.c.id.desc())
                .limit(1)
            ).first()
            if good is not None:
                found[key] = good
    return found
