"""The decision which hosts a poll may reach (``sources.hosts.refusal``), without any network."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channelwatch.sources.base import poll_source_class, validate_poll_options
from channelwatch.sources.hosts import HostPolicy, address_of, refusal

SITE = HostPolicy.of(["https://www.example.gov.cn/xxgk/index.html"])
LOCAL = HostPolicy.of(["http://127.0.0.1:8080/site/index.html"])


@pytest.mark.parametrize(
    "url",
    [
        "https://www.example.gov.cn/xxgk/index_1.html",
        "http://www.example.gov.cn/other",  # https → http on the same host: the same site
        "https://WWW.Example.GOV.cn./xxgk/",  # case and the trailing dot of a fully qualified name
        "https://www.example.gov.cn:8443/xxgk/",  # another port of the same host
    ],
)
def test_the_configured_host_is_reachable(url: str) -> None:
    assert refusal(url, SITE) is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://evil.example.com/", "不是渠道配置的主机"),
        ("https://example.gov.cn/", "不是渠道配置的主机"),  # the parent domain is another host
        ("https://www.example.gov.cn.evil.com/", "不是渠道配置的主机"),
        ("file:///etc/passwd", "不是 HTTP 地址"),
        ("ftp://www.example.gov.cn/x", "不是 HTTP 地址"),
        ("gopher://www.example.gov.cn:70/", "不是 HTTP 地址"),
        ("javascript:alert(1)", "不是 HTTP 地址"),
        ("data:text/html,<b>x</b>", "不是 HTTP 地址"),
        ("http:///nohost", "没有主机名"),
        ("http://169.254.169.254/latest/meta-data/", "链路本地"),
        ("http://169.254.0.1/", "链路本地"),
        ("http://2852039166/", "链路本地"),  # 169.254.169.254 as one decimal number
        ("http://0xa9.0xfe.0xa9.0xfe/", "链路本地"),  # … in hexadecimal parts
        ("http://0251.0376.0251.0376/", "链路本地"),  # … in octal parts
        ("http://169.254.43518/", "链路本地"),  # … as a.b.c with c the last 16 bits
        ("http://[::ffff:169.254.169.254]/", "链路本地"),  # … mapped into IPv6
        ("http://[fe80::1]/", "链路本地"),
        ("http://127.0.0.1:6379/", "回环地址"),
        ("http://127.1/", "回环地址"),
        ("http://2130706433/", "回环地址"),
        ("http://0x7f000001/", "回环地址"),
        ("http://localhost/", "回环地址"),
        ("http://LOCALHOST./", "回环地址"),
        ("http://admin.localhost/", "回环地址"),
        ("http://[::1]/", "回环地址"),
        ("http://0.0.0.0/", "回环地址"),  # connect() to 0.0.0.0 reaches this machine
        ("http://127.255.255.254/", "回环地址"),
    ],
)
def test_redirect_targets_refused_from_a_public_site(url: str, words: str) -> None:
    reason = refusal(url, SITE)
    assert reason is not None and words in reason, (url, reason)


def test_allow_hosts_adds_hosts_but_never_link_local_or_loopback_for_a_public_site() -> None:
    policy = HostPolicy.of(
        ["https://www.example.gov.cn/"], ["xxgk.example.gov.cn", "169.254.169.254", "localhost", "[fe80::1]"]
    )
    assert refusal("https://xxgk.example.gov.cn/a.html", policy) is None
    assert refusal("http://XXGK.example.gov.cn/a.html", policy) is None
    assert "链路本地" in (refusal("http://169.254.169.254/", policy) or "")
    assert "链路本地" in (refusal("http://[fe80::1]/", policy) or "")
    assert "回环地址" in (refusal("http://localhost/", policy) or "")


def test_a_loopback_channel_may_reach_its_own_host_only() -> None:
    assert refusal("http://127.0.0.1:9999/other", LOCAL) is None  # the same host, another port
    for url in ("http://127.0.0.2:8080/", "http://localhost:8080/", "http://[::1]:8080/"):
        reason = refusal(url, LOCAL)
        assert reason is not None and "不是渠道配置的主机" in reason, url
    assert "链路本地" in (refusal("http://169.254.169.254/", LOCAL) or "")
    allowed = HostPolicy.of(["http://127.0.0.1:8080/"], ["127.0.0.2"])
    assert refusal("http://127.0.0.2:8080/x", allowed) is None


def test_addresses_are_read_as_connect_reads_them() -> None:
    assert address_of("2130706433") == ipaddress.ip_address("127.0.0.1")
    assert address_of("0x7f.1") == ipaddress.ip_address("127.0.0.1")
    assert address_of("::ffff:127.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert address_of("www.example.gov.cn") is None
    assert address_of("deadbeef.example") is None  # a name of hex letters is not an address


@given(st.integers(0, 2**16 - 1))
def test_every_link_local_address_is_refused_even_when_allowed(low: int) -> None:
    address = str(ipaddress.IPv4Address(0xA9FE0000 + low))
    policy = HostPolicy.of(["http://127.0.0.1/"], [address])
    for spelling in (address, str(0xA9FE0000 + low), hex(0xA9FE0000 + low)):
        assert "链路本地" in (refusal(f"http://{spelling}/x", policy) or ""), spelling


@given(st.integers(0, 2**24 - 1), st.sampled_from(["http", "https"]))
def test_every_loopback_address_is_refused_from_a_public_site(low: int, scheme: str) -> None:
    address = ipaddress.IPv4Address(0x7F000000 + low)
    for spelling in (str(address), str(int(address))):
        reason = refusal(f"{scheme}://{spelling}:8080/", SITE)
        assert reason is not None and "回环地址" in reason, spelling


@given(st.text(min_size=1, max_size=40))
def test_any_location_gets_an_answer_never_an_exception(location: str) -> None:
    reason = refusal(location, SITE)
    assert reason is None or isinstance(reason, str)
    if reason is None:
        assert location.strip().lower().startswith(("http://", "https://"))


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"timeout": "abc"}, ".timeout：无法识别的时长「abc」"),
        ({"timeout": 0}, ".timeout："),
        ({"allow_hosts": ["https://xxgk.example.gov.cn/"]}, ".allow_hosts：「https://xxgk.example.gov.cn/」不是主机名"),
        ({"allow_hosts": ["a.example.gov.cn/path"]}, ".allow_hosts："),
    ],
)
def test_bad_poll_keys_are_named(table: dict[str, object], words: str) -> None:
    problem = validate_poll_options({"type": "rss", "url": "https://www.example.gov.cn/rss.xml", **table})
    assert problem is not None and problem.startswith(words), problem


def test_poll_keys_parse() -> None:
    table = {
        "type": "html-list",
        "url": "https://www.example.gov.cn/",
        "timeout": "90s",
        "allow_hosts": ["A.example.cn"],
    }
    options = poll_source_class("html-list").Options.model_validate(table)
    assert options.timeout == 90.0 and options.allow_hosts == ("a.example.cn",)
    default = poll_source_class("rss").Options.model_validate({"type": "rss", "url": "https://www.example.gov.cn/"})
    assert default.timeout == 120.0 and default.allow_hosts == ()


def test_internationalised_hosts_match_in_either_spelling() -> None:
    from channelwatch.sources.http import HttpClient

    policy = HostPolicy.of(["http://政府.cn/list.html"], ["公开.政府.cn"])
    for url in ("http://政府.cn/a.html", "http://xn--mxtq1m.cn/a.html", "http://公开.政府.cn/x"):
        assert refusal(url, policy) is None, url
        assert HttpClient._second_opinion(url, policy) is None, url  # as httpx, which connects, reads it
    assert refusal("http://其他.cn/", policy) is not None


def test_the_host_is_the_one_httpx_would_connect_to() -> None:
    from channelwatch.sources.http import HttpClient

    for url in ("http://www.example.gov.cn\\@127.0.0.1/", "http://www.example.gov.cn:80@169.254.169.254/"):
        assert refusal(url, SITE) is not None and HttpClient._second_opinion(url, SITE) is not None, url
    assert HttpClient._second_opinion("http://www.example.gov.cn\t/", SITE) == "地址无法解析"
