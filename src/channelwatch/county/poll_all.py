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
import threading
from typing import TYPE_CHECKING

from channelwatch import eventloop
from channelwatch.ingest import shares
from channelwatch.ingest.poll import (
    DEFAULT_CONCURRENCY,
    PollResult,
    StoreThread,
    hosts_of,
    last_good_seen,
    poll_channels_async,
    pollable_channels,
    recovered_results,
)
from channelwatch.ingest.shares import RunLog, WriteTurns
from channelwatch.store import Store

if TYPE_CHECKING:
    from channelwatch.instance.config import ChannelConfig

__all__ = ["poll_offices"]


def poll_offices(
    stores: dict[str, Store],
    *,
    full: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    stop: threading.Event | None = None,
) -> dict[str, list[PollResult]]:
    """Poll every pollable channel of every office; results per office id.

    A county's hundreds of channels are split by host over the machine's cores (``ingest/shares.py``),
    each office's share keeping its part of the office's concurrency.
    """
    chosen = {key: pollable_channels(opened) for key, opened in stores.items()}
    chosen = {key: channels for key, channels in chosen.items() if channels}
    if not chosen:
        return {}
    pairs = [(key, channel) for key, channels in chosen.items() for channel in channels]
    engine = next(iter(stores.values())).engine
    processes = shares.processes_for(len(pairs), concurrency, engine)
    if processes == 1:
        return _poll_here(stores, chosen, full, concurrency, stop)

    def poll(
        share: list[tuple[str, ChannelConfig]], turns: WriteTurns | None, runs: RunLog | None
    ) -> dict[str, list[PollResult]]:
        mine: dict[str, list[ChannelConfig]] = {}
        for key, channel in share:
            mine.setdefault(key, []).append(channel)
        # Each office keeps its share of its own concurrency: together at most ``concurrency`` per office.
        limits = {key: max(1, concurrency * len(channels) // len(chosen[key])) for key, channels in mine.items()}
        return _poll_here(stores, mine, full, limits, stop, turns, runs)

    def recover(share: list[tuple[str, ChannelConfig]], run_ids: list[int], why: str) -> dict[str, list[PollResult]]:
        found = recovered_results(engine, [(stores[key], channel) for key, channel in share], run_ids, why)
        back: dict[str, list[PollResult]] = {}
        for (key, _), result in zip(share, found, strict=True):
            back.setdefault(key, []).append(result)
        return back

    outcomes = shares.poll_split(
        pairs,
        lambda pair: hosts_of(pair[1]),
        processes,
        engine=engine,
        stop=stop,
        poll=poll,
        recover=recover,
        what="county poll",
    )
    results: dict[tuple[str, str], PollResult] = {}
    for outcome in outcomes:
        for key, found in outcome.items():
            results.update(((key, r.channel), r) for r in found)
    return {key: [results[key, c.id] for c in channels] for key, channels in chosen.items()}


def _poll_here(
    stores: dict[str, Store],
    chosen: dict[str, list[ChannelConfig]],
    full: bool,
    concurrency: int | dict[str, int],
    stop: threading.Event | None,
    turns: WriteTurns | None = None,
    runs: RunLog | None = None,
) -> dict[str, list[PollResult]]:
    """The chosen channels of each office polled on one event loop in this process."""
    from channelwatch.sources.http import HttpClient

    async def run() -> dict[str, list[PollResult]]:
        engine = next(iter(stores.values())).engine
        database = StoreThread(engine, turns, runs)
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
                            concurrency=concurrency if isinstance(concurrency, int) else concurrency[key],
                            client=client,
                            database=database,
                            last_good=seen,
                            stop=stop,
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
