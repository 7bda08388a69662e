"""The county roll-up in every format: text, markdown, json, csv, xlsx.

Every format shows the same table: one row per office under its group, the group's subtotal, the
county total. Every CSV/XLSX cell that starts like a formula is neutralised (an office name such as
``=HYPERLINK(…)`` must reach the reader as text, never as a formula).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from channelwatch.county.rollup import KIND_COLUMNS, CountyRollup, GroupRow, OfficeRow
from channelwatch.render import pad
from channelwatch.spreadsheet import neutralise, xlsx_value

__all__ = ["HEADER", "rollup_csv", "rollup_json", "rollup_markdown", "rollup_table", "rollup_text", "rollup_xlsx"]

HEADER = [
    "单位",
    *[label for _kind, label in KIND_COLUMNS],
    "合计",
    "其中转发",
    "不同渠道相同信息计1条",
    "本年累计",
    "来源",
    "说明",
]
_SOURCES = {"store": "数据库", "report": "报表"}
# Cells are written through the shared spreadsheet helpers (formula neutralisation, XML-safe text).
safe_cell = neutralise
xlsx_cell = xlsx_value


UNKNOWN = "—"  # a figure the office's sheet does not state (JSON: null)


def _figures(row: OfficeRow | GroupRow) -> list[int | str]:
    return [
        *[row.by_kind[kind] for kind, _label in KIND_COLUMNS],
        row.total,
        row.reposts,
        UNKNOWN if row.unique_items is None else row.unique_items,
        row.year_to_date,
    ]


def _subtotal_label(group: GroupRow) -> str:
    return f"{group.group}小计" if group.group is not None else "全县合计"


def rollup_table(rollup: CountyRollup) -> list[tuple[str, list[Any]]]:
    """The table as (row kind, cells): ``header``, ``group`` (a group's name), ``office``, ``subtotal``, ``total``."""
    rows: list[tuple[str, list[Any]]] = [("header", list(HEADER))]
    for group in rollup.groups:
        rows.append(("group", [group.group or ""]))
        for office in group.offices:
            rows.append(("office", [office.name, *_figures(office), _SOURCES[office.source], "；".join(office.flags)]))
        rows.append(("subtotal", [_subtotal_label(group), *_figures(group), "", ""]))
    total = rollup.county_total
    flagged = sum(1 for o in rollup.offices if o.flags)
    note = f"共{len(rollup.offices)}个单位" + (f"，{flagged}个有说明" if flagged else "")
    rows.append(("total", [_subtotal_label(total), *_figures(total), "", note]))
    return rows


def _notes(rollup: CountyRollup) -> list[str]:
    unknown = [o.name for o in rollup.offices if o.unique_items is None]
    missing = (
        f"“{UNKNOWN}”表示报表未给出该数（{'、'.join(unknown)}），所在小计和全县合计因此也无法得出。" if unknown else ""
    )
    return [
        f"统计期间：{rollup.period.start.isoformat()} 至 {rollup.period.end.isoformat()}；"
        f"本年累计：{rollup.period.year}-01-01 至 {rollup.period.end.isoformat()}",
        "说明：发布数量含转发；同一条信息在不同渠道发布的，各渠道分别计数；"
        "“不同渠道相同信息计1条”为各单位跨渠道按标题去重后的条数"
        "（报表单位取其季度统计表中的这一行；按月汇总时报表不给出该数）。"
        f"{missing}来源“数据库”为本库统计，“报表”为单位报送的季度统计表。",
    ]


def rollup_json(rollup: CountyRollup) -> str:
    return json.dumps(rollup.as_json(), ensure_ascii=False, indent=2) + "\n"


def rollup_text(rollup: CountyRollup) -> str:
    widths = [32, 10, 8, 12, 8, 8, 10, 22, 10, 8, 0]
    lines = [rollup.title, ""]
    for kind, cells in rollup_table(rollup):
        if kind == "group":
            lines.append(f"【{cells[0]}】")
            continue
        text = "".join(pad(str(c), w) if w else str(c) for c, w in zip(cells, widths, strict=False))
        lines.append(text.rstrip())
    lines.append("")
    lines.extend(_notes(rollup))
    return "\n".join(lines) + "\n"


def _md(value: Any) -> str:
    return str(value).replace("|", "\\|")


def rollup_markdown(rollup: CountyRollup) -> str:
    lines = [f"# {rollup.title}", ""]
    table = rollup_table(rollup)
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * 8 + ["---", "---"]) + "|")
    for kind, cells in table[1:]:
        if kind == "group":
            lines.append(f"| **{_md(cells[0])}** |" + " |" * (len(HEADER) - 1))
            continue
        shown = [_md(c) for c in cells]
        if kind in {"subtotal", "total"}:
            shown[0] = f"**{shown[0]}**"
        lines.append("| " + " | ".join(shown) + " |")
    lines.append("")
    lines.extend(_notes(rollup))
    return "\n".join(lines) + "\n"


def rollup_csv(rollup: CountyRollup) -> str:
    """One line per office, subtotal and total; the group in its own first column."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["分组", *HEADER])
    group = ""
    for kind, cells in rollup_table(rollup)[1:]:
        if kind == "group":
            group = cells[0]
            continue
        writer.writerow([safe_cell(c) for c in ["" if kind == "total" else group, *cells]])
    return buffer.getvalue()


def rollup_xlsx(rollup: CountyRollup, target: Any) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, Side
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "县级汇总"
    width = len(HEADER)
    sheet.cell(row=1, column=1, value=xlsx_cell(f"{rollup.title}表"))
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    sheet["A1"].font = Font(bold=True, size=14)
    sheet["A1"].alignment = Alignment(horizontal="center")
    sheet.cell(row=2, column=1, value=xlsx_cell(_notes(rollup)[0]))
    sheet.merge_cells(start_row=2, start_column=1, end_row=2, end_column=width)
    thin = Side(style="thin")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    line = 2
    for kind, cells in rollup_table(rollup):
        line += 1
        for column, value in enumerate(cells, 1):
            cell = sheet.cell(row=line, column=column, value=xlsx_cell(value))
            cell.border = border
            if kind != "office":
                cell.font = Font(bold=True)
        if kind == "group":
            sheet.merge_cells(start_row=line, start_column=1, end_row=line, end_column=width)
    sheet.cell(row=line + 2, column=1, value=xlsx_cell(_notes(rollup)[1]))
    sheet.cell(row=line + 3, column=1, value=f"生成日期：{rollup.generated_on.isoformat()}")
    sheet.column_dimensions["A"].width = 32
    for column in range(2, width + 1):
        sheet.column_dimensions[get_column_letter(column)].width = 12
    sheet.column_dimensions[get_column_letter(width)].width = 36
    sheet.freeze_panes = "B4"
    workbook.properties.title = rollup.title
    workbook.properties.creator = "channelwatch"
    workbook.save(target)


def rollup_xlsx_bytes(rollup: CountyRollup) -> bytes:
    buffer = io.BytesIO()
    rollup_xlsx(rollup, buffer)
    return buffer.getvalue()
