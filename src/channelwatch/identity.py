"""Identity of a publication inside its channel (docs/counting-rules.md, rule 1), as pure functions.

An identity key is a short string with a prefix saying which rule produced it:

- ``id:<platform id>``     Weibo ``mid``; WeChat ``article_id``/``msgid`` + index when no URL is known
- ``wx:<biz>/<mid>/<idx>/<sn>`` or ``wx:/s/<code>``   a WeChat article URL, normalised
- ``url:<canonical url>``  any other URL
- ``fp:<date>:<hash>``     the last resort: normalised title + local publication date

The prefix keeps the rules apart: a title fingerprint can never collide with a URL.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import re
import unicodedata
from datetime import UTC, date, datetime
from itertools import repeat
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "REPOST_FALSE",
    "REPOST_TRUE",
    "canonical_url",
    "identity_key",
    "is_original_value",
    "is_repost_value",
    "normalise_title",
    "title_fingerprint",
    "title_key",
    "title_key_list",
    "title_keys",
    "wechat_article_id",
    "wechat_article_key",
    "wechat_push_estimate",
    "wechat_push_id",
    "wechat_push_key",
]

# Parameters that only say how a reader arrived, on any site; they never change which page a URL
# names. Kept short on purpose: a parameter dropped wrongly merges two articles (``vid``, ``key``
# and ``lang`` name different pages on some government CMSs).
_TRACKING = {
    "spm",
    "from",
    "isappinstalled",
    "srcid",
    "fbclid",
    "gclid",
    "share_token",
    "mpshare",
}
# What WeChat's article links carry besides __biz/mid/idx/sn: all of it is about the reader.
_TRACKING_WECHAT = _TRACKING | {
    "scene",
    "sharer_sharetime",
    "sharer_shareid",
    "clicktime",
    "enterid",
    "chksm",
    "subscene",
    "sessionid",
    "ascene",
    "devicetype",
    "version",
    "nettype",
    "lang",
    "pass_ticket",
    "wx_header",
    "exportkey",
    "key",
    "abtest_cookie",
    "_t",
    "timestamp",
    "rd2werd",
    "vid",
    "poc_token",
    "realreporttime",
}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_WECHAT_HOSTS = {"mp.weixin.qq.com"}


def _is_tracking(name: str, host: str) -> bool:
    lowered = name.lower()
    return lowered.startswith("utm_") or lowered in (_TRACKING_WECHAT if host in _WECHAT_HOSTS else _TRACKING)


# A URL whose every part urlsplit, parse_qsl and urlencode hand back as written: ASCII host and port, a path
# without ``?`` or ``#``, query names and values of unreserved characters only (no ``%`` or ``+`` to decode,
# nothing urlencode would escape), any fragment. Most links of an export are such; canonical_url builds
# theirs directly, at a fraction of the cost (tests/test_identity.py compares both ways).
_PLAIN_URL = re.compile(
    r"(?P<scheme>[A-Za-z]+)://(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>/[A-Za-z0-9/._~!$&'()*+,;=:@%-]*)?(?:\?(?P<query>[A-Za-z0-9_.~=&-]*))?(?:#.*)?",
    re.DOTALL,
)


def _plain_canonical_url(text: str) -> str | None:
    """``canonical_url`` of a URL ``_PLAIN_URL`` matches, else None (the general way decides)."""
    match = _PLAIN_URL.fullmatch(text)
    if match is None:
        return None
    scheme, host, port_text, path, query = match.groups()
    scheme, host = scheme.lower(), host.lower()
    netloc = host
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            return None  # urlsplit refuses it: the text itself is the identity
        if _DEFAULT_PORTS.get(scheme) != port:
            netloc = f"{host}:{port}"
    url = f"{scheme}://{netloc}{path or '/'}"
    if not query:
        return url
    pairs: list[tuple[str, str]] = []
    for pair in query.split("&"):
        if not pair:
            continue  # parse_qsl skips empty fields
        name, _sign, value = pair.partition("=")
        if "=" in value:
            return None  # urlencode would escape it
        if not _is_tracking(name, host):
            pairs.append((name, value))
    if not pairs:
        return url
    pairs.sort()
    return url + "?" + "&".join([f"{name}={value}" for name, value in pairs])


def canonical_url(url: str) -> str:
    """Scheme and host lower-cased, default port, fragment and tracking parameters dropped.

    Remaining query parameters are sorted so that ``?b=2&a=1`` and ``?a=1&b=2`` are one URL.
    The path keeps its case: servers may treat ``/A.html`` and ``/a.html`` as different pages.
    """
    text = url.strip()
    plain = _plain_canonical_url(text)
    if plain is not None:
        return plain
    return _general_canonical_url(text)


def _general_canonical_url(text: str) -> str:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        # A malformed IPv6 literal or port ("http://[::1", ":99999") names no page we could
        # normalise: the text itself is the identity, so polls never stop on it.
        return text
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    netloc = host if port is None or _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    path = parts.path or "/"
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k, host))
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))


def wechat_article_key(url: str) -> str | None:
    """``biz/mid/idx/sn`` of a long WeChat article URL, ``/s/<code>`` of a short one, else None."""
    probe = url.lower()
    # The host urlsplit would find is part of the text, unless a tab or line break it drops is inside it, and
    # only ASCII letters lower-case to the ones that spell it (the Kelvin sign gives a k, İ an i with a dot
    # above). Most links are not WeChat's: they need no urlsplit.
    if "mp.weixin.qq.com" not in probe and "\t" not in probe and "\n" not in probe and "\r" not in probe:
        return None
    return _general_wechat_article_key(url)


def _general_wechat_article_key(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # a malformed IPv6 literal
        return None
    if (parts.hostname or "").lower() not in _WECHAT_HOSTS:
        return None
    path = parts.path.rstrip("/")
    if path.startswith("/s/") and len(path) > 3:
        return "/s/" + path[3:]
    if path in {"/s", "/mp/appmsg/show"}:
        params = {k.lower(): v for k, v in parse_qsl(parts.query, keep_blank_values=True)}
        fields = [params.get(name, "") for name in ("__biz", "mid", "idx", "sn")]
        if fields[0] and fields[1]:
            # ``appmsgid`` is an older spelling of mid; idx defaults to 1 (the push's first article).
            fields[2] = fields[2] or "1"
            return "/".join(fields)
    return None


def wechat_push_key(url: str) -> str | None:
    """``biz/mid`` of a long WeChat article URL: the push (群发/发布) the article went out with."""
    key = wechat_article_key(url)
    if key is None or key.startswith("/s/"):
        return None
    biz, mid, _idx, _sn = key.split("/", 3)
    return f"{biz}/{mid}"


# Everything that is not a letter or digit in any script: spaces, Chinese and Western punctuation.
_NOT_WORD = re.compile(r"[\W_]+")


def normalise_title(title: str) -> str:
    """NFKC, lower-cased, whitespace and punctuation removed: the same headline typed twice matches.

    Punctuation goes first: what remains of a Chinese title (ideographs, ASCII) is nearly always
    NFKC-stable already, and the quick check is far cheaper than normalising (import speed).
    """
    text = _NOT_WORD.sub("", title.lower())
    if not unicodedata.is_normalized("NFKC", text):
        text = _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).lower())
    return text


def title_key(title: str) -> str:
    """A short hash of the normalised title: groups one item posted on several channels."""
    return hashlib.blake2b(normalise_title(title).encode("utf-8"), digest_size=8).hexdigest()


def title_key_list(titles: list[str | None]) -> list[str | None]:
    """``title_key`` of each title of a list (None where there is no title), by the column.

    For an import's batches that hold lists rather than Arrow arrays (the XLSX reader, which does not load
    pyarrow): the same steps as ``normalise_title``, each over the whole column in one C loop (``map``), and
    ``normalise_title`` itself only for the titles that are not NFKC-stable after the first step.
    """
    texts = list(map(_NOT_WORD.sub, repeat(""), map(str.lower, [title or "" for title in titles])))
    for index, stable in enumerate(map(_nfkc_stable, texts)):
        if not stable:
            texts[index] = normalise_title(titles[index] or "")
    keys: list[str | None] = list(map(_hexdigest, map(_short_blake2b, map(_utf8, texts))))
    if not all(titles):
        keys = [key if title else None for key, title in zip(keys, titles, strict=True)]
    return keys


# Code points whose part in ``normalise_title`` needs no Unicode tables beyond the ones Python itself
# gives here: kept as they are (ASCII letters lower-cased) or removed. A title of only these has as its
# normal form the kept characters, which are NFKC-stable, so that ``title_keys`` can normalise it by
# columns; any other title takes ``normalise_title`` itself. The sets are computed from Python's own
# ``unicodedata`` and ``re`` (no other library's Unicode version decides anything); tests/test_identity.py
# compares the two on generated titles.
_KEPT_CANDIDATES = ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A), (0x3400, 0x4DBF), (0x4E00, 0x9FFF))
_REMOVED_CANDIDATES = (
    (0x00, 0x7F),  # ASCII punctuation, spaces and controls
    (0xA0, 0xBF),  # Latin-1 punctuation (the middle dot of transliterated names)
    (0x2000, 0x206F),  # general punctuation: dashes, quotes, ellipsis, zero-width characters
    (0x3000, 0x303F),  # CJK symbols and punctuation: 、。「」【】〔〕
    (0xFE10, 0xFE1F),  # vertical forms
    (0xFE30, 0xFE4F),  # CJK compatibility forms
    (0xFF00, 0xFFEF),  # full-width punctuation: ，：；（）！？
)


def _code_ranges(points: list[int]) -> str:
    """A regular expression character class body (RE2 syntax) for sorted code points."""
    parts: list[str] = []
    start = previous = points[0]
    for point in [*points[1:], -1]:
        if point == previous + 1:
            previous = point
            continue
        parts.append(f"\\x{{{start:x}}}" if start == previous else f"\\x{{{start:x}}}-\\x{{{previous:x}}}")
        start = previous = point
    return "".join(parts)


def _title_classes() -> tuple[str, str]:
    """(class of kept characters, class of every character of a title ``title_keys`` normalises by columns)."""
    kept = [
        point
        for low, high in _KEPT_CANDIDATES
        for point in range(low, high + 1)
        if (c := chr(point)).isalnum()
        and not _NOT_WORD.fullmatch(c)
        and (c.lower() == c or (c.isascii() and c.lower() == chr(point + 32)))
        and unicodedata.combining(c) == 0
        and unicodedata.decomposition(c) == ""
        and unicodedata.is_normalized("NFKC", c)
    ]
    removed = [
        point
        for low, high in _REMOVED_CANDIDATES
        for point in range(low, high + 1)
        if _NOT_WORD.fullmatch(c := chr(point)) and c.lower() == c
    ]
    return _code_ranges(kept), _code_ranges(sorted({*kept, *removed}))


_TITLE_CLASSES: tuple[str, str] | None = None
_short_blake2b = functools.partial(hashlib.blake2b, digest_size=8)
_hexdigest = operator.methodcaller("hexdigest")
_nfkc_stable = functools.partial(unicodedata.is_normalized, "NFKC")
_utf8 = operator.methodcaller("encode", "utf-8")


def title_keys(titles: Any) -> Any:
    """``title_key`` of each title of an Arrow string array (null where there is no title), as an Arrow array.

    The import of a large file computes a million of these: the usual titles are normalised by columns and
    only hashed one by one, in C loops; the others go through ``title_key``'s own ``normalise_title``.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    global _TITLE_CLASSES
    if _TITLE_CLASSES is None:
        _TITLE_CLASSES = _title_classes()
    kept, known = _TITLE_CLASSES
    count = len(titles)
    if count == 0:
        return pa.array([], pa.string())
    normal = pc.ascii_lower(pc.replace_substring_regex(titles, f"[^{kept}]+", ""))
    texts: list[bytes | None] = normal.cast(pa.binary()).to_pylist()
    other = pc.invert(pc.fill_null(pc.match_substring_regex(titles, f"^[{known}]*$"), True))
    for index in np.flatnonzero(np.asarray(other, dtype=bool)).tolist():
        texts[index] = normalise_title(titles[index].as_py()).encode("utf-8")
    digests = b"".join(map(hashlib.blake2b.digest, map(_short_blake2b, [b"" if t is None else t for t in texts])))
    offsets = np.arange(0, 16 * (count + 1), 16, dtype=np.int32)
    hexed = pa.Array.from_buffers(
        pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(digests.hex().encode())]
    )
    return pc.if_else(pc.is_valid(titles), hexed, pa.scalar(None, pa.string()))


def title_fingerprint(title: str, local_day: date) -> str:
    return f"{local_day.isoformat()}:{title_key(title)}"


def identity_key(
    *,
    platform_id: str | None,
    url: str | None,
    title: str | None,
    local_day: date,
    kind: str = "other",
) -> str:
    """The identity of a publication in its channel, by docs/counting-rules.md's order of preference.

    For WeChat the article URL wins over ids: the same article appears in exports with an
    ``article_id`` of the push and in others with only its URL, and the URL is the one stable name.
    """
    if kind == "wechat" and url:
        key = wechat_article_key(url)
        if key:
            return "wx:" + key
    if platform_id:
        if kind == "wechat":
            return "id:" + wechat_article_id(platform_id, title)
        return "id:" + platform_id.strip()
    if url and not is_placeholder_link(url):
        key = wechat_article_key(url)
        if key:
            return "wx:" + key
        return "url:" + canonical_url(url)
    if title:
        return "fp:" + title_fingerprint(title, local_day)
    if url:
        return "url:" + canonical_url(url)  # a placeholder is all there is: the best name left
    raise ValueError("a publication needs an id, a url or a title")


# What exports and list pages put in the link column of an item that has no page of its own. Every such item
# of a file shares it: taken for a link, it made three different notices "the same publication".
_PLACEHOLDER_WORDS = frozenset(
    {"#", "/", "-", "--", "—", "无", "暂无", "空", "null", "none", "n/a", "na", "about:blank"}
)
_PLACEHOLDER_SCHEMES = ("javascript:", "#", "about:", "mailto:", "data:", "tel:")
# A query names a page ("/?p=123"); a fragment does not.
_SITE_ROOT = re.compile(r"^https?://[^/?#]+/?(?:index\.s?html?)?(?:#.*)?$", re.IGNORECASE)


def is_placeholder_link(url: str) -> bool:
    """Whether ``url`` names no page of its own: ``javascript:void(0);``, ``#``, ``无``, a site's home page.

    Such an item is known by its title and date instead (docs/counting-rules.md, rule 1).
    """
    text = url.strip().lower()
    return (
        not text or text in _PLACEHOLDER_WORDS or text.startswith(_PLACEHOLDER_SCHEMES) or bool(_SITE_ROOT.match(text))
    )


_MSGID_WITH_INDEX = re.compile(r"^(\d+)_(\d+)$")


def wechat_article_id(platform_id: str, title: str | None) -> str:
    """An article's id when no URL is known: the push's id plus the article's place in the push.

    The API readers give ``<article_id>:<index>`` and the statistics API ``<msgid>_<index>``; a
    back-end export gives only the push's 消息ID, shared by all articles of the push, so the
    article's normalised title tells them apart (docs/counting-rules.md, rule 1 and 6).
    """
    text = platform_id.strip()
    if ":" in text:
        return text
    match = _MSGID_WITH_INDEX.match(text)
    if match:
        return f"{match.group(1)}:{match.group(2)}"
    return f"{text}:{title_key(title)}" if title else text


def wechat_push_id(platform_id: str) -> str:
    """The push an id without a URL belongs to: the part before the article's place."""
    text = platform_id.strip()
    match = _MSGID_WITH_INDEX.match(text)
    return match.group(1) if match else text.split(":", 1)[0]


REPOST_TRUE = {"转发", "转载", "是", "true", "1", "yes", "y", "repost"}
REPOST_FALSE = {"原创", "否", "false", "0", "no", "n", "", "original"}


_MARKERS = {**dict.fromkeys(REPOST_TRUE, True), **dict.fromkeys(REPOST_FALSE, False)}


def is_repost_value(value: object) -> bool | None:
    """True/False for the accepted repost markers (docs/counting-rules.md), None for anything else."""
    found = _MARKERS.get(value) if value.__class__ is str else None
    if found is not None:
        return found
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        # Only the documented 1 and 0: a 2 or a NaN in the column is a mistake, not a repost.
        return True if value == 1 else False if value == 0 else None
    text = str(value).strip().lower()
    if text in REPOST_TRUE:
        return True
    if text in REPOST_FALSE:
        return False
    return None


ORIGINAL_TRUE = {"是", "true", "1", "yes", "y", "原创", "original"}
ORIGINAL_FALSE = {"否", "false", "0", "no", "n", "转发", "转载", "repost"}


def is_original_value(value: object) -> bool | None:
    """True/False for the values of an inverse repost column (是否原创, 原创), None for anything else.

    Yes-values (是, true, 1, yes) mean original and no-values mean repost; the words 原创, 转发 and
    转载 keep their own meaning; an empty cell is original, as in a repost column
    (docs/counting-rules.md).
    """
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return True if value == 1 else False if value == 0 else None  # 2 or NaN: a mistake
    text = str(value).strip().lower()
    if not text or text in ORIGINAL_TRUE:
        return True
    if text in ORIGINAL_FALSE:
        return False
    return None


def wechat_push_estimate(local: datetime) -> str | None:
    """A push id for WeChat articles known without one (short ``/s/<code>`` links, RSS feeds).

    The articles of one push (群发/发布) go out at one moment, so articles sharing their publication
    time to the second are taken to be one push. This is an estimate (docs/counting-rules.md): two
    pushes in the same second merge, and a bare date (a time of midnight) says nothing about pushes, so
    such articles stay one push each (None).
    """
    if local.hour == 0 and local.minute == 0 and local.second == 0:
        return None
    return "t:" + local.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
