"""The one HTTP layer every poll source goes through.

``HttpClient`` sends ``httpx`` requests through one transport (``sources/wire.py``: kept-alive HTTP/1.1
connections per host; a test may pass another, such as ``httpx.MockTransport``) and adds what polite,
robust polling needs:

* one user agent, connect and read timeouts;
* retries with exponential backoff and jitter, for idempotent requests only, and only on transport
  faults (timeouts, refused or reset connections), 5xx answers and rate-limit answers (429);
  ``Retry-After`` (seconds or an HTTP date) is honoured up to ``max_retry_after``;
* a per-host concurrency limit and a minimum interval between two requests to one host (the
  interval is the channel's ``min_interval``: the caller passes it with each request);
* conditional requests (``If-None-Match`` / ``If-Modified-Since``) for pages and feeds: a ``304``
  hands back the body cached from the previous answer, so parsers see the same page;
* a response-size cap, enforced while streaming;
* redirects followed by hand, each one only after ``hosts.refusal()`` allowed its target (another host,
  a link-local or loopback address or a non-HTTP scheme ends the request with a ``FetchError`` naming
  the redirect), at most ``max_redirects`` of them.

Sources receive the client; they never build one. Every failure is mapped to ``FetchError`` with a
Chinese message. URLs in messages and logs go through ``redact()``: query values of credentials
(``secret``, ``access_token``, …) and every value passed to ``register_secret()`` become ``***``,
because WeChat's token request carries the app secret in its query string.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import logging
import random
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from channelwatch import __version__
from channelwatch.errors import BlockedError, FetchError
from channelwatch.redaction import FILTER, redact, register_secret
from channelwatch.sources.hosts import HostPolicy, host_of, refusal

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ConditionalCache",
    "Fetched",
    "HttpClient",
    "HttpSettings",
    "RequestSlots",
    "redact",
    "register_secret",
    "request_slots",
]

log = logging.getLogger(__name__)

USER_AGENT = f"channelwatch/{__version__} (government disclosure statistics; +https://pypi.org/project/channelwatch/)"
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# httpx logs every request URL at INFO; with --verbose that would print the WeChat secret.
for _name in ("httpx", "httpcore", __name__):
    logging.getLogger(_name).addFilter(FILTER)


@dataclass(frozen=True)
class HttpSettings:
    """How the client behaves; the defaults suit real sites, tests shorten the times."""

    user_agent: str = USER_AGENT
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retries: int = 3  # further attempts after the first
    backoff: float = 1.0  # first retry waits about this long, then 2x, 4x, … (with jitter)
    backoff_max: float = 60.0
    max_retry_after: float = 300.0  # a longer Retry-After ends the run instead of stalling it
    per_host: int = 4  # concurrent requests to one host
    max_bytes: int = 10 * 1024 * 1024
    cache_bytes: int = 64 * 1024 * 1024  # bodies kept for conditional requests
    max_redirects: int = 10


@dataclass(frozen=True)
class Fetched:
    """One answer: status, headers, the whole body (at most ``max_bytes``)."""

    url: str
    status: int
    headers: dict[str, str]
    content: bytes
    not_modified: bool = False  # 304: ``content`` is the body cached from the previous answer

    def text(self) -> str:
        """The body decoded by its declared charset, else a ``<meta charset>``, else UTF-8/GB18030."""
        charset = _charset(self.headers.get("content-type", ""))
        if charset is None:
            match = re.search(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_-]+)", self.content[:4096], re.IGNORECASE)
            charset = match.group(1).decode("ascii") if match else None
        for candidate in (charset, "utf-8", "gb18030"):
            if not candidate:
                continue
            try:
                return self.content.decode(_CHARSET_ALIASES.get(candidate.lower(), candidate))
            except (LookupError, UnicodeDecodeError):
                continue
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; a truncated or non-JSON body is a ``FetchError``."""
        import json

        try:
            return json.loads(self.content)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested 100,000 deep
            raise FetchError(
                f"{redact(self.url)} 返回的数据不完整或不是 JSON（{len(self.content)} 字节），本次抓取作废"
            ) from None


# Chinese sites declare gb2312/gbk and then use characters only gb18030 has.
_CHARSET_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030"}


def _charset(content_type: str) -> str | None:
    match = re.search(r"charset=[\"']?([A-Za-z0-9_-]+)", content_type, re.IGNORECASE)
    return match.group(1) if match else None


@dataclass
class _CacheEntry:
    etag: str | None
    last_modified: str | None
    content: bytes
    headers: dict[str, str]


class ConditionalCache:
    """Validators and bodies of pages already fetched, least recently used dropped beyond a byte budget.

    Kept by the caller across polls (the daemon keeps one per store for its lifetime); a process
    that polls once gains nothing from it and loses nothing.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _CacheEntry] = OrderedDict()
        self._bytes = 0

    def get(self, url: str) -> _CacheEntry | None:
        entry = self._entries.get(url)
        if entry is not None:
            self._entries.move_to_end(url)
        return entry

    def put(self, url: str, entry: _CacheEntry) -> None:
        old = self._entries.pop(url, None)
        if old is not None:
            self._bytes -= len(old.content)
        if len(entry.content) > self.max_bytes:
            return
        self._entries[url] = entry
        self._bytes += len(entry.content)
        while self._bytes > self.max_bytes and self._entries:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped.content)

    def __len__(self) -> int:
        return len(self._entries)


class RequestSlots:
    """A poll's requests in flight, at most ``limit`` at once, and the time one channel waited for a place.

    A poll's ``concurrency`` counts requests on the wire, not channels: a channel that is parsing its page
    or waiting for the store thread holds no place, so the next channel's request goes out meanwhile; its
    connection is opened while it queues (``PooledTransport.preconnect``), so that a place is held for the
    exchange alone. (A place held for a channel's whole walk, handshake and parsing included, made every
    round of requests wait for the last round's answers to be processed: a 1,000-channel poll took 0.85 s
    instead of 0.72 s, scripts/bench_poll.py.) One connection per channel under way may so be open, besides
    the idle ones kept per host. One object per channel, sharing the poll's semaphore; ``queued`` lets the
    channel's deadline leave out its queueing.
    """

    __slots__ = ("_asked_at", "_asking", "semaphore", "waited")

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self.semaphore = semaphore
        self.waited = 0.0  # seconds of waits that ended
        self._asking = 0  # waits going on (a source may send a channel's requests at once)
        self._asked_at = 0.0  # the sum of their start times

    def queued(self) -> float:
        """Seconds the channel's requests have spent waiting for places, waits still going on included."""
        return self.waited + self._asking * time.monotonic() - self._asked_at

    @contextlib.asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        """A place among the poll's requests in flight, held until the block ends; the wait for it is noted."""
        asked = time.monotonic()
        self._asking += 1
        self._asked_at += asked
        try:
            await self.semaphore.acquire()
        finally:
            self._asking -= 1
            self._asked_at -= asked
            self.waited += time.monotonic() - asked
        try:
            yield
        finally:
            self.semaphore.release()


# Set by a poll for each channel's walk (the task's context): HttpClient.request then takes a place for every
# request. The HTTP client is shared by every office of a county poll, and each office has its own limit.
request_slots: contextvars.ContextVar[RequestSlots | None] = contextvars.ContextVar("request_slots", default=None)


@dataclass
class _Host:
    """Per-host state: a concurrency limit, the earliest time of the next request, the host's cookies
    (a cookie one site sets is never sent to another, whatever ``Domain`` it names)."""

    semaphore: asyncio.Semaphore
    # Made at the host's first Set-Cookie: an empty jar costs a thousand-channel poll more than its requests' URLs.
    cookies: httpx.Cookies | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_at: float = 0.0


class HttpClient:
    """The shared client. Use ``async with HttpClient(settings) as client:`` and ``await client.request(…)``."""

    def __init__(
        self,
        settings: HttpSettings | None = None,
        *,
        cache: ConditionalCache | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings or HttpSettings()
        self.cache = cache if cache is not None else ConditionalCache(self.settings.cache_bytes)
        self._hosts: dict[str, _Host] = {}
        self._given_transport = transport
        self._transport: httpx.AsyncBaseTransport | None = None
        self._headers: httpx.Headers | None = None
        self._timeouts: dict[str, float | None] = {}
        self.requests_sent = 0

    def _wire(self) -> httpx.AsyncBaseTransport:
        """The transport, built on first use: one for every host, so that nothing is built per host."""
        if self._transport is None:
            import httpx
            from httpx._decoders import SUPPORTED_DECODERS  # what httpx.AsyncClient offers to decode

            from channelwatch.sources.wire import PooledTransport

            s = self.settings
            self._headers = httpx.Headers(
                {
                    "Accept": "*/*",
                    "Accept-Encoding": ", ".join(k for k in SUPPORTED_DECODERS if k != "identity"),
                    "Connection": "keep-alive",
                    "User-Agent": s.user_agent,
                }
            )
            self._timeouts = httpx.Timeout(s.read_timeout, connect=s.connect_timeout).as_dict()
            # One for every host; it loads the CA certificates on its first https connection only.
            self._transport = self._given_transport or PooledTransport(keep=s.per_host)
        return self._transport

    def _build(
        self,
        host: _Host,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        headers: Any = None,
        json: Any = None,
        content: bytes | None = None,
    ) -> httpx.Request:
        """A request as ``httpx.AsyncClient.build_request`` makes one: default headers, the host's cookies."""
        import httpx

        self._wire()
        merged = httpx.Headers(self._headers)
        if headers:
            merged.update(headers)
        request = httpx.Request(
            method,
            url,
            params=params,
            headers=merged,
            json=json,
            content=content,
            extensions={"timeout": self._timeouts},
        )
        if host.cookies:
            host.cookies.set_cookie_header(request)
        return request

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._hosts = {}
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()

    def _host(self, url: str) -> _Host:
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc.lower()}"
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(asyncio.Semaphore(self.settings.per_host))
        return host

    async def _pace(self, host: _Host, interval: float) -> None:
        """Wait until ``interval`` has passed since the previous request to this host started."""
        async with host.lock:
            now = time.monotonic()
            wait = host.next_at - now
            host.next_at = max(now, host.next_at) + interval
        if wait > 0:
            await asyncio.sleep(wait)

    async def request(
        self,
        method: str,
        url: str,
        *,
        min_interval: float = 0.0,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        conditional: bool = False,
        idempotent: bool | None = None,
        accept_statuses: frozenset[int] = frozenset(),
        policy: HostPolicy | None = None,
    ) -> Fetched:
        """One request with the layer's retries, pacing and caps.

        Answers with 2xx, 304 (when ``conditional``), 404 and any status in ``accept_statuses`` are
        returned; other 4xx and exhausted retries raise ``FetchError``. ``idempotent`` marks a
        read-only POST (WeChat's batchget) as safe to retry. ``policy`` names the hosts the request
        and its redirects may reach (default: the request's own host only).
        """
        import httpx

        s = self.settings
        method = method.upper()
        may_retry = idempotent if idempotent is not None else method in IDEMPOTENT
        checked = policy is None
        if policy is None:
            policy = HostPolicy.of([url])
        elif (reason := refusal(url, policy)) is not None:
            raise FetchError(f"不访问 {redact(url)[:300]}：{reason}{_allow_hint(reason)}")
        host = self._host(url)
        try:
            request = self._build(host, method, url, params=params, headers=headers, json=json)
        except (httpx.InvalidURL, ValueError, TypeError):
            if checked:
                raise
            raise FetchError(f"不访问 {redact(url)[:300]}：地址无法解析") from None
        # The request's URL is httpx's reading of ``url``: the second opinion needs no parse of its own.
        if not checked and (reason := self._second_opinion(url, policy, request.url)) is not None:
            raise FetchError(f"不访问 {redact(url)[:300]}：{reason}{_allow_hint(reason)}")
        full_url = str(request.url)
        redirects = 0
        cached = self.cache.get(full_url) if conditional and method == "GET" else None
        if cached is not None:
            if cached.etag:
                request.headers["If-None-Match"] = cached.etag
            if cached.last_modified:
                request.headers["If-Modified-Since"] = cached.last_modified
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._turn(host, request, min_interval):
                    self.requests_sent += 1
                    status, response_headers, content = await self._send(host, request)
            except FetchError:
                raise
            except httpx.TimeoutException as exc:
                problem = f"请求 {redact(full_url)} 超时（{type(exc).__name__}）"
                retry_after = None
                status = 0
            except httpx.TransportError as exc:
                problem = f"无法连接 {redact(full_url)}：{redact(str(exc)) or type(exc).__name__}"
                retry_after = None
                status = 0
            if status in REDIRECT_STATUSES and response_headers.get("location"):
                redirects += 1
                attempt -= 1  # a redirect is not a failed attempt
                request, host = self._redirected(request, status, response_headers["location"], policy, redirects)
                cached = None  # validators belong to the first URL's answer, not to the target's
                continue
            if status:
                if status == 304 and cached is not None:
                    return Fetched(full_url, 200, cached.headers, cached.content, not_modified=True)
                if 200 <= status < 300 or status == 404 or status in accept_statuses:
                    if status == 200 and conditional and method == "GET":
                        etag, modified = response_headers.get("etag"), response_headers.get("last-modified")
                        if etag or modified:
                            self.cache.put(full_url, _CacheEntry(etag, modified, content, response_headers))
                    return Fetched(full_url, status, response_headers, content)
                if _browser_check(status, content):
                    raise BlockedError(
                        f"{redact(full_url)} 返回 HTTP {status}：网站启用了反爬虫的浏览器验证（加速乐等），"
                        "要求先在浏览器中运行 "
                        "JavaScript，程序无法自动通过，也不应绕过。请联系网站运营方：提供该栏目的 RSS 订阅或导出文件，"
                        "或把本服务器的 IP 加入白名单；在此之前可从网站后台导出发布记录，用 channelwatch import 导入"
                    )
                if status not in RETRY_STATUSES:
                    raise FetchError(f"{redact(full_url)} 返回 HTTP {status}")
                problem = f"{redact(full_url)} 返回 HTTP {status}"
                retry_after = _retry_after(response_headers.get("retry-after"))
            if not may_retry or attempt > s.retries:
                raise FetchError(f"{problem}（已尝试 {attempt} 次）")
            delay = min(s.backoff_max, s.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            if retry_after is not None:
                if retry_after > s.max_retry_after:
                    raise FetchError(f"{problem}，服务器要求 {retry_after:.0f} 秒后再试，超过上限，本次抓取停止")
                delay = max(delay, retry_after)
            log.info("%s; retry %d/%d in %.2fs", redact(problem), attempt, s.retries, delay)
            await asyncio.sleep(delay)

    def _redirected(
        self, request: httpx.Request, status: int, location: str, policy: HostPolicy, count: int
    ) -> tuple[httpx.Request, _Host]:
        """The request that follows a redirect, or a ``FetchError`` naming it when it may not be followed."""
        from urllib.parse import urljoin

        import httpx

        shown = redact(str(request.url))
        try:
            target = urljoin(str(request.url), location.strip())
        except ValueError:
            target = location
        reason = refusal(target, policy)
        if reason is None:
            reason = self._second_opinion(target, policy)
        if reason is not None:
            hint = "。如该主机确属本渠道，请在 [channels.poll] 的 allow_hosts 中列出" if "allow_hosts" in reason else ""
            raise FetchError(f"{shown} 重定向（HTTP {status}）到 {redact(target)[:300]}，未跟随：{reason}{hint}")
        if count > self.settings.max_redirects:
            raise FetchError(f"{shown} 重定向超过 {self.settings.max_redirects} 次，未再跟随（{redact(target)}）")
        method, content = request.method, request.content
        dropped = {"host", "content-length", "if-none-match", "if-modified-since"}
        if status == 303 or (status in (301, 302) and method == "POST"):
            method, content = "GET", b""  # as browsers do: the form is not sent again
            dropped.add("content-type")
        if host_of(target) != host_of(str(request.url)):
            dropped |= {"cookie", "authorization"}  # credentials stay with the host they were given for
        headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
        host = self._host(target)
        try:
            return self._build(host, method, target, headers=headers, content=content or None), host
        except (httpx.InvalidURL, ValueError):
            raise FetchError(f"{shown} 重定向（HTTP {status}）到无效的地址 {redact(target)[:300]}，未跟随") from None

    @staticmethod
    def _second_opinion(url: str, policy: HostPolicy, parsed: httpx.URL | None = None) -> str | None:
        """``refusal`` of the URL as httpx, which connects, reads it: two URL parsers that disagree about
        the host (``http://a\\@b/``) are the classic way around a check like this. ``parsed``: httpx's
        reading of ``url`` when the caller has it already."""
        import httpx

        if parsed is None:
            try:
                parsed = httpx.URL(url)
            except (httpx.InvalidURL, ValueError, TypeError):
                return "地址无法解析"
        host = parsed.raw_host.decode("ascii", "replace").strip("[]").rstrip(".").lower()
        if host != host_of(url):
            return f"地址中的主机有歧义（{host} 或 {host_of(url)}）"
        return refusal(str(parsed), policy)

    @contextlib.asynccontextmanager
    async def _turn(self, host: _Host, request: httpx.Request, min_interval: float) -> AsyncIterator[None]:
        """The request's turn to be sent: the host's limit and ``min_interval``, and inside a poll its place.

        Inside a poll (the caller's context names ``request_slots``) the connection is opened first, within the
        host's limit (``PooledTransport.preconnect``), then a place among the poll's requests in flight is waited
        for, and only then the host's limit and pacing are taken, so that the interval runs from when requests
        really leave. Places before the host's limit, always: whoever holds a host's turn holds a place already.
        """
        slots = request_slots.get()
        if slots is None:
            async with host.semaphore:
                await self._pace(host, min_interval)
                yield
            return
        wire = self._wire()
        if hasattr(wire, "preconnect"):  # connected while queueing: the place is held for the exchange only
            async with host.semaphore:
                await wire.preconnect(request)
        async with slots.place(), host.semaphore:
            await self._pace(host, min_interval)
            yield

    async def _send(self, host: _Host, request: httpx.Request) -> tuple[int, dict[str, str], bytes]:
        """Send and read the body, stopping at ``max_bytes``."""
        response = await self._wire().handle_async_request(request)
        response.request = request
        if "set-cookie" in response.headers:  # the cookie jar's parsing costs a poll more than the request
            if host.cookies is None:
                import httpx

                host.cookies = httpx.Cookies()
            host.cookies.extract_cookies(response)
        try:
            limit = self.settings.max_bytes
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise FetchError(f"{redact(str(request.url))} 的响应过大（{declared} 字节，上限 {limit} 字节）")
            chunks: list[bytes] = []
            size = 0
            # A body sent as it is (no Content-Encoding) is read from the transport's stream itself:
            # httpx's decoding layers around it cost a poll more than its parsing of the page.
            encoding = response.headers.get("content-encoding", "").strip().lower()
            body = response.aiter_bytes() if encoding not in ("", "identity") else response.stream
            async for chunk in body:  # type: ignore[union-attr]
                size += len(chunk)
                if size > limit:
                    raise FetchError(f"{redact(str(request.url))} 的响应超过上限 {limit} 字节，已中止")
                chunks.append(chunk)
            return response.status_code, {k.lower(): v for k, v in response.headers.items()}, b"".join(chunks)
        finally:
            await response.aclose()


def _allow_hint(reason: str) -> str:
    return "；如确需访问，请在 [channels.poll] 的 allow_hosts 中列出该主机" if "allow_hosts" in reason else ""


_CHALLENGE_MARKS = (b"__jsl_clearance", b"_jsluid", b"document.cookie", b"$_ts", b"eval(")


def _browser_check(status: int, content: bytes) -> bool:
    """An anti-bot answer that only a browser running its script gets past.

    加速乐 (and the CDNs that copy it) answers 521 with a cookie-setting script; 瑞数-style walls answer
    412 with one. Retrying can never help, and a "5xx, try again later" message would mislead.
    """
    if status == 521:
        return True
    return status == 412 and b"<script" in content[:65536].lower() and any(m in content for m in _CHALLENGE_MARKS)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment is None:
        return None
    return max(0.0, moment.timestamp() - time.time())
