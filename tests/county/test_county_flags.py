"""What the roll-up says of a sheet office in a period it has not (or cannot yet have) reported.

A quarter without a sheet is 未报送 once it has ended, and 本期尚未结束 before; 不同渠道相同信息计1条 is unknown
(—, null) wherever no sheet states it, never 0, and so are the subtotal and the county total. A whole year with
the fourth quarter's sheet is that sheet's own 本年累计, even when earlier sheets never came, so that the row's
合计 and 本年累计 agree. A sheet office has no publications on the county's database: the one-office figure
commands refuse it and say where its figures are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from channelwatch import store
from channelwatch.county.rollup import build_rollup
from channelwatch.instance.config import load_instance
from channelwatch.stats.figures import Period
from tests.conftest import json_of
from tests.county.test_county import county, office_sheet, run

__all__ = ["county"]


def _jiaotong(root: Path, period: Period, now: datetime) -> tuple[object, object]:
    instance = load_instance(root)
    own, stores = store.open_offices(instance)
    try:
        rollup = build_rollup(instance, own, stores, period, now=now)
    finally:
        own.dispose()
    row = next(o for o in rollup.offices if o.id == "jiaotong")
    return row, rollup


def test_a_quarter_not_ended_yet_is_not_called_unreported(county: Path) -> None:
    now = datetime(2020, 11, 15, 4, 0, tzinfo=UTC)
    for period in (Period(2020, quarter=4), Period(2020, month=11), Period(2021)):
        row, _ = _jiaotong(county, period, now)
        assert row.flags == ["本期尚未结束"], period  # type: ignore[attr-defined]
    row, _ = _jiaotong(county, Period(2020, quarter=3), now)
    assert row.flags == ["未报送"]  # type: ignore[attr-defined]


def test_unique_items_without_a_sheet_are_unknown_and_so_is_the_county_figure(county: Path) -> None:
    now = datetime(2021, 2, 1, tzinfo=UTC)
    for period in (Period(2020, quarter=3), Period(2020, month=5), Period(2020)):
        row, rollup = _jiaotong(county, period, now)
        assert row.unique_items is None, period  # type: ignore[attr-defined]
        assert rollup.county_total.unique_items is None  # type: ignore[attr-defined]
        assert rollup.as_json()["unique_items"] is None  # type: ignore[attr-defined]
    code, out = run(county, "county", "summary", "-y", "2020", "-q", "3")
    assert code == 0, out
    line = next(line for line in out.splitlines() if "测试县交通运输局" in line)
    assert "—" in line and "未报送" in line


def test_a_year_with_only_the_fourth_quarters_sheet_is_that_sheets_year_to_date(county: Path, tmp_path: Path) -> None:
    sheet = office_sheet(tmp_path)  # Q3 and Q4 rows in the office's own store; only its Q4 sheet is sent
    code, out = run(county, "county", "import-stats", str(sheet))
    assert code == 0, out
    code, out = run(tmp_path / "jiaotong-own", "summary", "--year", "2020", "--format", "json")
    assert code == 0, out
    own = json_of(out)
    code, out = run(county, "county", "summary", "-y", "2020", "-f", "json")
    assert code == 0, out
    row = next(o for o in json_of(out)["offices"] if o["id"] == "jiaotong")
    assert row["total"] == row["year_to_date"] == own["total"] == 7  # 路况九月 (September) included
    assert row["reposts"] == own["reposts"] == 1
    assert row["by_kind"] == {"website": 3, "weibo": 4, "wechat": 0, "other": 0}
    assert row["flags"] == ["未报送第一季度、第二季度、第三季度"]
    code, out = run(county, "county", "summary", "-y", "2020", "-q", "4", "-f", "json")
    quarter = next(o for o in json_of(out)["offices"] if o["id"] == "jiaotong")
    assert (quarter["total"], quarter["year_to_date"]) == (6, 7)


def test_one_office_figures_of_a_sheet_office_are_refused_with_where_to_look(county: Path) -> None:
    for command in (["summary", "--year", "2020"], ["quarterly", "--year", "2020", "--quarter", "4"]):
        code, out = run(county, *command, "--office", "jiaotong")
        assert code == 1
        assert "单位「jiaotong」（测试县交通运输局）没有配置渠道，只通过季度统计表向县里报送" in out
        assert "channelwatch county summary" in out and "Traceback" not in out


def test_the_orphan_warning_of_a_county_office_names_the_office_in_its_command(county: Path) -> None:
    """After ``channels rename`` in a county office, the warning's command carries --office, as every other does."""
    code, out = run(county, "--office", "gongan", "channels", "rename", "weibo", "sina")
    assert code == 0, out
    code, out = run(county, "summary", "--year", "2020", "--office", "gongan")
    assert code == 0, out
    assert "channelwatch --office gongan channels rename sina <新渠道id>" in out
