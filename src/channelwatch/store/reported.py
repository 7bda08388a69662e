"""Figures an office reported on a quarterly sheet, for the county roll-up (``source = "report"``).

Offices that keep their own server (or none) send the county their quarterly XLSX; the county imports
it (``county import-stats``). One ``ReportedSheet`` per office and quarter holds what the sheet said; a
corrected sheet replaces the earlier one; its 不同渠道相同信息计1条 figures (the quarter's and January to the
quarter's end) stay NULL for a sheet that does not state them (an older sheet): unknown, never zero.
``ReportedFigure`` rows are the sheet's channel rows: one row
per channel and month of the quarter, and ``month = 0`` for the sheet's own year-to-date figure.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel

__all__ = ["ReportedFigure", "ReportedSheet"]


class ReportedSheet(SQLModel, table=True):
    __tablename__ = "reported_sheet"
    __table_args__ = (UniqueConstraint("office_id", "year", "quarter", name="uq_reported_sheet"),)

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id")
    year: int
    quarter: int
    fingerprint: str  # sha256 of the figures as read: the same sheet again changes nothing
    file_name: str
    unique_items: int | None = None  # 不同渠道相同信息计1条, when the sheet states it
    unique_year_to_date: int | None = None  # the same for January to the quarter's end, when the sheet states it
    imported_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class ReportedFigure(SQLModel, table=True):
    __tablename__ = "reported_figure"

    id: int | None = Field(default=None, primary_key=True)
    sheet_id: int = Field(foreign_key="reported_sheet.id", index=True)
    position: int  # the row's order on the sheet
    channel_name: str
    kind: str  # website | weibo | wechat | other
    month: int  # 1–12; 0 = the sheet's 本年累计
    total: int
    reposts: int
