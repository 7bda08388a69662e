"""The stored data: offices, channels, publications and runs.

A *publication* is one item an office published on one channel, stored once per identity
(``identity.py``). A *run* is one import or poll of one channel: every publication remembers the
run that first saw it, so each figure can be traced to the files and polls behind it.

Times are stored in UTC; each publication also stores its local (office time) year, month and
day, because every figure groups by office-time periods and that grouping must be an index scan
over 10 million rows, not a time-zone conversion per row.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

__all__ = ["Channel", "Office", "Publication", "Run", "SchemaVersion"]


def _utc_column(nullable: bool = True) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable)


class SchemaVersion(SQLModel, table=True):
    __tablename__ = "schema_version"

    id: int = Field(default=1, primary_key=True)
    version: int


class Office(SQLModel, table=True):
    __tablename__ = "office"
    # A separate unique index (not an inline constraint): schema step 2 adds it to older databases.
    __table_args__ = (Index("ix_office_key", "key", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    # The config's ``[office] id``: the stable key. ``name`` is a label that may change at any time.
    key: str | None = None
    name: str = Field(unique=True)
    short_name: str
    timezone: str = "Asia/Shanghai"


class Channel(SQLModel, table=True):
    __tablename__ = "channel"
    __table_args__ = (UniqueConstraint("office_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id", index=True)
    key: str  # the config's channel id, stable across renames of the label
    kind: str
    name: str


class Publication(SQLModel, table=True):
    __tablename__ = "publication"
    __table_args__ = (
        UniqueConstraint("channel_id", "identity", name="uq_publication_identity"),
        # One covering index serves every figure: counts per channel, month and repost, the distinct
        # titles of the unique-items figure, WeChat's pushes, and the newest month of a channel. A second
        # secondary index would cost import speed on every row for little gain (benchmark: -25 %).
        Index("ix_publication_period", "channel_id", "local_year", "local_month", "is_repost", "title_key", "push_id"),
        # The web view's publication list, newest first, a page at any depth of a month without reading
        # the month's rows: ordered by time inside (channel, month), the repost mark beside it so that the
        # 原创/转发 filter is read from the index too (docs/web.md, scripts/bench_web.py).
        Index("ix_publication_listing", "channel_id", "local_year", "local_month", "published_at", "is_repost"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id")
    identity: str
    platform_id: str | None = None
    title: str | None = Field(default=None, sa_type=Text)
    url: str | None = Field(default=None, sa_type=Text)
    column_name: str | None = None  # website column (栏目)
    push_id: str | None = None  # WeChat: the push (article_id / msgid) this article went out with
    is_repost: bool = False
    published_at: datetime = Field(sa_column=_utc_column(nullable=False))
    local_year: int
    local_month: int
    local_date: date
    title_key: str | None = None  # hash of the normalised title: one item on several channels
    first_seen: datetime = Field(sa_column=_utc_column(nullable=False))
    last_seen: datetime = Field(sa_column=_utc_column(nullable=False))
    first_run_id: int | None = Field(default=None, foreign_key="run.id")


class Run(SQLModel, table=True):
    """One import or poll of one channel, recorded before it starts and closed when it ends.

    A run left ``running`` by a killed process shows as interrupted; its transaction was rolled
    back by the database, so it stored nothing.
    """

    __tablename__ = "run"

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", index=True)
    kind: str  # import | poll
    source: str  # file name, or the poll type
    sha256: str | None = None
    started_at: datetime = Field(sa_column=_utc_column(nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=_utc_column())
    status: str = "running"  # running | ok | failed | rejected | undone | interrupted (poll cut short by a daemon stop)
    rows_read: int = 0
    rows_new: int = 0
    rows_known: int = 0
    rows_rejected: int = 0
    pages_fetched: int = 0
    message: str | None = Field(default=None, sa_type=Text)
    job_id: str | None = None


# How a run's kind and status read in Chinese, wherever runs are listed (``runs``, the web view).
RUN_KIND_LABELS = {"import": "导入", "poll": "抓取"}
RUN_STATUS_LABELS = {
    "ok": "成功",
    "failed": "失败",
    "rejected": "拒收",
    "running": "进行中/中断",
    "interrupted": "中断",
    "undone": "已撤销",
}
