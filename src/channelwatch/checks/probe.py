"""The ``probe`` job action: is the homepage reachable? (站点无法访问, docs/inspection.md)

Inspectors request a site's homepage at least 20 times a day for a week; a request fails when the page
has not opened within 15 seconds. Each probe here is one such request — no retry, since a retry would
hide exactly the failures the inspectors count — and is recorded whatever its outcome.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from channelwatch import store
from channelwatch.eventloop import run_coroutine
from channelwatch.store import Store
from channelwatch.store.checkstate import ProbeResult

__all__ = ["ProbeOutcome", "probe_homepages"]


@dataclass
class ProbeOutcome:
    channel: str  # channel id
    url: str
    ok: bool
    http_status: int | None
    elapsed_ms: int
    error: str | None


async def _probe_one(channel: str, url: str, timeout: float) -> ProbeOutcome:
    import httpx

    from channelwatch.sources.http import USER_AGENT, redact

    started = time.monotonic()
    status: int | None = None
    error: str | None = None
    try:
        async with httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT}, follow_redirects=True, trust_env=False, timeout=timeout
        ) as client:
            # The whole page must arrive within the limit, not only the first byte.
            response = await asyncio.wait_for(client.get(url), timeout=timeout)
            status = response.status_code
            if status >= 400:
                error = f"返回 HTTP {status}"
    except (TimeoutError, httpx.TimeoutException):
        error = f"{timeout:g} 秒内未打开"
    except httpx.HTTPError as exc:
        error = redact(f"无法连接：{_problem(exc)}")[:500]
    elapsed = int((time.monotonic() - started) * 1000)
    return ProbeOutcome(channel, url, error is None, status, elapsed, error)


def _problem(exc: BaseException) -> str:
    """The network failure under httpx's error, in Chinese (``failures.network_problem``), when there is one."""
    from channelwatch.failures import network_problem

    # The deepest: anyio's "All connection attempts failed" stands on the attempts' own errors (refused, …),
    # gathered in an exception group when the name has several addresses.
    found: OSError | None = None
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError):
            found = cause
        if isinstance(cause, BaseExceptionGroup) and cause.exceptions:
            cause = cause.exceptions[0]
        else:
            cause = cause.__cause__ or cause.__context__
    return network_problem(found) if found is not None else str(exc) or type(exc).__name__


def probe_homepages(opened: Store, channel_keys: list[str] | None = None) -> list[ProbeOutcome]:
    """Probe the homepage (``[channels.poll] homepage``) of every (or each named) website channel once."""
    timeout = opened.instance.config.inspection.probe_timeout
    targets = [
        (c.id, c.homepage)
        for c in opened.instance.channels(channel_keys)
        if c.kind == "website" and c.homepage is not None
    ]
    if not targets:
        return []

    async def run() -> list[ProbeOutcome]:
        return list(await asyncio.gather(*(_probe_one(key, url, timeout) for key, url in targets if url)))

    outcomes = run_coroutine(run)
    now = store.utc_now()
    with store.write(opened.engine) as conn:
        conn.execute(
            ProbeResult.__table__.insert(),  # type: ignore[attr-defined]
            [
                {
                    "channel_id": opened.channel_id(o.channel),
                    "url": o.url,
                    "probed_at": now,
                    "ok": o.ok,
                    "http_status": o.http_status,
                    "elapsed_ms": o.elapsed_ms,
                    "error": o.error,
                }
                for o in outcomes
            ],
        )
    return outcomes
