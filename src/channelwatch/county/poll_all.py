"""Polling the channels of many offices at once, on one event loop and one HTTP client.

Each office is polled by ``ingest.poll.poll_channels_async`` exactly as ``channelwatch poll`` polls
it (its runs, its layout alarms); running all offices on one loop lets a county's hundreds of
channels wait on the network together instead of office after office, and one store thread serves
them all, so writes go in grouped transactions on one connection (a thread per office would queue
for the connection pool). A failing office (or channel)
becomes failed results of its own and never stops the others.
"""

from __future__ import annotations

import asyncio
import sys

from channelwatch import eventloop
from channelwatch.ingest.poll import (
    DEFAULT_CONCURRENCY,
    PollResult,
    StoreThread,
    last_good_seen,
    poll_channels_async,
    pollable_channels,
)
from channelwatch.store import Store

__all__ = ["poll_offices"]


def poll_offices(
    stores: dict[str, Store], *, full: bool = False, concurrency: int = DEFAULT_CONCURRENCY
) -> dict[str, list[PollResult]]:
    """Poll every pollable channel of every office; results per office id."""
    from channelwatch.sources.http import HttpClient

    chosen = {key: pollable_channels(opened) for key, opened in stores.items()}
    chosen = {key: channels for key, channels in chosen.items() if channels}
    if not chosen:
        return {}

    async def run() -> dict[str, list[PollResult]]:
        engine = next(iter(stores.values())).engine
        database = StoreThread(engine)
        try:
            # What every channel's last good poll saw, in one query for the whole county: a query per
            # office would hold each office's first request until the store thread got to it.
            ids = [stores[key].channel_id(c.id) for key, channels in chosen.items() for c in channels]
            seen = await database.call(last_good_seen, engine, ids)
            async with HttpClient() as client:
                outcomes = await asyncio.gather(
                    *(
                        poll_channels_async(
                            stores[key],
                            channels,
                            full=full,
                            concurrency=concurrency,
                            client=client,
                            database=database,
                            last_good=seen,
                        )
                        for key, channels in chosen.items()
                    ),
                    return_exceptions=True,
                )
        finally:
            database.close()
        results: dict[str, list[PollResult]] = {}
        for key, outcome in zip(chosen, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                message = f"{type(outcome).__name__}: {outcome}"[:500]
                results[key] = [PollResult(c.id, 0, "failed", 0, 0, 0, message) for c in chosen[key]]
            else:
                results[key] = outcome
        return results

    # See ingest/poll.py: a 1 ms switch interval keeps the store threads from waiting on the GIL.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, 0.001))
    try:
        return eventloop.run(run())
    finally:
        sys.setswitchinterval(previous)
