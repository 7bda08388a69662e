"""Quarterly statistics: figures per channel and month, year to date, text/HTML bodies, the XLSX sheet."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from channelwatch import store
from channelwatch.cli import app
from channelwatch.ingest.imports import import_file
from channelwatch.instance.config import load_instance
from channelwatch.reports.quarterly import build_quarterly, previous_quarter
from channelwatch.stats.figures import Period, summarise
from channelwatch.store import open_store
from tests.conftest import SAMPLES

OFFICE = "彭阳县王洼产业园区管理委员会"


@pytest.fixture
def loaded(instance_dir: Path):  # type: ignore[no-untyped-def]
    opened = open_store(load_instance(instance_dir))
    for channel_dir in sorted(p for p in SAMPLES.iterdir() if p.is_dir()):
        for path in sorted(channel_dir.iterdir()):
            import_file(opened, channel_dir.name, path)
    yield opened
    opened.dispose()


def test_previous_quarter() -> None:
    from datetime import date

    assert previous_quarter(date(2021, 1, 3)) == (2020, 4)
    assert previous_quarter(date(2021, 4, 3)) == (2021, 1)
    assert previous_quarter(date(2021, 12, 31)) == (2021, 3)


def test_figures_match_the_summary(loaded) -> None:  # type: ignore[no-untyped-def]
    with store.read(loaded.engine) as conn:
        report = build_quarterly(conn, loaded.office_id, 2020, 4)
        quarter = summarise(conn, loaded.office_id, Period(2020, quarter=4))
        year = summarise(conn, loaded.office_id, Period(2020))
    assert report.subject == f"{OFFICE}2020年第四季度政府信息公开统计"
    assert [r.key for r in report.rows] == [c.key for c in quarter.channels]
    for row, figures in zip(report.rows, quarter.channels, strict=True):
        assert [m.total for m in row.months] == [figures.by_month.get(m, 0) for m in (10, 11, 12)]
        assert [m.reposts for m in row.months] == [figures.reposts_by_month.get(m, 0) for m in (10, 11, 12)]
        assert row.quarter.total == figures.total and row.quarter.original == figures.original
    # Q4's year to date is the whole year: the report's figures (1279 for the sample office).
    assert report.total.year_to_date.total == year.total
    assert report.total.year_to_date.reposts == year.reposts
    assert report.total.quarter.total == quarter.total
    assert f"共发布信息{quarter.total}条" in report.text
    assert f"累计发布{year.total}条" in report.text
    assert "<table" in report.html and f"<b>{quarter.total}</b>" in report.html


def test_year_to_date_stops_at_the_quarter(loaded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with store.read(loaded.engine) as conn:
        report = build_quarterly(conn, loaded.office_id, 2020, 3)
        year = summarise(conn, loaded.office_id, Period(2020))
    expected = sum(n for c in year.channels for m, n in c.by_month.items() if m <= 9)
    assert report.total.year_to_date.total == expected
    assert expected < year.total  # the sample office published in Q4 too
    assert report.ytd_label == "本年累计（1—9月）"


def test_xlsx_layout_and_values(loaded) -> None:  # type: ignore[no-untyped-def]
    with store.read(loaded.engine) as conn:
        report = build_quarterly(conn, loaded.office_id, 2020, 4)
    sheet = load_workbook(io.BytesIO(report.xlsx_bytes())).active
    assert sheet.title == "季度统计"
    assert sheet["A1"].value == f"{OFFICE}2020年第四季度政府信息公开统计表"
    assert sheet["A2"].value == f"填报单位：{OFFICE}"
    assert "2020-10-01 至 2020-12-31" in str(sheet.cell(row=2, column=9).value)
    header = [sheet.cell(row=3, column=c).value for c in range(1, 17)]
    assert header[0] == "渠道" and header[1] == "10月" and header[4] == "11月" and header[7] == "12月"
    assert header[10] == "本季度合计" and header[13] == "本年累计（1—12月）"
    assert [sheet.cell(row=4, column=c).value for c in range(2, 5)] == ["合计", "原创", "转发"]
    rows = {sheet.cell(row=r, column=1).value: r for r in range(5, 5 + len(report.rows) + 1)}
    assert list(rows) == [*[r.name for r in report.rows], "合计"]
    for row in [*report.rows, report.total]:
        line = rows[row.name]
        values = [sheet.cell(row=line, column=c).value for c in range(2, 17)]
        expected = []
        for f in [*row.months, row.quarter, row.year_to_date]:
            expected += [f.total, f.original, f.reposts]
        assert values == expected
    totals = [sheet.cell(row=rows["合计"], column=c).value for c in range(2, 17)]
    channel_sums = [sum(sheet.cell(row=rows[r.name], column=c).value for r in report.rows) for c in range(2, 17)]
    assert totals == channel_sums


def test_cli_quarterly_prints_and_writes_xlsx(loaded, instance_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    out = tmp_path / "q4.xlsx"
    result = runner.invoke(
        app, ["--instance", str(instance_dir), "quarterly", "--year", "2020", "--quarter", "4", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"主题：{OFFICE}2020年第四季度政府信息公开统计" in result.output
    assert out.is_file() and load_workbook(out).active["A1"].value.endswith("统计表")
    result = runner.invoke(
        app, ["--instance", str(instance_dir), "quarterly", "-y", "2020", "-q", "4", "--format", "json"]
    )
    data = json.loads(result.output)
    assert data["period"]["quarter"] == 4 and data["total"]["year_to_date"]["total"] > 0
    # Nothing was sent or written to the outbox without --send.
    assert not (instance_dir / "outbox").exists()


def test_instance_template_overrides_the_subject(loaded, instance_dir: Path) -> None:  # type: ignore[no-untyped-def]
    (instance_dir / "templates").mkdir()
    (instance_dir / "templates" / "quarterly_subject.txt.j2").write_text(
        "【季度统计】{{ report.period.label }}", encoding="utf-8"
    )
    with store.read(loaded.engine) as conn:
        report = build_quarterly(conn, loaded.office_id, 2020, 1, templates_dir=instance_dir / "templates")
    assert report.subject == "【季度统计】2020年第一季度"


def test_a_table_of_a_quarter_still_under_way_says_so(loaded) -> None:  # type: ignore[no-untyped-def]
    """The web view downloads and -o writes a quarterly table any day: one made before the quarter ended says its
    figures can still change; one made after does not."""
    from datetime import date

    def notes(today: date) -> list[str]:
        with store.read(loaded.engine) as conn:
            report = build_quarterly(conn, loaded.office_id, 2020, 4, today=today)
        sheet = load_workbook(io.BytesIO(report.xlsx_bytes())).active
        return [str(c.value) for c in sheet["A"] if c.value and str(c.value).startswith(("注意", "填报日期"))]

    assert notes(date(2020, 12, 31)) == [
        "填报日期：2020-12-31",
        "注意：本季度尚未结束，数字统计至 2020-12-31，还会变化，不宜作为正式报送",
    ]
    assert notes(date(2021, 1, 4)) == ["填报日期：2021-01-04"]


def test_the_printed_forms_of_a_quarter_still_under_way_say_so(loaded) -> None:  # type: ignore[no-untyped-def]
    """``quarterly`` prints text, HTML or JSON any day as well: each says when the quarter is not over yet."""
    from datetime import date

    note = "注意：本季度尚未结束，数字统计至 2020-12-31，还会变化，不宜作为正式报送"
    with store.read(loaded.engine) as conn:
        early = build_quarterly(conn, loaded.office_id, 2020, 4, today=date(2020, 12, 31))
        late = build_quarterly(conn, loaded.office_id, 2020, 4, today=date(2021, 1, 4))
    assert note in early.text and note in early.html
    assert early.as_json()["unfinished"] is True and early.as_json()["generated_on"] == "2020-12-31"
    assert "尚未结束" not in late.text and "尚未结束" not in late.html
    assert late.as_json()["unfinished"] is False
    with store.read(loaded.engine) as conn:
        ahead = build_quarterly(conn, loaded.office_id, 2099, 1, today=date(2026, 11, 30))
    assert "注意：本季度还没有开始（统计日期 2026-11-30），以下数字都是 0，不是统计结果" in ahead.text
    assert "尚未结束" not in ahead.text
    # Printed, it was never sent: the text does not claim it was.
    assert "本统计由 channelwatch 于 2021-01-04 自动生成。" in late.text and "发送" not in late.text.splitlines()[-1]
