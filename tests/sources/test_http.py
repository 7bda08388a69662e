"""The shared HTTP layer: conditional requests, pacing, per-host limits, retries, caps, redaction."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from channelwatch.errors import BlockedError, FetchError
from channelwatch.sources.http import (
    HttpClient,
    HttpSettings,
    _browser_check,
    _retry_after,
    redact,
    register_secret,
)
from tests.fakeplatforms import FakePlatforms, fake_platforms

__all__ = ["fake_platforms"]

FAST = HttpSettings(read_timeout=1.0, retries=2, backoff=0.01, backoff_max=0.05)


def test_conditional_request_returns_cached_body(fake_platforms: FakePlatforms) -> None:
    fake_platforms.add_site_articles(3)

    async def twice() -> tuple[bytes, bytes, bool]:
        async with HttpClient(FAST) as client:
            first = await client.request("GET", fake_platforms.site_list_url, conditional=True)
            second = await client.request("GET", fake_platforms.site_list_url, conditional=True)
            return first.content, second.content, second.not_modified

    first, second, not_modified = asyncio.run(twice())
    assert first == second and not_modified
    assert [r.status for r in fake_platforms.requests] == [200, 304]
    assert "if-none-match" in fake_platforms.requests[1].headers
    assert "if-modified-since" in fake_platforms.requests[1].headers


def test_min_interval_paces_one_host(fake_platforms: FakePlatforms) -> None:
    async def three() -> None:
        async with HttpClient(FAST) as client:
            for _ in range(3):
                await client.request("GET", fake_platforms.rss_url, min_interval=0.2)

    asyncio.run(three())
    times = [r.at for r in fake_platforms.requests]
    assert times[1] - times[0] >= 0.18 and times[2] - times[1] >= 0.18


def test_per_host_concurrency_limit(fake_platforms: FakePlatforms) -> None:
    fake_platforms.fault("timeout", delay=0.2)  # every answer takes 0.2 s

    async def many() -> float:
        settings = HttpSettings(read_timeout=2.0, per_host=2)
        async with HttpClient(settings) as client:
            started = time.monotonic()
            await asyncio.gather(*(client.request("GET", fake_platforms.rss_url) for _ in range(4)))
            return time.monotonic() - started

    elapsed = asyncio.run(many())
    assert elapsed >= 0.38  # 4 requests, 2 at a time, 0.2 s each


def test_non_idempotent_post_is_not_retried(fake_platforms: FakePlatforms) -> None:
    fake_platforms.fault("500", times=1)

    async def post() -> None:
        async with HttpClient(FAST) as client:
            await client.request("POST", fake_platforms.url + "/cgi-bin/freepublish/batchget", json={})

    with pytest.raises(FetchError, match="500"):
        asyncio.run(post())
    assert len(fake_platforms.requests) == 1


def test_4xx_is_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(401)

    async def get() -> None:
        async with HttpClient(FAST, transport=httpx.MockTransport(handler)) as client:
            await client.request("GET", "http://example.invalid/x")

    with pytest.raises(FetchError, match="401"):
        asyncio.run(get())
    assert len(calls) == 1


def test_retry_after_forms() -> None:
    assert _retry_after("7") == 7.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (_retry_after(later) or 0) <= 31
    assert _retry_after("soon") is None


def test_redact() -> None:
    url = "https://api.weixin.qq.com/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=abc123"
    assert redact(url) == "https://api.weixin.qq.com/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=***"
    assert "TOKEN" not in redact("batchget?access_token=TOKEN42&x=1")
    assert redact("containerid=1076031&tabKey=weibo") == "containerid=1076031&tabKey=weibo"
    register_secret("very-secret-cookie-value")
    assert "very-secret" not in redact("Cookie: very-secret-cookie-value")


def test_gbk_page_decoded() -> None:
    from channelwatch.sources.http import Fetched

    body = '<html><head><meta charset="gb2312"></head><body>王洼产业园区</body></html>'.encode("gb18030")
    assert "王洼产业园区" in Fetched("http://x/", 200, {"content-type": "text/html"}, body).text()


def test_browser_checks_are_recognised() -> None:
    challenge = b"<html><script>document.cookie=('_'+'_jsl_clearance_s=')+'1|-1';location.href=location.href</script>"
    assert _browser_check(521, b"")
    assert _browser_check(412, challenge)
    assert not _browser_check(412, b"<html><body>Precondition Failed</body></html>")
    assert not _browser_check(503, challenge)


def test_521_is_blocked_and_not_retried(fake_platforms: FakePlatforms) -> None:
    fake_platforms.add_site_articles(1)
    fake_platforms.fault("antibot521", target="site")

    async def once() -> None:
        async with HttpClient(FAST) as client:
            await client.request("GET", fake_platforms.site_list_url)

    with pytest.raises(BlockedError) as caught:
        asyncio.run(once())
    assert "浏览器验证" in str(caught.value) and "白名单" in str(caught.value)
    assert [r.status for r in fake_platforms.requests] == [521]
