"""The office's quarterly sheet and the county: 不同渠道相同信息计1条 round trip, older sheets, the counts, jobs.

An office instance's ``quarterly -o`` sheets (every quarter of 2020) imported by a county instance give
the office's own figures, including the items counted once across channels, for a quarter and for the
year; a sheet without that line (written before channelwatch wrote it) still imports and the figure is
unknown (null, —), never zero. The roll-up read from the counts table equals counting the publications.
On SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import text

from channelwatch import store
from channelwatch.county.rollup import build_rollup
from channelwatch.instance.config import load_instance
from channelwatch.stats.figures import Period, summarise_publications
from tests.conftest import json_of, write_instance
from tests.county.test_county import county, expected_sheet_office, office_sheet, run, write_county, write_csv

__all__ = ["county"]

# The sheet office's own rows: 巡查通报 is on two channels in Q1 and again in Q2 (one item per quarter,
# one in the year); 路况 is on every channel in Q4; one Weibo repost in Q3.
OWN_ROWS = {
    "website": [
        ("巡查通报", "2020-02-03 09:00", False),
        ("春运安排", "2020-01-20 09:00", False),
        ("巡查通报", "2020-05-06 09:00", False),
        ("路况", "2020-11-02 09:00", False),
        ("年终总结", "2020-12-28 09:00", False),
    ],
    "weibo": [
        ("巡查通报", "2020-02-03 10:00", False),
        ("转发：安全提示", "2020-08-08 10:00", True),
        ("路况", "2020-11-02 10:00", False),
    ],
    "wechat": [("路况", "2020-11-02 12:00", False), ("国庆出行", "2020-10-01 12:00", False)],
}


def own_office(tmp_path: Path) -> Path:
    office = write_instance(tmp_path / "jiaotong-own")
    config = office / "config" / "channelwatch.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("彭阳县王洼产业园区管理委员会", "测试县交通运输局"), encoding="utf-8"
    )
    for channel, rows in OWN_ROWS.items():
        code, out = run(office, "import", channel, str(write_csv(tmp_path / f"own-{channel}.csv", rows)))
        assert code == 0, out
    return office


def office_summary(office: Path, *period: str) -> dict[str, object]:
    code, out = run(office, "summary", "--year", "2020", *period, "--format", "json")
    assert code == 0, out
    data: dict[str, object] = json_of(out)
    return data


def jiaotong(county: Path, *period: str) -> tuple[dict[str, object], dict[str, object]]:
    code, out = run(county, "county", "summary", "-y", "2020", *period, "-f", "json")
    assert code == 0, out
    data = json_of(out)
    return next(o for o in data["offices"] if o["id"] == "jiaotong"), data


def test_quarterly_sheets_round_trip_with_unique_items(county: Path, tmp_path: Path) -> None:
    office = own_office(tmp_path)
    for quarter in (1, 2, 3, 4):
        sheet = tmp_path / f"Q{quarter}.xlsx"
        code, out = run(office, "quarterly", "-y", "2020", "-q", str(quarter), "-o", str(sheet))
        assert code == 0, out
        page = load_workbook(sheet).active
        assert page is not None
        assert page["A9"].value == "不同渠道相同信息计1条"
        code, out = run(county, "county", "import-stats", str(sheet))
        assert code == 0, out

    for quarter in ("1", "2", "3", "4"):
        own = office_summary(office, "--quarter", quarter)
        row, _ = jiaotong(county, "-q", quarter)
        assert row["source"] == "report"
        assert (row["total"], row["reposts"], row["unique_items"]) == (
            own["total"],
            own["reposts"],
            own["unique_items"],
        ), quarter
        code, out = run(office, "quarterly", "-y", "2020", "-q", quarter, "-f", "json")
        stated = json_of(out)["unique_items"]
        assert stated["quarter"] == own["unique_items"]
        # January to the quarter's end, counted here from the rows themselves.
        last = int(quarter) * 3
        titles = {t for rows in OWN_ROWS.values() for t, moment, _ in rows if int(moment[5:7]) <= last}
        assert stated["year_to_date"] == len(titles), quarter

    # The year: the Q4 sheet's 本年累计 line, not the quarters added up (巡查通报 is in Q1 and Q2).
    own_year = office_summary(office)
    row, data = jiaotong(county)
    quarters_added = sum(int(office_summary(office, "--quarter", q)["unique_items"]) for q in "1234")  # type: ignore[call-overload]
    assert row["unique_items"] == own_year["unique_items"] < quarters_added
    assert row["total"] == own_year["total"] and row["year_to_date"] == own_year["total"]
    for channel in own_year["channels"]:  # type: ignore[attr-defined]
        assert row["by_kind"][channel["kind"]] == channel["total"]  # type: ignore[index]
    assert row["flags"] == []
    assert data["unique_items"] == sum(o["unique_items"] for o in data["offices"])

    # A month is never stated on a quarterly sheet: unknown, and so are the subtotal and the county's.
    row, data = jiaotong(county, "-m", "11")
    assert row["unique_items"] is None and data["unique_items"] is None
    assert row["total"] == office_summary(office, "--month", "11")["total"]


def _without_unique_line(sheet: Path, target: Path) -> Path:
    """The sheet as channelwatch wrote it before it had the 不同渠道相同信息计1条 line."""
    workbook = load_workbook(sheet)
    page = workbook.active
    assert page is not None and page["A9"].value == "不同渠道相同信息计1条"
    page.delete_rows(9)
    workbook.save(target)
    return target


def test_an_older_sheet_imports_with_unique_items_unknown(county: Path, tmp_path: Path) -> None:
    older = _without_unique_line(office_sheet(tmp_path), tmp_path / "older.xlsx")
    code, out = run(county, "county", "import-stats", str(older))
    assert code == 0 and "已导入" in out
    row, data = jiaotong(county, "-q", "4")
    assert row["unique_items"] is None
    assert (row["total"], row["reposts"]) == (expected_sheet_office()["total"], expected_sheet_office()["reposts"])
    groups = {g["group"]: g for g in data["groups"]}
    assert groups["县直部门"]["total"] == sum(o["total"] for o in data["offices"] if o["group"] == "县直部门")
    assert data["unique_items"] is None  # a county figure that leaves an office out is no county figure
    others = [o for o in data["offices"] if o["id"] != "jiaotong"]
    assert all(isinstance(o["unique_items"], int) for o in others)

    code, text_out = run(county, "county", "summary", "-y", "2020", "-q", "4")
    assert code == 0, text_out
    lines = {line.split()[0]: line.split() for line in text_out.splitlines() if line.strip()}
    assert lines["测试县交通运输局"][7] == "—"
    assert lines["县直部门小计"][7] == "—" and lines["全县合计"][7] == "—"
    assert lines["乡镇小计"][7] == str(next(o for o in others if o["id"] == "baiyang")["unique_items"])
    assert "报表未给出该数（测试县交通运输局）" in text_out

    target = tmp_path / "汇总.xlsx"
    assert run(county, "county", "summary", "-y", "2020", "-q", "4", "-f", "xlsx", "-o", str(target))[0] == 0
    page = load_workbook(target).active
    assert page is not None
    by_name = {r[0]: r for r in page.iter_rows(values_only=True) if r[0]}
    assert by_name["测试县交通运输局"][7] == "—" and by_name["全县合计"][7] == "—"
    assert by_name["测试县公安局"][7] == next(o for o in others if o["id"] == "gongan")["unique_items"]

    # The sheet as channelwatch writes it now replaces the older one and states the figure.
    code, out = run(county, "county", "import-stats", str(tmp_path / "交通局2020Q4.xlsx"))
    assert code == 0 and "已替换" in out
    row, data = jiaotong(county, "-q", "4")
    assert isinstance(row["unique_items"], int) and isinstance(data["unique_items"], int)


def test_unique_line_that_does_not_add_up_is_refused_naming_the_cell(county: Path, tmp_path: Path) -> None:
    sheet = office_sheet(tmp_path)
    page = load_workbook(sheet).active
    assert page is not None
    quarter_total, quarter_unique = int(page["K8"].value), int(page["K9"].value)  # type: ignore[arg-type]
    assert 0 < quarter_unique < quarter_total
    for name, cells, cell in (
        ("more.xlsx", {"K9": quarter_total + 1}, "K9"),
        ("year-less.xlsx", {"N9": quarter_unique - 1}, "N9"),
        ("year-more.xlsx", {"N9": int(page["N8"].value) + 1}, "N9"),  # type: ignore[arg-type]
        ("text.xlsx", {"K9": "很多"}, "K9"),
    ):
        workbook = load_workbook(sheet)
        for ref, value in cells.items():
            workbook.active[ref] = value  # type: ignore[index]
        workbook.save(tmp_path / name)
        code, out = run(county, "county", "import-stats", str(tmp_path / name))
        assert code == 1 and f"单元格 {cell}" in out, (name, out)
    code, out = run(county, "county", "summary", "-y", "2020", "-q", "4", "-f", "json")
    assert "未报送" in next(o for o in json_of(out)["offices"] if o["id"] == "jiaotong")["flags"]


def test_the_template_has_the_unique_line_where_the_office_sheet_has_it(county: Path, tmp_path: Path) -> None:
    template = tmp_path / "模板.xlsx"
    code, out = run(county, "county", "template", "-o", str(template), "--office", "jiaotong", "-y", "2020", "-q", "4")
    assert code == 0, out
    sheet = load_workbook(office_sheet(tmp_path)).active
    blank = load_workbook(template).active
    assert sheet is not None and blank is not None
    for ref in ("A2", "A3", "B3", "K3", "N3", "B4", "K4", "N4", "A8", "A9"):
        assert blank[ref].value == sheet[ref].value or (ref == "N3" and str(sheet[ref].value).startswith("本年累计")), (
            ref
        )
    # Filled by hand with both figures: both are stored and the year's is used for the year.
    for column, value in {"B": 2, "C": 2, "K": 2, "L": 2, "N": 3, "O": 3}.items():
        blank[f"{column}5"] = value
        blank[f"{column}8"] = value
    blank["K9"], blank["N9"] = 1, 2
    blank.parent.save(template)
    code, out = run(county, "county", "import-stats", str(template))
    assert code == 0, out
    assert jiaotong(county, "-q", "4")[0]["unique_items"] == 1
    # The year has no Q1–Q3 sheets: its figure cannot be told (and the quarters are flagged).
    row, _ = jiaotong(county)
    assert row["unique_items"] is None and any(f.startswith("未报送第一") for f in row["flags"])


def test_rollup_from_the_counts_equals_counting_the_publications(county: Path) -> None:
    # A channel dropped from an office's configuration keeps its publications in the store: counted nowhere,
    # and its titles must not count in the office's 不同渠道相同信息计1条 either.
    town = county / "config" / "offices" / "baiyang.toml"
    body = town.read_text(encoding="utf-8")
    town.write_text(body[: body.index('\n[[channels]]\nid = "wechat"')] + "\n", encoding="utf-8")
    instance = load_instance(county)
    own, stores = store.open_offices(instance)
    try:
        for period in (Period(2020), Period(2020, quarter=4), Period(2020, quarter=3), Period(2020, month=11)):
            rollup = build_rollup(instance, own, stores, period)
            rows = {o.id: o for o in rollup.offices}
            with store.read(own.engine) as conn:
                for key, opened in stores.items():
                    channels = [c.id for c in opened.instance.config.channels]
                    if not channels:
                        continue
                    counted = summarise_publications(conn, opened.office_id, period, channels)
                    row = rows[key]
                    assert (row.total, row.reposts, row.unique_items) == (
                        counted.total,
                        counted.reposts,
                        counted.unique_items,
                    ), (key, period)
                    for kind in ("website", "weibo", "wechat", "other"):
                        assert row.by_kind[kind] == sum(c.total for c in counted.channels if c.kind == kind)
                    to_date = summarise_publications(conn, opened.office_id, Period(2020), channels)
                    assert row.year_to_date == sum(
                        n for c in to_date.channels for m, n in c.by_month.items() if m <= period.months[-1]
                    )
        with store.read(own.engine) as conn:
            dropped = conn.execute(text("SELECT count(*) FROM channel WHERE key = 'wechat'")).scalar_one()
        assert dropped == 1  # the dropped channel is still in the store: the case above is real
    finally:
        own.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_jobs_lists_every_office_of_a_county(tmp_path: Path, database_url: str) -> None:
    root = write_county(tmp_path / "county", database_url)
    (root / "jobs").mkdir()
    (root / "jobs" / "poll.toml").write_text('action = "poll"\nevery = "30m"\n', encoding="utf-8")
    (root / "jobs" / "town.toml").write_text(
        'action = "freshness-check"\ncron = "0 8 * * *"\noffices = ["baiyang"]\n', encoding="utf-8"
    )
    (root / "jobs" / "county.toml").write_text('action = "county-quarterly"\ncron = "0 9 10 1,4,7,10 *"\n')
    code, out = run(root, "jobs", "--format", "json")
    assert code == 0, out
    pairs = [(job["office"], job["id"]) for job in json_of(out)["jobs"]]
    # The office that only sends its sheet has no channels: a job without ``offices`` leaves it out.
    offices = [key for key, office in load_instance(root).offices.items() if office.config.channels]
    assert "jiaotong" not in offices and len(offices) == 2
    expected = [(None, "county"), *[(o, "poll") for o in offices], ("baiyang", "town")]
    assert sorted(pairs, key=str) == sorted(expected, key=str)

    code, out = run(root, "run-job", "town")
    assert code == 0, out
    code, out = run(root, "jobs", "--format", "json")
    status = {(job["office"], job["id"]): job["last_status"] for job in json_of(out)["jobs"]}
    assert status["baiyang", "town"] in {"ok", "warn"} and status["gongan", "poll"] is None
    code, out = run(root, "jobs")
    assert code == 0, out
    lines = [line.split() for line in out.splitlines()]
    assert lines[0][:3] == ["任务", "单位", "动作"]
    rows = {(cells[0], cells[1]): cells for cells in lines[1:] if cells and cells[0] in {"poll", "town", "county"}}
    assert set(rows) == {("county", "全县"), *(("poll", o) for o in offices), ("town", "baiyang")}
    assert "从未运行" in rows["poll", "gongan"]
    assert "从未运行" not in rows["town", "baiyang"]

    # One office's jobs, as before: no office column.
    code, out = run(root, "jobs", "--office", "baiyang")
    assert code == 0, out
    assert out.splitlines()[0].split()[:2] == ["任务", "动作"]
    assert {line.split()[0] for line in out.splitlines()[1:] if line.strip()} >= {"poll", "town"}
    assert "county-quarterly" not in out


def test_overdue_flags_name_exactly_the_late_channels(tmp_path: Path, database_url: str) -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    root = write_county(tmp_path / "county", database_url)
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    recent, late = today - timedelta(days=3), today - timedelta(days=20)
    tree = tmp_path / "tree"
    write_csv(tree / "gongan" / "website" / "w.csv", [("近期通知", f"{recent} 09:00", False)])
    write_csv(tree / "gongan" / "weibo" / "b.csv", [("旧微博", f"{late} 23:30", False)])
    write_csv(tree / "baiyang" / "website" / "w.csv", [("镇近期通知", f"{recent} 10:00", False)])
    assert run(root, "import-tree", str(tree))[0] == 0
    code, out = run(root, "county", "summary", "-y", str(today.year), "-f", "json")
    assert code == 0, out
    flags = {o["id"]: o["flags"] for o in json_of(out)["offices"]}
    assert flags["gongan"] == ["超期未更新：微博已20天未更新"]
    assert flags["baiyang"] == [  # its WeChat account has no record at all: that 0 is no count either
        "无数据的渠道：微信公众号（本期结束前没有发布记录，其 0 不是统计结果）",
        "超期未更新：微信公众号无发布记录",
    ]
    assert flags["jiaotong"] == ["未报送"]  # no sheet for the year (yet): never 无发布


def test_a_store_from_before_the_unique_line_upgrades_and_keeps_its_sheets(
    county: Path, tmp_path: Path, database_url: str
) -> None:
    """A county store whose reported sheets have no year-to-date figure column gets it at the next open."""
    from channelwatch.store import schema

    older = _without_unique_line(office_sheet(tmp_path), tmp_path / "older.xlsx")
    assert run(county, "county", "import-stats", str(older))[0] == 0
    engine = store.open_engine(database_url)
    try:
        with store.write(engine) as conn:
            conn.execute(text("ALTER TABLE reported_sheet DROP COLUMN unique_year_to_date"))
            # The version just before the step that adds the column (later steps may follow it).
            before = schema._MIGRATIONS.index(schema._reported_unique_to_date_v6)
            conn.execute(text("UPDATE schema_version SET version = :v"), {"v": before})
        assert store.ensure_schema(engine) == before
        with store.read(engine) as conn:
            stored = conn.execute(text("SELECT unique_items, unique_year_to_date FROM reported_sheet")).all()
        assert stored == [(None, None)]  # the older sheet stated neither: unknown, not zero
    finally:
        engine.dispose()
    # The same older sheet again changes nothing; the roll-up still works on the upgraded store.
    code, out = run(county, "county", "import-stats", str(older))
    assert code == 0 and "未改变" in out
    assert jiaotong(county, "-q", "4")[0]["unique_items"] is None


def test_a_broken_or_bomb_sheet_is_refused_in_chinese_and_stores_nothing(county: Path, tmp_path: Path) -> None:
    import zipfile

    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04not really a zip")
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (48 << 20))  # 48 MB unpacked from ~50 KB
    for path, words in ((broken, "不是有效的 XLSX 文件"), (bomb, "疑似压缩炸弹")):
        code, out = run(county, "county", "import-stats", str(path))
        assert code == 1 and words in out and "Error" not in out and "Traceback" not in out, out
    code, out = run(county, "county", "summary", "-y", "2020", "-q", "4", "-f", "json")
    assert next(o for o in json_of(out)["offices"] if o["id"] == "jiaotong")["total"] == 0


def test_a_workbook_with_two_quarters_tables_is_refused_whole(county: Path, tmp_path: Path) -> None:
    """Only the first sheet is read: a third quarter's table behind the fourth was passed over without a word."""
    from openpyxl import load_workbook

    workbook = load_workbook(office_sheet(tmp_path))
    second = workbook.copy_worksheet(workbook.worksheets[0])
    second.title = "第三季度"
    both = tmp_path / "两个季度.xlsx"
    workbook.save(both)
    code, out = run(county, "county", "import-stats", str(both))
    assert code == 1
    assert "中有 2 个工作表是季度统计表" in out and "「第三季度」" in out and "另存为单独的文件" in out, out
    code, out = run(county, "county", "summary", "-y", "2020", "-q", "4", "-f", "json")
    assert "未报送" in next(o for o in json_of(out)["offices"] if o["id"] == "jiaotong")["flags"]
