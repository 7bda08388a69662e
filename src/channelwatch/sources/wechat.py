"""WeChat official account (公众号): reading ``freepublish/batchget`` answers and ``datacube`` lists.

One ``item`` of ``freepublish/batchget`` is one push (发布); each ``content.news_item[]`` is one
article, and WeChat counts articles (DESIGN §3 rule 6). An article's identity is its URL
(``__biz, mid, idx, sn``); only where no URL is known, ``article_id`` + index. ``is_deleted``
articles still count for the period they were published in (rule 5).
"""

from __future__ import annotations

from typing import Any

from channelwatch.dates import DateParseError, from_timestamp, parse_datetime
from channelwatch.errors import RowProblem
from channelwatch.sources.base import Observed

__all__ = [
    "articles_from_push",
    "is_articlesummary_payload",
    "is_batchget_payload",
    "rows_from_articlesummary",
    "rows_from_batchget",
]

_REPOST_MARKS = ("转载", "转发")


def is_batchget_payload(payload: Any) -> bool:
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("item"), list)
        and ("total_count" in payload or "item_count" in payload)
    )


def is_articlesummary_payload(payload: Any) -> bool:
    items = payload.get("list") if isinstance(payload, dict) else None
    return isinstance(items, list) and all(isinstance(i, dict) and "msgid" in i for i in items) and bool(items)


def articles_from_push(push: dict[str, Any], zone: str, origin: str) -> list[Observed]:
    """The articles of one pushed ``item``. Raises ``DateParseError``/``ValueError`` on bad data."""
    article_id = str(push.get("article_id") or "").strip()
    stamp = push.get("update_time") or push.get("publish_time") or push.get("create_time")
    if stamp in (None, ""):
        raise DateParseError("缺少 update_time")
    try:
        published = from_timestamp(float(stamp), zone)
    except (TypeError, ValueError, OverflowError):
        published = parse_datetime(stamp, zone)
    content = push.get("content") or {}
    news = content.get("news_item") if isinstance(content, dict) else None
    if not isinstance(news, list):
        raise ValueError("缺少 content.news_item")
    articles: list[Observed] = []
    for index, article in enumerate(news, 1):
        if not isinstance(article, dict):
            raise ValueError(f"第{index}篇文章不是对象")
        url = str(article.get("url") or "").strip() or None
        title = str(article.get("title") or "").strip() or None
        if url is None and not article_id:
            raise ValueError("文章既没有 url 也没有 article_id")
        author = str(article.get("author") or "")
        digest = str(article.get("digest") or "")
        # The API has no repost flag: a 转载 article says so in its author or digest, or carries the
        # original's address in content_source_url together with such a mark.
        repost = any(mark in author or mark in digest[:20] for mark in _REPOST_MARKS) or bool(
            title and title.startswith(("【转载】", "[转载]", "转载："))
        )
        articles.append(
            Observed(
                published_at=published,
                platform_id=f"{article_id}:{index}" if article_id else None,
                title=title,
                url=url,
                is_repost=repost,
                push_id=article_id or None,
                origin=f"{origin}#{index}",
            )
        )
    return articles


def rows_from_batchget(payload: dict[str, Any], zone: str, name: str) -> list[Any]:
    from channelwatch.sources.files import Row

    rows: list[Row] = []
    for push_index, push in enumerate(payload.get("item") or [], 1):
        origin = f"{name}#item{push_index}"
        if not isinstance(push, dict):
            rows.append(Row(push_index, [str(push)], None, [RowProblem(push_index, "item", str(push), "不是对象")]))
            continue
        cells = [str(push.get("article_id") or ""), "", "", str(push.get("update_time") or ""), ""]
        try:
            articles = articles_from_push(push, zone, origin)
        except (DateParseError, ValueError) as exc:
            rows.append(Row(push_index, cells, None, [RowProblem(push_index, "item", cells[0], str(exc))]))
            continue
        for article in articles:
            rows.append(
                Row(
                    push_index,
                    [
                        article.platform_id or "",
                        article.title or "",
                        article.url or "",
                        article.published_at.isoformat(),
                        "转载" if article.is_repost else "原创",
                    ],
                    article,
                )
            )
    return rows


def rows_from_articlesummary(payload: dict[str, Any], zone: str, name: str) -> list[Any]:
    """``datacube/getarticlesummary`` lists: ``msgid`` is ``<push id>_<index>``, ``ref_date`` the day."""
    from channelwatch.sources.files import Row

    rows: list[Row] = []
    for index, entry in enumerate(payload.get("list") or [], 1):
        msgid = str(entry.get("msgid") or "").strip()
        title = str(entry.get("title") or "").strip() or None
        ref_date = entry.get("ref_date")
        cells = [msgid, title or "", "", str(ref_date or ""), ""]
        try:
            published = parse_datetime(ref_date, zone)
        except DateParseError as exc:
            rows.append(Row(index, cells, None, [RowProblem(index, "ref_date", str(ref_date or ""), str(exc))]))
            continue
        push_id, _, article_index = msgid.partition("_")
        observed = Observed(
            published_at=published,
            platform_id=f"{push_id}:{article_index or 1}" if push_id else None,
            title=title,
            push_id=push_id or None,
            origin=f"{name}#{index}",
        )
        if observed.platform_id is None and title is None:
            rows.append(Row(index, cells, None, [RowProblem(index, "msgid", "", "既没有 msgid 也没有标题")]))
            continue
        rows.append(Row(index, cells, observed))
    return rows
