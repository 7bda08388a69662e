"""WeChat official account (公众号): reading ``freepublish/batchget`` answers and ``datacube`` lists.

One ``item`` of ``freepublish/batchget`` is one push (发布); each ``content.news_item[]`` is one
article, and WeChat counts articles (docs/counting-rules.md, rule 6). Where the times sit differs
between the documentation and real answers: the documentation's example puts ``update_time`` on the
item, real answers carry ``create_time``/``update_time`` inside ``content`` and some versions on each
``news_item``. An article's time is read wherever an answer carries it (the article, then ``content``,
then the item), the publication time preferred over the creation and the update time (an edited
article keeps the period it was published in). An article's identity is its URL
(``__biz, mid, idx, sn``); only where no URL is known, ``article_id`` + index. ``is_deleted``
articles still count for the period they were published in (rule 5).

``WechatSource`` (``type = "wechat"``) polls the official API: an ``access_token`` from
``cgi-bin/token`` (cached per app until shortly before ``expires_in``), then
``freepublish/batchget`` paged by ``offset``/``count`` (at most 20). 40001/42001 mean the token went
stale: a new one is fetched and the page asked once more. 45009/45011/48001 end the run with a clear
message. The app secret comes from ``secret_env`` and travels only in the token request's query
string; that URL is redacted (``http.redact``) wherever it could be shown.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pydantic import Field

from channelwatch.dates import DateParseError, from_timestamp, parse_datetime
from channelwatch.errors import BlockedError, FetchError, LayoutError, RowProblem
from channelwatch.sources.base import Observed, Page, PollOptions, PollSource

__all__ = [
    "WechatOptions",
    "WechatSource",
    "articles_from_push",
    "is_articlesummary_payload",
    "is_batchget_payload",
    "is_error_answer",
    "rows_from_articlesummary",
    "rows_from_batchget",
]

_REPOST_MARKS = ("转载", "转发")
# Most preferred first: when the article went out, then when its record was made, then its last edit.
_TIME_KEYS = ("publish_time", "create_time", "update_time")


def is_batchget_payload(payload: Any) -> bool:
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("item"), list)
        and ("total_count" in payload or "item_count" in payload)
    )


def is_error_answer(payload: Any) -> bool:
    """``{"errcode": 40001, "errmsg": "…"}``: a refusal saved in place of an answer."""
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("errcode"), int)
        and payload["errcode"] != 0
        and "item" not in payload
        and "list" not in payload
    )


def is_articlesummary_payload(payload: Any) -> bool:
    items = payload.get("list") if isinstance(payload, dict) else None
    return isinstance(items, list) and all(isinstance(i, dict) and "msgid" in i for i in items) and bool(items)


def _stamp_time(stamp: Any, zone: str) -> datetime:
    try:
        return from_timestamp(float(stamp), zone)
    except (TypeError, ValueError, OverflowError):
        return parse_datetime(stamp, zone)


def push_time(push: dict[str, Any], article: dict[str, Any] | None = None) -> Any:
    """The raw publication time of an article of ``push``, wherever the answer carries it, or None."""
    content = push.get("content")
    levels = [level for level in (article, content, push) if isinstance(level, dict)]
    for key in _TIME_KEYS:
        for level in levels:
            stamp = level.get(key)
            if stamp not in (None, "", 0, "0"):
                return stamp
    return None


def articles_from_push(push: dict[str, Any], zone: str, origin: str) -> list[Observed]:
    """The articles of one pushed ``item``. Raises ``DateParseError``/``ValueError`` on bad data."""
    article_id = str(push.get("article_id") or "").strip()
    content = push.get("content") or {}
    news = content.get("news_item") if isinstance(content, dict) else None
    if not isinstance(news, list):
        raise ValueError("缺少 content.news_item")
    articles: list[Observed] = []
    for index, article in enumerate(news, 1):
        if not isinstance(article, dict):
            raise ValueError(f"第{index}篇文章不是对象")
        stamp = push_time(push, article)
        if stamp is None:
            raise DateParseError(
                f"第{index}篇文章没有发布时间"
                "（item、content 和 news_item 中都没有 publish_time、create_time 或 update_time）"
            )
        published = _stamp_time(stamp, zone)
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
    from channelwatch.sources.rows import Row

    rows: list[Row] = []
    for push_index, push in enumerate(payload.get("item") or [], 1):
        origin = f"{name}#item{push_index}"
        if not isinstance(push, dict):
            rows.append(Row(push_index, [str(push)], None, [RowProblem(push_index, "item", str(push), "不是对象")]))
            continue
        cells = [str(push.get("article_id") or ""), "", "", str(push_time(push) or ""), ""]
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
    from channelwatch.sources.rows import Row

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


# --- polling ------------------------------------------------------------------------------------------------

LAYOUT_CHANGED = "页面结构可能已变化"
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
FATAL_ERRORS = {
    45009: "微信接口今日调用次数已达上限（errcode 45009），请明天再试，或在公众平台「开发 - 接口权限」中清零",
    45011: "微信接口调用过于频繁（errcode 45011），请稍后再试，或加大 min_interval",
    48001: "公众号没有 freepublish 接口权限（errcode 48001）：需要已认证的公众号，并在公众平台开通「发布能力」接口权限",
}
TOKEN_PROBLEMS = {
    40013: "AppID 无效（errcode 40013），请检查配置中的 appid",
    40125: "AppSecret 无效（errcode 40125），请检查环境变量中的 AppSecret",
    40164: "调用接口的 IP 不在公众号的白名单中（errcode 40164），请在公众平台「基本配置 - IP白名单」中添加本机 IP",
    40243: "AppSecret 已被冻结（errcode 40243），请在公众平台解冻",
}

# (base_url, appid) → (access_token, time.monotonic() when it must be renewed)
_TOKENS: dict[tuple[str, str], tuple[str, float]] = {}


class WechatOptions(PollOptions):
    appid: str = Field(pattern=r"^[A-Za-z0-9_-]{4,64}$")
    secret_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    base_url: str = Field(default="https://api.weixin.qq.com", pattern=r"^https?://")
    count: int = Field(default=20, ge=1, le=20)
    min_interval: float = 1.0


class WechatSource(PollSource):
    Options = WechatOptions

    options: WechatOptions

    def describe(self) -> str:
        return f"wechat appid={self.options.appid}"

    @property
    def _base(self) -> str:
        return self.options.base_url.rstrip("/")

    async def _token(self, *, renew: bool = False) -> str:
        from channelwatch.redaction import secret
        from channelwatch.sources.http import register_secret

        key = (self._base, self.options.appid)
        cached = _TOKENS.get(key)
        if cached is not None and not renew and cached[1] > time.monotonic():
            return cached[0]
        _TOKENS.pop(key, None)
        app_secret = secret(self.options.secret_env, what="公众号 AppSecret", where=f"{self.context.where}.secret_env")
        register_secret(app_secret)
        fetched = await self.fetch(
            "GET",
            f"{self._base}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.options.appid, "secret": app_secret},
        )
        if fetched.status != 200:
            raise FetchError(f"获取微信 access_token 失败：HTTP {fetched.status}")
        payload = fetched.json()
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not token:
            code = payload.get("errcode") if isinstance(payload, dict) else None
            message = TOKEN_PROBLEMS.get(code) if isinstance(code, int) else None
            raise BlockedError(message or f"获取微信 access_token 失败：errcode {code}")
        register_secret(str(token))
        expires_in = float(payload.get("expires_in") or 7200)
        margin = min(300.0, expires_in * 0.1)  # renew shortly before WeChat's expiry
        _TOKENS[key] = (str(token), time.monotonic() + expires_in - margin)
        return str(token)

    async def _batchget(self, offset: int) -> dict[str, Any]:
        url = f"{self._base}/cgi-bin/freepublish/batchget"
        body = {"offset": offset, "count": self.options.count, "no_content": 1}
        token = await self._token()
        for attempt in (1, 2):
            fetched = await self.fetch("POST", url, params={"access_token": token}, json=body, idempotent=True)
            if fetched.status != 200:
                raise FetchError(f"微信 freepublish/batchget 返回 HTTP {fetched.status}")
            payload = fetched.json()
            if not isinstance(payload, dict):
                raise LayoutError(f"{LAYOUT_CHANGED}：微信接口返回的不是对象")
            code = payload.get("errcode") or 0
            if code in TOKEN_ERRORS and attempt == 1:
                token = await self._token(renew=True)  # stale token: renew and ask once more
                continue
            if code in FATAL_ERRORS:
                raise BlockedError(FATAL_ERRORS[code])
            if code in TOKEN_ERRORS:
                raise BlockedError(f"微信 access_token 刚刚更新后仍被拒绝（errcode {code}），请检查 AppID/AppSecret")
            if code:
                raise FetchError(f"微信接口返回错误 errcode {code}：{payload.get('errmsg', '')}")
            return payload
        raise AssertionError("unreachable")

    async def pages(self) -> AsyncIterator[Page]:
        offset = 0
        zone = self.context.zone
        for number in range(1, self.options.max_pages + 1):
            payload = await self._batchget(offset)
            items = payload.get("item")
            if not isinstance(items, list):
                raise LayoutError(f"{LAYOUT_CHANGED}：微信 batchget 的回答没有 item 列表")
            origin = f"{self._base}/cgi-bin/freepublish/batchget?offset={offset}"
            total = payload.get("total_count")
            ends = not items or (isinstance(total, int) and offset + len(items) >= total)
            page = Page(url=origin, last=ends or number == self.options.max_pages)
            for index, push in enumerate(items, 1):
                if not isinstance(push, dict):
                    raise LayoutError(f"{LAYOUT_CHANGED}：微信 batchget 第{offset + index}项不是对象")
                try:
                    page.entries.extend(articles_from_push(push, zone, f"{origin}#item{index}"))
                except (DateParseError, ValueError) as exc:
                    raise LayoutError(
                        f"{LAYOUT_CHANGED}：微信 batchget 第{offset + index}项无法读取（{exc}）"
                    ) from None
            yield page
            offset += len(items)
            if ends:
                return
