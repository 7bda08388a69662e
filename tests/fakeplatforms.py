"""A real HTTP server on loopback shaped like the three channels, with switchable fault modes.

``FakePlatforms`` serves, on ``127.0.0.1`` and a free port, in a background thread:

* a government website column: ``/site/xxgk/index.html``, ``index_1.html``, … (TRS-style ``ul.list li``
  entries with ``<a href>`` and ``<span>date</span>``), article pages carrying the ``PubDate`` meta
  tag, and the same articles as RSS 2.0 (``/site/rss.xml``) and Atom (``/site/atom.xml``);
* Weibo's mobile API: ``/api/container/getIndex`` (profile with ``tabsInfo``, then pages of
  ``data.cards`` with pinned posts on page 1 and some posts nested in ``card_group``), paged by
  ``page=N`` or, with ``weibo_paging = "since_id"``, by the ``cardlistInfo.since_id`` cursor as the
  platform does now; post ids encode their post's time as real ids do (``(id >> 22) + 515483463``);
* WeChat's API: ``/cgi-bin/token`` and ``/cgi-bin/freepublish/batchget`` (``wechat_time_at`` says
  where an answer carries the times: on the item as documented, only inside ``content`` as real
  answers do, or only on each ``news_item``);
* anti-bot answers: the ``antibot521`` fault answers HTTP 521 with a cookie-challenge script, as
  加速乐-protected government sites do.

The shapes follow the saved responses in ``tests/data/platforms/``. A test sets the data
(``site_articles``, ``weibo_posts``, ``wechat_pushes`` or the ``add_*`` helpers) and switches faults
with ``fault(mode, target=…, times=…)``. Every request is recorded in ``requests``.

Used by the poll tests and by the daemon tests (``from tests.fakeplatforms import FakePlatforms``, or
the ``fake_platforms`` fixture through ``pytest_plugins = ["tests.fakeplatforms"]``).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import pytest

__all__ = [
    "FAULT_MODES",
    "FakePlatforms",
    "Fault",
    "HostileServer",
    "RecordedRequest",
    "SiteArticle",
    "WechatPush",
    "WeiboPost",
    "fake_platforms",
    "site_list_page",
]

OFFICE_TZ = timezone(timedelta(hours=8))
WEIBO_UID = "1234567890"
WECHAT_APPID = "wx1234567890abcdef"
WECHAT_SECRET = "s3cr3t-wechat-app-secret-value"  # a test value: the tests check it never leaks
WEIBO_COOKIE = "SUB=_2A25test-cookie; SUBP=0033test"

# mode → what the server does while the fault is active
FAULT_MODES = {
    "timeout": "answer only after `delay` seconds (longer than the client's read timeout)",
    "500": "HTTP 500",
    "429": "HTTP 429 with Retry-After: `retry_after`",
    "truncate": "the normal body cut in half (valid HTTP, broken JSON/HTML)",
    "redesign": "website list pages in a new layout (no ul.list)",
    "weibo432": "Weibo HTTP 432 (cookie missing or expired)",
    "weibo-100": 'Weibo JSON {"ok": -100} (login required)',
    "weibo418": "Weibo HTTP 418 (too fast)",
    "wechat42001": "WeChat batchget errcode 42001 (token expired)",
    "wechat-errcode": "WeChat errcode `errcode` (45009, 45011, 48001, …)",
    "antibot521": "HTTP 521 with a JavaScript cookie challenge (加速乐 and similar anti-bot pages)",
}
_TARGET_PREFIX = {
    "site": "/site/",
    "rss": "/site/rss",
    "weibo": "/api/",
    "wechat": "/cgi-bin/",
    "wechat-feed": "/wechat/",
}


@dataclass
class SiteArticle:
    id: int
    title: str
    published: datetime  # aware
    show_date: bool = True  # False: the list shows no date (detail_date reads the article page)

    @property
    def path(self) -> str:
        local = self.published.astimezone(OFFICE_TZ)
        return f"{local:%Y%m}/t{local:%Y%m%d}_{self.id}.html"


@dataclass
class WeiboPost:
    id: str
    text: str
    created_at: str  # as the API shows it: "Sat Nov 28 10:00:00 +0800 2020", "3小时前", …
    repost: bool = False
    pinned: bool = False


def weibo_id_for(moment: datetime, sequence: int = 0) -> str:
    """A Weibo id as the platform issues them: the post's time in the bits above the 22nd."""
    return str(((int(moment.timestamp()) - 515483463) << 22) + sequence % (1 << 22))


@dataclass
class WechatPush:
    article_id: str
    update_time: int
    titles: list[str]
    mid: int = 0

    def news_items(self) -> list[dict[str, Any]]:
        items = []
        for index, title in enumerate(self.titles, 1):
            sn = hashlib.md5(f"{self.article_id}:{index}".encode()).hexdigest()
            items.append(
                {
                    "title": title,
                    "author": "转载" if title.startswith("【转载】") else "园区管委会",
                    "digest": "",
                    "content_source_url": "",
                    "url": f"https://mp.weixin.qq.com/s?__biz=MzA5NzAwMDAwMA==&mid={self.mid}&idx={index}"
                    f"&sn={sn}&chksm=00#rd",
                    "is_deleted": False,
                }
            )
        return items


@dataclass
class Fault:
    mode: str
    target: str | None = None  # site | rss | weibo | wechat | None (every path)
    times: int | None = None  # None: until cleared
    match: str | None = None  # only requests whose path+query contains this text
    retry_after: float = 1.0
    delay: float = 5.0
    errcode: int = 45009
    errmsg: str = "api freq out of limit"  # wechat-errcode: a hostile platform may put anything here

    def applies(self, path_query: str) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.target is not None and not path_query.startswith(_TARGET_PREFIX[self.target]):
            return False
        return self.match is None or self.match in path_query


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()
    status: int = 0


class _Loopback:
    """What every loopback server here shares: a threaded server, its thread, a stop signal, ``with``."""

    _stopping: threading.Event
    _server: ThreadingHTTPServer | None
    _thread: threading.Thread | None

    def start(self) -> Self:
        raise NotImplementedError

    def _serve(self, host: str, handler: type[BaseHTTPRequestHandler], name: str) -> Self:
        self._server = ThreadingHTTPServer((host, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.server_address[1])


@dataclass
class FakePlatforms(_Loopback):
    """The three services on one loopback port. ``url`` is ``http://127.0.0.1:PORT``."""

    site_page_size: int = 5
    weibo_page_size: int = 10
    site_articles: list[SiteArticle] = field(default_factory=list)
    weibo_posts: list[WeiboPost] = field(default_factory=list)
    wechat_pushes: list[WechatPush] = field(default_factory=list)
    weibo_uid: str = WEIBO_UID
    weibo_cookie: str | None = WEIBO_COOKIE  # None: no cookie required
    weibo_tabs: bool = True  # False: the profile answer has no tabsInfo (clients fall back to 107603{uid})
    weibo_paging: str = "page"  # "page": page=N; "since_id": cardlistInfo.since_id cursors, no page numbers
    weibo_profile_error: str | None = None  # the profile answers {"ok": 0, "msg": this}
    weibo_list_error: str | None = None  # post list pages answer {"ok": 0, "msg": this}
    site_spacers: bool = False  # list pages put a spacer <li> after each entry and a pager <li> last
    # A WeChat account's RSS feed (/wechat/feed.xml) as feed services write them: short /s/<code> links.
    wechat_feed: list[tuple[str, str, datetime]] = field(default_factory=list)  # (title, code, pubDate)
    wechat_time_at: str = "item"  # item | content | news_item | none: where batchget answers carry times
    wechat_edit_delay: int = 0  # seconds between an article's publication (create_time) and its update_time
    wechat_appid: str = WECHAT_APPID
    wechat_secret: str = WECHAT_SECRET
    wechat_expires_in: int = 7200
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    tokens_issued: int = 0
    _valid_tokens: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> FakePlatforms:
        platforms = self

        class Handler(_Handler):
            owner = platforms

        return self._serve("127.0.0.1", Handler, "fakeplatforms")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def site_list_url(self) -> str:
        return f"{self.url}/site/xxgk/index.html"

    @property
    def rss_url(self) -> str:
        return f"{self.url}/site/rss.xml"

    @property
    def atom_url(self) -> str:
        return f"{self.url}/site/atom.xml"

    # --- data helpers -------------------------------------------------------------------------------

    def add_site_articles(
        self, count: int, *, start: datetime | None = None, show_date: bool = True, step: timedelta | None = None
    ) -> list[SiteArticle]:
        """``count`` articles, one a day (or ``step``) from ``start`` (default: after the newest one)."""
        gap = step or timedelta(days=1)
        latest = max((a.published for a in self.site_articles), default=None)
        base = start or (latest + gap if latest else datetime(2020, 6, 1, 9, 0, tzinfo=OFFICE_TZ))
        first = max((a.id for a in self.site_articles), default=1000) + 1
        added = [
            SiteArticle(first + i, f"王洼产业园区通知公告第{first + i}号", base + gap * i, show_date)
            for i in range(count)
        ]
        self.site_articles.extend(added)
        return added

    def add_weibo_posts(
        self, count: int, *, start: datetime | None = None, reposts: int = 0, pinned: int = 0
    ) -> list[WeiboPost]:
        """``count`` posts an hour apart; the first ``reposts`` are reposts, the first ``pinned`` pinned."""
        base = start or datetime(2020, 11, 1, 8, 0, tzinfo=OFFICE_TZ)
        added = []
        for i in range(count):
            moment = base + timedelta(hours=i + len(self.weibo_posts))
            number = len(self.weibo_posts) + i + 1
            post_id = weibo_id_for(moment, number)
            added.append(
                WeiboPost(
                    id=post_id,
                    text=f"王洼产业园区动态 {number}",
                    created_at=moment.strftime("%a %b %d %H:%M:%S +0800 %Y"),
                    repost=i < reposts,
                    pinned=i < pinned,
                )
            )
        self.weibo_posts.extend(added)
        return added

    def add_wechat_pushes(self, count: int, *, articles: int = 2, start: datetime | None = None) -> list[WechatPush]:
        base = start or datetime(2020, 11, 1, 18, 0, tzinfo=OFFICE_TZ)
        first = len(self.wechat_pushes) + 1
        added = [
            WechatPush(
                article_id=f"Gb4Zcx{first + i:08d}",
                update_time=int((base + timedelta(days=first + i)).timestamp()),
                titles=[f"园区要闻第{first + i}期之{n}" for n in range(1, articles + 1)],
                mid=2650000000 + first + i,
            )
            for i in range(count)
        ]
        self.wechat_pushes.extend(added)
        return added

    # --- faults -------------------------------------------------------------------------------------

    def fault(self, mode: str, *, target: str | None = None, times: int | None = None, **options: Any) -> Fault:
        """Switch a fault on (``FAULT_MODES``); ``times`` answers, or until ``clear_faults()``."""
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; known: {', '.join(FAULT_MODES)}")
        added = Fault(mode, target=target, times=times, **options)
        with self._lock:
            self.faults.append(added)
        return added

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def requests_to(self, prefix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    def _take_fault(self, path_query: str, modes: set[str] | None = None) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (modes is None or fault.mode in modes) and fault.applies(path_query):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    # --- responses ----------------------------------------------------------------------------------

    def _site_list(self, page: int, redesigned: bool) -> str | None:
        ordered = sorted(self.site_articles, key=lambda a: a.published, reverse=True)
        pages = max(1, -(-len(ordered) // self.site_page_size))
        if page >= pages:
            return None
        chunk = ordered[page * self.site_page_size : (page + 1) * self.site_page_size]
        if redesigned:
            entries = "\n".join(
                f'<div class="news-card"><h3><a href="./{a.path}">{a.title}</a></h3>'
                f'<p class="meta">发布于 {a.published.astimezone(OFFICE_TZ):%Y年%m月%d日}</p></div>'
                for a in chunk
            )
            body = f'<section class="news-grid">{entries}</section>'
        else:
            spacer = '\n    <li class="line">&nbsp;</li>' if self.site_spacers else ""
            entries = "\n".join(
                f'    <li><a href="./{a.path}" title="{a.title}">{a.title}</a>'
                + (f"<span>{a.published.astimezone(OFFICE_TZ):%Y-%m-%d}</span>" if a.show_date else "")
                + "</li>"
                + spacer
                for a in chunk
            )
            if self.site_spacers:
                links = "".join(f'<a href="index_{n}.html">{n + 1}</a>' for n in range(1, pages))
                entries += f'\n    <li><div class="pager">共{pages}页 <span>1</span>{links}</div></li>'
            body = f'<ul class="list">\n{entries}\n  </ul>'
        return (
            '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
            "<title>政府信息公开_彭阳县王洼产业园区管理委员会</title>\n"
            '<meta name="ColumnName" content="政府信息公开">\n</head>\n<body>\n<div class="main">\n  '
            f'{body}\n  <div class="page"><script>createPageHTML({pages}, {page}, "index", "html");</script></div>\n'
            "</div>\n</body>\n</html>\n"
        )

    def _site_article(self, path: str) -> str | None:
        for article in self.site_articles:
            if path.endswith("/" + article.path):
                local = article.published.astimezone(OFFICE_TZ)
                return (
                    '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
                    f'<meta name="ArticleTitle" content="{article.title}">\n'
                    f'<meta name="PubDate" content="{local:%Y-%m-%d %H:%M}">\n'
                    '<meta name="ColumnName" content="通知公告">\n'
                    f"<title>{article.title}</title>\n</head>\n<body><h1>{article.title}</h1></body>\n</html>\n"
                )
        return None

    def _feed(self, atom: bool) -> str:
        ordered = sorted(self.site_articles, key=lambda a: a.published, reverse=True)
        base = f"{self.url}/site/xxgk/"
        if atom:
            entries = "".join(
                f'<entry><title>{a.title}</title><link href="{base}{a.path}"/><id>urn:example:wangwa:{a.id}</id>'
                f"<published>{a.published.isoformat()}</published><updated>{a.published.isoformat()}</updated></entry>\n"
                for a in ordered
            )
            return (
                '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n'
                "<title>政策文件</title><id>urn:example:wangwa:zcwj</id>"
                f"<updated>2020-12-28T10:00:00+08:00</updated>\n{entries}</feed>\n"
            )
        items = "".join(
            f"<item><title>{a.title}</title><link>{base}{a.path}</link>"
            f'<guid isPermaLink="true">{base}{a.path}</guid><pubDate>{format_datetime(a.published)}</pubDate></item>\n'
            for a in ordered
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>\n<title>通知公告</title>'
            f"<link>{base}</link><description>通知公告</description>\n{items}</channel></rss>\n"
        )

    def _wechat_feed_xml(self) -> str:
        """RSS 2.0 of an account's articles: no guid, short links, one pubDate per push."""
        ordered = sorted(self.wechat_feed, key=lambda entry: entry[2], reverse=True)
        items = "".join(
            f"<item><title>{title}</title><link>https://mp.weixin.qq.com/s/{code}</link><description></description>"
            f"<pubDate>{format_datetime(moment)}</pubDate></item>"
            for title, code, moment in ordered
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>王洼园区发布 | feeds</title>'
            f"<link>http://feeds.example/</link><description>园区公众号</description>{items}</channel></rss>"
        )

    def _mblog(self, post: WeiboPost) -> dict[str, Any]:
        mblog: dict[str, Any] = {
            "visible": {"type": 0, "list_id": 0},
            "created_at": post.created_at,
            "id": post.id,
            "idstr": post.id,
            "mid": post.id,
            "bid": "Jn" + post.id[-7:],
            "text": post.text,
            "source": "微博 weibo.com",
            "user": {"id": int(self.weibo_uid), "screen_name": "彭阳县王洼产业园区管委会"},
            "reposts_count": 0,
            "comments_count": 0,
            "attitudes_count": 0,
            "isLongText": False,
        }
        if post.pinned:
            mblog["isTop"] = 1
            mblog["mblogtype"] = 2
        if post.repost:
            mblog["text"] = "转发微博 " + post.text
            mblog["retweeted_status"] = {
                "id": "49" + post.id[2:],
                "created_at": post.created_at,
                "text": "宁夏发布：原微博",
                "user": None,
            }
        return mblog

    def _weibo(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if query.get("type") != "uid" or query.get("value") != self.weibo_uid:
            return 200, {"ok": 0, "msg": "用户不存在"}
        containerid = query.get("containerid")
        if not containerid:
            data: dict[str, Any] = {
                "userInfo": {
                    "id": int(self.weibo_uid),
                    "screen_name": "彭阳县王洼产业园区管委会",
                    "statuses_count": len(self.weibo_posts),
                },
            }
            if self.weibo_tabs:
                data["tabsInfo"] = {
                    "selectedTab": 1,
                    "tabs": [
                        {
                            "id": 1,
                            "tabKey": "profile",
                            "title": "主页",
                            "tab_type": "profile",
                            "containerid": "230283" + self.weibo_uid,
                        },
                        {
                            "id": 2,
                            "tabKey": "weibo",
                            "title": "微博",
                            "tab_type": "weibo",
                            "containerid": "107603" + self.weibo_uid,
                        },
                    ],
                }
            if self.weibo_profile_error is not None:
                return 200, {"ok": 0, "msg": self.weibo_profile_error}
            return 200, {"ok": 1, "data": data}
        if containerid != "107603" + self.weibo_uid:
            return 200, {"ok": 0, "msg": "这里还没有内容", "data": {"cards": []}}
        pinned = [p for p in self.weibo_posts if p.pinned]
        ordered = [p for p in self.weibo_posts if not p.pinned][::-1]  # newest first
        since_id = query.get("since_id")
        if self.weibo_paging == "since_id":
            # The cursor names the first post of the page; a page number is ignored, as the platform does.
            start = next((i for i, p in enumerate(ordered) if p.id == since_id), len(ordered)) if since_id else 0
            page = 2 if since_id else 1  # only "first page or not" matters: pinned posts top the first
        else:
            page = int(query.get("page") or 1)
            start = (page - 1) * self.weibo_page_size
        chunk = ordered[start : start + self.weibo_page_size]
        shown = (pinned if page == 1 else []) + chunk
        if self.weibo_list_error is not None:
            return 200, {"ok": 0, "msg": self.weibo_list_error}
        if not chunk:
            return 200, {"ok": 0, "msg": "这里还没有内容", "data": {"cards": []}}
        cards: list[dict[str, Any]] = []
        for index, post in enumerate(shown):
            card = {"card_type": 9, "itemid": f"{containerid}_-_{post.id}", "mblog": self._mblog(post)}
            # Every fourth post nested in a card_group, as the real lists sometimes do.
            cards.append({"card_type": 11, "card_group": [card]} if index % 4 == 3 else card)
        cards.append({"card_type": 58, "desc": "以下为较早的微博"})
        info: dict[str, Any] = {"containerid": containerid, "v_p": 42, "show_style": 1, "total": len(ordered)}
        if self.weibo_paging == "since_id":
            following = ordered[start + self.weibo_page_size : start + self.weibo_page_size + 1]
            if following:
                info["since_id"] = int(following[0].id)
        else:
            info["page"] = page
        return 200, {"ok": 1, "data": {"cardlistInfo": info, "cards": cards}}

    def _wechat_token(self, query: dict[str, str]) -> dict[str, Any]:
        if query.get("grant_type") != "client_credential":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        if query.get("appid") != self.wechat_appid:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if query.get("secret") != self.wechat_secret:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        with self._lock:
            self.tokens_issued += 1
            token = f"83_TOKEN{self.tokens_issued:04d}"
            self._valid_tokens.add(token)
        return {"access_token": token, "expires_in": self.wechat_expires_in}

    def _wechat_batchget(self, query: dict[str, str], body: bytes, path_query: str) -> dict[str, Any]:
        token = query.get("access_token", "")
        if token not in self._valid_tokens:
            return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
        if self._take_fault(path_query, {"wechat42001"}):
            with self._lock:
                self._valid_tokens.discard(token)
            return {"errcode": 42001, "errmsg": "access_token expired"}
        fault = self._take_fault(path_query, {"wechat-errcode"})
        if fault:
            return {"errcode": fault.errcode, "errmsg": fault.errmsg}
        try:
            request = json.loads(body or b"{}")
            offset, count = int(request.get("offset", 0)), int(request.get("count", 20))
        except (ValueError, TypeError, AttributeError):
            return {"errcode": 44002, "errmsg": "empty post data"}
        if not 1 <= count <= 20:
            return {"errcode": 40007, "errmsg": "invalid count"}
        ordered = sorted(self.wechat_pushes, key=lambda p: p.update_time, reverse=True)
        chunk = ordered[offset : offset + count]
        return {
            "total_count": len(ordered),
            "item_count": len(chunk),
            "item": [self._wechat_item(p) for p in chunk],
        }

    def _wechat_item(self, push: WechatPush) -> dict[str, Any]:
        """One batchget item; ``push.update_time`` is its publication, updates come ``wechat_edit_delay`` later."""
        published, updated = push.update_time, push.update_time + self.wechat_edit_delay
        news = push.news_items()
        item: dict[str, Any] = {"article_id": push.article_id, "content": {"news_item": news}}
        if self.wechat_time_at == "item":
            item["content"].update(create_time=published, update_time=updated)
            item["update_time"] = updated
        elif self.wechat_time_at == "content":  # what real answers carry
            item["content"].update(create_time=published, update_time=updated)
        elif self.wechat_time_at == "news_item":
            for article in news:
                article.update(create_time=published, update_time=updated)
        return item


class _Handler(BaseHTTPRequestHandler):
    owner: FakePlatforms
    protocol_version = "HTTP/1.1"
    server_version = "FakePlatforms/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(self.rfile.read(length) if length else b"")

    def _handle(self, body: bytes) -> None:
        owner = self.owner
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path_query = self.path
        record = RecordedRequest(
            self.command, parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
        )
        owner.requests.append(record)
        fault = owner._take_fault(
            path_query, {"timeout", "500", "429", "weibo432", "weibo-100", "weibo418", "antibot521"}
        )
        if fault is not None:
            if fault.mode == "timeout":
                owner._stopping.wait(fault.delay)
                fault = None  # then answer normally: the client has long given up
            elif fault.mode == "500":
                return self._send(record, 500, b"<html><body>500 Internal Server Error</body></html>", "text/html")
            elif fault.mode == "429":
                return self._send(
                    record,
                    429,
                    b'{"error": "too many requests"}',
                    "application/json",
                    {"Retry-After": f"{fault.retry_after:g}"},
                )
            elif fault.mode == "weibo432":
                return self._send(record, 432, b"", "text/html")
            elif fault.mode == "weibo418":
                return self._send(record, 418, b"", "text/html")
            elif fault.mode == "antibot521":
                challenge = (
                    b"<html><script>document.cookie=('_'+'_jsl_clearance_s=')+(1+1)+'|-1|'+"
                    b"(function(){return 'fake'})()+';max-age=3600;path=/';"
                    b"location.href=location.pathname+location.search</script></html>"
                )
                return self._send(record, 521, challenge, "text/html", {"Set-Cookie": "__jsluid_s=0fake; path=/"})
            elif fault.mode == "weibo-100":
                return self._json(record, 200, {"ok": -100, "url": "https://passport.weibo.cn/signin/welcome"})
        if parts.path.startswith("/api/container/getIndex"):
            if owner.weibo_cookie is not None and self.headers.get("Cookie") != owner.weibo_cookie:
                return self._send(record, 432, b"", "text/html")
            status, payload = owner._weibo(query)
            return self._json(record, status, payload)
        if parts.path == "/cgi-bin/token":
            return self._json(record, 200, owner._wechat_token(query))
        if parts.path == "/cgi-bin/freepublish/batchget" and self.command == "POST":
            return self._json(record, 200, owner._wechat_batchget(query, body, path_query))
        if parts.path == "/wechat/feed.xml":
            return self._page(record, owner._wechat_feed_xml(), "application/xml")
        if parts.path in ("/site/rss.xml", "/site/atom.xml"):
            return self._page(record, owner._feed(atom=parts.path.endswith("atom.xml")), "application/xml")
        if parts.path.startswith("/site/xxgk/"):
            name = parts.path.rsplit("/", 1)[-1]
            page: int | None = None
            if name == "index.html":
                page = 0
            elif name.startswith("index_") and name.endswith(".html") and name[6:-5].isdigit():
                page = int(name[6:-5])
            if page is not None:
                redesigned = owner._take_fault(path_query, {"redesign"}) is not None
                html = owner._site_list(page, redesigned)
                if html is not None:
                    return self._page(record, html, "text/html; charset=utf-8")
            else:
                article = owner._site_article(parts.path)
                if article is not None:
                    return self._page(record, article, "text/html; charset=utf-8")
        return self._send(record, 404, b"<html><body>404 Not Found</body></html>", "text/html")

    def _page(self, record: RecordedRequest, text: str, content_type: str) -> None:
        """Pages and feeds answer conditional requests (ETag and Last-Modified) with 304."""
        data = text.encode("utf-8")
        etag = '"' + hashlib.sha1(data).hexdigest()[:16] + '"'
        modified = format_datetime(datetime(2020, 12, 28, 2, 0, tzinfo=UTC), usegmt=True)
        headers = {"ETag": etag, "Last-Modified": modified}
        if self.headers.get("If-None-Match") == etag:
            return self._send(record, 304, b"", content_type, headers)
        return self._send(record, 200, data, content_type, headers)

    def _json(self, record: RecordedRequest, status: int, payload: Any) -> None:
        self._send(record, status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), "application/json")

    def _send(
        self,
        record: RecordedRequest,
        status: int,
        data: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        if status == 200 and self.owner._take_fault(self.path, {"truncate"}) is not None:
            data = data[: len(data) // 2]
        record.status = status
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if status != 304:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)


@pytest.fixture
def fake_platforms() -> Iterator[FakePlatforms]:
    """A started ``FakePlatforms`` with no data; stopped after the test."""
    server = FakePlatforms().start()
    try:
        yield server
    finally:
        server.stop()


# --- hostile servers -------------------------------------------------------------------------------------


@dataclass
class _Behaviour:
    kind: str  # page | redirect | drip | drip-headers | gzip | silent
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    location: str = ""
    interval: float = 0.1  # drip: seconds between two bytes


@dataclass
class HostileServer(_Loopback):
    """A loopback HTTP server that does what a test scripts, path by path: serve a page, redirect
    anywhere, drip a byte every ``interval`` seconds, or accept the request and never answer.

    ``host`` may be any address of 127.0.0.0/8 (on Linux the whole block answers), so that a test has
    a second *host* without a network; ``0.0.0.0`` listens on every address of the machine.
    Unscripted paths answer 404. Every request's path is recorded in ``hits``.
    """

    host: str = "127.0.0.1"
    routes: dict[str, _Behaviour] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> HostileServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                owner._answer(self)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                owner._answer(self)

        return self._serve(self.host, Handler, "hostile")

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    # --- scripting ---------------------------------------------------------------------------------------

    def page(self, path: str, body: str | bytes, content_type: str = "text/html; charset=utf-8") -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = _Behaviour("page", body=data, content_type=content_type)

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.routes[path] = _Behaviour("redirect", status=status, location=location)

    def drip(self, path: str, interval: float = 0.1) -> None:
        """Headers at once, then one byte of an endless page every ``interval`` seconds."""
        self.routes[path] = _Behaviour("drip", interval=interval)

    def drip_headers(self, path: str, interval: float = 0.1) -> None:
        """A status line, then a header that never ends, one byte every ``interval`` seconds."""
        self.routes[path] = _Behaviour("drip-headers", interval=interval)

    def gzip_bomb(self, path: str, size: int) -> None:
        """A page of ``size`` bytes sent gzip-compressed (a thousandth of that on the wire)."""
        import gzip

        data = gzip.compress(b"<html>" + b" " * size, compresslevel=9)
        self.routes[path] = _Behaviour("gzip", body=data)

    def silent(self, path: str) -> None:
        """Read the request, never answer (until the server stops)."""
        self.routes[path] = _Behaviour("silent")

    # --- serving -----------------------------------------------------------------------------------------

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = urlsplit(handler.path).path
        self.hits.append(path)
        behaviour = self.routes.get(path, _Behaviour("page", status=404, body=b"<html><body>404</body></html>"))
        try:
            if behaviour.kind == "silent":
                self._stopping.wait(120)
                return
            if behaviour.kind == "redirect":
                handler.send_response(behaviour.status)
                handler.send_header("Location", behaviour.location)
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            if behaviour.kind == "drip-headers":
                handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                handler.wfile.flush()
                while not self._stopping.wait(behaviour.interval):
                    handler.wfile.write(b"a")
                    handler.wfile.flush()
                return
            if behaviour.kind == "gzip":
                handler.send_response(200)
                handler.send_header("Content-Type", "text/html; charset=utf-8")
                handler.send_header("Content-Encoding", "gzip")
                handler.send_header("Content-Length", str(len(behaviour.body)))
                handler.end_headers()
                handler.wfile.write(behaviour.body)
                return
            if behaviour.kind == "drip":
                handler.send_response(200)
                handler.send_header("Content-Type", "text/html; charset=utf-8")
                handler.send_header("Content-Length", str(10**6))
                handler.end_headers()
                handler.wfile.flush()
                while not self._stopping.wait(behaviour.interval):
                    handler.wfile.write(b"<")
                    handler.wfile.flush()
                return
            handler.send_response(behaviour.status)
            handler.send_header("Content-Type", behaviour.content_type)
            handler.send_header("Content-Length", str(len(behaviour.body)))
            handler.end_headers()
            handler.wfile.write(behaviour.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: what a deadline is for


def site_list_page(entries: list[tuple[str, str, str]]) -> str:
    """A TRS-style column page (``ul.list li``) with the given (href, title, date) entries."""
    items = "".join(f'<li><a href="{href}">{title}</a><span>{date}</span></li>' for href, title, date in entries)
    return f'<html><head><meta charset="utf-8"></head><body><ul class="list">{items}</ul></body></html>'
