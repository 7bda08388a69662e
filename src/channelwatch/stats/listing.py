"""The rows behind a figure (``publications``) and the run log (``runs``), as text, CSV or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from channelwatch.dates import to_office
from channelwatch.render import pad
from channelwatch.spreadsheet import csv_text, save_workbook, xlsx_row
from channelwatch.stats.figures import Period
from channelwatch.store import as_utc
from channelwatch.store.models import RUN_KIND_LABELS, RUN_STATUS_LABELS, Channel, Publication, Run

if TYPE_CHECKING:
    from channelwatch.store import Store

__all__ = ["list_publications", "list_runs"]


@dataclass
class PublicationLine:
    published_at: str
    is_repost: bool
    title: str
    url: str
    column: str
    identity: str
    platform_id: str


def list_publications(conn: Connection, channel_id: int, period: Period, zone: str) -> list[PublicationLine]:
    pub = Publication.__table__  # type: ignore[attr-defined]
    rows = conn.execute(
        select(pub)
        .where(
            pub.c.channel_id == channel_id,
            pub.c.local_year == period.year,
            pub.c.local_month.between(period.months[0], period.months[-1]),
        )
        .order_by(pub.c.published_at, pub.c.id)
    )
    return [
        PublicationLine(
            published_at=to_office(as_utc(r.published_at), zone).strftime("%Y-%m-%d %H:%M"),
            is_repost=bool(r.is_repost),
            title=r.title or "",
            url=r.url or "",
            column=r.column_name or "",
            identity=r.identity,
            platform_id=r.platform_id or "",
        )
        for r in rows
    ]


def publications_text(rows: list[PublicationLine]) -> str:
    lines = [pad("发布时间", 18) + pad("类型", 6) + "标题 / 链接"]
    for r in rows:
        # One publication, one line: a line break inside a title would print what looks like another row.
        title = (r.title or r.url).replace("\n", "\\n")
        title = title if len(title) <= 60 else title[:59] + "…"
        lines.append(pad(r.published_at, 18) + pad("转发" if r.is_repost else "原创", 6) + title)
    lines.append(f"共 {len(rows)} 条，其中转发 {sum(r.is_repost for r in rows)} 条")
    return "\n".join(lines) + "\n"


_PUBLICATION_HEADER = ["发布时间", "是否转发", "标题", "链接", "栏目", "编号", "识别键"]


def _publication_cells(rows: list[PublicationLine]) -> list[list[str]]:
    return [
        [r.published_at, "转发" if r.is_repost else "原创", r.title, r.url, r.column, r.platform_id, r.identity]
        for r in rows
    ]


def publications_csv(rows: list[PublicationLine]) -> str:
    return csv_text([_PUBLICATION_HEADER, *_publication_cells(rows)])


def write_publications_xlsx(rows: list[PublicationLine], target: Path, sheet_title: str) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "发布明细"
    sheet.append(xlsx_row([sheet_title]))
    sheet["A1"].font = Font(bold=True)
    sheet.append(_PUBLICATION_HEADER)
    for cells in _publication_cells(rows):
        sheet.append(xlsx_row(cells))
    for letter, width in zip("ABCDEFG", (18, 8, 60, 50, 14, 14, 30), strict=True):
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A3"
    save_workbook(workbook, target)


def publications_json(rows: list[PublicationLine]) -> str:
    return json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=2) + "\n"


@dataclass
class RunLine:
    id: int
    channel: str
    kind: str
    source: str
    status: str
    started_at: str
    finished_at: str
    rows_read: int
    rows_new: int
    rows_known: int
    rows_rejected: int
    pages_fetched: int
    seconds: float | None
    job_id: str
    message: str


def list_runs(conn: Connection, opened: Store, *, limit: int, channel_id: int | None = None) -> list[RunLine]:
    run = Run.__table__  # type: ignore[attr-defined]
    channel = Channel.__table__  # type: ignore[attr-defined]
    query = (
        select(run, channel.c.key)
        .join(channel, channel.c.id == run.c.channel_id)
        .where(channel.c.office_id == opened.office_id)
        .order_by(run.c.id.desc())
        .limit(limit)
    )
    if channel_id is not None:
        query = query.where(run.c.channel_id == channel_id)
    zone = opened.instance.timezone

    def when(moment: Any) -> str:
        return to_office(as_utc(moment), zone).strftime("%Y-%m-%d %H:%M:%S") if moment else ""

    return [
        RunLine(
            id=r.id,
            channel=r.key,
            kind=r.kind,
            source=r.source,
            status=r.status,
            started_at=when(r.started_at),
            finished_at=when(r.finished_at),
            rows_read=r.rows_read,
            rows_new=r.rows_new,
            rows_known=r.rows_known,
            rows_rejected=r.rows_rejected,
            pages_fetched=r.pages_fetched,
            seconds=_seconds(r.started_at, r.finished_at),
            job_id=r.job_id or "",
            message=r.message or "",
        )
        for r in conn.execute(query)
    ]


def _seconds(started: Any, finished: Any) -> float | None:
    if not started or not finished:
        return None
    return round((as_utc(finished) - as_utc(started)).total_seconds(), 3)


def _run_cells(r: RunLine, source: str) -> list[object]:
    """What the text table and the CSV both show of a run, from its channel to its pages."""
    return [
        r.channel,
        RUN_KIND_LABELS.get(r.kind, r.kind),
        source,
        RUN_STATUS_LABELS.get(r.status, r.status),
        r.rows_read,
        r.rows_new,
        r.rows_known,
        r.rows_rejected,
        r.pages_fetched,
    ]


def runs_text(rows: list[RunLine]) -> str:
    header = ["编号", "开始时间", "渠道", "类型", "来源", "状态", "读取", "新增", "已有", "拒收", "页数", "用时"]
    widths = [7, 21, 10, 6, 28, 12, 8, 8, 8, 8, 6, 8]
    lines = ["".join(pad(h, w) for h, w in zip(header, widths, strict=True))]
    for r in rows:
        source = r.source if len(r.source) <= 26 else r.source[:25] + "…"
        seconds = "—" if r.seconds is None else f"{r.seconds:.1f}秒"
        cells = [r.id, r.started_at, *_run_cells(r, source), seconds]
        lines.append("".join(pad(c, w) for c, w in zip(cells, widths, strict=True)))
        if r.message and r.status != "ok":
            first = r.message.splitlines()[0]
            lines.append("       " + (first if len(first) <= 100 else first[:99] + "…"))
    if len(rows) == 0:
        lines.append("（还没有运行记录）")
    return "\n".join(lines) + "\n"


def _or_blank(value: object) -> object:
    return "" if value is None else value


def runs_csv(rows: list[RunLine]) -> str:
    """The run log as a spreadsheet reads it: one row per run, kinds and states in Chinese, the full message."""
    header = ["编号", "开始时间", "结束时间", "渠道", "类型", "来源", "状态", "读取", "新增", "已有", "拒收", "页数"]
    cells = [
        [r.id, r.started_at, r.finished_at, *_run_cells(r, r.source), _or_blank(r.seconds), r.job_id, r.message]
        for r in rows
    ]
    return csv_text([[*header, "用时（秒）", "任务", "说明"], *cells])


def runs_json(rows: list[RunLine]) -> str:
    return json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=2) + "\n"
