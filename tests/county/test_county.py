"""County instances on SQLite and PostgreSQL: config, --office, the roll-up cell by cell, sheets, delivery, jobs.

The county here has three offices: two counted on the county's database (``gongan`` in 县直部门 with a
website and a Weibo account, ``baiyang`` in 乡镇 with a website and a WeChat account) and one that only
sends its quarterly sheet (``jiaotong``, 县直部门). Every expected figure below is counted from the rows
the test writes, not copied from an output.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from channelwatch import store
from channelwatch.cli import app
from channelwatch.instance.config import load_instance
from channelwatch.store.reported import ReportedSheet
from tests.conftest import json_of, write_instance
from tests.fakeplatforms import FakePlatforms, fake_platforms
from tests.sources.contract import poll_tables

__all__ = ["fake_platforms"]

# (title, local time, repost) per office and channel. Q4 2020 is the period; Q3 rows count only in 本年累计.
ROWS = {
    ("gongan", "website"): [
        ("冬季交通安全提示", "2020-10-05 09:00", False),
        ("关于开展禁毒宣传的通知", "2020-11-10 09:00", False),
        ("三季度工作总结", "2020-08-01 09:00", False),
    ],
    ("gongan", "weibo"): [
        ("冬季交通安全提示", "2020-10-05 10:00", False),  # same title as on the website: one item
        ("转发：全国禁毒日", "2020-10-20 10:00", True),
        ("雪天出行注意", "2020-12-30 23:30", False),
        ("夏季防溺水", "2020-07-15 10:00", False),
    ],
    ("baiyang", "website"): [
        ("白杨镇脱贫攻坚推进会", "2020-11-03 10:00", False),
        ("白杨镇冬季防火通告", "2020-12-20 10:00", False),
    ],
    ("baiyang", "wechat"): [
        ("白杨镇脱贫攻坚推进会", "2020-11-03 12:00", False),
        ("学习贯彻全会精神", "2020-11-05 12:00", True),
        ("白杨镇秋收", "2020-09-05 12:00", False),
    ],
}
# The sheet office's own instance: Q4 and Q3 rows; 路况一 is on the website and on Weibo (one item).
SHEET_ROWS = {
    "website": [
        ("交通局通知一", "2020-10-08 09:00", False),
        ("交通局通知二", "2020-12-01 09:00", False),
        ("路况一", "2020-10-09 08:00", False),
    ],
    "weibo": [
        ("路况一", "2020-10-09 09:00", False),
        ("路况二", "2020-10-10 09:00", True),
        ("路况三", "2020-11-11 09:00", False),
        ("路况九月", "2020-09-11 09:00", False),
    ],
    "wechat": [],
}

CHANNELS = {
    "gongan": [("website", "website", "政府网站"), ("weibo", "weibo", "微博")],
    "baiyang": [("website", "website", "政府网站"), ("wechat", "wechat", "微信公众号")],
}


def _channel_toml(key: str, kind: str, name: str, poll: str | None = None) -> str:
    body = f'\n[[channels]]\nid = "{key}"\nkind = "{kind}"\nname = "{name}"\n'
    if poll:
        body += "  [channels.poll]\n" + poll + "\n"
    return body


def write_county(root: Path, url: str, polls: dict[str, dict[str, str]] | None = None) -> Path:
    (root / "config" / "offices").mkdir(parents=True)
    (root / "config" / "channelwatch.toml").write_text(
        f'[county]\nname = "测试县"\nshort_name = "我县"\n\n[database]\nurl = "{url}"\n'
        '\n[delivery]\noutbox = "outbox"\n',
        encoding="utf-8",
    )
    offices = {
        "gongan": ("测试县公安局", "县直部门"),
        "baiyang": ("测试县白杨镇人民政府", "乡镇"),
        "jiaotong": ("测试县交通运输局", "县直部门"),
    }
    for key, (name, group) in offices.items():
        body = f'[office]\nname = "{name}"\nshort_name = "我单位"\ngroup = "{group}"\n'
        for channel in CHANNELS.get(key, []):
            body += _channel_toml(*channel, poll=(polls or {}).get(key, {}).get(channel[0]))
        (root / "config" / "offices" / f"{key}.toml").write_text(body, encoding="utf-8")
    return root


def write_csv(path: Path, rows: list[tuple[str, str, bool]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["标题", "发布时间", "是否转发"])
        for title, moment, repost in rows:
            writer.writerow([title, moment, "是" if repost else "否"])
    return path


def run(instance: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--instance", str(instance), *args])
    return result.exit_code, result.output


def in_q4(moment: str) -> bool:
    return moment[:7] in {"2020-10", "2020-11", "2020-12"}


@pytest.fixture
def county(tmp_path: Path, database_url: str) -> Path:
    root = write_county(tmp_path / "county", database_url)
    tree = tmp_path / "tree"
    for (office, channel), rows in ROWS.items():
        write_csv(tree / office / channel / f"{channel}.csv", rows)
    code, out = run(root, "import-tree", str(tree))
    assert code == 0, out
    return root


def office_sheet(tmp_path: Path) -> Path:
    """The sheet office's own one-office instance writes its Q4 sheet with ``quarterly -o``."""
    office = write_instance(tmp_path / "jiaotong-own")
    config = office / "config" / "channelwatch.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("彭阳县王洼产业园区管理委员会", "测试县交通运输局"), encoding="utf-8"
    )
    for channel, rows in SHEET_ROWS.items():
        if rows:
            code, out = run(office, "import", channel, str(write_csv(tmp_path / f"own-{channel}.csv", rows)))
            assert code == 0, out
    sheet = tmp_path / "交通局2020Q4.xlsx"
    code, out = run(office, "quarterly", "--year", "2020", "--quarter", "4", "-o", str(sheet))
    assert code == 0, out
    return sheet


def expected_store_office(office: str) -> dict[str, object]:
    by_kind = dict.fromkeys(("website", "weibo", "wechat", "other"), 0)
    reposts = ytd = 0
    titles: set[str] = set()
    for (key, channel), rows in ROWS.items():
        if key != office:
            continue
        kind = next(k for c, k, _ in CHANNELS[office] if c == channel)
        for title, moment, repost in rows:
            ytd += 1
            if in_q4(moment):
                by_kind[kind] += 1
                reposts += repost
                titles.add(title)
    return {
        "by_kind": by_kind,
        "total": sum(by_kind.values()),
        "reposts": reposts,
        "unique_items": len(titles),
        "ytd": ytd,
    }


def expected_sheet_office() -> dict[str, object]:
    by_kind = {"website": 0, "weibo": 0, "wechat": 0, "other": 0}
    reposts = ytd = 0
    titles: set[str] = set()
    for channel, rows in SHEET_ROWS.items():
        for title, moment, repost in rows:
            ytd += 1
            if in_q4(moment):
                by_kind[channel] += 1
                reposts += repost
                titles.add(title)
    total = sum(by_kind.values())
    assert len(titles) < total  # the sheet's 不同渠道相同信息计1条 differs from its total
    return {"by_kind": by_kind, "total": total, "reposts": reposts, "unique_items": len(titles), "ytd": ytd}


def test_rollup_cell_by_cell_in_json_text_and_xlsx(county: Path, tmp_path: Path) -> None:
    code, out = run(county, "county", "import-stats", str(office_sheet(tmp_path)))
    assert code == 0, out
    assert "测试县交通运输局（jiaotong）2020年第四季度" in out and "已导入" in out

    code, out = run(county, "county", "summary", "--year", "2020", "--quarter", "4", "--format", "json")
    assert code == 0, out
    data = json_of(out)
    assert data["county"] == "测试县"
    assert data["period"] == {"year": 2020, "quarter": 4, "month": None, "start": "2020-10-01", "end": "2020-12-31"}
    offices = {o["id"]: o for o in data["offices"]}
    expected = {
        "gongan": expected_store_office("gongan"),
        "baiyang": expected_store_office("baiyang"),
        "jiaotong": expected_sheet_office(),
    }
    for key, want in expected.items():
        got = offices[key]
        assert got["source"] == ("report" if key == "jiaotong" else "store"), key
        assert got["by_kind"] == want["by_kind"], key
        assert got["total"] == want["total"], key
        assert got["reposts"] == want["reposts"], key
        assert got["unique_items"] == want["unique_items"], key
        assert got["year_to_date"] == want["ytd"], key
        assert set(got) == {
            "id",
            "name",
            "group",
            "source",
            "total",
            "reposts",
            "unique_items",
            "by_kind",
            "year_to_date",
            "flags",
        }
    # The 2020 data is years old today: the store offices' channels are overdue, the sheet office is not judged.
    assert any(f.startswith("超期未更新") for f in offices["gongan"]["flags"])
    assert offices["jiaotong"]["flags"] == []
    assert data["total"] == sum(int(w["total"]) for w in expected.values())  # type: ignore[call-overload]
    assert data["reposts"] == sum(int(w["reposts"]) for w in expected.values())  # type: ignore[call-overload]
    assert data["unique_items"] == sum(int(w["unique_items"]) for w in expected.values())  # type: ignore[call-overload]
    groups = {g["group"]: g for g in data["groups"]}
    assert groups["县直部门"]["offices"] == ["gongan", "jiaotong"]
    assert groups["县直部门"]["total"] == expected["gongan"]["total"] + expected["jiaotong"]["total"]  # type: ignore[operator]
    assert groups["乡镇"] == {"group": "乡镇", "total": expected["baiyang"]["total"], "offices": ["baiyang"]}

    code, text_out = run(county, "county", "summary", "--year", "2020", "--quarter", "4")
    assert code == 0, text_out
    lines = {line.split()[0]: line.split() for line in text_out.splitlines() if line.strip()}
    gongan = lines["测试县公安局"]
    want = expected["gongan"]
    assert gongan[1:10] == [
        str(want["by_kind"]["website"]),  # type: ignore[index]
        str(want["by_kind"]["weibo"]),  # type: ignore[index]
        str(want["by_kind"]["wechat"]),  # type: ignore[index]
        str(want["by_kind"]["other"]),  # type: ignore[index]
        str(want["total"]),
        str(want["reposts"]),
        str(want["unique_items"]),
        str(want["ytd"]),
        "数据库",
    ]
    assert lines["测试县交通运输局"][9] == "报表"
    assert lines["县直部门小计"][5] == str(groups["县直部门"]["total"])
    assert lines["全县合计"][5] == str(data["total"])

    sheet_path = tmp_path / "汇总.xlsx"
    code, out = run(county, "county", "summary", "-y", "2020", "-q", "4", "-f", "xlsx", "-o", str(sheet_path))
    assert code == 0, out
    rows = [[c for c in r] for r in load_workbook(sheet_path).active.iter_rows(values_only=True)]  # type: ignore[union-attr]
    by_name = {r[0]: r for r in rows if r[0]}
    for key, office_row in offices.items():
        cells = by_name[office_row["name"]]
        assert list(cells[1:9]) == [
            office_row["by_kind"]["website"],
            office_row["by_kind"]["weibo"],
            office_row["by_kind"]["wechat"],
            office_row["by_kind"]["other"],
            office_row["total"],
            office_row["reposts"],
            office_row["unique_items"],
            office_row["year_to_date"],
        ], key
    assert by_name["全县合计"][5] == data["total"]
    assert by_name["乡镇小计"][5] == groups["乡镇"]["total"]


def test_sheet_round_trip_gives_the_office_figures(county: Path, tmp_path: Path) -> None:
    sheet = office_sheet(tmp_path)
    code, out = run(county, "county", "import-stats", str(sheet))
    assert code == 0, out
    own = tmp_path / "jiaotong-own"
    code, out = run(own, "quarterly", "--year", "2020", "--quarter", "4", "--format", "json")
    office_json = json_of(out)
    code, out = run(county, "county", "summary", "-y", "2020", "-q", "4", "-f", "json")
    row = next(o for o in json_of(out)["offices"] if o["id"] == "jiaotong")
    assert row["total"] == office_json["total"]["quarter"]["total"]
    assert row["reposts"] == office_json["total"]["quarter"]["reposts"]
    assert row["year_to_date"] == office_json["total"]["year_to_date"]["total"]
    for channel in office_json["channels"]:
        assert row["by_kind"][channel["id"]] == channel["quarter"]["total"]
    # Month by month too: the county's summary of November equals the office's November.
    code, out = run(county, "county", "summary", "-y", "2020", "-m", "11", "-f", "json")
    november = next(o for o in json_of(out)["offices"] if o["id"] == "jiaotong")
    assert november["total"] == office_json["total"]["months"][1]["total"]
    # The same sheet again changes nothing.
    code, out = run(county, "county", "import-stats", str(sheet))
    assert code == 0 and "与已导入的报表相同，未改变" in out


def _edit(sheet: Path, target: Path, **cells: object) -> Path:
    workbook = load_workbook(sheet)
    for ref, value in cells.items():
        workbook.active[ref] = value  # type: ignore[index]
    workbook.save(target)
    return target


def _sheets_stored(county: Path) -> int:
    instance = load_instance(county)
    engine = store.open_engine(instance.database_url, base_dir=instance.root)
    try:
        with store.read(engine) as conn:
            return int(conn.execute(select(func.count()).select_from(ReportedSheet)).scalar_one())
    finally:
        engine.dispose()


def test_bad_sheets_are_refused_naming_the_cell(county: Path, tmp_path: Path) -> None:
    sheet = office_sheet(tmp_path)
    unknown = _edit(sheet, tmp_path / "unknown.xlsx", A2="填报单位：测试县不存在局")
    code, out = run(county, "county", "import-stats", str(unknown))
    assert code == 1 and "单元格 A2" in out and "测试县不存在局" in out
    month = _edit(sheet, tmp_path / "month.xlsx", B3="7月")
    code, out = run(county, "county", "import-stats", str(month))
    assert code == 1 and "单元格 B3" in out and "统计期间不符" in out
    wrong = _edit(sheet, tmp_path / "wrong.xlsx", B6=99)  # weibo October 合计 no longer 原创 + 转发
    code, out = run(county, "county", "import-stats", str(wrong))
    assert code == 1 and "单元格 B6" in out
    asked = _edit(sheet, tmp_path / "asked.xlsx")
    code, out = run(county, "county", "import-stats", "--quarter", "3", str(asked))
    assert code == 1 and "与要求的" in out
    assert _sheets_stored(county) == 0
    # An office counted on the database does not take sheets.
    store_office = _edit(sheet, tmp_path / "store-office.xlsx", A2="填报单位：gongan")
    code, out = run(county, "county", "import-stats", str(store_office))
    assert code == 1 and "不需要导入报表" in out


def test_corrected_sheet_replaces_the_earlier_one(county: Path, tmp_path: Path) -> None:
    sheet = office_sheet(tmp_path)
    assert run(county, "county", "import-stats", str(sheet))[0] == 0
    workbook = load_workbook(sheet)
    page = workbook.active
    assert page is not None
    # Website (row 5): one more original item in October — every dependent total moves with it.
    for ref in ("B5", "C5", "K5", "L5", "N5", "O5", "B8", "C8", "K8", "L8", "N8", "O8"):
        page[ref] = int(page[ref].value) + 1  # type: ignore[arg-type]
    corrected = tmp_path / "corrected.xlsx"
    workbook.save(corrected)
    code, out = run(county, "county", "import-stats", str(corrected))
    assert code == 0, out
    before = expected_sheet_office()["total"]
    assert "已替换" in out and f"合计 {before} → {int(before) + 1}" in out  # type: ignore[call-overload]
    code, out = run(county, "county", "summary", "-y", "2020", "-q", "4", "-f", "json")
    row = next(o for o in json_of(out)["offices"] if o["id"] == "jiaotong")
    assert row["total"] == int(before) + 1  # type: ignore[call-overload]
    assert _sheets_stored(county) == 1


def test_template_filled_by_hand_is_imported(county: Path, tmp_path: Path) -> None:
    template = tmp_path / "模板.xlsx"
    code, out = run(county, "county", "template", "-o", str(template), "--office", "jiaotong", "-y", "2020", "-q", "4")
    assert code == 0, out
    workbook = load_workbook(template)
    page = workbook.active
    assert page is not None
    assert page["A2"].value == "填报单位：测试县交通运输局"
    # 微博 (row 6): October 3 = 2 + 1 repost, quarter 3, year 5 = 4 + 1; the 合计 row (8) the same.
    figures = {"B": 3, "C": 2, "D": 1, "K": 3, "L": 2, "M": 1, "N": 5, "O": 4, "P": 1}
    for column, value in figures.items():
        page[f"{column}6"] = value
        page[f"{column}8"] = value
    page["K9"] = 2  # 不同渠道相同信息计1条
    workbook.save(template)
    code, out = run(county, "county", "import-stats", str(template))
    assert code == 0, out
    code, out = run(county, "county", "summary", "-y", "2020", "-q", "4", "-f", "json")
    row = next(o for o in json_of(out)["offices"] if o["id"] == "jiaotong")
    assert (row["by_kind"]["weibo"], row["reposts"], row["year_to_date"], row["unique_items"]) == (3, 1, 5, 2)


def test_offices_without_figures_are_flagged(county: Path) -> None:
    code, out = run(county, "county", "summary", "-y", "2020", "-q", "1", "-f", "json")
    assert code == 0, out
    offices = {o["id"]: o for o in json_of(out)["offices"]}
    assert "未报送" in offices["jiaotong"]["flags"]
    # The town's records begin later in 2020: its 0 of the first quarter is no count, and is not called 无发布.
    assert offices["baiyang"]["flags"][0] == "无数据：各渠道在本期结束前都没有发布记录，0 不是统计结果"
    assert "无发布" not in offices["baiyang"]["flags"] and offices["baiyang"]["total"] == 0
    code, out = run(county, "county", "summary", "-y", "2021", "-q", "4", "-f", "json")
    later = {o["id"]: o for o in json_of(out)["offices"]}  # records before, none in the period: 无发布
    assert later["baiyang"]["flags"][0] == "无发布" and later["baiyang"]["total"] == 0


def test_office_option_and_config_errors(county: Path) -> None:
    code, out = run(county, "summary", "--year", "2020")
    assert code == 1 and "请用 --office 指定" in out and "gongan" in out
    code, out = run(county, "summary", "--year", "2020", "--quarter", "4", "--office", "gongan", "--format", "json")
    assert code == 0, out
    assert json_of(out)["total"] == expected_store_office("gongan")["total"]
    code, out = run(county, "--office", "nope", "channels")
    assert code == 1 and "没有单位「nope」" in out
    # A group that lists by itself takes --office after its own name too, as every other one-office command.
    code, out = run(county, "channels", "--office", "gongan")
    assert code == 0 and "没有选项" not in out, out
    assert out == run(county, "--office", "gongan", "channels")[1]
    bad = county / "config" / "offices" / "baiyang.toml"
    bad.write_text(bad.read_text(encoding="utf-8").replace('kind = "wechat"', 'kind = "douyin"'), encoding="utf-8")
    code, out = run(county, "county", "summary", "-y", "2020")
    assert code == 1 and "baiyang.toml" in out and "channels[2](id=wechat).kind" in out


def test_county_quarterly_is_sent_once_and_never_for_an_unfinished_quarter(county: Path) -> None:
    code, out = run(county, "county", "quarterly", "-y", "2020", "-q", "4", "--send")
    assert code == 0, out
    assert "发件箱：已存副本（副本不算发送）" in out
    outbox = list((county / "outbox").rglob("*.xlsx")) + list((county / "outbox").rglob("*.eml"))
    assert outbox
    code, out = run(county, "county", "quarterly", "-y", "2020", "-q", "4", "--send")
    assert code == 0 and "跳过" in out
    code, out = run(county, "county", "quarterly", "-y", "2099", "-q", "4", "--send")
    assert code == 1 and "尚未结束" in out


def test_upgrade_adds_the_office_key(database_url: str) -> None:
    """A version-1 database (office without key) gets the column, index and tables at the next open."""
    engine = store.open_engine(database_url)
    store.ensure_schema(engine)
    with store.write(engine) as conn:
        conn.execute(text("DROP INDEX ix_office_key"))
        conn.execute(text("ALTER TABLE office DROP COLUMN key"))
        conn.execute(text("DROP TABLE reported_figure"))
        conn.execute(text("DROP TABLE reported_sheet"))
        conn.execute(text("UPDATE schema_version SET version = 1"))
        conn.execute(text("INSERT INTO office (name, short_name, timezone) VALUES ('某局', '我局', 'Asia/Shanghai')"))
    assert store.ensure_schema(engine) == 1
    with store.write(engine) as conn:
        found = store.sync_office(conn, "某局", "我局", "Asia/Shanghai", key="mouju").id  # adopts its key
        assert conn.execute(text("SELECT key FROM office WHERE id = :i"), {"i": found}).scalar() == "mouju"
        assert store.sync_office(conn, "某局新名", "我局", "Asia/Shanghai", key="mouju").id == found  # renamed
    engine.dispose()


def test_run_job_polls_every_office_and_a_failing_office_stops_none(
    tmp_path: Path, database_url: str, fake_platforms: FakePlatforms
) -> None:
    fake_platforms.add_site_articles(4)
    tables = poll_tables(fake_platforms)
    broken = tables["website"].replace(fake_platforms.site_list_url, "http://127.0.0.1:9/nothing.html")
    root = write_county(
        tmp_path / "county", database_url, {"gongan": {"website": tables["website"]}, "baiyang": {"website": broken}}
    )
    (root / "jobs").mkdir()
    (root / "jobs" / "poll.toml").write_text('action = "poll"\nevery = "30m"\n', encoding="utf-8")
    code, out = run(root, "run-job", "poll")
    assert code == 1, out
    assert "[gongan]：成功" in out and "[baiyang]：失败" in out and "baiyang" in out.splitlines()[-1]
    code, out = run(root, "summary", "--office", "gongan", "-y", "2020", "-f", "json")
    assert json_of(out)["channels"][0]["total"] == 4
    (root / "jobs" / "poll.toml").write_text('action = "poll"\nevery = "30m"\noffices = ["gongan"]\n', encoding="utf-8")
    code, out = run(root, "run-job", "poll")
    assert code == 0 and "[gongan]" in out and "[baiyang]" not in out
    (root / "jobs" / "poll.toml").write_text('action = "poll"\nevery = "30m"\noffices = ["nope"]\n', encoding="utf-8")
    code, out = run(root, "run-job", "poll")
    assert code == 1 and "poll.toml" in out and "offices：没有单位「nope」" in out


def test_csv_and_xlsx_cells_never_start_a_formula(tmp_path: Path, database_url: str) -> None:
    root = write_county(tmp_path / "county", database_url)
    hostile = root / "config" / "offices" / "jiaotong.toml"
    hostile.write_text(
        hostile.read_text(encoding="utf-8").replace('name = "测试县交通运输局"', 'name = "=HYPERLINK(\\"http://x\\")"'),
        encoding="utf-8",
    )
    town = root / "config" / "offices" / "baiyang.toml"
    town.write_text(town.read_text(encoding="utf-8").replace("白杨镇", "白杨\\u001b镇"), encoding="utf-8")
    code, out = run(root, "county", "summary", "-y", "2020", "-f", "csv")
    assert code == 0, out
    names = [row[1] for row in csv.reader(out.splitlines())]
    assert '\'=HYPERLINK("http://x")' in names
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in csv.reader(out.splitlines()) for cell in row)
    sheet = tmp_path / "汇总.xlsx"
    assert run(root, "county", "summary", "-y", "2020", "-f", "xlsx", "-o", str(sheet))[0] == 0
    values = [c for r in load_workbook(sheet).active.iter_rows(values_only=True) for c in r if isinstance(c, str)]  # type: ignore[union-attr]
    assert '\'=HYPERLINK("http://x")' in values
    assert "测试县白杨\\x1b镇人民政府" in values  # a control character XLSX cannot hold, written visibly
    assert not any(v.startswith(("=", "+", "-", "@")) for v in values)


def test_county_config_keeps_offices_in_their_files(tmp_path: Path) -> None:
    root = write_county(tmp_path / "county", "sqlite:///data/cw.db")
    config = root / "config" / "channelwatch.toml"
    config.write_text(config.read_text(encoding="utf-8") + '\n[office]\nname = "某局"\n', encoding="utf-8")
    code, out = run(root, "county", "offices")
    assert code == 1 and "channelwatch.toml" in out and "office：" in out and "config/offices" in out
    config.write_text(config.read_text(encoding="utf-8").replace('\n[office]\nname = "某局"\n', ""), encoding="utf-8")
    named = root / "config" / "offices" / "gongan.toml"
    named.write_text(named.read_text(encoding="utf-8").replace("[office]\n", '[office]\nid = "other"\n'), "utf-8")
    code, out = run(root, "county", "offices")
    assert code == 1 and "gongan.toml" in out and "office.id" in out
    named.write_text(named.read_text(encoding="utf-8").replace('id = "other"\n', ""), "utf-8")
    config.write_text(config.read_text(encoding="utf-8") + "\n[web]\nsession_hours = 8\n", encoding="utf-8")
    assert load_instance(root).office_view("gongan").config.web.session_hours == 8  # shared like [delivery]
    code, out = run(root, "county", "offices")
    assert code == 0, out
    assert "gongan" in out and "数据库" in out and "jiaotong" in out and "报表" in out
    code, out = run(tmp_path / "county", "county", "template", "-o", str(tmp_path / "t.xlsx"), "--office", "nope")
    assert code == 1 and "没有单位「nope」" in out


def test_inbox_job_reads_each_office_from_its_own_folder(tmp_path: Path) -> None:
    root = write_county(tmp_path / "county", "sqlite:///data/cw.db")
    (root / "jobs").mkdir()
    (root / "jobs" / "inbox.toml").write_text('action = "import-inbox"\nevery = "5m"\nsettle = "0s"\n')
    for (office, channel), rows in ROWS.items():
        write_csv(root / "inbox" / office / channel / f"{channel}.csv", rows)
    code, out = run(root, "run-job", "inbox")
    assert code == 0, out
    for office in ("gongan", "baiyang"):
        code, out = run(root, "summary", "--office", office, "-y", "2020", "-q", "4", "-f", "json")
        assert json_of(out)["total"] == expected_store_office(office)["total"], office
    assert (root / "inbox" / "gongan" / "weibo" / "done" / "weibo.csv").is_file()


def test_the_example_county_instance_loads_and_its_sheet_imports(tmp_path: Path) -> None:
    from tests.conftest import REPO

    example = tmp_path / "county"
    import shutil

    shutil.copytree(REPO / "examples" / "county", example)
    county = load_instance(example)
    assert county.is_county and list(county.offices) == ["baiyang", "jiaotong", "wangwa"]
    assert {k: o.group for k, o in county.offices.items()} == {
        "baiyang": "乡镇",
        "jiaotong": "县直部门",
        "wangwa": "县直部门",
    }
    code, out = run(example, "jobs", "--office", "wangwa")
    assert code == 0, out
    sheet = next((example / "sheets").glob("*.xlsx"))
    code, out = run(example, "county", "import-stats", str(sheet))
    assert code == 0 and "彭阳县交通运输局（jiaotong）2020年第四季度" in out


def test_county_inspect_lists_every_polled_office_worst_first(county: Path) -> None:
    code, out = run(county, "county", "inspect", "--as-of", "2021-03-31", "-f", "json")
    assert code == 0, out
    found = json_of(out)
    assert found["county"] == "测试县"
    ids = [office["id"] for office in found["offices"]]
    assert sorted(ids) == ["baiyang", "gongan"]  # jiaotong reports by sheet only: nothing to inspect
    rank = {"veto": 2, "warning": 1, "ok": 0}
    verdicts = [rank[office["verdict"]] for office in found["offices"]]
    assert verdicts == sorted(verdicts, reverse=True)
    for office in found["offices"]:
        assert office["as_of"] == "2021-03-31"
        # Nothing published for more than 14 days before the as-of date: every new-media channel is a veto.
        assert all(f["level"] == "veto" for f in office["findings"] if f["rule"] == "newmedia_stale")
    code, text_out = run(county, "county", "inspect", "--as-of", "2021-03-31")
    assert code == 0 and "测试县公安局（gongan）" in text_out and "测试县白杨镇人民政府（baiyang）" in text_out


def test_recount_in_a_county_rebuilds_every_office_without_office_option(county: Path) -> None:
    """`recount` covers the whole database, so a county runs it as it is; every office's figures come back."""
    from sqlalchemy import create_engine, text

    before = run(county, "county", "summary", "-y", "2020", "-f", "json")[1]
    url = load_instance(county).database_url
    engine = create_engine(url)
    with engine.begin() as conn:
        damaged = conn.execute(text("UPDATE publication_count SET publications = publications + 7")).rowcount
    engine.dispose()
    assert damaged > 1
    assert run(county, "county", "summary", "-y", "2020", "-f", "json")[1] != before
    code, out = run(county, "recount")
    assert code == 0, out
    assert f"修正了 {damaged} 行计数" in out
    assert run(county, "county", "summary", "-y", "2020", "-f", "json")[1] == before
    code, out = run(county, "recount")
    assert code == 0 and "一致" in out, out
