"""``channelwatch summary`` in every format: text, json, csv, markdown, xlsx."""

from __future__ import annotations

import json
from pathlib import Path

from channelwatch.instance.config import KIND_LABELS
from channelwatch.render import render
from channelwatch.spreadsheet import csv_text, save_workbook, xlsx_row
from channelwatch.stats.figures import Summary

__all__ = ["SUMMARY_FORMATS", "summary_csv", "summary_json", "summary_text", "write_summary_xlsx"]

SUMMARY_FORMATS = ("text", "json", "csv", "markdown", "xlsx")


def summary_text(summary: Summary, templates_dir: Path | None, previous: Summary | None = None) -> str:
    return render(templates_dir, "summary.txt.j2", summary=summary, previous=previous)


def summary_markdown(summary: Summary, templates_dir: Path | None, previous: Summary | None = None) -> str:
    return render(templates_dir, "summary.md.j2", summary=summary, previous=previous)


def summary_sentence(summary: Summary, templates_dir: Path | None, previous: Summary | None = None) -> str:
    return render(templates_dir, "summary_sentence.txt.j2", summary=summary, previous=previous).strip()


def summary_json(summary: Summary) -> str:
    return json.dumps(summary.as_json(), ensure_ascii=False, indent=2) + "\n"


def _table(summary: Summary) -> list[list[object]]:
    rows: list[list[object]] = [["月份", *[c.name for c in summary.channels], "合计"]]
    for month, total, per in summary.month_rows():
        rows.append([month, *[per[c.key] for c in summary.channels], total])
    rows.append(["合计", *[c.total for c in summary.channels], summary.total])
    rows.append(["其中转发", *[c.reposts for c in summary.channels], summary.reposts])
    rows.append(["原创", *[c.original for c in summary.channels], summary.original])
    return rows


def summary_csv(summary: Summary) -> str:
    return csv_text(_table(summary))


def write_summary_xlsx(summary: Summary, target: Path, sentence: str) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, Side

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "按月统计"
    table = _table(summary)
    width = len(table[0])
    sheet.append(xlsx_row([f"{summary.office}{summary.period.label}信息发布统计"]))
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    sheet["A1"].font = Font(bold=True, size=14)
    sheet["A1"].alignment = Alignment(horizontal="center")
    sheet.append([f"统计期间：{summary.period.start.isoformat()} 至 {summary.period.end.isoformat()}"])
    thin = Side(style="thin")
    for row in table:
        sheet.append(xlsx_row(row))
    first, last = 3, 3 + len(table) - 1
    for row_cells in sheet.iter_rows(min_row=first, max_row=last, max_col=width):
        for cell in row_cells:
            cell.border = Border(left=thin, right=thin, top=thin, bottom=thin)
            if cell.row == first or cell.column == 1:
                cell.font = Font(bold=True)
                cell.alignment = Alignment(horizontal="center")
    sheet.append([])
    sheet.append(xlsx_row([sentence]))
    sheet.column_dimensions["A"].width = 12
    for index in range(2, width + 1):
        sheet.column_dimensions[sheet.cell(row=first, column=index).column_letter].width = 14

    channels = workbook.create_sheet("分渠道")
    channels.append(["渠道", "类型", "合计", "其中转发", "原创"])
    for c in summary.channels:
        channels.append(xlsx_row([c.name, KIND_LABELS.get(c.kind, c.kind), c.total, c.reposts, c.original]))
    channels.append(["合计", "", summary.total, summary.reposts, summary.original])
    channels.append(["去重后不同信息", "", summary.unique_items, "", ""])
    save_workbook(workbook, target)
