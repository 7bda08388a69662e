"""Identity of a publication inside its channel (docs/counting-rules.md, rule 1), as pure functions.

An identity key is a short string with a prefix saying which rule produced it:

- ``id:<platform id>``     Weibo ``mid``; WeChat ``article_id``/``msgid`` + index when no URL is known
- ``wx:<biz>/<mid>/<idx>/<sn>`` or ``wx:/s/<code>``   a WeChat article URL, normalised
- ``url:<canonical url>``  any other URL
- ``fp:<date>:<hash>``     the last resort: normalised title + local publication date

The prefix keeps the rules apart: a title fingerprint can never collide with a URL.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, date, datetime
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


def canonical_url(url: str) -> str:
    """Scheme and host lower-cased, default port, fragment and tracking parameters dropped.

    Remaining query parameters are sorted so that ``?b=2&a=1`` and ``?a=1&b=2`` are one URL.
    The path keeps its case: servers may treat ``/A.html`` and ``/a.html`` as different pages.
    """
    text = url.strip()
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
    if url:
        key = wechat_article_key(url)
        if key:
            return "wx:" + key
        return "url:" + canonical_url(url)
    if title:
        return "fp:" + title_fingerprint(title, local_day)
    raise ValueError("a publication needs an id, a url or a title")


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
