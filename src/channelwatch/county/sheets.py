"""Quarterly sheets offices send the county: reading them (``county import-stats``) and the blank template.

The layout is the one ``channelwatch quarterly -o`` writes (reports/quarterly.py), so an office's own
sheet needs no retyping:

- a row whose first cell is ``填报单位：<office name or office id>``, and in the same row a cell
  ``统计期间：YYYY-MM-DD 至 YYYY-MM-DD`` covering one whole quarter;
- a header row starting ``渠道``: three month groups (``10月`` …), ``本季度合计``, ``本年累计…``;
  under it ``合计 / 原创 / 转发`` for each group;
- one row per channel (its name says its kind: 网站, 微博, 微信/公众号, else 其他), then ``合计``;
- a row ``不同渠道相同信息计1条`` (the office's items deduplicated across its channels by normalised title):
  the quarter's count in the 本季度合计 合计 cell, January to the quarter's end in the 本年累计 合计 cell.
  Sheets written before channelwatch wrote this row (and templates left blank there) still import: the
  figure is then unknown (NULL, shown as —), never taken as zero.

Everything is checked before anything is stored; each refusal names the cell. Empty number cells
count as 0 (a clerk leaves a channel's empty month blank).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from channelwatch.errors import InputError
from channelwatch.instance.config import KIND_LABELS, Instance
from channelwatch.reports.quarterly import UNIQUE_LABEL
from channelwatch.sources.files import XLSX_DAMAGED, check_xlsx_archive
from channelwatch.stats.figures import Period
from channelwatch.store import Store, as_utc, utc_now, write
from channelwatch.store.reported import ReportedFigure, ReportedSheet

__all__ = ["ImportedSheet", "SheetFigures", "import_sheet", "read_sheet", "write_template"]

_UNIT = "填报单位"
_PERIOD = "统计期间"
_UNIQUE = UNIQUE_LABEL
_DATE = r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
_PERIOD_RE = re.compile(_DATE + r"\s*(?:至|到|-|—|~)\s*" + _DATE)
_ALL_BLANK = "（表中所有数字均为空白，按 0 计入；如未填写，请填好后重新导入，会替换本次）"


@dataclass
class SheetRow:
    name: str
    kind: str
    cell: str  # where the row's name is, e.g. A5
    months: list[tuple[int, int]]  # (total, reposts) per month of the quarter
    year_to_date: tuple[int, int]


@dataclass
class SheetFigures:
    path: Path
    office_text: str
    office_cell: str
    year: int
    quarter: int
    rows: list[SheetRow]
    unique_items: int | None = None
    unique_year_to_date: int | None = None
    office_key: str = ""
    office_name: str = ""
    all_blank: bool = False  # no number cell was filled in: imported as zeros, but likely not filled yet

    @property
    def period(self) -> Period:
        return Period(self.year, quarter=self.quarter)

    @property
    def total(self) -> int:
        return sum(t for r in self.rows for t, _ in r.months)

    @property
    def reposts(self) -> int:
        return sum(p for r in self.rows for _, p in r.months)

    def fingerprint(self) -> str:
        data: dict[str, Any] = {
            "year": self.year,
            "quarter": self.quarter,
            "unique": self.unique_items,
            "rows": [[r.name, r.kind, r.months, r.year_to_date] for r in self.rows],
        }
        if self.unique_year_to_date is not None:
            # Only when stated: a sheet imported before this figure was read keeps its fingerprint.
            data["unique_year_to_date"] = self.unique_year_to_date
        return hashlib.sha256(json.dumps(data, ensure_ascii=False).encode()).hexdigest()


@dataclass
class ImportedSheet:
    figures: SheetFigures
    status: str  # new | unchanged | replaced
    replaced: dict[str, Any] = field(default_factory=dict)  # the earlier sheet: imported_at, total

    def describe(self) -> str:
        f = self.figures
        head = f"{f.path}：{f.office_name}（{f.office_key}）{f.period.label}，合计 {f.total} 条（其中转发 {f.reposts}）"
        # Blank cells are 0 by the rule, so a template sent back unfilled imports; the clerk must hear it.
        blank = _ALL_BLANK if f.all_blank else ""
        if self.status == "unchanged":
            return head + "：与已导入的报表相同，未改变" + blank
        if self.status == "replaced":
            return head + (
                f"：已替换 {self.replaced['imported_at']} 导入的报表（{self.replaced['file_name']}，"
                f"合计 {self.replaced['total']} → {f.total}）" + blank
            )
        return head + "：已导入" + blank


def kind_of(name: str) -> str:
    """A sheet row's channel kind from its name: 政府网站 → website, 微博 → weibo, 微信公众号 → wechat."""
    if "微博" in name:
        return "weibo"
    if "微信" in name or "公众号" in name:
        return "wechat"
    if "网站" in name:
        return "website"
    return "other"


def _refuse(path: Path, cell: str, reason: str) -> InputError:
    return InputError(f"{path} 的单元格 {cell}：{reason}")


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _after_colon(text: str) -> str:
    return re.split(r"[：:]", text, maxsplit=1)[1].strip() if re.search(r"[：:]", text) else ""


def read_sheet(path: Path) -> SheetFigures:
    """The figures of one sheet, checked to add up; ``InputError`` naming the cell otherwise."""
    from openpyxl import load_workbook
    from openpyxl.utils import get_column_letter

    check_xlsx_archive(path)  # the same refusal of a decompression bomb as an export file gets
    try:
        workbook = load_workbook(path, data_only=True, read_only=False)
    except Exception:
        raise InputError(f"{path} 不是可读的 XLSX 文件（{XLSX_DAMAGED}）") from None
    sheet = workbook.worksheets[0]
    # Only the first sheet is read: a second quarter's table in the same workbook would be passed over unseen.
    tables = [
        str(other.title)
        for other in workbook.worksheets
        if any(_text(other.cell(row=r, column=1).value).startswith(_UNIT) for r in range(1, 11))
    ]
    if len(tables) > 1:
        raise InputError(
            f"{path} 中有 {len(tables)} 个工作表是季度统计表（{'、'.join(f'「{t}」' for t in tables)}），未导入："
            "每个文件只放一张季度统计表，请把其他季度的表另存为单独的文件，再一起导入"
        )

    def ref(row: int, column: int) -> str:
        return f"{get_column_letter(column)}{row}"

    def value(row: int, column: int) -> Any:
        return sheet.cell(row=row, column=column).value

    unit_row = next(
        (r for r in range(1, min(sheet.max_row, 10) + 1) if _text(value(r, 1)).startswith(_UNIT)),
        None,
    )
    if unit_row is None:
        raise _refuse(path, "A2", f"找不到“{_UNIT}：”（应为 channelwatch 季度统计表或 county template 写出的表）")
    office_text = _after_colon(_text(value(unit_row, 1)))
    if not office_text:
        raise _refuse(path, ref(unit_row, 1), f"{_UNIT}为空，请填写单位名称或单位 id")
    period_cell = next(
        (c for c in range(1, sheet.max_column + 1) if _text(value(unit_row, c)).startswith(_PERIOD)),
        None,
    )
    if period_cell is None:
        raise _refuse(path, ref(unit_row, 2), f"找不到“{_PERIOD}：YYYY-MM-DD 至 YYYY-MM-DD”")
    period_ref = ref(unit_row, period_cell)
    found = _PERIOD_RE.search(_text(value(unit_row, period_cell)))
    if found is None:
        raise _refuse(
            path, period_ref, f"统计期间应写成 2020-10-01 至 2020-12-31（值：{value(unit_row, period_cell)!r}）"
        )
    y1, m1, d1, y2, m2, d2 = (int(g) for g in found.groups())
    quarter = (m1 - 1) // 3 + 1
    try:
        expected = Period(y1, quarter=quarter)
        whole = (y1, m1, d1) == (expected.start.year, expected.start.month, expected.start.day) and (
            y2,
            m2,
            d2,
        ) == (expected.end.year, expected.end.month, expected.end.day)
    except ValueError:
        whole = False
    if not whole:
        raise _refuse(path, period_ref, "统计期间应为一个完整的季度（如 2020-10-01 至 2020-12-31）")

    header = next((r for r in range(unit_row + 1, min(sheet.max_row, 20) + 1) if _text(value(r, 1)) == "渠道"), None)
    if header is None:
        raise _refuse(path, f"A{unit_row + 1}", "找不到表头“渠道”")
    sub = header + 1
    months = expected.months
    labels = [_text(value(header, 2 + 3 * index)) for index in range(len(months))]
    if any(labels == [f"{m}月" for m in Period(y1, quarter=q).months] for q in range(1, 5) if q != quarter):
        # The headers name another whole quarter: either the period or the headers were edited, and which
        # one is wrong only the office knows, so name both cells rather than blame a header that may be right.
        raise InputError(
            f"{path} 的单元格 {period_ref} 的统计期间（{expected.label}）与表头 {ref(header, 2)} 的月份"
            f"（{'、'.join(labels)}）不一致：请确认报表的季度"
        )
    for index, (month, label) in enumerate(zip(months, labels, strict=True)):
        if label != f"{month}月":
            raise _refuse(path, ref(header, 2 + 3 * index), f"应为“{month}月”，与统计期间不符（值：{label!r}）")
    for index, (label, prefix) in enumerate([("本季度合计", "本季度合计"), ("本年累计", "本年累计")]):
        column = 2 + 3 * (len(months) + index)
        if not _text(value(header, column)).startswith(prefix):
            raise _refuse(path, ref(header, column), f"应为“{label}”（值：{_text(value(header, column))!r}）")
    for group in range(len(months) + 2):
        for offset, name in enumerate(("合计", "原创", "转发")):
            column = 2 + 3 * group + offset
            if _text(value(sub, column)) != name:
                raise _refuse(path, ref(sub, column), f"应为“{name}”（值：{_text(value(sub, column))!r}）")

    filled: list[str] = []  # number cells not left blank

    def number(row: int, column: int) -> int:
        raw = value(row, column)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return 0
        filled.append(ref(row, column))
        if isinstance(raw, bool):
            raise _refuse(path, ref(row, column), f"应为非负整数（值：{raw!r}）")
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if isinstance(raw, str) and raw.strip().isdigit():
            raw = int(raw.strip())
        if not isinstance(raw, int) or raw < 0:
            raise _refuse(path, ref(row, column), f"应为非负整数（值：{raw!r}）")
        return raw

    def triples(row: int) -> list[tuple[int, int, int]]:
        return [
            (number(row, first), number(row, first + 1), number(row, first + 2))
            for first in range(2, 2 + 3 * (len(months) + 2), 3)
        ]

    def check_row(row: int, found: list[tuple[int, int, int]]) -> None:
        for group, (total, original, reposts) in enumerate(found):
            if original + reposts != total:
                raise _refuse(
                    path,
                    ref(row, 2 + 3 * group),
                    f"合计应等于原创 + 转发 = {original} + {reposts} = {original + reposts}（表中为 {total}）",
                )
        quarter_cell = 2 + 3 * len(months)
        for k, name in enumerate(("合计", "原创", "转发")):
            summed = sum(found[m][k] for m in range(len(months)))
            if found[len(months)][k] != summed:
                raise _refuse(
                    path,
                    ref(row, quarter_cell + k),
                    f"本季度{name}应等于三个月之和 {summed}（表中为 {found[len(months)][k]}）",
                )
            if found[len(months) + 1][k] < found[len(months)][k]:
                raise _refuse(
                    path,
                    ref(row, quarter_cell + 3 + k),
                    f"本年累计{name}不能小于本季度{name} {found[len(months)][k]}（表中为 {found[len(months) + 1][k]}）",
                )

    rows: list[SheetRow] = []
    channel_values: list[list[tuple[int, int, int]]] = []
    total_row = None
    line = sub + 1
    while line <= sheet.max_row:
        name = _text(value(line, 1))
        if name == "合计":
            total_row = line
            break
        if not name:
            raise _refuse(path, f"A{line}", "渠道名称为空（各渠道之后应有“合计”行）")
        found_values = triples(line)
        check_row(line, found_values)
        channel_values.append(found_values)
        rows.append(
            SheetRow(
                name=name,
                kind=kind_of(name),
                cell=f"A{line}",
                months=[(t, r) for t, _o, r in found_values[: len(months)]],
                year_to_date=(found_values[-1][0], found_values[-1][2]),
            )
        )
        line += 1
    if total_row is None:
        raise _refuse(path, f"A{line}", "找不到“合计”行")
    if not rows:
        raise _refuse(path, f"A{sub + 1}", "没有任何渠道行")
    totals = triples(total_row)
    # The 合计 row is checked down its columns only: a cell that differs from its column is the one to name
    # (a row that still adds up across would otherwise be blamed at 本季度合计), and once every cell equals
    # its column's sum the row adds up across as each channel row does.
    for group in range(len(months) + 2):
        for k in range(3):
            summed = sum(v[group][k] for v in channel_values)
            if totals[group][k] != summed:
                raise _refuse(
                    path,
                    ref(total_row, 2 + 3 * group + k),
                    f"合计行应等于各渠道之和 {summed}（表中为 {totals[group][k]}）",
                )
    unique_items = unique_to_date = None
    after = total_row + 1
    if _text(value(after, 1)) == _UNIQUE:
        quarter_cell = 2 + 3 * len(months)
        year_cell = quarter_cell + 3
        if value(after, quarter_cell) not in (None, ""):
            unique_items = number(after, quarter_cell)
            if unique_items > totals[len(months)][0]:
                raise _refuse(
                    path,
                    ref(after, quarter_cell),
                    f"去重后的条数不能大于本季度合计 {totals[len(months)][0]}（表中为 {unique_items}）",
                )
        if value(after, year_cell) not in (None, ""):
            unique_to_date = number(after, year_cell)
            if unique_to_date > totals[len(months) + 1][0]:
                raise _refuse(
                    path,
                    ref(after, year_cell),
                    f"去重后的本年累计不能大于本年累计合计 {totals[len(months) + 1][0]}（表中为 {unique_to_date}）",
                )
            if unique_items is not None and unique_to_date < unique_items:
                raise _refuse(
                    path,
                    ref(after, year_cell),
                    f"去重后的本年累计不能小于本季度去重后的条数 {unique_items}（表中为 {unique_to_date}）",
                )
    return SheetFigures(
        path=path,
        office_text=office_text,
        office_cell=ref(unit_row, 1),
        year=y1,
        quarter=quarter,
        rows=rows,
        unique_items=unique_items,
        unique_year_to_date=unique_to_date,
        all_blank=not filled,
    )


def match_office(county: Instance, figures: SheetFigures) -> Instance:
    """The county's office a sheet belongs to, by 填报单位 (name, short name or office id)."""
    wanted = figures.office_text
    for key, office in county.offices.items():
        names = {key, office.config.office.name}
        if wanted in names:
            return office
    known = "、".join(f"{o.config.office.name}（{k}）" for k, o in county.offices.items())
    raise _refuse(
        figures.path,
        figures.office_cell,
        f"本县没有单位“{wanted}”。已配置的单位：{known}；新单位请先在 config/offices/<单位id>.toml 中登记",
    )


def import_sheet(
    county: Instance, stores: dict[str, Store], path: Path, *, year: int | None = None, quarter: int | None = None
) -> ImportedSheet:
    """Read, check and store one sheet; the same figures again change nothing, new ones replace the old."""
    figures = read_sheet(path)
    office = match_office(county, figures)
    key = office.office_key or ""
    figures.office_key, figures.office_name = key, office.config.office.name
    if (year is not None and year != figures.year) or (quarter is not None and quarter != figures.quarter):
        asked = Period(year or figures.year, quarter=quarter or figures.quarter).label
        raise InputError(f"{path} 是{figures.period.label}的报表，与要求的{asked}不符，未导入")
    if office.config.channels:
        raise _refuse(
            path,
            figures.office_cell,
            f"单位“{office.config.office.name}”的渠道在本库中统计（{office.config_path} 配置了渠道），不需要导入报表",
        )
    opened = stores[key]
    sheets = ReportedSheet.__table__  # type: ignore[attr-defined]
    rows_table = ReportedFigure.__table__  # type: ignore[attr-defined]
    fingerprint = figures.fingerprint()
    with write(opened.engine) as conn:
        earlier = conn.execute(
            select(sheets).where(
                sheets.c.office_id == opened.office_id,
                sheets.c.year == figures.year,
                sheets.c.quarter == figures.quarter,
            )
        ).first()
        if earlier is not None and earlier.fingerprint == fingerprint:
            return ImportedSheet(figures, "unchanged")
        replaced: dict[str, Any] = {}
        if earlier is not None:
            before = conn.execute(
                select(rows_table.c.total).where(rows_table.c.sheet_id == earlier.id, rows_table.c.month != 0)
            ).scalars()
            from channelwatch.dates import to_office

            # SQLite hands the stored UTC time back naive, which to_office would take for office time.
            replaced = {
                "imported_at": to_office(as_utc(earlier.imported_at), office.timezone).strftime("%Y-%m-%d %H:%M"),
                "file_name": earlier.file_name,
                "total": sum(before),
            }
            conn.execute(rows_table.delete().where(rows_table.c.sheet_id == earlier.id))
            conn.execute(sheets.delete().where(sheets.c.id == earlier.id))
        sheet_id = conn.execute(
            sheets.insert().values(
                office_id=opened.office_id,
                year=figures.year,
                quarter=figures.quarter,
                fingerprint=fingerprint,
                file_name=path.name,
                unique_items=figures.unique_items,
                unique_year_to_date=figures.unique_year_to_date,
                imported_at=utc_now(),
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        values = []
        for position, row in enumerate(figures.rows):
            for month, (total, reposts) in zip(figures.period.months, row.months, strict=True):
                values.append(
                    {
                        "sheet_id": sheet_id,
                        "position": position,
                        "channel_name": row.name,
                        "kind": row.kind,
                        "month": month,
                        "total": total,
                        "reposts": reposts,
                    }
                )
            values.append(
                {
                    "sheet_id": sheet_id,
                    "position": position,
                    "channel_name": row.name,
                    "kind": row.kind,
                    "month": 0,
                    "total": row.year_to_date[0],
                    "reposts": row.year_to_date[1],
                }
            )
        conn.execute(rows_table.insert(), values)
    return ImportedSheet(figures, "replaced" if replaced else "new", replaced)


def write_template(
    target: Path,
    *,
    office_name: str = "",
    year: int | None = None,
    quarter: int | None = None,
    channels: list[str] | None = None,
) -> None:
    """The fill-by-hand sheet: the quarterly sheet's layout with empty figures and instructions."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, Side

    from channelwatch.county.outputs import xlsx_cell

    period = Period(year, quarter=quarter) if year and quarter else None
    month_labels = [f"{m}月" for m in period.months] if period else ["（第1个月）", "（第2个月）", "（第3个月）"]
    names = channels or [KIND_LABELS["website"], KIND_LABELS["weibo"], KIND_LABELS["wechat"]]
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "季度统计"
    groups = [*month_labels, "本季度合计", "本年累计"]
    width = 1 + 3 * len(groups)
    title = f"{period.label}信息发布情况统计表" if period else "季度信息发布情况统计表"
    sheet.cell(row=1, column=1, value=title)
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    sheet["A1"].font = Font(bold=True, size=14)
    sheet["A1"].alignment = Alignment(horizontal="center")
    sheet.cell(row=2, column=1, value=xlsx_cell(f"{_UNIT}：{office_name}"))
    sheet.merge_cells(start_row=2, start_column=1, end_row=2, end_column=width // 2)
    period_text = (
        f"{_PERIOD}：{period.start.isoformat()} 至 {period.end.isoformat()}"
        if period
        else f"{_PERIOD}：YYYY-MM-DD 至 YYYY-MM-DD"
    )
    sheet.cell(row=2, column=width // 2 + 1, value=period_text)
    sheet.merge_cells(start_row=2, start_column=width // 2 + 1, end_row=2, end_column=width)
    sheet.cell(row=3, column=1, value="渠道")
    sheet.merge_cells(start_row=3, start_column=1, end_row=4, end_column=1)
    for index, label in enumerate(groups):
        first = 2 + 3 * index
        sheet.cell(row=3, column=first, value=label)
        sheet.merge_cells(start_row=3, start_column=first, end_row=3, end_column=first + 2)
        for offset, name in enumerate(("合计", "原创", "转发")):
            sheet.cell(row=4, column=first + offset, value=name)
    line = 4
    for name in [*names, "合计", _UNIQUE]:
        line += 1
        sheet.cell(row=line, column=1, value=xlsx_cell(name))
    thin = Side(style="thin")
    for cells in sheet.iter_rows(min_row=3, max_row=line, max_col=width):
        for cell in cells:
            cell.border = Border(left=thin, right=thin, top=thin, bottom=thin)
    notes = [
        "填写说明：",
        f"1. “{_UNIT}”填单位全称（与县里登记的名称一致）或县里给的单位 id；“{_PERIOD}”为一个完整季度。",
        "2. 表头的三个月份与统计期间一致（如第四季度为 10月、11月、12月）。",
        "3. 每个渠道一行，渠道名称中写明类型：政府网站、微博、微信公众号；其他渠道（如抖音、今日头条）"
        "在“合计”行之上插入一行，照实填写名称，其数字也计入“合计”行。",
        "4. 只填整数；空格按 0 计。合计 = 原创 + 转发；本季度合计 = 三个月之和；本年累计为 1 月至本季度末；",
        "   “合计”行为各渠道之和。数字对不上的表会被退回，并指明单元格。",
        f"5. “{_UNIQUE}”：同一条信息（标题相同）在本单位多个渠道发布的只计1条，无标题的每条计1条；"
        "在“本季度合计”的“合计”列填本季度的条数，在“本年累计”的“合计”列填1月至本季度末的条数。"
        "不填的，县里汇总时该数显示为“—”（未知）。",
        # The importer reads channel rows down to 合计 and every column at a fixed place: only there may rows go.
        "6. 除在“合计”行之上插入其他渠道的行外，不要删除或移动已有的行和列，也不要插入列；"
        "没有的渠道保留该行，留空或填 0。",
    ]
    for offset, note in enumerate(notes, 2):
        sheet.cell(row=line + offset, column=1, value=note)
    sheet.column_dimensions["A"].width = 24
    workbook.properties.creator = "channelwatch"
    workbook.save(target)
