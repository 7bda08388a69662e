"""Quarterly statistics: the e-mail body (text and HTML, from Jinja2 templates) and the XLSX sheet.

Per channel and per month of the quarter: total, original, reposts; then the quarter and the year
to date (January to the quarter's last month). The sheet is laid out like the statistics sheets
county disclosure offices collect: title, office and period, two header rows, one row per channel,
a totals row, the row 不同渠道相同信息计1条 (the office's items deduplicated across its channels by
normalised title, docs/counting-rules.md: the quarter's in the 本季度合计 合计 cell, January to the
quarter's end in the 本年累计 合计 cell), notes. ``county import-stats`` reads this layout back
(county/sheets.py, which also writes the fill-by-hand template in the same layout). Cells hold values,
not formulas, so any reader (and the tests) sees the figures.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from channelwatch.render import render
from channelwatch.spreadsheet import save_workbook, xlsx_value
from channelwatch.stats.figures import Period, Summary, publication_tables, summarise

__all__ = ["UNIQUE_LABEL", "Figures", "QuarterlyReport", "QuarterlyRow", "build_quarterly", "previous_quarter"]

# The row (and the county roll-up's column) of items counted once across an office's channels.
UNIQUE_LABEL = "不同渠道相同信息计1条"


@dataclass(frozen=True)
class Figures:
    total: int = 0
    reposts: int = 0

    @property
    def original(self) -> int:
        return self.total - self.reposts

    def __add__(self, other: Figures) -> Figures:
        return Figures(self.total + other.total, self.reposts + other.reposts)

    def as_json(self) -> dict[str, int]:
        return {"total": self.total, "original": self.original, "reposts": self.reposts}


@dataclass
class QuarterlyRow:
    key: str
    name: str
    months: list[Figures]
    quarter: Figures
    year_to_date: Figures

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.key,
            "name": self.name,
            "months": [m.as_json() for m in self.months],
            "quarter": self.quarter.as_json(),
            "year_to_date": self.year_to_date.as_json(),
        }


@dataclass
class QuarterlyReport:
    office: str
    short_name: str
    period: Period
    rows: list[QuarterlyRow]
    total: QuarterlyRow
    generated_on: date
    unique_items: int = 0  # 不同渠道相同信息计1条 in the quarter
    unique_year_to_date: int = 0  # the same, January to the quarter's last month
    subject: str = ""
    text: str = ""
    html: str = ""
    summary: Summary | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        """The period's key in the delivery log: ``2020Q4``."""
        return f"{self.period.year}Q{self.period.quarter}"

    @property
    def attachment_name(self) -> str:
        return f"{self.subject}.xlsx"

    @property
    def month_labels(self) -> list[str]:
        return [f"{m}月" for m in self.period.months]

    @property
    def ytd_label(self) -> str:
        return f"本年累计（1—{self.period.months[-1]}月）"

    def as_json(self) -> dict[str, Any]:
        return {
            "office": self.office,
            "period": self.period.as_json(),
            "subject": self.subject,
            "months": [f"{self.period.year}-{m:02d}" for m in self.period.months],
            "channels": [r.as_json() for r in self.rows],
            "total": self.total.as_json(),
            "unique_items": {"quarter": self.unique_items, "year_to_date": self.unique_year_to_date},
            "generated_on": self.generated_on.isoformat(),
            "unfinished": self.unfinished,
        }

    @property
    def unfinished(self) -> bool:
        """Made before the quarter's last day was over: its figures can still grow."""
        return self.generated_on <= self.period.end

    @property
    def unfinished_note(self) -> str:
        """What every form of a quarter still under way says (the table, the printed text, the web view)."""
        if self.generated_on < self.period.start:  # a mistyped year: nothing of it can have been counted yet
            return f"注意：本季度还没有开始（统计日期 {self.generated_on.isoformat()}），以下数字都是 0，不是统计结果"
        return f"注意：本季度尚未结束，数字统计至 {self.generated_on.isoformat()}，还会变化，不宜作为正式报送"

    def xlsx_bytes(self) -> bytes:
        buffer = io.BytesIO()
        write_quarterly_xlsx(self, buffer)
        return buffer.getvalue()


def previous_quarter(day: date) -> tuple[int, int]:
    """The quarter that ended most recently before ``day``: 2021-01-03 → (2020, 4)."""
    quarter = (day.month - 1) // 3 + 1
    return (day.year - 1, 4) if quarter == 1 else (day.year, quarter - 1)


def build_quarterly(
    conn: Connection,
    office_id: int,
    year: int,
    quarter: int,
    *,
    channel_keys: list[str] | None = None,
    templates_dir: Path | None = None,
    today: date | None = None,
) -> QuarterlyReport:
    period = Period(year=year, quarter=quarter)
    in_quarter = summarise(conn, office_id, period, channel_keys)
    # The whole year is summed up to the quarter's last month only: a Q3 report made late in
    # December must not count October's posts in its "year to date".
    whole_year = summarise(conn, office_id, Period(year=year), channel_keys)
    last_month = period.months[-1]
    ytd_by_key = {
        c.key: Figures(
            sum(n for m, n in c.by_month.items() if m <= last_month),
            sum(n for m, n in c.reposts_by_month.items() if m <= last_month),
        )
        for c in whole_year.channels
    }
    rows = []
    for channel in in_quarter.channels:
        months = [Figures(channel.by_month.get(m, 0), channel.reposts_by_month.get(m, 0)) for m in period.months]
        rows.append(
            QuarterlyRow(
                key=channel.key,
                name=channel.name,
                months=months,
                quarter=Figures(channel.total, channel.reposts),
                year_to_date=ytd_by_key.get(channel.key, Figures()),
            )
        )
    total = QuarterlyRow(
        key="total",
        name="合计",
        months=[sum((r.months[i] for r in rows), Figures()) for i in range(len(period.months))],
        quarter=sum((r.quarter for r in rows), Figures()),
        year_to_date=sum((r.year_to_date for r in rows), Figures()),
    )
    if quarter == 1:
        unique_to_date = in_quarter.unique_items
    elif quarter == 4:
        unique_to_date = whole_year.unique_items
    else:
        unique_to_date = _unique_items_to(conn, office_id, year, last_month, channel_keys)
    report = QuarterlyReport(
        office=in_quarter.office,
        short_name=in_quarter.short_name,
        period=period,
        rows=rows,
        total=total,
        generated_on=today or date.today(),
        unique_items=in_quarter.unique_items,
        unique_year_to_date=unique_to_date,
        summary=in_quarter,
    )
    report.subject = render(templates_dir, "quarterly_subject.txt.j2", report=report).strip()
    report.text = render(templates_dir, "quarterly.txt.j2", report=report)
    report.html = render(templates_dir, "quarterly.html.j2", report=report)
    return report


def _unique_items_to(
    conn: Connection, office_id: int, year: int, last_month: int, channel_keys: list[str] | None
) -> int:
    """不同渠道相同信息计1条 from January to ``last_month``: distinct titles, plus one per untitled item.

    The counts table keeps this figure per year, quarter and month only; January to June or
    September is read from the publications of the office's channels (one office, one year).
    """
    pub, channel, _office = publication_tables()
    ids = select(channel.c.id).where(channel.c.office_id == office_id)
    if channel_keys is not None:
        ids = ids.where(channel.c.key.in_(channel_keys))
    in_range = (pub.c.channel_id.in_(ids), pub.c.local_year == year, pub.c.local_month <= last_month)
    titles = select(pub.c.title_key).where(*in_range, pub.c.title_key.is_not(None)).group_by(pub.c.title_key)
    titled = conn.execute(select(func.count()).select_from(titles.subquery())).scalar_one()
    untitled = conn.execute(select(func.count()).where(*in_range, pub.c.title_key.is_(None))).scalar_one()
    return int(titled) + int(untitled)


def write_quarterly_xlsx(report: QuarterlyReport, target: Any) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, Side
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "季度统计"
    groups = [*report.month_labels, "本季度合计", report.ytd_label]
    width = 1 + 3 * len(groups)
    thin = Side(style="thin")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    centre = Alignment(horizontal="center", vertical="center", wrap_text=True)

    sheet.cell(row=1, column=1, value=xlsx_value(f"{report.subject}表"))
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    sheet["A1"].font = Font(bold=True, size=14)
    sheet["A1"].alignment = centre
    sheet.cell(row=2, column=1, value=xlsx_value(f"填报单位：{report.office}"))
    sheet.merge_cells(start_row=2, start_column=1, end_row=2, end_column=width // 2)
    period_text = f"统计期间：{report.period.start.isoformat()} 至 {report.period.end.isoformat()}"
    sheet.cell(row=2, column=width // 2 + 1, value=period_text)
    sheet.merge_cells(start_row=2, start_column=width // 2 + 1, end_row=2, end_column=width)

    header, sub = 3, 4
    sheet.cell(row=header, column=1, value="渠道")
    sheet.merge_cells(start_row=header, start_column=1, end_row=sub, end_column=1)
    for index, label in enumerate(groups):
        first = 2 + 3 * index
        sheet.cell(row=header, column=first, value=label)
        sheet.merge_cells(start_row=header, start_column=first, end_row=header, end_column=first + 2)
        for offset, name in enumerate(("合计", "原创", "转发")):
            sheet.cell(row=sub, column=first + offset, value=name)

    def figures_of(row: QuarterlyRow) -> list[int]:
        values: list[int] = []
        for figure in [*row.months, row.quarter, row.year_to_date]:
            values.extend([figure.total, figure.original, figure.reposts])
        return values

    line = sub
    for row in [*report.rows, report.total]:
        line += 1
        sheet.cell(row=line, column=1, value=xlsx_value(row.name))
        for offset, value in enumerate(figures_of(row)):
            sheet.cell(row=line, column=2 + offset, value=value)
    totals_line = line
    # 不同渠道相同信息计1条: only the 合计 cells of the quarter and of the year to date hold a figure.
    line += 1
    quarter_column = 2 + 3 * len(report.month_labels)
    sheet.cell(row=line, column=1, value=UNIQUE_LABEL)
    sheet.cell(row=line, column=quarter_column, value=report.unique_items)
    sheet.cell(row=line, column=quarter_column + 3, value=report.unique_year_to_date)
    for cells in sheet.iter_rows(min_row=header, max_row=line, max_col=width):
        for cell in cells:
            cell.border = border
            cell.alignment = centre
            if cell.row in (header, sub, totals_line) or cell.column == 1:
                cell.font = Font(bold=True)
    notes = [
        "说明：发布数量含转发；原创 = 合计 − 转发；同一条信息在不同渠道发布的，各渠道分别计数。",
        f"“{UNIQUE_LABEL}”：同一条信息（标题相同）在本单位多个渠道发布的只计1条，无标题的每条计1条；"
        "填在“本季度合计”和“本年累计”的“合计”列。",
        f"填报日期：{report.generated_on.isoformat()}",
    ]
    if report.unfinished:
        # Downloadable (the web view) and writable (-o) any day: a table of a quarter still under way must say so.
        notes.append(report.unfinished_note)
    for note in notes:
        line += 1
        sheet.cell(row=line + 1, column=1, value=note)
    sheet.column_dimensions["A"].width = 24
    for column in range(2, width + 1):
        sheet.column_dimensions[get_column_letter(column)].width = 8
    sheet.row_dimensions[1].height = 28
    sheet.freeze_panes = "B5"
    workbook.properties.title = report.subject
    workbook.properties.creator = "channelwatch"
    save_workbook(workbook, target)
