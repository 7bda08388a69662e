"""The polls' HTTP/1.1 transport against real loopback servers: kept connections, bodies, failures, cookies."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable

import httpx
import pytest

from channelwatch.errors import FetchError
from channelwatch.sources.http import HttpClient, HttpSettings
from channelwatch.sources.wire import PooledTransport

FAST = HttpSettings(read_timeout=1.0, connect_timeout=1.0, retries=0, backoff=0.01)

Reply = Callable[[int, bytes, asyncio.StreamWriter], Awaitable[bool]]  # (request number, head, writer) → keep open


class Server:
    """A loopback HTTP/1.1 server whose every answer the test writes by hand; it counts connections."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/page.html"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                if not await self.reply(len(self.requests), head, writer):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def answer(body: bytes, *extra: str) -> bytes:
    headers = "".join(f"{h}\r\n" for h in extra)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body


async def keep_alive(number: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(answer(f"第{number}页".encode()))
    return True


def test_one_connection_serves_a_hosts_requests_in_turn() -> None:
    async def run() -> tuple[list[str], int]:
        async with Server(keep_alive) as server, HttpClient(FAST) as client:
            bodies = [(await client.request("GET", server.url)).content.decode() for _ in range(3)]
            return bodies, server.connections

    bodies, connections = asyncio.run(run())
    assert bodies == ["第1页", "第2页", "第3页"]
    assert connections == 1


def test_a_kept_connection_the_server_closed_is_replaced() -> None:
    async def close_after_answer(number: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(b"ok"))  # keep-alive implied, but the server closes anyway
        return False

    async def run() -> tuple[list[int], int]:
        async with Server(close_after_answer) as server, HttpClient(FAST) as client:
            statuses = []
            for _ in range(3):
                statuses.append((await client.request("GET", server.url)).status)
                await asyncio.sleep(0.05)  # the close reaches the client while the connection is idle
            return statuses, server.connections

    statuses, connections = asyncio.run(run())
    assert statuses == [200, 200, 200]
    assert connections == 3


def test_a_get_on_a_connection_dropped_under_it_is_sent_again_once() -> None:
    async def drop_second(number: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        if number == 2:
            return False  # read the request, close without a word: a keep-alive timeout racing the request
        writer.write(answer(b"ok"))
        return True

    async def run() -> tuple[list[int], int, int]:
        async with Server(drop_second) as server, HttpClient(FAST) as client:
            statuses = [(await client.request("GET", server.url)).status for _ in range(2)]
            return statuses, server.connections, len(server.requests)

    statuses, connections, requests = asyncio.run(run())
    assert statuses == [200, 200]
    assert (connections, requests) == (2, 3)


def test_a_new_connection_closed_without_answer_fails() -> None:
    async def never(number: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        return False

    async def run() -> None:
        async with Server(never) as server:
            transport = PooledTransport()
            try:
                response = await transport.handle_async_request(httpx.Request("GET", server.url))
                await response.aread()
            finally:
                await transport.aclose()

    with pytest.raises(httpx.RemoteProtocolError):
        asyncio.run(run())


def test_an_answer_read_in_part_closes_its_connection() -> None:
    big = b"x" * 200_000

    async def large(number: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(big))
        return True

    async def run() -> tuple[int, bytes, bytes, int, int]:
        transport = PooledTransport()
        try:
            async with Server(large) as server:
                cut = await transport.handle_async_request(httpx.Request("GET", server.url))
                async for _ in cut.aiter_raw():
                    break  # the size cap stops reading like this
                await cut.aclose()
                whole = await transport.handle_async_request(httpx.Request("GET", server.url))
                first = await whole.aread()
                again = await transport.handle_async_request(httpx.Request("GET", server.url))
                second = await again.aread()
                return server.connections, first, second, len(server.requests), len(big)
        finally:
            await transport.aclose()

    connections, first, second, requests, size = asyncio.run(run())
    assert len(first) == len(second) == size
    # The cut-short answer's connection was closed (its rest would read as the next answer); the whole
    # answer's connection served the third request.
    assert (connections, requests) == (2, 3)


def test_the_size_cap_ends_the_request() -> None:
    async def large(number: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"4000\r\n" + b"y" * 0x4000 + b"\r\n")
        return True  # more would follow: the client must stop at its cap, not wait for the end

    async def run() -> None:
        async with Server(large) as server, HttpClient(HttpSettings(max_bytes=1000, retries=0)) as client:
            await client.request("GET", server.url)

    with pytest.raises(FetchError, match="上限"):
        asyncio.run(run())


def test_chunked_gzip_and_close_delimited_bodies() -> None:
    page = "<html><body>政务公开</body></html>".encode()

    async def varied(number: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        if number == 1:
            packed = gzip.compress(page)
            chunks = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (packed[:10], packed[10:]))
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
                + chunks
                + b"0\r\n\r\n"
            )
            return True
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n" + page)  # ends when the server closes
        return False

    async def run() -> tuple[bytes, bytes, str]:
        async with Server(varied) as server, HttpClient(FAST) as client:
            first = await client.request("GET", server.url)
            second = await client.request("GET", server.url)
            return first.content, second.content, server.requests[0].decode().lower()

    first, second, head = asyncio.run(run())
    assert first == second == page
    assert "accept-encoding: gzip" in head


def test_slow_answer_and_refused_connection_fail_with_httpx_errors() -> None:
    async def silent(number: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(2)
        return False

    async def run() -> tuple[type[BaseException], type[BaseException]]:
        transport = PooledTransport()
        timeouts = httpx.Timeout(0.2).as_dict()
        caught = []
        try:
            async with Server(silent) as server:
                url = server.url
                try:
                    await transport.handle_async_request(httpx.Request("GET", url, extensions={"timeout": timeouts}))
                except httpx.HTTPError as exc:
                    caught.append(type(exc))
            await asyncio.sleep(0.05)
            try:  # the server is gone: nothing listens on its port any more
                await transport.handle_async_request(httpx.Request("GET", url, extensions={"timeout": timeouts}))
            except httpx.HTTPError as exc:
                caught.append(type(exc))
        finally:
            await transport.aclose()
        return caught[0], caught[1]

    slow, refused = asyncio.run(run())
    assert slow is httpx.ReadTimeout
    assert refused is httpx.ConnectError


def test_cookies_stay_with_the_host_that_set_them() -> None:
    async def sets_cookie(number: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(b"ok", "Set-Cookie: visitor=abc; Path=/"))
        return True

    async def run() -> tuple[list[bytes], list[bytes]]:
        async with Server(sets_cookie) as first, Server(keep_alive) as other, HttpClient(FAST) as client:
            await client.request("GET", first.url)
            await client.request("GET", first.url)
            await client.request("GET", other.url)  # the same address on another port: another site
            return first.requests, other.requests

    first, other = asyncio.run(run())
    assert b"visitor=abc" not in first[0].lower() and b"cookie: visitor=abc" in first[1].lower()
    assert b"visitor" not in other[0].lower()


def test_https_checks_the_certificate() -> None:
    """TLS to a loopback server: answered with a certificate the client trusts, refused with one it does not."""
    import ssl

    import trustme

    authority = trustme.CA()
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(served)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)

    async def run() -> tuple[bytes, type[BaseException] | None]:
        server = await asyncio.start_server(Server(keep_alive)._handle, "127.0.0.1", 0, ssl=served)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/page.html"
        trusted, default = PooledTransport(ssl_context=trusting), PooledTransport()
        refused: type[BaseException] | None = None
        try:
            answer = await trusted.handle_async_request(httpx.Request("GET", url))
            body = await answer.aread()
            try:  # the system's trust store does not know the test's authority
                await default.handle_async_request(httpx.Request("GET", url))
            except httpx.ConnectError as exc:
                refused = type(exc)
        finally:
            await trusted.aclose()
            await default.aclose()
            server.close()
        return body, refused

    body, refused = asyncio.run(run())
    assert body.decode() == "第1页"
    assert refused is httpx.ConnectError


def test_a_preconnected_connection_carries_the_request_and_a_refused_one_fails_as_a_request_would() -> None:
    async def run() -> tuple[int, int, int, bytes, type[BaseException]]:
        transport = PooledTransport()
        timeouts = httpx.Timeout(1.0).as_dict()
        try:
            async with Server(keep_alive) as server:
                request = httpx.Request("GET", server.url, extensions={"timeout": timeouts})
                await transport.preconnect(request)
                await asyncio.sleep(0.05)
                opened_ahead = server.connections  # connected, nothing asked yet
                asked_ahead = len(server.requests)
                await transport.preconnect(request)  # one is kept already: no second connection
                response = await transport.handle_async_request(request)
                body = await response.aread()
                connections = server.connections
                url = server.url
            await transport.aclose()  # its kept connection would still serve the URL
            transport = PooledTransport()
            refused: type[BaseException] = type(None)
            try:  # nothing listens on the port any more
                await transport.preconnect(httpx.Request("GET", url, extensions={"timeout": timeouts}))
            except httpx.HTTPError as exc:
                refused = type(exc)
        finally:
            await transport.aclose()
        return opened_ahead, asked_ahead, connections, body, refused

    opened_ahead, asked_ahead, connections, body, refused = asyncio.run(run())
    assert (opened_ahead, asked_ahead) == (1, 0)
    assert connections == 1 and body == "第1页".encode()
    assert refused is httpx.ConnectError


def test_a_poll_connects_before_it_queues_and_reports_a_refused_site_once() -> None:
    from channelwatch.sources.http import RequestSlots, request_slots

    async def run() -> tuple[list[str], int, str]:
        async with Server(keep_alive) as server, HttpClient(FAST) as client:
            limit = asyncio.Semaphore(1)

            async def one(url: str) -> str:
                request_slots.set(RequestSlots(limit))
                try:
                    return (await client.request("GET", url)).content.decode()
                except FetchError as exc:
                    return str(exc)

            pages = await asyncio.gather(*(one(server.url) for _ in range(3)))
            connections = server.connections
            dead = server.url
        refused = await one(dead)  # the server is closed: refused at the preconnect
        return list(pages), connections, refused

    pages, connections, refused = asyncio.run(run())
    assert sorted(pages) == ["第1页", "第2页", "第3页"]
    assert 1 <= connections <= 3  # one place: the three asked one after another, on connections opened ahead
    assert refused.startswith("无法连接 http://127.0.0.1:") and "已尝试 1 次" in refused


def test_network_failures_read_in_chinese_with_the_systems_words_in_brackets() -> None:
    import socket
    import ssl

    from channelwatch.failures import network_problem

    async def refused() -> str:
        async with Server(keep_alive) as server:
            url = server.url
        await asyncio.sleep(0.05)
        async with HttpClient(FAST) as client:
            try:
                await client.request("GET", url)
            except FetchError as exc:
                return str(exc)
        return ""

    message = asyncio.run(refused())
    assert "：对方拒绝连接，该地址上没有网站服务在运行（[Errno 111] " in message
    named = network_problem(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert named == "找不到网址中的主机名，域名无法解析（[Errno -2] Name or service not known）"
    certificate = ssl.SSLCertVerificationError(1, "certificate verify failed")
    assert network_problem(certificate).startswith("网站的 HTTPS 证书无法验证：")
    assert network_problem(ConnectionResetError(104, "Connection reset by peer")).startswith("连接被对方中断（")
    assert network_problem(OSError(113, "No route to host")).startswith("网络或主机不可达（")


def test_requests_of_one_channel_waiting_at_once_each_give_their_place_back() -> None:
    from channelwatch.sources.http import RequestSlots, request_slots

    async def run() -> tuple[list[str], bool, float]:
        async with Server(keep_alive) as server, HttpClient(FAST) as client:
            limit = asyncio.Semaphore(1)
            slots = RequestSlots(limit)
            request_slots.set(slots)  # one channel's context: its three requests queue at once
            fetched = await asyncio.gather(*(client.request("GET", server.url) for _ in range(3)))
            return sorted(f.content.decode() for f in fetched), limit.locked(), slots.queued()

    pages, locked, queued = asyncio.run(run())
    assert pages == ["第1页", "第2页", "第3页"]
    assert not locked  # every place given back
    assert queued > 0  # two of them waited, and nothing of a wait is left going on


def test_a_preconnect_clears_expired_connections_instead_of_being_crowded_out() -> None:
    async def run() -> int:
        transport = PooledTransport(keep=1, keepalive=0.2)
        timeouts = httpx.Timeout(1.0).as_dict()
        try:
            async with Server(keep_alive) as server:
                request = httpx.Request("GET", server.url, extensions={"timeout": timeouts})
                await (await transport.handle_async_request(request)).aread()  # kept, then expires
                await asyncio.sleep(0.3)
                before = server.connections
                await transport.preconnect(request)
                response = await transport.handle_async_request(request)
                await response.aread()
                await response.aclose()
                return server.connections - before
        finally:
            await transport.aclose()

    assert asyncio.run(run()) == 1  # the preconnected one carried the request


def test_idle_connections_are_capped_in_all_the_longest_idle_closed_first() -> None:
    """A poll of many hosts keeps at most ``idle_max`` idle connections open, not one per host it asked."""

    async def run() -> list[int]:
        transport = PooledTransport(idle_max=3)
        timeouts = httpx.Timeout(1.0).as_dict()
        servers = [Server(keep_alive) for _ in range(5)]

        async def get(server: Server) -> None:
            request = httpx.Request("GET", server.url, extensions={"timeout": timeouts})
            response = await transport.handle_async_request(request)
            await response.aread()
            await response.aclose()

        try:
            for server in servers:
                await server.__aenter__()
            for server in servers:  # five hosts asked, three connections kept: those of hosts 2, 3 and 4
                await get(server)
            for server in reversed(servers):  # 4, 3, 2 reuse theirs; 1 and 0 connect again
                await get(server)
            return [server.connections for server in servers]
        finally:
            await transport.aclose()
            for server in servers:
                await server.__aexit__()

    assert asyncio.run(run()) == [2, 2, 1, 1, 1]
