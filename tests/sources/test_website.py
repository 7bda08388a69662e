"""The HTML list source against the contract and its own rules (selectors, 404, detail dates)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channelwatch.dates import parse_datetime
from channelwatch.errors import LayoutError
from channelwatch.sources.website import HtmlListOptions, parse_list_page, pub_date_of, read_list_page
from tests.fakeplatforms import OFFICE_TZ, FakePlatforms
from tests.sources.contract import PollEnv, SourceContract

DATA = Path(__file__).resolve().parent.parent / "data" / "platforms"
ZONE = "Asia/Shanghai"


class TestHtmlListContract(SourceContract):
    channel = "website"
    page_size = 5

    def add_items(self, server: FakePlatforms, pages: float) -> int:
        start = datetime(2020, 1, 1, 9, 0, tzinfo=OFFICE_TZ) if not server.site_articles else None
        return len(server.add_site_articles(round(pages * self.page_size), start=start))

    def break_payload(self, server: FakePlatforms) -> None:
        server.fault("truncate", target="site", match="index")


def test_saved_list_page_selectors_and_relative_links() -> None:
    options = HtmlListOptions(type="html-list", url="http://www.example.gov.cn/xxgk/index.html", item="ul.list li")
    html = (DATA / "website_list.html").read_text(encoding="utf-8")
    parsed = parse_list_page(html, options.url, options, ZONE)
    urls = [link for _, link, _ in parsed]
    assert urls == [
        "http://www.example.gov.cn/xxgk/202012/t20201228_3001.html",
        "http://www.example.gov.cn/xxgk/202011/t20201128_3000.html",
        "http://www.example.gov.cn/xxgk/202006/t20200601_2999.html",
    ]
    first = parsed[0][0]
    assert first is not None and first.title == "王洼产业园区2020年政府信息公开工作年度报告"
    assert first.published_at == parse_datetime("2020-12-28", ZONE)


def test_attribute_selectors_read_attributes() -> None:
    options = HtmlListOptions(
        type="html-list", url="http://www.example.gov.cn/xxgk/index.html", item="ul.list li", title="a@title"
    )
    html = (DATA / "website_list.html").read_text(encoding="utf-8")
    titles = [t for _, _, t in parse_list_page(html, options.url, options, ZONE)]
    assert titles[1] == "关于开展冬季安全生产大检查的通知"


def test_pub_date_meta_of_saved_article() -> None:
    html = (DATA / "website_article.html").read_text(encoding="utf-8")
    assert pub_date_of(html, ZONE) == parse_datetime("2020-11-28 09:30", ZONE)


def test_detail_date_reads_article_pages_once(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("website", detail_date="true")  # type: ignore[operator]
    articles = env.server.add_site_articles(7, show_date=False, start=datetime(2020, 3, 1, 14, 30, tzinfo=OFFICE_TZ))
    result = env.poll()
    assert (result.status, result.new) == ("ok", 7), result.message
    detail_requests = [r for r in env.server.requests if "/t2020" in r.path]
    assert len(detail_requests) == 7
    # The stored time is the article page's PubDate, not the day of the poll.
    stored = env.opened.engine.connect().exec_driver_sql("SELECT min(published_at) FROM publication").scalar_one()
    assert str(stored).startswith("2020-03-01 06:30")  # 14:30 +08:00 in UTC
    again = env.poll(full=True)
    assert (again.status, again.new, again.seen) == ("ok", 0, 7)
    assert len([r for r in env.server.requests if "/t2020" in r.path]) == 7  # no article page fetched again
    assert articles


def test_missing_date_without_detail_date_is_layout_alarm(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("website")  # type: ignore[operator]
    env.server.add_site_articles(3, show_date=False)
    result = env.poll()
    assert result.status == "failed"
    assert result.message and "页面结构可能已变化" in result.message and "detail_date" in result.message
    assert env.stored() == 0


def test_first_page_404_fails(poll_env_factory: object, fake_platforms: FakePlatforms) -> None:
    missing = f'"{fake_platforms.url}/site/nothing/index.html"'
    env: PollEnv = poll_env_factory("website", url=missing)  # type: ignore[operator]
    result = env.poll()
    assert result.status == "failed"
    assert result.message and "404" in result.message


# --- real column pages: spacers, pagers, the layout alarm -------------------------------------------------------------


def _spacer_options(**overrides: object) -> HtmlListOptions:
    values: dict[str, object] = {
        "type": "html-list",
        "url": "http://www.example.gov.cn/xxgk/tzgg/index.html",
        "item": "ul.center_list_contlist li",
        "title": "font.cont_tit03",
        "link": "a@href",
        "date": "font.cont_tit02",
        "page_url": "index_{n}.html",
    }
    return HtmlListOptions(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.mark.parametrize("title", ["font.cont_tit03", "a"])
def test_saved_list_with_spacers_and_pager(title: str) -> None:
    options = _spacer_options(title=title)
    html = (DATA / "website_list_spacers.html").read_text(encoding="utf-8")
    page = read_list_page(html, options.url, options, ZONE)
    assert (page.items, len(page.entries), page.skipped) == (7, 3, 4)  # 3 spacers and the pager skipped
    assert [link for _, link, _ in page.entries] == [
        "http://www.example.gov.cn/xxgk/tzgg/202001/t20200109_3101.html",
        "http://www.example.gov.cn/xxgk/tzgg/202001/t20200106_3100.html",
        "http://www.example.gov.cn/xxgk/tzgg/201912/t20191231_3099.html",
    ]
    assert 'class="cont_line"' in page.example


def test_navigation_links_among_entries_are_skipped() -> None:
    options = _spacer_options()
    html = (DATA / "website_list_spacers.html").read_text(encoding="utf-8")
    more = '<li><a href="../tzgg/"><font class="cont_tit03">更多&gt;&gt;</font></a></li>\n</ul>'
    page = read_list_page(html.replace("</ul>", more), options.url, options, ZONE)
    assert (len(page.entries), page.skipped) == (3, 5)


def test_no_readable_entry_is_a_layout_alarm_naming_selector_and_html() -> None:
    options = _spacer_options(date="span.date", link="a.title@href")
    html = (DATA / "website_list_spacers.html").read_text(encoding="utf-8")
    with pytest.raises(LayoutError) as caught:
        read_list_page(html, options.url, options, ZONE)
    message = str(caught.value)
    assert "页面结构可能已变化" in message and "ul.center_list_contlist li" in message and "span.date" in message
    assert "<li" in message and len(message) < 600  # one element's HTML, cut short


def test_half_an_entry_is_still_a_layout_alarm() -> None:
    options = _spacer_options()
    html = (DATA / "website_list_spacers.html").read_text(encoding="utf-8")
    broken = html.replace('<a href="./202001/t20200106_3100.html" target="_blank">', "<a>", 1)
    with pytest.raises(LayoutError) as caught:
        read_list_page(broken, options.url, options, ZONE)
    assert "第3条有日期但没有链接" in str(caught.value) and "关于2020年元旦春节期间" in str(caught.value)


def test_poll_skips_spacers_and_pager_and_counts_them(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("website")  # type: ignore[operator]
    env.server.site_spacers = True
    env.server.add_site_articles(12)
    result = env.poll()
    assert (result.status, result.new, result.pages) == ("ok", 12, 3), result.message
    # 12 spacers and a pager on each of the 3 pages
    assert result.message and "跳过 15 个不是条目的元素（分隔线、翻页" in result.message
    assert env.run(result.run_id).message == result.message


def test_collapse_against_the_last_good_run_is_a_layout_alarm(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("website")  # type: ignore[operator]
    env.server.site_page_size = 10
    env.server.add_site_articles(30)
    assert env.poll().status == "ok"
    env.server.site_page_size = 3  # the first page now shows far fewer entries than it did
    env.server.add_site_articles(1)
    result = env.poll()
    assert result.status == "failed"
    assert result.message and "页面结构可能已变化" in result.message and "上次成功抓取时每页约 10 条" in result.message
    assert "--full" in result.message
    assert env.stored() == 30
    # The site really shows 3 a page now: one full poll accepts it, and later polls compare with it.
    accepted = env.poll(full=True)
    assert (accepted.status, accepted.new) == ("ok", 1), accepted.message
    assert env.poll().status == "ok"


def test_antibot_521_says_a_browser_check_blocks_and_what_to_do(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("website")  # type: ignore[operator]
    env.server.add_site_articles(3)
    env.server.fault("antibot521", target="site")
    result = env.poll()
    assert result.status == "failed"
    assert result.message and "521" in result.message and "浏览器验证" in result.message
    assert "RSS" in result.message and "白名单" in result.message and "导出" in result.message
    assert len(env.server.requests_to("/site/")) == 1  # never retried: retrying cannot get past it
    assert env.stored() == 0


# --- links joined without urljoin (website._joined) ------------------------------------------------------------

_PLAIN = ["a", "xxgk", "t2020_1.html", "...", "a.b", "~u", "-", "_", "A-Z", "a..b"]
_ODD = [".", "..", ".x", "%20", "a:b", "?q=1", "#f", "@", ";p", "", "中文", "a b"]
# Mostly plain pieces, so that most examples take the direct join and the rest probe its edges.
_PIECE = st.one_of(st.sampled_from(_PLAIN), st.sampled_from(_PLAIN), st.sampled_from(_PLAIN), st.sampled_from(_ODD))


@given(
    scheme=st.sampled_from(["http", "https", "http", "https", "HTTP", "ftp"]),
    host=st.sampled_from(["127.0.0.1", "www.gov.cn", "h:8080", "user@h", "H.example", "", "h:"]),
    base_path=st.lists(_PIECE, max_size=5),
    href_path=st.lists(_PIECE, min_size=1, max_size=5),
    lead=st.sampled_from(["", "./", "", "./", "../", "/", "//", "?", "#"]),
)
@settings(max_examples=3000, deadline=None)
def test_joined_links_equal_urljoin(
    scheme: str, host: str, base_path: list[str], href_path: list[str], lead: str
) -> None:
    from urllib.parse import urljoin

    from channelwatch.sources.website import _joined

    base = f"{scheme}://{host}/" + "/".join(base_path)
    href = lead + "/".join(href_path)
    assert _joined.__wrapped__(base, href) == urljoin(base, href)


def test_plain_links_take_the_direct_join() -> None:
    # The property test above proves the direct join right; this one that the poll's usual links take it.
    from channelwatch.sources import website

    assert website._PLAIN_HREF.fullmatch("./202006/t20200601_123.html")
    assert website._PLAIN_BASE.fullmatch("http://www.gov.cn:8080/xxgk/")
