"""Weibo (m.weibo.cn mobile web API): reading ``getIndex`` pages into observed publications.

The shapes (reference/platform-sources.md): posts are ``data.cards[]`` with ``card_type == 9``
holding ``mblog``; ``card_type == 11`` nests cards in ``card_group``. A post with
``retweeted_status`` is a repost, counted under its own id (the original's id is ignored). Pinned
posts sit on top of page 1 out of date order. ``created_at`` may be relative (``3小时前``): resolved
against the time the page was fetched, which for a saved file is the file's modification time.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from channelwatch.dates import DateParseError, parse_relative
from channelwatch.errors import RowProblem
from channelwatch.sources.base import Observed

__all__ = ["WeiboPost", "is_getindex_payload", "iter_posts", "post_observed", "rows_from_getindex"]

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def is_getindex_payload(payload: Any) -> bool:
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("data"), dict)
        and ("cards" in payload["data"] or "cardlistInfo" in payload["data"])
    )


def plain_text(markup: str | None, limit: int = 200) -> str:
    text = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", markup or ""))).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def iter_mblogs(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every ``mblog`` of a getIndex page, nested card groups included, in page order."""

    def walk(cards: Any) -> Iterator[dict[str, Any]]:
        if not isinstance(cards, list):
            return
        for card in cards:
            if not isinstance(card, dict):
                continue
            if card.get("card_type") == 9 and isinstance(card.get("mblog"), dict):
                yield card["mblog"]
            elif isinstance(card.get("card_group"), list):
                yield from walk(card["card_group"])

    data = payload.get("data") or {}
    yield from walk(data.get("cards"))


def is_pinned(mblog: dict[str, Any]) -> bool:
    return (
        str(mblog.get("isTop", "")) == "1"
        or str(mblog.get("mblogtype", "")) == "2"
        or str(mblog.get("profile_type_id", "")).startswith("proweibotop")
    )


class WeiboPost:
    """One mblog, read defensively."""

    def __init__(self, mblog: dict[str, Any]) -> None:
        self.mblog = mblog
        self.id = str(mblog.get("id") or mblog.get("mid") or mblog.get("idstr") or "").strip()
        self.bid = str(mblog.get("bid") or "").strip()
        user: dict[str, Any] = mblog["user"] if isinstance(mblog.get("user"), dict) else {}
        self.uid = str(user.get("id") or "").strip()
        self.created_at = str(mblog.get("created_at") or "").strip()
        self.is_repost = isinstance(mblog.get("retweeted_status"), dict)
        self.pinned = is_pinned(mblog)
        self.text = plain_text(mblog.get("raw_text") or mblog.get("text"))

    @property
    def url(self) -> str | None:
        if self.uid and self.bid:
            return f"https://weibo.com/{self.uid}/{self.bid}"
        return None


def iter_posts(payload: dict[str, Any]) -> Iterator[WeiboPost]:
    for mblog in iter_mblogs(payload):
        yield WeiboPost(mblog)


def post_observed(post: WeiboPost, zone: str, now: datetime, origin: str) -> Observed:
    """Raises ``DateParseError`` when the post's date cannot be read, ``ValueError`` without id."""
    if not post.id:
        raise ValueError("微博缺少 id")
    published = parse_relative(post.created_at, now, zone)
    return Observed(
        published_at=published,
        platform_id=post.id,
        title=post.text or None,
        url=post.url,
        is_repost=post.is_repost,
        origin=origin,
    )


def rows_from_getindex(payload: dict[str, Any], zone: str, now: datetime | None, name: str) -> list[Any]:
    """A saved getIndex page as rows for ``files.ExportFile`` (one per post)."""
    from channelwatch.sources.files import Row

    fetched = now or datetime.now(UTC)
    rows: list[Row] = []
    for index, post in enumerate(iter_posts(payload), 1):
        cells = [post.id, post.text, post.url or "", post.created_at, "转发" if post.is_repost else "原创"]
        try:
            observed = post_observed(post, zone, fetched, f"{name}#card{index}")
        except DateParseError as exc:
            rows.append(Row(index, cells, None, [RowProblem(index, "created_at", post.created_at, str(exc))]))
            continue
        except ValueError as exc:
            rows.append(Row(index, cells, None, [RowProblem(index, "id", "", str(exc))]))
            continue
        rows.append(Row(index, cells, observed))
    return rows
