"""What ``county import-stats`` tells the clerk: the cell to blame, the replaced sheet's time, blank sheets.

Each case is a sheet an office could really send (its own ``quarterly -o`` sheet or the county's
template) edited the way a person edits it, imported through the command line on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from openpyxl import load_workbook

from channelwatch.instance.config import load_instance
from tests.county.test_county import county, office_sheet, run

__all__ = ["county"]


def _edited(sheet: Path, target: Path, cells: dict[str, object]) -> Path:
    workbook = load_workbook(sheet)
    page = workbook.active
    assert page is not None
    for ref, value in cells.items():
        page[ref] = value
    workbook.save(target)
    return target


def _number(sheet: Path, ref: str) -> int:
    page = load_workbook(sheet).active
    assert page is not None
    return int(page[ref].value or 0)  # type: ignore[arg-type]


def test_replacement_names_the_earlier_import_in_office_time(county: Path, tmp_path: Path) -> None:
    zone = ZoneInfo(load_instance(county).offices["jiaotong"].timezone)
    sheet = office_sheet(tmp_path)
    before = datetime.now(zone)
    assert run(county, "county", "import-stats", str(sheet))[0] == 0
    after = datetime.now(zone)
    # One more original website item in October, with every total that depends on it.
    cells = ("B5", "C5", "K5", "L5", "N5", "O5", "B8", "C8", "K8", "L8", "N8", "O8")
    corrected = _edited(sheet, tmp_path / "corrected.xlsx", {ref: _number(sheet, ref) + 1 for ref in cells})
    code, out = run(county, "county", "import-stats", str(corrected))
    assert code == 0, out
    # SQLite hands the stored UTC time back without a zone: it must not be shown as if it were office time.
    shown = {f"已替换 {moment:%Y-%m-%d %H:%M} 导入的报表" for moment in (before, after)}
    assert any(text in out for text in shown), (shown, out)


def test_a_total_row_that_adds_up_but_not_to_the_channels_names_its_own_cell(county: Path, tmp_path: Path) -> None:
    sheet = office_sheet(tmp_path)
    channels = sum(_number(sheet, f"B{row}") for row in (5, 6, 7))
    # The 合计 row's October: 合计 and 原创 one higher, so 合计 = 原创 + 转发 still holds on the row.
    edited = _edited(
        sheet, tmp_path / "total-row.xlsx", {"B8": _number(sheet, "B8") + 1, "C8": _number(sheet, "C8") + 1}
    )
    code, out = run(county, "county", "import-stats", str(edited))
    assert code == 1
    assert f"单元格 B8：合计行应等于各渠道之和 {channels}（表中为 {channels + 1}）" in out, out
    # A 合计 row cell that breaks its own row but not the columns is still named for what it is.
    only_quarter = _edited(sheet, tmp_path / "quarter.xlsx", {"K8": _number(sheet, "K8") + 1})
    code, out = run(county, "county", "import-stats", str(only_quarter))
    assert code == 1 and "单元格 K8" in out, out
    # A channel row is still checked across first, each message for its own error.
    for name, cells, words in (
        ("across.xlsx", {"C5": _number(sheet, "C5") + 1}, "单元格 B5：合计应等于原创 + 转发"),
        (
            "months.xlsx",
            {"K5": _number(sheet, "K5") + 1, "L5": _number(sheet, "L5") + 1},
            "单元格 K5：本季度合计应等于三个月之和",
        ),
        (
            "year.xlsx",
            {"N5": _number(sheet, "K5") - 1, "O5": _number(sheet, "L5") - 1},
            "单元格 N5：本年累计合计不能小于本季度合计",
        ),
    ):
        code, out = run(county, "county", "import-stats", str(_edited(sheet, tmp_path / name, cells)))
        assert code == 1 and words in out, (name, out)


def test_a_period_of_another_quarter_names_the_period_and_the_month_header(county: Path, tmp_path: Path) -> None:
    sheet = office_sheet(tmp_path)
    page = load_workbook(sheet).active
    assert page is not None
    period_ref = next(c.coordinate for c in page[2] if str(c.value or "").startswith("统计期间"))
    edited = _edited(sheet, tmp_path / "period.xlsx", {period_ref: "统计期间：2020-07-01 至 2020-09-30"})
    code, out = run(county, "county", "import-stats", str(edited))
    assert code == 1
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and str(edited) in lines[0], out
    assert f"单元格 {period_ref} 的统计期间（2020年第三季度）与表头 B3 的月份（10月、11月、12月）不一致" in out, out
    assert "请确认报表的季度" in out


def test_a_missing_file_is_one_line_and_several_files_keep_the_summary(county: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nonexist.xlsx"
    code, out = run(county, "county", "import-stats", str(missing))
    assert code == 1
    assert [line for line in out.splitlines() if line.strip()] == [f"错误：找不到文件 {missing}"], out
    code, out = run(county, "county", "import-stats", str(missing), str(office_sheet(tmp_path)))
    assert code == 1 and f"错误：找不到文件 {missing}" in out and "1 个文件未导入" in out, out
    assert "其余 1 个已导入" in out


BLANK_NOTICE = "表中所有数字均为空白，按 0 计入"


def test_a_blank_template_imports_as_zero_and_says_so(county: Path, tmp_path: Path) -> None:
    template = tmp_path / "模板.xlsx"
    code, out = run(county, "county", "template", "--office", "jiaotong", "-y", "2020", "-q", "4", "-o", str(template))
    assert code == 0, out
    code, out = run(county, "county", "import-stats", str(template))
    assert code == 0 and "合计 0 条" in out and "已导入" in out and BLANK_NOTICE in out, out
    # Typed zeros are a statement, not a blank sheet.
    zeros = _edited(template, tmp_path / "zeros.xlsx", {"B5": 0})
    code, out = run(county, "county", "import-stats", str(zeros))
    assert code == 0 and BLANK_NOTICE not in out, out


def test_the_template_says_where_other_channels_go_and_such_a_row_imports(county: Path, tmp_path: Path) -> None:
    template = tmp_path / "模板.xlsx"
    code, out = run(county, "county", "template", "--office", "jiaotong", "-y", "2020", "-q", "4", "-o", str(template))
    assert code == 0, out
    workbook = load_workbook(template)
    page = workbook.active
    assert page is not None
    notes = "\n".join(str(c.value) for c in page["A"] if isinstance(c.value, str) and c.row > 9)
    assert "不要插入或删除行列" not in notes  # the importer takes an inserted channel row
    assert "在“合计”行之上插入" in notes and "不要删除或移动" in notes, notes
    # Doing what the notes say: 抖音 inserted just above 合计, its October on the 合计 row too.
    page.insert_rows(8)
    page["A8"] = "抖音"
    for column, value in {"B": 2, "C": 2, "K": 2, "L": 2, "N": 2, "O": 2}.items():
        page[f"{column}8"] = value
        page[f"{column}9"] = value
    workbook.save(template)
    code, out = run(county, "county", "import-stats", str(template))
    assert code == 0 and "合计 2 条" in out and BLANK_NOTICE not in out, out
    code, out = run(county, "county", "summary", "-y", "2020", "-q", "4", "-f", "json")
    row = next(o for o in json.loads(out)["offices"] if o["id"] == "jiaotong")
    assert row["by_kind"]["other"] == 2
