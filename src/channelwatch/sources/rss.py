"""RSS 2.0 and Atom feeds (``type = "rss"``), read with feedparser.

An entry's identity: its ``guid``/``id`` when that is an opaque id,
else its link. A guid that is itself a URL (``isPermaLink``) is used as the URL, so the entry
deduplicates against CMS exports and list-page polls of the same article, which know only URLs.
A feed is one page; entries without a usable date are a layout alarm.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from channelwatch.dates import DateParseError, parse_datetime
from channelwatch.errors import FetchError, LayoutError
from channelwatch.sources import isolated
from channelwatch.sources.base import Observed, Page, PollOptions, PollSource
from channelwatch.sources.http import redact

__all__ = ["FeedOptions", "FeedSource", "parse_feed"]

LAYOUT_CHANGED = "页面结构可能已变化"


class FeedOptions(PollOptions):
    url: str = Field(pattern=r"^https?://")
    column: str | None = None
    homepage: str | None = Field(default=None, pattern=r"^https?://")  # watched by the inspection checks


def _entry_time(entry: Any, zone: str) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            year, month, day, hour, minute, second = parsed[:6]
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    for key in ("published", "updated", "dc_date"):
        text = entry.get(key)
        if text:
            try:
                return parse_datetime(text, zone)
            except DateParseError:
                return None
    return None


def parse_feed(content: bytes, url: str, zone: str, column: str | None = None) -> list[Observed]:
    """Every entry of an RSS 2.0 or Atom document. Raises ``FetchError``/``LayoutError`` on bad feeds."""
    import feedparser

    shown = redact(url)
    feed = feedparser.parse(content)
    if feed.get("bozo") and not feed.entries:
        problem = feed.get("bozo_exception")
        raise FetchError(f"{shown} 不是有效的 RSS/Atom 订阅（{type(problem).__name__}），本次抓取作废")
    if not feed.get("version") and not feed.entries:
        raise FetchError(f"{shown} 不是 RSS/Atom 订阅")
    observed: list[Observed] = []
    for index, entry in enumerate(feed.entries, 1):
        link = (entry.get("link") or "").strip() or None
        guid = (entry.get("id") or "").strip() or None
        if guid and guid.startswith(("http://", "https://")):
            link, guid = link or guid, None
        published = _entry_time(entry, zone)
        if published is None:
            raise LayoutError(f"{LAYOUT_CHANGED}：{shown} 第{index}条没有可识别的发布时间")
        title = " ".join((entry.get("title") or "").split()) or None
        if not (guid or link or title):
            raise LayoutError(f"{LAYOUT_CHANGED}：{shown} 第{index}条既没有 id 也没有链接和标题")
        observed.append(
            Observed(
                published_at=published,
                platform_id=guid,
                title=title,
                url=link,
                column_name=column,
                origin=f"{shown}#{index}",
            )
        )
    return observed


class FeedSource(PollSource):
    Options = FeedOptions

    options: FeedOptions

    def describe(self) -> str:
        return f"rss {self.options.url}"

    async def pages(self) -> AsyncIterator[Page]:
        fetched = await self.fetch("GET", self.options.url, conditional=True)
        if fetched.status == 404:
            raise FetchError(f"订阅地址 {redact(self.options.url)} 返回 404，请检查 url")
        content, url = fetched.content, self.options.url
        entries = await isolated.parse(
            parse_feed, content, url, self.context.zone, self.options.column, text=content, what=f"订阅 {redact(url)}"
        )
        yield Page(last=True, url=redact(url), entries=entries)
