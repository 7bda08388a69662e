"""The verdict as the office reads it: text, HTML (templates ``inspection.*.j2``), JSON and XLSX."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from channelwatch.checks.rules import CLASS_LABELS, LEVEL_LABELS, RULE_LABELS, STATUS_LABELS, Inspection
from channelwatch.render import render
from channelwatch.spreadsheet import xlsx_value

__all__ = ["as_html", "as_json_text", "as_text", "as_xlsx", "safe_cell"]


def _context(inspection: Inspection, min_probes: int) -> dict[str, Any]:
    return {
        "r": inspection,
        "labels": LEVEL_LABELS,
        "rules": RULE_LABELS,
        "classes": CLASS_LABELS,
        "statuses": STATUS_LABELS,
        "min_probes": min_probes,
    }


def as_text(inspection: Inspection, templates_dir: Path | None = None, min_probes: int = 20) -> str:
    return render(templates_dir, "inspection.txt.j2", **_context(inspection, min_probes))


def as_html(inspection: Inspection, templates_dir: Path | None = None, min_probes: int = 20) -> str:
    return render(templates_dir, "inspection.html.j2", **_context(inspection, min_probes))


def as_json_text(inspection: Inspection) -> str:
    return json.dumps(inspection.as_json(), ensure_ascii=False, indent=2) + "\n"


def safe_cell(value: Any) -> Any:
    """A cell value: text a spreadsheet would run as a formula (= + - @, a leading tab/CR) stays text,
    control characters XLSX cannot hold are written as visible escapes (``spreadsheet.xlsx_value``)."""
    return xlsx_value(value)


def as_xlsx(inspection: Inspection) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheets: list[tuple[str, list[str], list[list[Any]]]] = [
        (
            "结论",
            ["单位", "截至", "总体结论", "渠道", "渠道结论"],
            [
                [
                    inspection.office,
                    inspection.as_of.isoformat(),
                    inspection.verdict_label,
                    c.name,
                    c.label,
                ]
                for c in inspection.channels
            ],
        ),
        (
            "问题",
            ["程度", "渠道", "检查项", "情况", "怎么办"],
            [
                [LEVEL_LABELS[f.level], f.channel_name, RULE_LABELS[f.rule], f.detail, f.action]
                for f in inspection.findings
            ],
        ),
        (
            "栏目",
            ["渠道", "栏目", "类别", "地址", "条目", "无日期", "最新发布", "天数", "期限", "状态"],
            [
                [
                    c.channel,
                    c.name,
                    CLASS_LABELS[c.column_class],
                    c.url,
                    c.items,
                    c.undated,
                    c.last_published.isoformat() if c.last_published else None,
                    c.age_days,
                    c.limit_days,
                    STATUS_LABELS[c.status],
                ]
                for c in inspection.columns
            ],
        ),
        (
            "可访问性",
            ["渠道", "探测次数", "失败次数", "失败率"],
            [[a.channel, a.probes, a.failed, a.rate] for a in inspection.availability],
        ),
        (
            "不可用链接",
            ["渠道", "链接", "状态", "判断", "所在页面"],
            [[d.channel, d.url, d.status, d.certainty, d.found_on] for d in inspection.dead_links],
        ),
        (
            "政务新媒体",
            ["渠道", "最新发布", "距今天数", "最长间隔", "超期累计天数", "转发占比"],
            [
                [
                    n.channel,
                    n.last_published.isoformat() if n.last_published else None,
                    n.days_since,
                    n.longest_gap_days,
                    n.days_over_limit,
                    n.repost_share,
                ]
                for n in inspection.newmedia
            ],
        ),
    ]
    first = True
    for title, header, rows in sheets:
        sheet = book.active if first else book.create_sheet()
        assert sheet is not None
        first = False
        sheet.title = title
        sheet.append(header)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append([safe_cell(v) for v in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
