"""The httpx transport polls use: HTTP/1.1 on asyncio streams, parsed by h11, a few kept-alive connections per host.

A county polls hundreds of sites, each its own host, each once or a few times per poll. httpx's default
transport (httpcore on anyio) spends most of a poll's CPU time on itself: cancel scopes and
``sniffio`` look-ups around every read, and one connection pool per client that is scanned on every
request (so ``HttpClient`` had to keep one client, with its own pool, per host). Measured with
scripts/bench_poll.py on a 2-core machine: 0.85 ms of CPU per page through httpcore, about 0.2 ms here.

What this transport does, and nothing more (``HttpClient`` does the rest: retries, pacing, redirects,
the size cap, the host policy):

* HTTP/1.1 only, as httpx's default transport without ``http2``; ``http`` and ``https`` (TLS with the
  caller's ``ssl.SSLContext``, the server's name checked);
* connect, read and write timeouts from the request's ``timeout`` extension (``httpx.Timeout``);
* at most ``keep`` idle connections per host and ``idle_max`` in all (the oldest closed first), each kept
  ``keepalive`` seconds; a kept connection the
  server closed meanwhile is noticed before use, and a request that finds it closed under it before
  any answer is sent again once on a new connection (as browsers and httpcore do);
* a response not read to its end (the size cap, a cancelled poll) closes its connection;
* ``preconnect`` opens a request's connection ahead of it (a poll connects while it queues for a place);
* failures are httpx's own exceptions (``ConnectError``, ``ReadTimeout``, ``RemoteProtocolError``, …).

No proxies: ``HttpClient`` never used the environment's (``trust_env=False``).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import h11
import httpx

from channelwatch.failures import network_problem
from channelwatch.openfiles import open_files_limit
from channelwatch.sources.hosts import address_of

__all__ = ["PooledTransport"]

# What httpcore allows for a response's head: h11's own default (16 KiB) refuses some real sites' cookies.
MAX_HEAD_BYTES = 100 * 1024
READ_SIZE = 64 * 1024

_Key = tuple[str, str, int]
_RESEND = frozenset({"GET", "HEAD", "OPTIONS"})  # safe to send again when a kept connection was dropped


class _Connection:
    """One HTTP/1.1 connection: an asyncio stream pair and h11's state of it."""

    __slots__ = ("h11", "idle_since", "key", "reader", "writer")

    def __init__(self, key: _Key, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.key = key
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.idle_since = 0.0

    def usable(self, now: float, keepalive: float) -> bool:
        """A kept connection still worth a request: not expired, not closed or written to by the server."""
        if now - self.idle_since > keepalive or self.writer.is_closing():
            return False
        # Anything the server sent while the connection sat idle (its close, an unasked answer) ends it.
        return not self.reader.at_eof() and not self.reader._buffer  # type: ignore[attr-defined]

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()

    async def read(self, timeout: float | None, request: httpx.Request) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self.reader.read(READ_SIZE)
        except TimeoutError:
            raise httpx.ReadTimeout("读取超时", request=request) from None
        except OSError as exc:
            raise httpx.ReadError(network_problem(exc), request=request) from None

    async def next_event(self, timeout: float | None, request: httpx.Request) -> Any:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc), request=request) from None
            if event is not h11.NEED_DATA:
                return event
            data = await self.read(timeout, request)
            if not data and self.h11.their_state is h11.SEND_RESPONSE:
                # Closed before any answer: a kept connection the server dropped (the caller may retry).
                raise httpx.RemoteProtocolError("服务器未应答即关闭了连接", request=request)
            self.h11.receive_data(data)


class _Body(httpx.AsyncByteStream):
    """A response's body, read from its connection; the connection is kept or closed at the end."""

    def __init__(self, transport: PooledTransport, connection: _Connection, request: httpx.Request) -> None:
        self._transport = transport
        self._connection = connection
        self._request = request
        self._done = False
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection, timeout = self._connection, _timeout(self._request, "read")
        try:
            while True:
                event = await connection.next_event(timeout, self._request)
                if isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    self._done = True
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise httpx.RemoteProtocolError("服务器在响应结束前关闭了连接", request=self._request)
        except BaseException:
            connection.close()
            raise

    async def aclose(self) -> None:
        if self._released:  # httpx closes a stream it read to the end, and the caller closes it again
            return
        self._released = True
        connection = self._connection
        if self._done and connection.h11.our_state is h11.DONE and connection.h11.their_state is h11.DONE:
            connection.h11.start_next_cycle()
            self._transport._keep(connection)
        else:
            connection.close()  # read only in part: what is left of the answer would be read as the next one


def _timeout(request: httpx.Request, which: str) -> float | None:
    value = request.extensions.get("timeout", {}).get(which)
    return float(value) if value is not None else None


class PooledTransport(httpx.AsyncBaseTransport):
    """``handle_async_request`` over a per-host pool of kept-alive HTTP/1.1 connections."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keep: int = 4,
        keepalive: float = 5.0,
        idle_max: int | None = None,
    ) -> None:
        self._ssl = ssl_context
        self._keep_max = keep
        self._keepalive = keepalive
        # Idle connections in all: a poll of a thousand channels, each its own host, would otherwise end
        # with a thousand open sockets, crowding out the channels still under way (``open_files_limit``).
        self._idle_max = idle_max if idle_max is not None else max(16, min(512, open_files_limit() // 4))
        self._idle: dict[_Key, list[_Connection]] = {}
        self._idle_order: dict[_Connection, None] = {}  # every idle connection, the longest idle first
        self._closed = False

    def _keep(self, connection: _Connection) -> None:
        idle = self._idle.setdefault(connection.key, [])
        if self._closed or len(idle) >= self._keep_max:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._put_back(connection)
        if len(self._idle_order) > self._idle_max:
            oldest = next(iter(self._idle_order))
            del self._idle_order[oldest]
            self._idle[oldest.key].remove(oldest)
            oldest.close()

    def _put_back(self, connection: _Connection) -> None:
        self._idle.setdefault(connection.key, []).append(connection)
        self._idle_order[connection] = None

    def _kept(self, key: _Key) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            del self._idle_order[connection]
            if connection.usable(now, self._keepalive):
                return connection
            connection.close()
        return None

    async def _connect(self, key: _Key, request: httpx.Request) -> _Connection:
        scheme, host, port = key
        context = None
        if scheme == "https":
            if self._ssl is None:  # made on first use (loading the CA certificates takes 50 ms), then kept
                self._ssl = ssl.create_default_context()
            context = self._ssl
        timeout = _timeout(request, "connect")
        # A name may have an unreachable IPv6 address beside a good IPv4 one: its addresses are tried
        # 250 ms apart, in a race (RFC 8305). An address needs no race, and the race costs tasks.
        race: dict[str, Any] = {} if address_of(host) is not None else {"happy_eyeballs_delay": 0.25}
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                    limit=READ_SIZE,
                    **race,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout("连接超时", request=request) from None
        except (OSError, ssl.SSLError) as exc:  # refused, unreachable, name not found, a bad certificate
            raise httpx.ConnectError(network_problem(exc), request=request) from None
        return _Connection(key, reader, writer)

    @staticmethod
    def _key(request: httpx.Request) -> _Key:
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"不支持的协议 {scheme}:", request=request)
        return (scheme, url.raw_host.decode("ascii"), url.port or (443 if scheme == "https" else 80))

    async def preconnect(self, request: httpx.Request) -> None:
        """Open a connection for ``request`` ahead of sending it, kept with the idle ones, unless one is kept.

        A poll's requests queue for a place among its ``concurrency`` requests in flight
        (``http.RequestSlots``): connecting before the place is taken keeps the handshake, and the event
        loop's turns it waits for, out of the place's time (a tenth of a 1,000-channel poll,
        scripts/bench_poll.py). A connection kept too long meanwhile is dropped by ``_kept`` as any other.
        Fails as ``handle_async_request`` would (``ConnectError``, ``ConnectTimeout``).
        """
        key = self._key(request)
        # ``_kept`` closes the expired ones on its way (they would crowd a new one out of ``keep``).
        kept = self._kept(key)
        if kept is not None:
            self._put_back(kept)  # back where it was taken from, for the request itself
            return
        self._keep(await self._connect(key, request))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = self._key(request)
        body = await request.aread()
        head = h11.Request(method=request.method, target=request.url.raw_path, headers=request.headers.raw)
        while True:
            connection = self._kept(key)
            reused = connection is not None
            if connection is None:
                connection = await self._connect(key, request)
            try:
                response = await self._exchange(connection, request, head, body)
            except httpx.TransportError:
                connection.close()
                # A kept connection the server closed just as it was reused: once more on a new one.
                if reused and request.method in _RESEND and connection.h11.their_state is h11.SEND_RESPONSE:
                    continue
                raise
            except BaseException:
                connection.close()
                raise
            return response

    async def _exchange(
        self, connection: _Connection, request: httpx.Request, head: h11.Request, body: bytes
    ) -> httpx.Response:
        state = connection.h11
        try:
            data = state.send(head) or b""
            if body:
                data += state.send(h11.Data(data=body)) or b""
            data += state.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc), request=request) from None
        try:
            connection.writer.write(data)
            async with asyncio.timeout(_timeout(request, "write")):
                await connection.writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("发送超时", request=request) from None
        except OSError as exc:
            raise httpx.WriteError(network_problem(exc), request=request) from None
        read_timeout = _timeout(request, "read")
        while True:
            event = await connection.next_event(read_timeout, request)
            if isinstance(event, h11.Response):
                break
            if isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError("服务器未应答即关闭了连接", request=request)
            # InformationalResponse (100 Continue, 103 Early Hints): the answer follows.
        return httpx.Response(
            status_code=event.status_code,
            headers=event.headers.raw_items(),
            stream=_Body(self, connection, request),
            extensions={"http_version": b"HTTP/" + event.http_version, "reason_phrase": event.reason},
        )

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        self._idle_order = {}
        for connections in idle.values():
            for connection in connections:
                connection.close()
