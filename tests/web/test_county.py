"""The web view of a county instance, in headless Chromium against a `channelwatch serve` started by the test.

The county is the repository's example (``examples/county``): 王洼 with the 2020 samples, 白杨镇 with a
hostile title in 2019 and publications under a channel id its config no longer has, 交通运输局 by its
quarterly sheet. Every figure the pages show is compared with what the CLI prints for the same store.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from tests.conftest import REPO, SAMPLES
from tests.web.conftest import XSS_TITLE, Server, cw, start_server, stop_server

pytestmark = pytest.mark.slow

BAIYANG = """[office]
name = "彭阳县白杨镇人民政府"
short_name = "我镇"
group = "乡镇"

[[channels]]
id = "website"
kind = "website"
name = "政府网站"

[[channels]]
id = "wechat"
kind = "wechat"
name = "微信公众号"
"""
OLD_CHANNEL = """
[[channels]]
id = "oldweibo"
kind = "weibo"
name = "旧微博"
"""


def _ok(result: Any) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return str(result.stdout)


@pytest.fixture(scope="module")
def county_instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("web-county") / "county"
    shutil.copytree(REPO / "examples" / "county", root)
    tree = root / "导出"
    shutil.copytree(SAMPLES, tree / "wangwa")
    _ok(cw(root, "import-tree", str(tree)))
    # 白杨镇: a hostile title (2019), and three 2020 rows under a channel id later dropped from its config.
    offices = root / "config" / "offices"
    (offices / "baiyang.toml").write_text(BAIYANG + OLD_CHANNEL, encoding="utf-8")
    hostile = root / "hostile.csv"
    hostile.write_text(
        f'标题,发布时间,链接\n"{XSS_TITLE}",2019-06-01 09:00,javascript:alert(1)\n普通的一条,2019-06-02 09:00,\n',
        encoding="utf-8",
    )
    _ok(cw(root, "import", "--office", "baiyang", "website", str(hostile)))
    old = root / "old.csv"
    old.write_text("标题,发布时间\n旧账号一,2020-03-01 09:00\n旧账号二,2020-03-02 09:00\n旧账号三,2020-03-03 09:00\n")
    _ok(cw(root, "import", "--office", "baiyang", "oldweibo", str(old)))
    (offices / "baiyang.toml").write_text(BAIYANG, encoding="utf-8")
    _ok(cw(root, "county", "import-stats", str(next((root / "sheets").glob("*.xlsx")))))
    _ok(cw(root, "county", "inspect"))  # stores each channel's verdict: the pages show them
    return root


@pytest.fixture(scope="module")
def county_server(county_instance: Path) -> Iterator[Server]:
    running = start_server(county_instance)
    yield running
    stop_server(running)


def county_summary(instance: Path, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_ok(cw(instance, "county", "summary", "--format", "json", *args)))
    return data


def test_county_overview_lists_the_offices_worst_first(county_server: Server, page: Any, screenshots: Path) -> None:
    expected = {o["id"]: o for o in county_summary(county_server.instance, "--year", "2020")["offices"]}
    page.goto(county_server.base + "/?year=2020")
    rows = page.locator("tr[data-office]")
    keys = [rows.nth(i).get_attribute("data-office") for i in range(rows.count())]
    assert sorted(keys) == ["baiyang", "jiaotong", "wangwa"]
    for key, office in expected.items():
        row = page.locator(f"tr[data-office={key}]")
        assert row.locator("td.total").inner_text() == str(office["total"]), key
        assert office["name"] in row.inner_text()
    assert expected["wangwa"]["total"] == 1279
    assert page.inner_text("tfoot th.total") == str(sum(o["total"] for o in expected.values()))
    # 2020 is years ago: both offices counted here are past the two-week line; the sheet office has no
    # channels to judge and comes after them.
    states = [rows.nth(i).get_attribute("class") for i in range(rows.count())]
    assert states[:2] == ["state-empty", "state-overdue"] or states[:2] == ["state-overdue", "state-empty"]
    assert keys[-1] == "jiaotong" and states[-1] == "state-report"
    # 白杨镇 has nothing of 2020 on its configured channels: flagged 无发布, as the roll-up flags it; its WeChat
    # account has no record at all, so that channel's 0 is no count (无数据), on the page as in the roll-up.
    assert expected["baiyang"]["flags"][:2] == [
        "无发布",
        "无数据的渠道：微信公众号（本期结束前没有发布记录，其 0 不是统计结果）",
    ]
    flags = page.locator("tr[data-office=baiyang] span.flag.none-published").all_inner_texts()
    assert flags == ["无发布", "无数据：微信公众号"]
    assert page.locator("tr[data-office=wangwa] span.flag").count() == 0
    # The orphan warning the CLI prints on stderr, as a banner.
    banner = page.inner_text("div.banner")
    assert "彭阳县白杨镇人民政府" in banner and "「oldweibo」有 3 条发布记录" in banner
    page.screenshot(path=str(screenshots / "county.png"), full_page=True)

    page.click("tr[data-office=wangwa] a")
    page.wait_for_url("**/offices/wangwa?year=2020")
    assert page.inner_text("tfoot th.total") == "1279"


def test_office_page_shows_that_office(county_server: Server, page: Any, screenshots: Path) -> None:
    summary = json.loads(
        _ok(cw(county_server.instance, "summary", "--office", "wangwa", "--year", "2020", "--format", "json"))
    )
    page.goto(county_server.base + "/offices/wangwa?year=2020")
    assert page.inner_text("tfoot th.total") == str(summary["total"]) == "1279"
    shown = {c["id"]: page.inner_text(f"tr[data-channel={c['id']}] td.total") for c in summary["channels"]}
    assert shown == {c["id"]: str(c["total"]) for c in summary["channels"]}
    assert shown == {"website": "6", "weibo": "1225", "wechat": "48"}
    assert page.locator("svg.chart").count() == 3
    assert "彭阳县王洼产业园区管理委员会" in page.inner_text("h1")
    page.screenshot(path=str(screenshots / "county-office.png"), full_page=True)

    page.click("tr[data-channel=weibo] a")
    page.wait_for_url("**/offices/wangwa/channels/weibo?year=2020")
    assert page.inner_text("#match-count") == "1225"
    page.select_option("select#month", "3")
    page.click("form.filter button")
    page.wait_for_url("**/offices/wangwa/channels/weibo?**month=3**")
    march = next(m for m in summary["months"] if m["month"] == "2020-03")
    assert page.inner_text("#match-count") == str(march["channels"]["weibo"])
    # Another office's page holds only its own figures.
    page.goto(county_server.base + "/offices/baiyang?year=2019")
    assert page.inner_text("tr[data-channel=website] td.total") == "2"
    assert page.locator("tr[data-channel=weibo]").count() == 0


def test_inspection_verdicts_are_the_stored_ones(county_server: Server, page: Any) -> None:
    inspected = json.loads(_ok(cw(county_server.instance, "county", "inspect", "--format", "json")))
    wangwa = next(o for o in inspected["offices"] if o["id"] == "wangwa")
    page.goto(county_server.base + "/offices/wangwa?year=2020")
    for channel in wangwa["channels"]:
        verdict = page.locator(f"tr[data-channel={channel['channel']}] span.verdict")
        label = channel["verdict_label"] if channel["checked"] else "无检查项"
        assert verdict.inner_text() == label, channel
    weibo = next(f for f in wangwa["findings"] if f["channel"] == "weibo")
    hover = page.locator("tr[data-channel=weibo] span.verdict").get_attribute("title")
    assert hover is not None and weibo["detail"] in hover
    assert weibo["rule_label"] in page.inner_text("tr[data-channel=weibo] td.verdict")
    page.goto(county_server.base + "/?year=2020")
    assert page.inner_text("tr[data-office=wangwa] span.verdict") == wangwa["verdict_label"]
    assert page.inner_text("tr[data-office=jiaotong] td.verdict") == "—"  # a sheet office is not inspected


def test_county_rollup_download_equals_county_summary(county_server: Server, page: Any, tmp_path: Path) -> None:
    for quarter in ("", "4"):
        data = county_summary(county_server.instance, "--year", "2020", *(["--quarter", quarter] if quarter else []))
        page.goto(county_server.base + "/reports")
        page.select_option("select#county-year", "2020")
        page.select_option("select#county-quarter", quarter)
        with page.expect_download() as download_info:
            page.click("form[action='/reports/county.xlsx'] button")
        download = download_info.value
        assert download.suggested_filename.endswith(".xlsx")
        target = tmp_path / f"county{quarter}.xlsx"
        download.save_as(target)
        rows = list(openpyxl.load_workbook(target).active.iter_rows(values_only=True))  # type: ignore[union-attr]
        by_name = {r[0]: r for r in rows if r[0]}
        assert len(data["offices"]) == 3
        for office in data["offices"]:
            cells = by_name[office["name"]]
            figures = [
                office["by_kind"]["website"],
                office["by_kind"]["weibo"],
                office["by_kind"]["wechat"],
                office["by_kind"]["other"],
                office["total"],
                office["reposts"],
                office["unique_items"],
                office["year_to_date"],
            ]
            # A figure a sheet did not state is null in JSON and — in the sheet.
            assert list(cells[1:9]) == ["—" if f is None else f for f in figures], (quarter, office["id"])
        assert by_name["全县合计"][5] == data["total"]


def test_office_downloads_need_an_office(county_server: Server, page: Any, tmp_path: Path) -> None:
    page.goto(county_server.base + "/reports")
    page.select_option("select#summary-office", "wangwa")
    page.select_option("select#summary-year", "2020")
    with page.expect_download() as download_info:
        page.click("form[action='/reports/summary.xlsx'] button")
    target = tmp_path / "summary.xlsx"
    download_info.value.save_as(target)
    rows = list(openpyxl.load_workbook(target).active.iter_rows(values_only=True))  # type: ignore[union-attr]
    assert next(r for r in rows if r[0] == "合计")[1:5] == (6, 1225, 48, 1279)
    missing = httpx.get(county_server.base + "/reports/summary.xlsx?year=2020", timeout=30)
    assert missing.status_code == 400 and "office" in missing.text
    unknown = httpx.get(county_server.base + "/reports/summary.xlsx?year=2020&office=nope", timeout=30)
    assert unknown.status_code == 404 and "nope" in unknown.text
    # The office that only sends its sheet has no publication here: no report of zeros, as the CLI refuses it.
    for report in ("summary.xlsx?year=2020", "quarterly.xlsx?year=2020&quarter=4", "annual.docx?year=2020"):
        sheet_only = httpx.get(f"{county_server.base}/reports/{report}&office=jiaotong", timeout=30)
        assert sheet_only.status_code == 404 and "只报送季度统计表" in sheet_only.text, report


def test_runs_filter_by_office(county_server: Server, page: Any, screenshots: Path) -> None:
    page.goto(county_server.base + "/runs")
    offices = set(page.locator("tr.run td:nth-child(3)").all_inner_texts())
    assert {"彭阳县王洼产业园区管理委员会", "彭阳县白杨镇人民政府"} <= offices
    page.select_option("select#office", "baiyang")
    page.click("form.filter button")
    page.wait_for_url("**/runs?office=baiyang")
    assert set(page.locator("tr.run td:nth-child(3)").all_inner_texts()) == {"彭阳县白杨镇人民政府"}
    page.screenshot(path=str(screenshots / "county-runs.png"), full_page=True)


def test_hostile_title_in_a_county_office_is_text(county_server: Server, page: Any) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(county_server.base + "/offices/baiyang/channels/website?year=2019")
    assert XSS_TITLE in page.locator("table.publications td.title").all_inner_texts()
    assert page.locator("table.publications script").count() == 0
    assert page.locator("table.publications img").count() == 0
    assert page.locator("table.publications td.title a").count() == 0  # javascript: is never a link
    page.wait_for_timeout(200)
    assert dialogs == []


def test_county_paths_answer_with_chinese_errors(county_server: Server) -> None:
    assert county_server.get("/offices/nope").status_code == 404
    assert "没有单位「nope」" in county_server.get("/offices/nope").text
    assert county_server.get("/offices/wangwa/channels/nope").status_code == 404
    assert county_server.get("/channels/weibo").status_code == 404  # a county's channels live under its offices
    assert county_server.get("/runs?office=nope").status_code == 404


def test_one_office_of_a_county_is_served_like_a_single_office(county_instance: Path) -> None:
    """``serve --office wangwa``: the office's pages at the single-office paths."""
    running = start_server(county_instance, args=("--office", "wangwa"))
    try:
        assert '<th class="num total">1279</th>' in running.get("/?year=2020").text
        assert running.get("/channels/weibo?year=2020").status_code == 200
        assert running.get("/offices/wangwa").status_code == 404
    finally:
        stop_server(running)


def test_a_sheet_office_page_shows_its_reported_figures(county_server: Server, page: Any) -> None:
    expected = {o["id"]: o for o in county_summary(county_server.instance, "--year", "2020")["offices"]}["jiaotong"]
    assert expected["source"] == "report" and expected["total"] > 0
    page.goto(county_server.base + "/offices/jiaotong?year=2020")
    assert page.inner_text("tfoot th.total") == str(expected["total"])
    for kind, count in expected["by_kind"].items():
        assert page.inner_text(f"tr[data-kind={kind}] td.num") == str(count), kind
    assert "；".join(expected["flags"]) in page.inner_text("p.notice")
