"""The web view in headless Chromium against a `channelwatch serve` started by the test.

Each test also saves a full-page screenshot (``CHANNELWATCH_WEB_SCREENSHOTS`` keeps them) so a person
can look at what a clerk sees.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from channelwatch import store
from channelwatch.instance.config import load_instance
from channelwatch.stats.figures import Period, summarise
from channelwatch.web.data import PAGE_SIZE, open_readonly
from tests.web.conftest import PASSWORD, XSS_TITLE, Server

pytestmark = pytest.mark.slow


def figures(instance: Path, year: int = 2020) -> Any:
    loaded = load_instance(instance)
    readonly = open_readonly(loaded)
    try:
        with store.read(readonly.engine) as conn:
            office_id = readonly.office_id(conn)
            assert office_id is not None
            return summarise(conn, office_id, Period(year), [c.id for c in loaded.config.channels])
    finally:
        readonly.dispose()


def test_overview_shows_the_2020_figures_and_charts(server: Server, page: Any, screenshots: Path) -> None:
    page.goto(server.base + "/?year=2020")
    assert page.inner_text("tfoot th.total") == "1279"
    shown = {key: page.inner_text(f"tr[data-channel={key}] td.total") for key in ("website", "weibo", "wechat")}
    assert shown == {"website": "6", "weibo": "1225", "wechat": "48"}
    assert "共1279条" in page.inner_text("p.sentence")
    # One chart per channel, drawn: its bars have a real size on the screen.
    assert page.locator("svg.chart").count() == 3
    bar = page.locator("svg.chart rect.bar").first
    box = bar.bounding_box()
    assert box is not None and box["height"] > 0 and box["width"] > 0
    weibo_chart = page.locator("svg.chart").nth(1)
    totals = [int(g.get_attribute("data-total")) for g in weibo_chart.locator("g.month").all()]
    assert sum(totals) == 1225
    assert page.locator("span.badge").count() == 3
    page.screenshot(path=str(screenshots / "overview.png"), full_page=True)


def test_year_selector_changes_the_year(server: Server, page: Any) -> None:
    page.goto(server.base + "/?year=2020")
    page.select_option("select#year", "2019")
    page.click("form.year button")
    page.wait_for_url("**/?year=2019")
    assert page.inner_text("h1").startswith("2019年")
    website = next(c for c in figures(server.instance, 2019).channels if c.key == "website")
    assert website.total >= 2  # the two 2019 rows this test added, and what the samples hold of 2019
    assert page.inner_text("tr[data-channel=website] td.total") == str(website.total)


def test_filter_narrows_the_publication_list(server: Server, page: Any, screenshots: Path) -> None:
    expected = figures(server.instance)
    weibo = next(c for c in expected.channels if c.key == "weibo")
    page.goto(server.base + "/channels/weibo?year=2020")
    assert int(page.inner_text("#match-count")) == weibo.total
    assert page.locator("table.publications tbody tr").count() == PAGE_SIZE
    page.screenshot(path=str(screenshots / "channel.png"), full_page=True)

    page.select_option("select#month", "3")
    page.select_option("select#type", "repost")
    page.click("form.filter button")
    page.wait_for_url("**type=repost**")
    narrowed = int(page.inner_text("#match-count"))
    assert narrowed == weibo.reposts_by_month[3]
    assert 0 < narrowed < weibo.total
    rows = page.locator("table.publications tbody tr")
    assert rows.count() == min(narrowed, PAGE_SIZE)
    for text in rows.locator("td.when").all_inner_texts():
        assert text.startswith("2020-03-")
    assert set(rows.locator("span.tag").all_inner_texts()) == {"转发"}
    page.screenshot(path=str(screenshots / "channel-filtered.png"), full_page=True)


def test_pages_follow_on(server: Server, page: Any) -> None:
    expected = figures(server.instance)
    weibo = next(c for c in expected.channels if c.key == "weibo")
    page.goto(server.base + "/channels/weibo?year=2020")
    first = page.locator("table.publications td.when").all_inner_texts()
    page.click("a[rel=next]")
    second = page.locator("table.publications td.when").all_inner_texts()
    assert len(second) == PAGE_SIZE
    assert max(second) <= min(first)  # newest first, and page 2 goes on where page 1 stopped
    assert f"第 2 / {-(-weibo.total // PAGE_SIZE)} 页" in page.inner_text("nav.pager")


def test_hostile_title_is_shown_as_text(server: Server, page: Any, screenshots: Path) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(server.base + "/channels/website?year=2019")
    titles = page.locator("table.publications td.title").all_inner_texts()
    assert XSS_TITLE in titles
    assert page.locator("table.publications script").count() == 0
    assert page.locator("table.publications img").count() == 0
    # Its javascript: URL is not made a link; the ordinary one is.
    hostile_cell = page.locator("table.publications td.title", has_text="园区通知")
    assert hostile_cell.locator("a").count() == 0
    assert page.locator("table.publications a[href='http://www.example.gov.cn/a.html']").count() == 1
    page.wait_for_timeout(200)
    assert dialogs == []
    page.screenshot(path=str(screenshots / "channel-hostile-title.png"), full_page=True)


def test_runs_highlight_failures_with_their_reason(server: Server, page: Any, screenshots: Path) -> None:
    page.goto(server.base + "/runs")
    failed = page.locator("tr.run.failed")
    assert failed.count() == 1
    assert "拒收" in failed.inner_text()
    reason = page.locator("tr.reason").first.inner_text()
    assert "缺少发布时间" in reason
    assert page.locator("tr.run.ok").count() >= 5
    page.screenshot(path=str(screenshots / "runs.png"), full_page=True)


def test_summary_download_is_a_valid_xlsx(server: Server, page: Any, tmp_path: Path, screenshots: Path) -> None:
    page.goto(server.base + "/reports")
    page.screenshot(path=str(screenshots / "reports.png"), full_page=True)
    page.select_option("select#summary-year", "2020")
    with page.expect_download() as download_info:
        page.click("form[action='/reports/summary.xlsx'] button")
    download = download_info.value
    assert download.suggested_filename.endswith("2020年信息发布统计.xlsx")
    target = tmp_path / "summary.xlsx"
    download.save_as(target)
    sheet = openpyxl.load_workbook(target).active
    rows = list(sheet.iter_rows(values_only=True))
    total_row = next(row for row in rows if row[0] == "合计")
    assert total_row[1:5] == (6, 1225, 48, 1279)


def test_quarterly_download_is_a_valid_xlsx(server: Server, page: Any, tmp_path: Path) -> None:
    page.goto(server.base + "/reports")
    page.select_option("select#quarter-year", "2020")
    page.select_option("select#quarter", "4")
    with page.expect_download() as download_info:
        page.click("form[action='/reports/quarterly.xlsx'] button")
    target = tmp_path / "quarterly.xlsx"
    download_info.value.save_as(target)
    sheet = openpyxl.load_workbook(target).active
    assert "2020年第四季度" in str(sheet["A1"].value)


def test_login_works_and_a_wrong_password_does_not(locked_server: Server, page: Any, screenshots: Path) -> None:
    page.goto(locked_server.base + "/?year=2020")
    assert "/login" in page.url  # every page is behind the login
    page.screenshot(path=str(screenshots / "login.png"), full_page=True)

    page.fill("input#password", "wrong-password")
    started = time.monotonic()
    page.click("section.login button")
    page.wait_for_selector("p.error")
    assert time.monotonic() - started >= 0.9  # failed logins are slowed down
    assert "密码不正确" in page.inner_text("p.error")
    assert "/login" in page.url
    assert page.context.cookies() == []

    page.fill("input#password", PASSWORD)
    page.click("section.login button")
    page.wait_for_url("**/?year=2020")  # back to the page first asked for
    assert page.inner_text("tfoot th.total") == "1279"
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain HTTP on loopback; HTTPS marks it Secure

    page.click("form.logout button")
    page.wait_for_url("**/login")
    page.goto(locked_server.base + "/runs")
    assert "/login" in page.url
