"""Weibo (m.weibo.cn mobile web API): reading ``getIndex`` pages into observed publications.

The shapes: posts are ``data.cards[]`` with ``card_type == 9``
holding ``mblog``; ``card_type == 11`` nests cards in ``card_group``. A post with
``retweeted_status`` is a repost, counted under its own id (the original's id is ignored). Pinned
posts sit on top of page 1 out of date order.

Times: ``created_at`` is full (``Sat Nov 28 10:00:00 +0800 2020``) in newer answers and partial
(``06-14``, ``昨天 12:30``) or relative (``3小时前``) in older ones. A post id is a clock
(``dates.weibo_id_time``), so a partial or relative date takes the time its id encodes whenever the
id is plausible (after Weibo began, not after the fetch) and agrees with what the text does say
(month and day, hour and minute); only otherwise is the text resolved against the fetch time, which for a saved file
is its modification time. Where a full date and the id disagree, the full date is kept (the text is
what the platform shows) and the disagreement is logged (docs/counting-rules.md).

Saved answers with ``ok == 0`` are not pages: ``这里还没有内容`` is an account (or page) without
posts, any other message is a refusal that is reported as such.

``WeiboSource`` (``type = "weibo"``) polls the same API: it finds the post list's ``containerid``
from the profile answer (``tabsInfo``, falling back to ``107603{uid}``), pages through it (following
``cardlistInfo.since_id`` when the answer carries one, as the platform pages now, else ``page=N``) with the
headers the mobile site expects and the cookie from ``cookie_env``, and rests every ``rest_every``
pages. Weibo blocks rather than errs: HTTP 432 or ``ok == -100`` means the cookie is missing or
expired, 418/403 means too fast. Each ends the run as failed with a message saying what to do,
never as "0 posts"; after 418/403 this process leaves the host alone for ``backoff``.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from channelwatch.dates import DateParseError, parse_datetime, parse_relative, to_office, weibo_id_time
from channelwatch.errors import BlockedError, FetchError, InputError, LayoutError, RowProblem
from channelwatch.identity import is_original_value
from channelwatch.sources.base import Observed, Page, PollOptions, PollSource, parse_duration

__all__ = [
    "WeiboOptions",
    "WeiboPost",
    "WeiboSource",
    "answer_message",
    "is_crawler_payload",
    "is_getindex_payload",
    "is_weibo_answer",
    "iter_posts",
    "post_observed",
    "post_time",
    "rows_from_crawler",
    "rows_from_getindex",
]

log = logging.getLogger(__name__)

# What m.weibo.cn says with ``ok == 0`` when a list (or an account) simply has no posts.
EMPTY_MESSAGES = frozenset({"这里还没有内容", "暂无微博", "还没有发过微博"})
WEIBO_LAUNCH = datetime(2009, 8, 14, tzinfo=UTC)
_ID_TEXT_TOLERANCE = timedelta(seconds=60)
_MONTH_DAY = re.compile(r"^(\d{1,2})-(\d{1,2})(?:\s+\d{1,2}:\d{2})?$")
_TIME_OF_DAY = re.compile(r"(\d{1,2}):(\d{2})$")  # 昨天 12:30, 今天 08:00, 11-27 09:15
_DATE_ONLY = re.compile(r"^\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}\s*日?$")

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def is_getindex_payload(payload: Any) -> bool:
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("data"), dict)
        and ("cards" in payload["data"] or "cardlistInfo" in payload["data"])
    )


def is_weibo_answer(payload: Any) -> bool:
    """A getIndex page, or an ``ok``/``msg`` answer of the same API (``{"ok": 0, "msg": "…"}``)."""
    if is_getindex_payload(payload):
        return True
    return (
        isinstance(payload, dict)
        and "ok" in payload
        and ("msg" in payload or "url" in payload)
        and set(payload) <= {"ok", "msg", "data", "url", "errno", "error_type", "error_code"}
    )


def answer_message(payload: dict[str, Any]) -> tuple[str, str]:
    """``("ok", "")`` for a page of posts; ``("empty", msg)`` for a list without posts; ``("error", msg)``."""
    ok = str(payload.get("ok", "1")).strip()
    msg = str(payload.get("msg") or "").strip()
    if ok == "1":
        return "ok", ""
    data = payload.get("data")
    cards = data.get("cards") if isinstance(data, dict) else None
    if ok == "0" and not cards and (msg in EMPTY_MESSAGES or not msg):
        return "empty", msg or "这里还没有内容"
    if ok == "-100":
        return "error", msg or "需要登录：登录 Cookie 已失效或未设置"
    return "error", msg or f"ok = {ok}"


def is_crawler_payload(payload: Any) -> bool:
    """The JSON weibo-crawler and weiboSpider write: ``{"user": {...}, "weibo": [post, ...]}``."""
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("weibo"), list)
        and isinstance(payload.get("user", {}), dict)
        and all(isinstance(p, dict) for p in payload["weibo"][:50])
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


def _id_clock(post_id: str, zone: str, now: datetime) -> datetime | None:
    """The time ``post_id`` encodes when it can be a real post's: after Weibo began, not after ``now``
    (the fetch, or a saved file's modification, which both come after the post)."""
    moment = weibo_id_time(post_id, zone)
    if moment is None:
        return None
    return moment if WEIBO_LAUNCH <= moment <= now + timedelta(days=1) else None


def _agrees(text: str, clock: datetime, zone: str) -> bool:
    """Whether what a partial or relative date does say (month and day, hour and minute) fits ``clock``."""
    local = to_office(clock, zone)
    match = _MONTH_DAY.match(text)
    if match and (int(match.group(1)), int(match.group(2))) != (local.month, local.day):
        return False
    shown = _TIME_OF_DAY.search(text)
    return not shown or (int(shown.group(1)), int(shown.group(2))) == (local.hour, local.minute)


def post_time(post_id: str, text: str, zone: str, now: datetime, origin: str = "") -> datetime:
    """A post's publication time from its ``created_at`` text and its id (see the module docstring).

    Raises ``DateParseError`` when the text is missing or no date at all (a layout change, whatever
    the id says).
    """
    text = (text or "").strip()
    if not text:
        raise DateParseError("缺少发布时间")
    clock = _id_clock(post_id, zone, now)
    full: datetime | None = None
    if not _MONTH_DAY.match(text):
        try:
            full = parse_datetime(text, zone)
        except DateParseError:
            full = None  # a relative form (3小时前, 昨天 12:30), read below
    if full is not None:
        if clock is None:
            return full
        if _DATE_ONLY.match(text):
            if to_office(clock, zone).date() == to_office(full, zone).date():
                return clock  # a day without a time of day: the id gives the time
        elif abs(full - clock) <= _ID_TEXT_TOLERANCE:
            return full
        _disagreement(post_id, origin, text, clock, "keeping created_at")
        return full
    from_text = parse_relative(text, now, zone)  # raises for text that is no date at all
    if clock is None:
        return from_text
    if _agrees(text, clock, zone):
        return clock
    _disagreement(post_id, origin, text, clock, "using created_at against the fetch time")
    return from_text


def _disagreement(post_id: str, origin: str, text: str, clock: datetime, outcome: str) -> None:
    log.warning(
        "weibo post %s at %s: created_at %r disagrees with the time its id encodes (%s); %s",
        post_id,
        origin,
        text,
        clock.isoformat(),
        outcome,
    )


def post_observed(post: WeiboPost, zone: str, now: datetime, origin: str) -> Observed:
    """Raises ``DateParseError`` when the post's date cannot be read, ``ValueError`` without id."""
    if not post.id:
        raise ValueError("微博缺少 id")
    published = post_time(post.id, post.created_at, zone, now, origin)
    return Observed(
        published_at=published,
        platform_id=post.id,
        title=post.text or None,
        url=post.url,
        is_repost=post.is_repost,
        origin=origin,
    )


def rows_from_getindex(payload: dict[str, Any], zone: str, now: datetime | None, name: str) -> list[Any]:
    """A saved getIndex page as rows for ``files.ExportFile`` (one per post).

    Raises ``InputError`` for an ``ok == 0`` answer that is a refusal, not an empty list.
    """
    from channelwatch.sources.rows import Row

    status, message = answer_message(payload)
    if status == "error":
        raise InputError(
            f"{name}：这是微博接口的错误回答（ok = {payload.get('ok')}，消息「{message}」），不是一页微博，未导入；"
            "请重新保存该页"
        )
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


def rows_from_crawler(payload: dict[str, Any], zone: str, now: datetime | None, name: str) -> list[Any]:
    """The JSON weibo-crawler and weiboSpider write (``{"user": {...}, "weibo": [...]}``).

    weibo-crawler: ``id`` (the mid), ``bid``, ``text``, ``created_at``/``full_created_at``, and a
    ``retweet`` object on reposts. weiboSpider: ``id`` (the alphanumeric id of weibo.cn, which is
    also the post's address), ``content``, ``publish_time``, ``original`` (false on reposts).
    """
    from channelwatch.sources.rows import Row

    fetched = now or datetime.now(UTC)
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    default_uid = str((user or {}).get("id") or "").strip()
    rows: list[Row] = []
    for index, post in enumerate(payload["weibo"], 1):
        if not isinstance(post, dict):
            rows.append(Row(index, [str(post)], None, [RowProblem(index, "weibo", str(post), "不是对象")]))
            continue
        post_id = str(post.get("id") or post.get("mid") or "").strip()
        text = plain_text(str(post.get("text") or post.get("content") or ""))
        created = str(post.get("full_created_at") or post.get("created_at") or post.get("publish_time") or "").strip()
        uid = str(post.get("user_id") or default_uid).strip()
        bid = str(post.get("bid") or ("" if post_id.isdigit() else post_id)).strip()
        url = f"https://weibo.com/{uid}/{bid}" if uid and bid else None
        repost = (isinstance(post.get("retweet"), dict) and bool(post["retweet"])) or _is_false(post.get("original"))
        cells = [post_id, text, url or "", created, "转发" if repost else "原创"]
        if not post_id and not text and not url:
            rows.append(Row(index, cells, None, [RowProblem(index, "id", "", "既没有 id 也没有正文")]))
            continue
        try:
            published = post_time(post_id, created, zone, fetched, f"{name}#{index}")
        except DateParseError as exc:
            rows.append(Row(index, cells, None, [RowProblem(index, "created_at", created, str(exc))]))
            continue
        observed = Observed(
            published_at=published,
            platform_id=post_id or None,
            title=text or None,
            url=url,
            is_repost=repost,
            origin=f"{name}#{index}",
        )
        rows.append(Row(index, cells, observed))
    return rows


def _is_false(value: Any) -> bool:
    """weiboSpider's ``original`` flag: false (or "False", 0) marks a repost; absent means nothing."""
    return value is not None and is_original_value(value) is False


# --- polling ------------------------------------------------------------------------------------------------

MOBILE_USER_AGENT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1"
)
LAYOUT_CHANGED = "页面结构可能已变化"

# After a 418/403 this process leaves the host alone until then (host → time.monotonic()).
_BACKOFF_UNTIL: dict[str, float] = {}


class WeiboOptions(PollOptions):
    uid: str = Field(pattern=r"^\d{5,12}$")
    base_url: str = Field(default="https://m.weibo.cn", pattern=r"^https?://")
    cookie_env: str | None = None
    min_interval: float = 3.0  # careful crawlers wait seconds between requests
    rest_every: int = Field(default=20, ge=0)  # pages; 0: never rest
    rest: float = 30.0
    backoff: float = 600.0

    @field_validator("rest", "backoff", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> float:
        return parse_duration(value)


class WeiboSource(PollSource):
    Options = WeiboOptions

    options: WeiboOptions

    def describe(self) -> str:
        return f"weibo uid={self.options.uid}"

    @property
    def _base(self) -> str:
        return self.options.base_url.rstrip("/")

    def _headers(self) -> dict[str, str]:
        from channelwatch.redaction import secret
        from channelwatch.sources.http import register_secret

        headers = {
            "User-Agent": MOBILE_USER_AGENT,
            "Accept": "application/json, text/plain, */*",
            "Referer": f"{self._base}/u/{self.options.uid}",
            "MWeibo-Pwa": "1",
            "X-Requested-With": "XMLHttpRequest",
        }
        if self.options.cookie_env:
            cookie = secret(self.options.cookie_env, what="微博登录 Cookie", where=f"{self.context.where}.cookie_env")
            register_secret(cookie)
            headers["Cookie"] = cookie
        return headers

    def _cookie_message(self, what: str) -> str:
        if self.options.cookie_env:
            where = f"环境变量 {self.options.cookie_env}（由配置 {self.context.where}.cookie_env 指定）"
        else:
            where = f'一个环境变量，并在配置 {self.context.where} 中写上 cookie_env = "该变量名"'
        return (
            f"微博拒绝了请求（{what}）：登录 Cookie 已失效或未设置，需要更新 Cookie。"
            f"请在浏览器中登录 m.weibo.cn，复制请求中的 Cookie，设置到{where}，然后重新抓取"
        )

    async def _get(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        url = f"{self._base}/api/container/getIndex"
        blocked = frozenset({403, 418, 432})
        fetched = await self.fetch("GET", url, params=params, headers=headers, accept_statuses=blocked)
        if fetched.status == 432:
            raise BlockedError(self._cookie_message("HTTP 432"))
        if fetched.status in (403, 418):
            host = urlsplit(self._base).netloc
            _BACKOFF_UNTIL[host] = time.monotonic() + self.options.backoff
            raise BlockedError(
                f"微博限制了访问频率（HTTP {fetched.status}），本次抓取已停止，"
                f"{self.options.backoff:.0f} 秒内不再请求；"
                f"请稍后再试，或在配置 {self.context.where} 中加大 min_interval"
            )
        if fetched.status == 404:
            raise FetchError(f"{url} 返回 HTTP 404，请检查 base_url")
        payload = fetched.json()
        if not isinstance(payload, dict):
            raise LayoutError(f"{LAYOUT_CHANGED}：微博接口返回的不是对象")
        if str(payload.get("ok")) == "-100":
            raise BlockedError(self._cookie_message("ok = -100，需要登录"))
        return payload

    @staticmethod
    def _containerid(profile: dict[str, Any]) -> str | None:
        data = profile.get("data")
        info = data.get("tabsInfo") if isinstance(data, dict) else None
        tabs = info.get("tabs") if isinstance(info, dict) else None
        for tab in tabs if isinstance(tabs, list) else []:
            if isinstance(tab, dict) and tab.get("tab_type") == "weibo" and tab.get("containerid"):
                return str(tab["containerid"])
        return None

    async def pages(self) -> AsyncIterator[Page]:
        options = self.options
        host = urlsplit(self._base).netloc
        resting = _BACKOFF_UNTIL.get(host, 0.0) - time.monotonic()
        if resting > 0:
            raise BlockedError(f"微博此前限制了访问频率，仍在退避期（还剩 {resting:.0f} 秒），本次不请求")
        headers = self._headers()
        base_params = {"type": "uid", "value": options.uid}
        profile = await self._get(base_params, headers)
        status, message = answer_message(profile)
        if status == "error":
            raise FetchError(
                f"微博接口拒绝了账号 {options.uid} 的主页请求（ok = {profile.get('ok')}，消息「{message}」），"
                f"本次抓取作废；请检查配置 {self.context.where} 中的 uid"
            )
        containerid = self._containerid(profile) or f"107603{options.uid}"
        zone = self.context.zone
        since_id: str | None = None  # the platform's cursor, once an answer has given one
        for number in range(1, options.max_pages + 1):
            if options.rest_every and number > 1 and (number - 1) % options.rest_every == 0:
                await asyncio.sleep(options.rest)
            params: dict[str, Any] = {**base_params, "containerid": containerid}
            if since_id is not None:
                params["since_id"] = since_id
                origin = f"{self._base}/api/container/getIndex?containerid={containerid}&since_id={since_id}"
            else:
                params["page"] = number
                origin = f"{self._base}/api/container/getIndex?containerid={containerid}&page={number}"
            payload = await self._get(params, headers)
            fetched_at = datetime.now(UTC)
            status, message = answer_message(payload)
            if status == "error":
                raise FetchError(
                    f"微博接口拒绝了第{number}页（ok = {payload.get('ok')}，消息「{message}」），本次抓取作废；"
                    f"请检查配置 {self.context.where} 中的 uid，或稍后再试"
                )
            following = _next_since_id(payload)
            ends = status == "empty" or (
                (since_id is not None or following is not None) and (following is None or following == since_id)
            )
            page = Page(url=origin, last=ends or number == options.max_pages)
            if status == "empty":
                yield page  # 这里还没有内容: the end of the listing
                return
            posts = list(iter_posts(payload))
            for index, post in enumerate(posts, 1):
                try:
                    observed = post_observed(post, zone, fetched_at, f"{origin}#{index}")
                except DateParseError:
                    raise LayoutError(
                        f"{LAYOUT_CHANGED}：微博第{number}页第{index}条的时间「{post.created_at}」无法识别"
                    ) from None
                except ValueError:
                    raise LayoutError(f"{LAYOUT_CHANGED}：微博第{number}页第{index}条没有 id") from None
                (page.pinned if post.pinned else page.entries).append(observed)
            yield page
            if not posts or ends:
                return
            since_id = following


def _next_since_id(payload: dict[str, Any]) -> str | None:
    """``cardlistInfo.since_id``: where the next page starts, when the platform pages by cursor."""
    data = payload.get("data")
    info = data.get("cardlistInfo") if isinstance(data, dict) else None
    value = info.get("since_id") if isinstance(info, dict) else None
    text = str(value).strip() if value not in (None, "", 0, "0") else ""
    return text or None
