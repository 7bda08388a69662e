"""What every source yields, and the registry that maps a config's ``poll.type`` to a source.

Terms used by every source module:

*observed publication* (``Observed``)
    One post as a source saw it: a platform id and/or URL and/or title, a publication time
    (aware, any zone), whether it is a repost, and where it was seen (``origin``: a file line or a
    page URL, for error messages). It carries no identity key: ``ingest`` computes that, so that
    every source obeys the same counting rules (docs/counting-rules.md).

*poll source*
    A class registered under a ``poll.type`` (``html-list``, ``rss``, ``weibo``, ``wechat``). Its
    ``Options`` model validates the channel's ``[channels.poll]`` table; unknown keys are errors.
    The registry is lazy (type → "module:Class") so that ``channelwatch --help`` imports no HTTP or
    HTML library.

*page*
    What a poll source yields, one per listing page (a list page, a feed, one API answer): the
    observed publications in listing order, and apart from them the *pinned* ones (sticky posts
    shown on top out of date order), which never decide whether paging goes on.

*poll context* (``PollContext``)
    What ``polling`` hands a source: the shared HTTP client (sources never build one), the office
    time zone, whether this is a ``--full`` poll, and ``known()`` to ask which observed publications
    the store already holds (a website source uses it to skip article pages it has read before).

A source raises ``SourceError`` subclasses (``FetchError``, ``BlockedError``, ``LayoutError``) with a
Chinese message; ``polling`` records it on the run and stores nothing of that run.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

if TYPE_CHECKING:
    from channelwatch.sources.hosts import HostPolicy
    from channelwatch.sources.http import Fetched, HttpClient

__all__ = [
    "DEFAULT_POLL_TIMEOUT",
    "Observed",
    "Page",
    "PollContext",
    "PollOptions",
    "PollSource",
    "parse_duration",
    "poll_source_class",
    "register_poll_source",
    "validate_poll_options",
]


@dataclass(slots=True)
class Observed:
    """One publication as a source saw it."""

    published_at: datetime
    platform_id: str | None = None
    title: str | None = None
    url: str | None = None
    is_repost: bool = False
    column_name: str | None = None
    push_id: str | None = None
    origin: str = ""


DEFAULT_POLL_TIMEOUT = 120.0
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[\w.-]+)$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str | int | float) -> float:
    """``"2s"``, ``"30m"``, ``"1.5h"``, ``"500ms"`` or a number of seconds → seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"无法识别的时长「{text}」（例如 2s、30m、1h、1d）")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class PollOptions(BaseModel):
    """Keys every ``[channels.poll]`` table accepts; each source extends this model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    max_pages: int = Field(default=5, ge=1, le=10000)
    min_interval: float = 2.0
    # The whole poll of the channel (every page, retry and parse) ends by then: a server that drips
    # a byte a second passes every per-read timeout.
    timeout: float = Field(default=DEFAULT_POLL_TIMEOUT, gt=0, le=86400)
    # Hosts besides those of the configured URLs that the poll may reach (redirects, article links).
    allow_hosts: tuple[str, ...] = ()

    @field_validator("min_interval", "timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("allow_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            return value
        for host in value:
            if not isinstance(host, str) or not _HOST.match(host.strip()):
                raise ValueError(f"「{host}」不是主机名（只写主机名，如 www.example.gov.cn，不带 http:// 和路径）")
        return tuple(h.strip().lower() for h in value)

    def given_urls(self) -> list[str]:
        """The absolute URLs this configuration names (``url``, ``base_url``, …): the channel's own hosts."""
        return [v for v in self.__dict__.values() if isinstance(v, str) and re.match(r"(?i)^https?://", v)]


@dataclass
class Page:
    """One listing page as a source read it."""

    url: str  # for messages; never carries a secret (see http.redact)
    entries: list[Observed] = field(default_factory=list)
    pinned: list[Observed] = field(default_factory=list)
    last: bool = False  # the source will fetch no further page (max_pages reached, a feed, the end)
    skipped: int = 0  # elements of the page that were not entries (spacers, pagers), counted on the run

    @property
    def count(self) -> int:
        return len(self.entries) + len(self.pinned)


@dataclass
class PollContext:
    """What a poll source gets from ``polling`` for one run of one channel."""

    channel: str  # the channel id, for messages
    zone: str
    client: HttpClient
    full: bool = False
    # Which of these publications the store already holds: index → stored publication time (UTC).
    known: Callable[[list[Observed]], Awaitable[dict[int, datetime]]] | None = None
    where: str = ""  # "channels[2](id=weibo).poll", for messages that point at the config
    last_good: int = 0  # entries the channel's last successful poll read (0: none yet)
    last_good_pages: int = 0  # pages that poll read
    policy: HostPolicy | None = None  # the hosts the poll may reach (None: only each request's own host)


class PollSource:
    """Base of poll sources: set ``Options`` and implement ``pages()``.

    ``pages()`` yields one ``Page`` per listing page, newest first, and stops at the end of the
    listing or at ``max_pages``; the caller stops iterating early when a page holds nothing new
    (incremental polling), so a source must not do work between pages that it cannot abandon.
    """

    Options: ClassVar[type[PollOptions]] = PollOptions
    label: ClassVar[str] = "poll"

    def __init__(self, options: PollOptions, context: PollContext) -> None:
        self.options = options
        self.context = context

    def describe(self) -> str:
        """The run's ``source`` column: the poll type and what it polls (never a secret)."""
        return self.options.type

    def pages(self) -> AsyncIterator[Page]:
        raise NotImplementedError

    async def fetch(self, method: str, url: str, **kwargs: Any) -> Fetched:
        """A request through the shared client, paced by this channel's ``min_interval``."""
        return await self.context.client.request(
            method, url, min_interval=self.options.min_interval, policy=self.context.policy, **kwargs
        )


_REGISTRY: dict[str, str] = {}


def register_poll_source(poll_type: str, target: str) -> None:
    """Register ``"package.module:Class"`` under ``poll_type``."""
    _REGISTRY[poll_type] = target


def known_poll_types() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def poll_source_class(poll_type: str) -> type[PollSource]:
    _load_builtin()
    target = _REGISTRY[poll_type]
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    assert issubclass(cls, PollSource)
    return cls


def _load_builtin() -> None:
    if _REGISTRY:
        return
    # Filled in by the polling feature: one entry per source module.
    for poll_type, target in _BUILTIN.items():
        _REGISTRY.setdefault(poll_type, target)


_BUILTIN: dict[str, str] = {
    "html-list": "channelwatch.sources.website:HtmlListSource",
    "rss": "channelwatch.sources.rss:FeedSource",
    "weibo": "channelwatch.sources.weibo:WeiboSource",
    "wechat": "channelwatch.sources.wechat:WechatSource",
}


def validate_poll_options(table: dict[str, Any]) -> str | None:
    """None when ``table`` is a valid poll config, else ``.key：reason`` for the error message."""
    poll_type = table.get("type")
    types = known_poll_types()
    if poll_type not in types:
        return f".type：未知的抓取类型「{poll_type}」，可选：{'、'.join(types) or '（无）'}"
    try:
        poll_source_class(poll_type).Options.model_validate(table)
    except ValidationError as exc:
        from channelwatch.validation import describe_problem

        detail = exc.errors()[0]
        key = ".".join(str(p) for p in detail["loc"])
        return f".{key}：{describe_problem(detail)}"
    return None
