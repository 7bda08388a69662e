"""identity.py: canonical URLs, WeChat article keys, title fingerprints, repost markers."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from channelwatch import identity
from channelwatch.identity import (
    canonical_url,
    identity_key,
    is_repost_value,
    normalise_title,
    title_fingerprint,
    title_key,
    title_key_list,
    title_keys,
    wechat_article_key,
    wechat_push_key,
)

DAY = date(2020, 6, 1)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://WWW.Example.GOV.cn/xxgk/a.html", "http://www.example.gov.cn/xxgk/a.html"),
        ("http://www.example.gov.cn:80/a.html", "http://www.example.gov.cn/a.html"),
        ("https://www.example.gov.cn:443/a.html", "https://www.example.gov.cn/a.html"),
        ("http://www.example.gov.cn:8080/a.html", "http://www.example.gov.cn:8080/a.html"),
        ("http://www.example.gov.cn/a.html#top", "http://www.example.gov.cn/a.html"),
        ("http://www.example.gov.cn/a.html?utm_source=wx&id=3", "http://www.example.gov.cn/a.html?id=3"),
        ("http://www.example.gov.cn/a.html?b=2&a=1", "http://www.example.gov.cn/a.html?a=1&b=2"),
        ("http://www.example.gov.cn/a.html?from=timeline&spm=1.2", "http://www.example.gov.cn/a.html"),
        ("http://www.example.gov.cn", "http://www.example.gov.cn/"),
        ("http://www.example.gov.cn/A.html", "http://www.example.gov.cn/A.html"),  # path keeps its case
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected
    assert canonical_url(expected) == expected


LONG = "https://mp.weixin.qq.com/s?__biz=MzA5NjE0NDY2Mg==&mid=2650001234&idx=2&sn=abcdef0123"


@pytest.mark.parametrize(
    "url",
    [
        LONG,
        LONG + "&chksm=8b1234abcd&scene=21#wechat_redirect",
        "http://mp.weixin.qq.com/s?sn=abcdef0123&idx=2&mid=2650001234&__biz=MzA5NjE0NDY2Mg==#rd",
        LONG + "&scene=126&sessionid=1600000000&key=secretish&ascene=1&devicetype=Windows",
        "https://MP.WEIXIN.QQ.COM/s?__biz=MzA5NjE0NDY2Mg==&mid=2650001234&idx=2&sn=abcdef0123&chksm=00",
    ],
)
def test_wechat_long_urls_share_one_key(url: str) -> None:
    assert wechat_article_key(url) == "MzA5NjE0NDY2Mg==/2650001234/2/abcdef0123"
    assert wechat_push_key(url) == "MzA5NjE0NDY2Mg==/2650001234"
    assert identity_key(platform_id=None, url=url, title="x", local_day=DAY, kind="wechat") == (
        "wx:MzA5NjE0NDY2Mg==/2650001234/2/abcdef0123"
    )


def test_wechat_article_index_matters() -> None:
    first = LONG.replace("idx=2", "idx=1")
    assert wechat_article_key(first) != wechat_article_key(LONG)
    assert wechat_push_key(first) == wechat_push_key(LONG)


def test_wechat_short_url_drops_query() -> None:
    assert wechat_article_key("https://mp.weixin.qq.com/s/AbCdEf123?scene=1#x") == "/s/AbCdEf123"
    assert wechat_push_key("https://mp.weixin.qq.com/s/AbCdEf123") is None
    assert wechat_article_key("https://www.example.gov.cn/s/AbCdEf123") is None


def test_wechat_url_wins_over_article_id() -> None:
    # The same article known by its push's article_id in one source and by URL in another must
    # have one identity: for WeChat the URL wins (docs/counting-rules.md, rule 1).
    with_id = identity_key(platform_id="OgU123:2", url=LONG, title="t", local_day=DAY, kind="wechat")
    without_id = identity_key(platform_id=None, url=LONG + "&chksm=1", title="t", local_day=DAY, kind="wechat")
    assert with_id == without_id
    assert identity_key(platform_id="OgU123:2", url=None, title="t", local_day=DAY, kind="wechat") == "id:OgU123:2"


def test_order_of_preference() -> None:
    assert identity_key(platform_id="4455", url="http://a/b", title="t", local_day=DAY, kind="weibo") == "id:4455"
    assert identity_key(platform_id=None, url="HTTP://A/b#x", title="t", local_day=DAY) == "url:http://a/b"
    fp = identity_key(platform_id=None, url=None, title="园区 召开 会议！", local_day=DAY)
    assert fp.startswith("fp:2020-06-01:")
    assert fp == identity_key(platform_id=None, url=None, title="园区召开会议", local_day=DAY)
    with pytest.raises(ValueError):
        identity_key(platform_id=None, url=None, title=None, local_day=DAY)


def test_fingerprints() -> None:
    assert normalise_title("  王洼产业园区：召开 安全生产会议。 ") == "王洼产业园区召开安全生产会议"
    assert normalise_title("ＡＢＣ１２３（全角）") == "abc123全角"  # NFKC folds full-width forms
    assert title_fingerprint("园区召开会议", DAY) == title_fingerprint("【园区召开会议】", DAY)
    assert title_fingerprint("园区召开会议", DAY) != title_fingerprint("园区召开会议", date(2020, 6, 2))
    assert title_fingerprint("园区召开会议", DAY) != title_fingerprint("园区召开大会", DAY)


@pytest.mark.parametrize("value", ["转发", "转载", "是", "true", "TRUE", "1", "yes", " 转发 ", True, 1])
def test_repost_markers(value: object) -> None:
    assert is_repost_value(value) is True


@pytest.mark.parametrize("value", ["原创", "否", "false", "0", "no", "", None, False, 0])
def test_original_markers(value: object) -> None:
    assert is_repost_value(value) is False


def test_unknown_marker() -> None:
    assert is_repost_value("也许") is None


@given(st.text())
def test_normalise_title_is_idempotent(title: str) -> None:
    once = normalise_title(title)
    assert normalise_title(once) == once


hosts = st.sampled_from(["www.example.gov.cn", "WWW.EXAMPLE.GOV.CN", "mp.weixin.qq.com", "a.b"])
params = st.dictionaries(
    st.sampled_from(["id", "page", "utm_source", "from", "spm", "x", "chksm"]),
    st.text("abc123", max_size=4),
    max_size=4,
)


@given(st.sampled_from(["http", "https", "HTTP"]), hosts, st.text("abc/._-", max_size=12), params)
def test_canonical_url_is_idempotent(scheme: str, host: str, path: str, query: dict[str, str]) -> None:
    from urllib.parse import urlencode

    url = f"{scheme}://{host}/{path}?{urlencode(query)}#frag"
    once = canonical_url(url)
    assert canonical_url(once) == once


def test_parameters_that_name_pages_are_kept_off_wechat() -> None:
    # On a government site vid/key/lang may name different pages; only WeChat links drop them.
    assert canonical_url("http://www.x.gov.cn/video/play.jsp?vid=101") != canonical_url(
        "http://www.x.gov.cn/video/play.jsp?vid=102"
    )
    assert canonical_url("http://www.x.gov.cn/info.do?key=7&lang=zh") == "http://www.x.gov.cn/info.do?key=7&lang=zh"
    assert canonical_url("https://mp.weixin.qq.com/s/Abc?key=1&lang=zh_CN&vid=2") == "https://mp.weixin.qq.com/s/Abc"


def test_wechat_ids_without_url_name_one_article() -> None:
    from channelwatch.identity import wechat_article_id, wechat_push_id

    assert wechat_article_id("OgU123:2", "x") == "OgU123:2"  # API reader: article_id + index
    assert wechat_article_id("2247483650_3", "x") == "2247483650:3"  # statistics API msgid
    assert wechat_article_id("1000001", "第一篇") != wechat_article_id("1000001", "第二篇")  # export 消息ID
    assert wechat_push_id("1000001") == wechat_push_id("2247483650_3".replace("2247483650", "1000001"))
    assert wechat_push_id("OgU123:2") == "OgU123"


# Titles of characters title_keys normalises by columns (ASCII, ideographs, Chinese and Western
# punctuation) with now and then one from the edges of that set: NFKC-unstable characters (full-width
# letters and digits, ligatures, circled digits, compatibility ideographs, Hangzhou numerals), underscores,
# combining marks, case pairs outside ASCII, emoji, other scripts, controls and the whitespace str.strip knows.
USUAL_CHARACTERS = (
    "abcXYZ019_ -.:/[]\\^`{}~\x00\x1f\x7f中文園區政务动态第条㐀䶿一鿿\u9fff\u3400"
    "，。：；、！？（）【】《》「」“”‘’—…·～\u3000\u00a0\u00b7\u2028\u200b\u200d\u2060\u00ad\uff3f\uff5e"
)
EDGE_CHARACTERS = (
    "ＡＢｃｚ１２＿\uff61\uff64\uff10\uff19\uff21\uff3a\uff41\uff5aﬁ①⑴㈠㊀\u3038々〇〡\uf900\u2f00\u2e80\ufeff"
    "\u0301\u0308\u1161é\u00aa\u00b2\u00b9\u00bcİıßΣσς\u212a\u2126\u2070\u2071\u207f\u3005\u3006\u303b\u303c"
    "\U0001f600\U0001f1e8\U00020000\U0002f800한글ひらカナАя\u0663\u06f3"
)
usual = st.text(alphabet=st.sampled_from(USUAL_CHARACTERS), max_size=30)
titles = st.one_of(
    st.text(),
    usual,
    st.builds(lambda head, edge, tail: head + edge + tail, usual, st.sampled_from(EDGE_CHARACTERS), usual),
)


@given(st.lists(st.one_of(st.none(), titles), max_size=40))
@example(
    ["园区动态第1条：安全生产检查", "ＡＢＣ１２３（全角）", "a_b", "\u3038", "e\u0301", "", None, "\U0001f600", "ｃ"]
)
def test_title_keys_by_columns_are_title_key(values: list[str | None]) -> None:
    expected = [title_key(value) if value else None for value in values]
    keys = title_keys(pa.array([value or None for value in values], pa.string()))
    assert keys.to_pylist() == expected
    assert title_key_list(values) == expected


def test_usual_titles_are_normalised_by_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chinese titles with ASCII and Chinese punctuation never go through normalise_title one by one."""
    values = [f"园区动态第{n}条：安全生产（Ab_{n}）检查、“企业”服务…" for n in range(300)]
    expected = [title_key(value) for value in values]

    def refuse(title: str) -> str:
        raise AssertionError(f"normalised one by one: {title}")

    monkeypatch.setattr(identity, "normalise_title", refuse)
    assert title_keys(pa.array(values)).to_pylist() == expected
    assert title_keys(pa.array([], pa.string())).to_pylist() == []


# URLs near the edges of what canonical_url builds directly: case, ports (default, leading zeros, out of
# range, empty), userinfo, IPv6 literals, escapes and plus signs, repeated and blank parameters, tracking
# parameters, fragments holding anything, whitespace and controls urlsplit drops, non-ASCII.
url_schemes = st.one_of(
    st.sampled_from(["http", "https"]), st.sampled_from(["HTTPS", "Http", "ftp", "h2", "", "http:"])
)
plain_hosts = st.sampled_from(
    ["www.example.gov.cn", "WWW.Example.GOV.cn", "mp.weixin.qq.com", "MP.WEIXIN.QQ.COM", "a-b.c"]
)
url_hosts = st.one_of(
    plain_hosts,
    plain_hosts,
    plain_hosts,
    st.sampled_from(["[::1]", "[::1", "u@h.cn", "h:", "中.cn", "mp.weixin.qq.com\n"]),
    st.text(alphabet="aZ0.-_@[]:中\n", min_size=0, max_size=8),
)
url_ports = st.one_of(
    st.sampled_from(["", ":80", ":443", ":8080"]),
    st.sampled_from(["", ":80", ":443", ":8080"]),
    st.sampled_from([":0080", ":0", ":65535", ":65536", ":99999", ":", ":8a", ":123456"]),
)
url_paths = st.one_of(
    st.sampled_from(["", "/", "/a/B.html", "/s/AbC", "/s", "/mp/appmsg/show", "//x", "/a%20b"]),
    st.sampled_from(["", "/", "/a/B.html", "/s/AbC", "/s", "/mp/appmsg/show", "//x", "/a%20b"]),
    st.sampled_from(["/中文", "/a b", "/a?", "/;a=b", "/@:+!$&'()*,"]),
    st.text(alphabet="/aZ09._~!$&'()*+,;=:@%-?# \t\n中", max_size=10).map(lambda p: "/" + p),
)
url_pairs = st.lists(
    st.tuples(
        st.sampled_from(
            ["a", "b", "B", "id", "page", "utm_source", "UTM_x", "spm", "From", "key", "vid", "__biz", "mid"]
        ),
        st.one_of(
            st.sampled_from(["", "=", "=1", "=2", "=~._-"]),
            st.sampled_from(["", "=", "=1", "=2", "=~._-"]),
            st.sampled_from(["=a=b", "=%41", "=x+y", "=中", "=/", "=a b", "=?", "=a;b"]),
        ),
    ),
    max_size=4,
).map(lambda pairs: "&".join(name + value for name, value in pairs))
url_queries = st.one_of(st.just(""), url_pairs.map(lambda q: "?" + q), url_pairs.map(lambda q: "?&" + q + "&&"))
url_fragments = st.sampled_from(["", "", "#", "#x", "#a?b=1&c", "#中\n ", "##"])
urls = st.one_of(
    st.builds(
        lambda *parts: "".join(parts),
        url_schemes.map(lambda s: s + "://" if s else ""),
        url_hosts,
        url_ports,
        url_paths,
        url_queries,
        url_fragments,
        st.sampled_from(["", " ", "\t", "\x01"]),
    ),
    st.text(max_size=30),
)


@given(urls)
@example("HTTP://WWW.Example.GOV.cn:080/a.html?b=2&a=1&utm_source=x#top")
@example("https://mp.weixin.qq.com/s?__biz=MzA&mid=1&idx=2&sn=ab#rd")
@example("https://mp.wei\nxin.qq.com/s/AbC")
@example("https://mp.wei\txin.qq.com/s/AbC")
@example("https://www.example.gov.cn/a.html?a=b=c&d=1")
@example("HTTP://WWW.example.gov.cn:65536/a.html?b=1&a=2")
@example("https://www.example.gov.cn/a.html?&b=1&&a=2&")
@example("https://www.example.gov.cn/a?b=中#x")
@example("https://mp.weixin.qq.com/s/AbC?scene=1&b=2")
@example("http://www.example.gov.cn:65535/a?spm=1#x?y")
def test_plain_urls_are_canonical_as_by_urlsplit(url: str) -> None:
    """canonical_url's direct way gives what urlsplit, parse_qsl and urlencode give; so does the WeChat check."""
    assert canonical_url(url) == identity._general_canonical_url(url.strip())
    assert wechat_article_key(url) == identity._general_wechat_article_key(url)


def test_usual_links_skip_urlsplit(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("urlsplit")

    monkeypatch.setattr(identity, "urlsplit", refuse)
    url = "https://WWW.example.gov.cn:443/xxgk/tzgg/202003/t123.html?spm=5&b=2&a=&c#x"
    assert canonical_url(url) == "https://www.example.gov.cn/xxgk/tzgg/202003/t123.html?a=&b=2&c="
    assert wechat_article_key(url) is None
