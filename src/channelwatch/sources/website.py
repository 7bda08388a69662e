"""Government website column lists (``type = "html-list"``), read with CSS selectors.

A TRS-like column page lists entries (``ul.list li``) with a link and usually a date; further pages
are ``index_1.html``, ``index_2.html``, …. The config names the
selectors (docs/configuration.md): ``item`` selects one entry, ``title``/``link``/``date`` select inside it,
``selector@attr`` reads an attribute instead of the text (``a@href``; ``@title`` reads the entry's
own attribute). Links are resolved against the page URL. A 404 for a further page ends the list.

When a list shows no dates, ``detail_date = true`` reads the ``PubDate`` meta tag of each article
page, and only of articles the store does not know yet (their stored date is reused), so a repeat
poll fetches no article page.

Entries and non-entries: real column pages put spacer and pager ``<li>`` among the entries. An
element without a date that has no link, no title, or links only to a page of the list (the pager)
is skipped and counted on the run. Layout alarm ("页面结构可能已变化", nothing stored, the message
names the selector and shows the element's HTML cut short): no element of a page is readable; an
element is half an entry (a date without a link, a link and title without the date the list shows,
a date that no longer parses); or the first page reads less than half of what the last good run
read per page.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urldefrag, urljoin

from pydantic import Field, field_validator

from channelwatch.dates import DateParseError, parse_datetime, to_office
from channelwatch.errors import FetchError, LayoutError
from channelwatch.identity import is_placeholder_link
from channelwatch.sources import isolated
from channelwatch.sources.base import Observed, Page, PollOptions, PollSource
from channelwatch.sources.http import redact

if TYPE_CHECKING:
    from selectolax.lexbor import LexborNode as Node

    from channelwatch.sources.http import HttpClient

__all__ = [
    "HtmlListOptions",
    "HtmlListSource",
    "ListPage",
    "PageReading",
    "column_options",
    "dates_on_page",
    "item_dates",
    "parse_column_page",
    "parse_list_page",
    "pub_date_of",
    "read_list_page",
    "read_page",
]

LAYOUT_CHANGED = "页面结构可能已变化"


class HtmlListOptions(PollOptions):
    url: str | None = Field(default=None, pattern=r"^https?://")  # optional when the channel lists columns
    item: str = "ul li"
    title: str = "a"
    link: str = "a@href"
    date: str | None = "span"
    page_url: str | None = None  # "index_{n}.html": page 2 is n = 1, page 3 is n = 2, …
    detail_date: bool = False
    column: str | None = None  # the column's name (栏目), stored with each publication
    homepage: str | None = Field(default=None, pattern=r"^https?://")  # watched by the inspection checks

    @field_validator("page_url")
    @classmethod
    def _has_n(cls, value: str | None) -> str | None:
        if value is not None and "{n}" not in value:
            raise ValueError("page_url 必须包含 {n}（例如 index_{n}.html）")
        return value


@functools.lru_cache(maxsize=256)  # a handful of selectors, asked for every field of every entry
def _split(selector: str) -> tuple[str, str | None]:
    """``"a@href"`` → ``("a", "href")``; ``"@title"`` → ``("", "title")``; ``"span"`` → ``("span", None)``."""
    css, sep, attr = selector.rpartition("@")
    if not sep:
        return selector.strip(), None
    return css.strip(), attr.strip() or None


def _select(entry: Node, selector: str, found: dict[str, Node | None] | None = None) -> str | None:
    """The text (or attribute) ``selector`` names in ``entry``; ``found`` keeps the nodes of one entry's
    selectors, since the title and the link are usually the same ``<a>`` (a CSS query per field is a
    third of a list page's parsing)."""
    css, attr = _split(selector)
    if not css:
        node: Node | None = entry
    elif found is None:
        node = entry.css_first(css)
    elif css in found:
        node = found[css]
    else:
        node = found[css] = entry.css_first(css)
    if node is None:
        return None
    value = node.attributes.get(attr) if attr else node.text(separator=" ", strip=True)
    value = " ".join(value.split()) if value else ""
    return value or None


@functools.lru_cache(maxsize=32768)  # about 8 MB: a thousand channels' first pages
def _joined(base: str, href: str) -> str:
    """``urljoin``, remembered: a list page shows mostly the same links at every poll.

    The common link of a government list page (``./202006/t20200601_123.html`` beside
    ``http://host/xxgk/index.html``) is joined directly: ``urljoin`` parses both addresses, and a
    thousand-channel poll's first links spent a twentieth of its CPU there. The result is the same,
    as a property test against ``urljoin`` shows.
    """
    if _PLAIN_HREF.fullmatch(href):
        path = _QUERY_OR_FRAGMENT.split(base, 1)[0]
        folder = path[: path.rfind("/") + 1]
        if _PLAIN_BASE.fullmatch(folder):
            return folder + href.removeprefix("./")
    return urljoin(base, href)


# A relative path of plain segments (none of them "." or ".."), beside an http(s) base whose folder has no dot
# segment either: their join is the base up to its last "/" followed by the path.
_SEGMENT = r"[A-Za-z0-9_~-][A-Za-z0-9_~.-]*"
_PLAIN_HREF = re.compile(rf"(?:\./)?{_SEGMENT}(?:/{_SEGMENT})*")
_PLAIN_BASE = re.compile(rf"https?://[A-Za-z0-9.-]+(?::[0-9]+)?/(?:{_SEGMENT}/)*")
_QUERY_OR_FRAGMENT = re.compile(r"[?#]")


@dataclass
class ListPage:
    """One list page as read: its entries, and how many selected elements were not entries."""

    entries: list[tuple[Observed | None, str | None, str]] = field(default_factory=list)
    skipped: int = 0  # spacers, pagers: elements with neither a link nor a date
    items: int = 0  # elements the ``item`` selector matched
    example: str = ""  # the HTML of one skipped element, for messages


def _snippet(entry: Node, limit: int = 240) -> str:
    """An entry's HTML for a message: whitespace folded, cut short."""
    markup = " ".join((entry.html or "").split())
    return markup if len(markup) <= limit else markup[: limit - 1] + "…"


def _is_listing_link(link: str, options: HtmlListOptions) -> bool:
    """Whether ``link`` points at a page of the list itself (a pager), not at an article."""
    if link.split("#", 1)[0] == options.url:
        return True
    if options.page_url and options.url:
        pattern = re.escape(urljoin(options.url, options.page_url)).replace(re.escape("{n}"), r"\d+")
        if re.fullmatch(pattern, link.split("#", 1)[0]):
            return True
    return bool(_PAGER_NAME.search(link.split("?", 1)[0]))


# Links among the entries that lead elsewhere in the site: "更多>>", "下一页", "尾页".
_NAVIGATION = re.compile(r"^\W*(?:更多|查看更多|下一页|上一页|首页|尾页|末页|more)\W*$", re.IGNORECASE)
_PAGER_NAME = re.compile(r"/index_\d+\.s?html?$")  # TRS pagers: index_1.html, index_2.html, …


def read_list_page(html: str, url: str, options: HtmlListOptions, zone: str) -> ListPage:
    """The entries of one list page, and the elements that are not entries.

    Real column pages put spacer ``<li>`` and the pager among the entries: an element without a
    readable date that also lacks a link, or a title, or links only to a page of the list itself (the
    pager, whose current page number may sit where a date would), or is a navigation link ("更多>>",
    "下一页"), is not an entry and is skipped.
    An element that is half an entry (a date without a link, a link and title without a date when
    the list shows dates, a link and title with a date that does not parse) means the page changed:
    ``LayoutError``, naming the selector and showing the element.
    """
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(html)
    shown = redact(url)
    page = ListPage()
    for index, entry in enumerate(tree.css(options.item), 1):
        page.items += 1
        found: dict[str, Node | None] = {}
        title = _select(entry, options.title, found)
        href = _select(entry, options.link, found)
        # A link that opens nothing (javascript:, #): the item is read by its title and date (counting rules 1).
        placeholder = bool(href) and is_placeholder_link(href)  # type: ignore[arg-type]
        link = _joined(url, href) if href and not placeholder else None
        date_text = _select(entry, options.date, found) if options.date else None
        published: datetime | None = None
        if date_text is not None:
            try:
                published = parse_datetime(date_text, zone)
            except DateParseError:
                published = None
        if published is None and (
            link is None or not title or _is_listing_link(link, options) or _NAVIGATION.match(title)
        ):
            # A spacer, or a pager (whose current page number may sit where a date would).
            page.skipped += 1
            page.example = page.example or _snippet(entry)
            continue
        if link is None and placeholder and title and published is not None:
            page.entries.append((Observed(published_at=published, title=title, url=None, column_name=options.column,
                                          origin=f"{shown}#{index}"), None, title))  # fmt: skip
            continue
        if link is None:
            raise LayoutError(
                f"{LAYOUT_CHANGED}：{shown} 第{index}条有日期但没有链接（选择器 link = {options.link!r}）："
                f"{_snippet(entry)}"
            )
        if date_text is None:
            if not options.detail_date:
                raise LayoutError(
                    f"{LAYOUT_CHANGED}：{shown} 第{index}条没有日期（选择器 date = {options.date!r}）："
                    f"{_snippet(entry)}；"
                    "如果列表页本来就不显示日期，请设置 detail_date = true"
                )
            page.entries.append((None, link, title or ""))
            continue
        if published is None:
            raise LayoutError(
                f"{LAYOUT_CHANGED}：{shown} 第{index}条的日期「{date_text}」无法识别"
                f"（选择器 date = {options.date!r}）：{_snippet(entry)}"
            )
        observed = Observed(
            published_at=published,
            title=title,
            url=link,
            column_name=options.column,
            origin=f"{shown}#{index}",
        )
        page.entries.append((observed, link, title or ""))
    if page.items and not page.entries:
        raise LayoutError(
            f"{LAYOUT_CHANGED}：{shown} 中选择器 item = {options.item!r} 找到 {page.items} 个元素，"
            f"但没有一条可读的条目（都没有链接和日期；选择器 link = {options.link!r}，date = {options.date!r}），"
            f"例如：{page.example}"
        )
    return page


def parse_list_page(
    html: str, url: str, options: HtmlListOptions, zone: str
) -> list[tuple[Observed | None, str | None, str]]:
    """The entries of one list page: (observed or None when its date must come from the article page,
    its absolute link, the entry's title). Raises ``LayoutError`` as ``read_list_page`` does."""
    return read_list_page(html, url, options, zone).entries


def pub_date_of(html: str, zone: str) -> datetime | None:
    """The ``PubDate`` meta tag of an article page (TRS and the 集约化 platforms write it)."""
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(html)
    for name in ("PubDate", "pubdate", "publishdate", "PublishDate"):
        node = tree.css_first(f'meta[name="{name}"]')
        content = node.attributes.get("content") if node is not None else None
        if content:
            try:
                return parse_datetime(content.strip(), zone)
            except DateParseError:
                return None
    return None


class HtmlListSource(PollSource):
    Options = HtmlListOptions

    options: HtmlListOptions

    def describe(self) -> str:
        return f"html-list {self.options.url or '（仅栏目）'}"

    def page_urls(self) -> list[str]:
        first = self.options.url
        if first is None:
            return []  # a channel read through its columns only (``[[channels.columns]]``)
        if self.options.page_url is None:
            return [first]
        further = [urljoin(first, self.options.page_url.format(n=n)) for n in range(1, self.options.max_pages)]
        return [first, *further]

    async def pages(self) -> AsyncIterator[Page]:
        zone = self.context.zone
        urls = self.page_urls()[: self.options.max_pages]
        for number, url in enumerate(urls, 1):
            fetched = await self.fetch("GET", url, conditional=True)
            if fetched.status == 404:
                if number == 1:
                    raise LayoutError(f"{LAYOUT_CHANGED}：列表页 {redact(url)} 返回 404，请检查 url")
                return  # a 404 for a further page ends the list
            text = fetched.text()
            if re.search(r"<html", text[:2048], re.IGNORECASE) and not re.search(r"</html\s*>", text[-4096:], re.I):
                # A cut-off page parses "fine" with entries missing: never count from one.
                raise FetchError(f"列表页 {redact(url)} 不完整（没有 </html> 结尾），本次抓取作废")
            listed = await isolated.parse(
                read_list_page, text, url, self.options, zone, text=text, what=f"列表页 {redact(url)}"
            )
            if number == 1:
                self._check_collapse(listed, url)
            parsed = listed.entries
            if any(o is None for o, _, _ in parsed):
                entries = await self._with_detail_dates(parsed)
            else:
                entries = [o for o, _, _ in parsed if o is not None]
            yield Page(url=redact(url), entries=entries, last=number == len(urls), skipped=listed.skipped)

    def _check_collapse(self, listed: ListPage, url: str) -> None:
        """Layout alarm: page 1 holds far fewer readable entries than the last good run read per page.

        A column's first page is full whenever the column has more than a page of articles, and
        articles are not taken off it: a first page that suddenly reads less than half of what the
        last good poll read per page means the selectors now miss most entries. A ``--full`` poll
        skips the check, so that a site that really shows fewer entries per page can be accepted.
        """
        rows, pages = self.context.last_good, self.context.last_good_pages
        if self.context.full or not rows or not pages or not listed.entries:
            return  # a --full poll accepts a list that now legitimately shows fewer entries per page
        per_page = rows / pages
        if len(listed.entries) * 2 < per_page:
            raise LayoutError(
                f"{LAYOUT_CHANGED}：{redact(url)} 只读到 {len(listed.entries)} 条，而上次成功抓取时每页约 "
                f"{per_page:.0f} 条（选择器 item = {self.options.item!r}"
                + (f"，跳过 {listed.skipped} 个不是条目的元素，例如：{listed.example}" if listed.skipped else "")
                + "）；本次未保存任何数据，请检查网页或配置中的选择器。如果网站确实改为每页显示更少条目，"
                f"运行一次 channelwatch poll {self.context.channel} --full 即可接受新的页面"
            )

    async def _with_detail_dates(self, parsed: list[tuple[Observed | None, str | None, str]]) -> list[Observed]:
        """Entries in list order, dates of undated ones from their article pages (unknown ones only)."""
        zone = self.context.zone
        placeholders = [
            o
            or Observed(published_at=datetime.now(UTC), title=title or None, url=link, column_name=self.options.column)
            for o, link, title in parsed
        ]
        known = await self.context.known(placeholders) if self.context.known is not None else {}
        result: list[Observed] = []
        for index, (observed, link, title) in enumerate(parsed):
            if observed is not None:
                result.append(observed)
                continue
            assert link is not None
            if index in known:
                published = known[index]
            else:
                article = await self.fetch("GET", link)
                found = None
                if article.status == 200:
                    page = article.text()
                    found = await isolated.parse(pub_date_of, page, zone, text=page, what=f"文章页 {redact(link)}")
                if found is None:
                    raise LayoutError(
                        f"{LAYOUT_CHANGED}：文章页 {redact(link)} 没有可识别的 PubDate 日期（HTTP {article.status}）"
                    )
                published = found
            result.append(
                Observed(
                    published_at=published,
                    title=title or None,
                    url=link,
                    column_name=self.options.column,
                    origin=redact(link),
                )
            )
        return result


# --- pages read for the inspection checks (docs/inspection.md) ------------------------------------------


@dataclass
class PageReading:
    """One read of a column's first page or of the homepage, tolerant of what the checks must see.

    Unlike a list poll, an entry without a date or a page without entries does not fail the read:
    inspectors count an undated entry as *not updated* and an empty column as *blank*.
    """

    url: str
    http_status: int | None = None
    error: str | None = None  # why the page could not be read (Chinese)
    entries: list[tuple[str | None, datetime | None, str | None]] = field(default_factory=list)  # link, date, title
    links: list[str] = field(default_factory=list)  # every http(s) link on the page, in page order
    dates: list[date] = field(default_factory=list)  # every date shown on the page (homepage)

    def observed(self, column: str | None) -> list[Observed]:
        """The dated entries as publications of the channel (undated ones cannot be counted in a period)."""
        return [
            Observed(published_at=published, title=title, url=link, column_name=column, origin=redact(self.url))
            for link, published, title in self.entries
            if published is not None and (link or title)
        ]


_SHOWN_DATE = re.compile(r"(?<!\d)(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})(?!\d)")


def links_on_page(tree: Any, url: str) -> list[str]:
    found: dict[str, None] = {}
    for node in tree.css("a[href]"):
        href = (node.attributes.get("href") or "").strip()
        if not href or href.startswith(("javascript:", "#", "mailto:", "tel:")):
            continue
        absolute = urldefrag(urljoin(url, href))[0]
        if absolute.startswith(("http://", "https://")):
            found.setdefault(absolute, None)
    return list(found)


_MONTH_DAY = re.compile(r"^[\[(（【]?(\d{2})-(\d{2})[\])）】]?$")


def dates_on_page(text: str) -> list[date]:
    """Every calendar date written in a text (2020-06-01, 2020/6/1, 2020.06.01, 2020年6月1日)."""
    found: set[date] = set()
    for match in _SHOWN_DATE.finditer(text):
        try:
            found.add(date(int(match.group(1)), int(match.group(2)), int(match.group(3))))
        except ValueError:
            continue
    return sorted(found)


def item_dates(tree: Any, today: date) -> list[date]:
    """Dates shown beside the links of a homepage: the dates of its entries.

    Only the text of each link's own entry counts (its parent element; a table cell's row), so that a
    banner's "today is …" elsewhere on the page does not make the homepage look updated. An entry that
    shows only ``06-28`` (common on homepages) is taken in the latest year that is not after ``today``.
    """
    found: set[date] = set()
    for node in tree.css("a[href]"):
        entry = node.parent
        if entry is None:
            continue
        if entry.tag in ("td", "th") and entry.parent is not None:
            entry = entry.parent
        text = entry.text(separator=" ", strip=True)
        full = dates_on_page(text)
        if full:
            found.update(full)
            continue
        for part in text.split():
            match = _MONTH_DAY.match(part)
            if not match:
                continue
            try:
                shown = date(today.year, int(match.group(1)), int(match.group(2)))
                found.add(shown if shown <= today else shown.replace(year=today.year - 1))
            except ValueError:
                continue
    return sorted(found)


def parse_column_page(
    html: str, url: str, options: HtmlListOptions, zone: str
) -> tuple[list[tuple[str | None, datetime | None, str | None]], list[str]]:
    """The entries of a column page (an entry's date is None when it shows none that parses) and its links."""
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(html)
    entries: list[tuple[str | None, datetime | None, str | None]] = []
    for entry in tree.css(options.item):
        title = _select(entry, options.title)
        href = _select(entry, options.link)
        link = urljoin(url, href) if href and not href.startswith(("javascript:", "#")) else None
        date_text = _select(entry, options.date) if options.date else None
        published = None
        if date_text:
            try:
                published = parse_datetime(date_text, zone)
            except DateParseError:
                published = None  # inspectors count an entry without a readable date as not updated
        entries.append((link, published, title))
    return entries, links_on_page(tree, url)


async def read_page(
    client: HttpClient,
    url: str,
    zone: str,
    *,
    options: HtmlListOptions | None = None,
    min_interval: float = 0.0,
) -> PageReading:
    """Read a column's first page (``options`` gives its selectors) or, without options, a homepage."""
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    reading = PageReading(url=url)
    try:
        fetched = await client.request("GET", url, min_interval=min_interval, accept_statuses=_ANY_ERROR)
    except FetchError as exc:
        reading.error = str(exc)
        return reading
    reading.http_status = fetched.status
    if fetched.status >= 400:
        reading.error = f"{redact(url)} 返回 HTTP {fetched.status}"
        return reading
    text = fetched.text()
    if options is not None:
        reading.entries, reading.links = parse_column_page(text, url, options, zone)
    else:
        tree = HTMLParser(text)
        reading.links = links_on_page(tree, url)
        reading.dates = item_dates(tree, to_office(datetime.now(UTC), zone).date())
    return reading


_ANY_ERROR = frozenset(range(400, 600))
COLUMN_SELECTORS = ("item", "title", "link", "date", "page_url")


def column_options(poll: dict[str, Any] | None, name: str, url: str, overrides: dict[str, Any]) -> HtmlListOptions:
    """A column's list options: the channel's ``html-list`` selectors, the column's own where it sets them.

    Raises pydantic's ``ValidationError`` for a bad override (the config loader reports it).
    """
    base = dict(poll) if poll and poll.get("type") == "html-list" else {}
    base.pop("homepage", None)
    table: dict[str, Any] = {**base, "type": "html-list", "url": url, "column": name, "max_pages": 1}
    table.update({key: value for key, value in overrides.items() if key in COLUMN_SELECTORS and value is not None})
    return HtmlListOptions.model_validate(table)
