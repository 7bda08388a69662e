"""The ``link-check`` job action: dead links on the homepage and the column pages (链接不可用).

The links are those the latest poll found on the channel's homepage and on the first page of each
column (``store.checkstate.PageObservation``). Each distinct link is requested once: ``HEAD`` first,
and ``GET`` when ``HEAD`` fails other than by a timeout (many CMSs answer ``HEAD`` with 405 or not at all). At most
``link_concurrency`` requests run at once, and two requests to one host are at least the channel's
``min_interval`` apart, as for polls.

Monitoring platforms and inspectors tell two kinds of failure apart (docs/inspection.md):

- **确定** (certain): the site's own link answers 404, 403 or 410 — the page is gone;
- **疑似** (suspected): a timeout, a 5xx, a refused connection, or any failure of another site's link —
  possibly a failure "only at the moment of the check". A suspected link is requested again after
  ``link_recheck_delay``, and reported only when it fails again.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from channelwatch import store
from channelwatch.eventloop import run_coroutine
from channelwatch.instance.config import ChannelConfig, InspectionConfig
from channelwatch.store import Store
from channelwatch.store.checkstate import LinkCheck, LinkFinding, latest_pages

__all__ = ["CERTAIN", "SUSPECTED", "DeadLink", "LinkCheckOutcome", "check_links", "classify"]

CERTAIN = "确定"
SUSPECTED = "疑似"
GONE = frozenset({403, 404, 410})


@dataclass
class DeadLink:
    url: str
    found_on: str
    status: str  # "404", "503", "timeout" or "error"
    certainty: str


@dataclass
class LinkCheckOutcome:
    channel: str
    checked: int = 0
    dead: list[DeadLink] = field(default_factory=list)
    recovered: int = 0  # suspected at first, fine when requested again


def _host(url: str) -> str:
    parts = urlsplit(url)
    return (parts.hostname or "").lower() + (f":{parts.port}" if parts.port else "")


def classify(url: str, found_on: str, status: str) -> str:
    """确定 for the site's own link answering 404/403/410, else 疑似."""
    same_host = _host(url) == _host(found_on)
    return CERTAIN if same_host and status.isdigit() and int(status) in GONE else SUSPECTED


class _Checker:
    """Requests links with bounded concurrency and a per-host minimum interval."""

    def __init__(self, client: Any, limit: asyncio.Semaphore, interval: float) -> None:
        self.client = client
        self.limit = limit
        self.interval = interval
        self.next_at: dict[str, float] = {}
        self.lock = asyncio.Lock()

    async def _pace(self, url: str) -> None:
        async with self.lock:
            host = _host(url)
            now = time.monotonic()
            wait = self.next_at.get(host, 0.0) - now
            self.next_at[host] = max(now, self.next_at.get(host, 0.0)) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)

    async def _request(self, method: str, url: str) -> str | None:
        """None when the link works, else its failure: an HTTP status, ``timeout`` or ``error``."""
        import httpx

        await self._pace(url)
        try:
            async with self.client.stream(method, url) as response:
                status = response.status_code
        except httpx.TimeoutException:
            return "timeout"
        except httpx.HTTPError:
            return "error"
        return None if status < 400 else str(status)

    async def check(self, url: str) -> str | None:
        async with self.limit:
            failure = await self._request("HEAD", url)
            if failure is None or failure == "timeout":
                # A server too slow for HEAD is as slow for GET: the re-check asks again anyway.
                return failure
            return await self._request("GET", url)


def links_of(conn: Any, channel_id: int, limit: int, skip: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(link, page it was found on) of the channel's latest homepage and column reads, homepage first.

    ``skip``: links not to check — the homepage, whose availability the ``probe`` job measures (a link
    check must not add requests to the share of failed homepage requests it reports).
    """
    pages = sorted(latest_pages(conn, channel_id).values(), key=lambda row: (row.kind != "homepage", row.id))
    found: dict[str, str] = {}
    for page in pages:
        for link in json.loads(page.links or "[]"):
            if link in skip:
                continue
            found.setdefault(link, page.url)
            if len(found) >= limit:
                return list(found.items())
    return list(found.items())


async def _check_channel(
    channel: ChannelConfig, links: list[tuple[str, str]], settings: InspectionConfig, limit: asyncio.Semaphore
) -> LinkCheckOutcome:
    import httpx

    from channelwatch.sources.base import parse_duration
    from channelwatch.sources.http import USER_AGENT

    interval = parse_duration((channel.poll or {}).get("min_interval", 2.0))
    outcome = LinkCheckOutcome(channel.id, checked=len(links))
    timeout = settings.link_timeout
    async with httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT}, follow_redirects=True, trust_env=False, timeout=timeout
    ) as client:
        checker = _Checker(client, limit, interval)
        first = await asyncio.gather(*(checker.check(url) for url, _ in links))
        failed = [(url, page, status) for (url, page), status in zip(links, first, strict=True) if status is not None]
        suspected = [(url, page, status) for url, page, status in failed if classify(url, page, status) == SUSPECTED]
        for url, page, status in failed:
            if classify(url, page, status) == CERTAIN:
                outcome.dead.append(DeadLink(url, page, status, CERTAIN))
        if suspected:
            # A failure may be of the moment only: ask again before reporting it.
            await asyncio.sleep(settings.link_recheck_delay)
            again = await asyncio.gather(*(checker.check(url) for url, _, _ in suspected))
            for (url, page, _), second in zip(suspected, again, strict=True):
                if second is None:
                    outcome.recovered += 1
                else:
                    outcome.dead.append(DeadLink(url, page, second, classify(url, page, second)))
    return outcome


def check_links(opened: Store, channel_keys: list[str] | None = None) -> list[LinkCheckOutcome]:
    """Check the links of every (or each named) website channel that has pages read by a poll."""
    settings = opened.instance.config.inspection
    channels = [c for c in opened.instance.channels(channel_keys) if c.kind == "website"]
    work: list[tuple[ChannelConfig, list[tuple[str, str]]]] = []
    with store.read(opened.engine) as conn:
        for channel in channels:
            skip = frozenset({channel.homepage} if channel.homepage else set())
            links = links_of(conn, opened.channel_id(channel.id), settings.max_links, skip)
            if links:
                work.append((channel, links))
    if not work:
        return []
    started = store.utc_now()

    async def run() -> list[LinkCheckOutcome]:
        limit = asyncio.Semaphore(settings.link_concurrency)  # for all channels together
        return list(await asyncio.gather(*(_check_channel(c, links, settings, limit) for c, links in work)))

    outcomes = run_coroutine(run)
    finished = store.utc_now()
    checks, findings = LinkCheck.__table__, LinkFinding.__table__  # type: ignore[attr-defined]
    with store.write(opened.engine) as conn:
        for outcome in outcomes:
            channel_id = opened.channel_id(outcome.channel)
            inserted = conn.execute(
                checks.insert().values(
                    channel_id=channel_id,
                    started_at=started,
                    finished_at=finished,
                    status="ok",
                    checked=outcome.checked,
                    failed=len(outcome.dead),
                )
            ).inserted_primary_key
            assert inserted is not None
            if outcome.dead:
                conn.execute(
                    findings.insert(),
                    [
                        {
                            "check_id": int(inserted[0]),
                            "channel_id": channel_id,
                            "url": dead.url,
                            "found_on": dead.found_on,
                            "status": dead.status,
                            "certainty": dead.certainty,
                            "checked_at": finished,
                        }
                        for dead in outcome.dead
                    ],
                )
    return outcomes


def latest_findings(conn: Any, channel_id: int, since: Any, until: Any) -> tuple[Any, list[Any]]:
    """The latest finished link check of a channel started in [since, until), and its dead links."""
    checks, findings = LinkCheck.__table__, LinkFinding.__table__  # type: ignore[attr-defined]
    row = conn.execute(
        select(checks)
        .where(
            checks.c.channel_id == channel_id,
            checks.c.status == "ok",
            checks.c.started_at >= since,
            checks.c.started_at < until,
        )
        .order_by(checks.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None, []
    dead = list(conn.execute(select(findings).where(findings.c.check_id == row.id).order_by(findings.c.id)))
    return row, dead
