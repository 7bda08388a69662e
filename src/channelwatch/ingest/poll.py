"""Polling channels: every pollable channel concurrently, each one's pages in order, one run each.

``poll_channels`` is what ``channelwatch poll`` and the daemon call. For each channel it records a
``running`` run, walks the source's pages through the shared ``HttpClient`` and then stores all it
saw in one transaction that also closes the run (``ingest.store_observed``), so a crash or a failed
page stores nothing and a repeat poll changes no count (docs/counting-rules.md, rule 2).

Rules:

* **Incremental**: paging stops at the first page on which no entry is new (not in the store and not
  seen earlier in this poll); pinned entries never count for that. ``full=True`` walks to
  ``max_pages`` or the end of the listing.
* **Layout alarm**: a first page with no entries where the channel's last good poll saw some, or a
  source's ``LayoutError`` (dates that no longer parse, entries without links, a first list page far
  below the last good poll's entries per page, which sources get in ``PollContext.last_good``), fails
  the run with "页面结构可能已变化". Elements a source skips as no entries (spacers, pagers) are
  counted in the run's message.
* **Failures** never raise out of ``poll_channels``: each becomes a failed run with its Chinese reason
  and a ``PollResult`` with ``status == "failed"``. Messages pass ``http.redact`` (no secret).
* **Concurrency**: channels run concurrently on one event loop, at most ``concurrency`` requests on
  the wire at a time (``sources.http.RequestSlots``; a channel parsing or storing holds no place, and
  its deadline leaves out the time it queued for one); at most twice that many channels are under way.
  The HTTP layer also limits requests per host and keeps each channel's ``min_interval``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, select

from channelwatch import store
from channelwatch.dates import to_office
from channelwatch.errors import ChannelwatchError, ImplausibleDate, LayoutError, UserError
from channelwatch.eventloop import run_coroutine
from channelwatch.failures import describe
from channelwatch.ingest import shares
from channelwatch.ingest.runs import record_of, store_observed
from channelwatch.ingest.shares import RunLog, WriteTurns
from channelwatch.openfiles import channels_under_way
from channelwatch.redaction import upstream
from channelwatch.store import Store
from channelwatch.store.checkstate import PageRecord, record_pages
from channelwatch.store.counts import held_counts
from channelwatch.store.models import Publication, Run
from channelwatch.store.schema import latest_run_ids

if TYPE_CHECKING:
    from channelwatch.instance.config import ChannelConfig
    from channelwatch.sources.base import Observed, Page, PollSource
    from channelwatch.sources.http import ConditionalCache, HttpClient, HttpSettings, RequestSlots

__all__ = [
    "DEFAULT_CONCURRENCY",
    "PollResult",
    "StoreThread",
    "hosts_of",
    "last_good_seen",
    "poll_channels",
    "poll_channels_async",
    "pollable_channels",
    "recovered_results",
]

log = logging.getLogger(__name__)
# Tracebacks of unexpected poll failures: the daemon writes them to its log, the command line only with
# --verbose; the terminal gets one line per channel.
TRACEBACKS = logging.getLogger("channelwatch.tracebacks")

INTERRUPTED = "interrupted"
STOPPED_MESSAGE = "收到停止信号（SIGTERM 或 Ctrl+C），抓取中断；本次未保存任何数据，下次抓取会重新读取"

DEFAULT_CONCURRENCY = 100
LAYOUT_CHANGED = "页面结构可能已变化"
_LOOKUP_CHUNK = 500

# Conditional-request caches live as long as the process (the daemon polls many times), one per database.
_CACHES: dict[str, ConditionalCache] = {}


@dataclass
class PollResult:
    channel: str  # channel id
    run_id: int
    status: str  # "ok" | "failed" | "interrupted" (the daemon was stopped)
    pages: int
    seen: int
    new: int
    message: str | None  # Chinese reason when failed (or a warning when ok)
    seconds: float = 0.0


def pollable_channels(opened: Store, channel_keys: list[str] | None = None) -> list[ChannelConfig]:
    """The named channels (each must have a ``[channels.poll]`` table), else every pollable one."""
    instance = opened.instance
    if not channel_keys:
        return [c for c in instance.config.channels if c.poll is not None]
    chosen = []
    for key in dict.fromkeys(channel_keys):
        channel = instance.channel(key)
        if channel.poll is None:
            raise UserError(
                f"渠道「{key}」没有配置抓取方式（{instance.config_path} 中该渠道的 [channels.poll]），只能导入导出文件"
            )
        chosen.append(channel)
    return chosen


def poll_channels(
    opened: Store,
    channel_keys: list[str] | None = None,
    *,
    full: bool = False,
    job_id: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    settings: HttpSettings | None = None,
    stop: threading.Event | None = None,
) -> list[PollResult]:
    """Poll the named (default: every pollable) channels concurrently; never raises for a channel's failure.

    When ``stop`` is set (the daemon received SIGTERM), the polls still running are cut short within a
    fraction of a second and their runs closed as ``interrupted``.
    """
    channels = pollable_channels(opened, channel_keys)
    if not channels:
        return []
    processes = shares.processes_for(len(channels), concurrency, opened.engine)
    if processes == 1:
        return _poll_here(opened, channels, full, job_id, concurrency, settings, stop)

    def poll(share: list[ChannelConfig], turns: WriteTurns | None, runs: RunLog | None) -> list[PollResult]:
        part = max(1, concurrency * len(share) // len(channels))
        return _poll_here(opened, share, full, job_id, part, settings, stop, turns, runs)

    def recover(share: list[ChannelConfig], run_ids: list[int], why: str) -> list[PollResult]:
        return recovered_results(opened.engine, [(opened, c) for c in share], run_ids, why, job_id)

    outcomes = shares.poll_split(
        channels, hosts_of, processes, engine=opened.engine, stop=stop, poll=poll, recover=recover
    )
    found = {r.channel: r for outcome in outcomes for r in outcome}
    return [found[c.id] for c in channels]


def _poll_here(
    opened: Store,
    channels: list[ChannelConfig],
    full: bool,
    job_id: str | None,
    concurrency: int,
    settings: HttpSettings | None,
    stop: threading.Event | None,
    turns: WriteTurns | None = None,
    runs: RunLog | None = None,
) -> list[PollResult]:
    """``channels`` polled on an event loop in this process; ``turns`` and ``runs``: see ``_Database``."""
    # The event loop (HTTP, parsing) and the store thread share the GIL, and SQLite releases it on
    # every row it writes: with the default 5 ms switch interval the store thread waits up to
    # 5 ms to get it back each time. 1 ms cuts a 1,000-channel poll by a fifth (bench_poll.py).
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, 0.001))
    try:
        database = _Database(opened.engine, turns, runs)
        try:
            # Called from inside an event loop (a caller's async code), it polls on a loop of its own.
            return run_coroutine(
                lambda: poll_channels_async(
                    opened,
                    channels,
                    full=full,
                    job_id=job_id,
                    concurrency=concurrency,
                    settings=settings,
                    stop=stop,
                    database=database,
                )
            )
        finally:
            database.close()
    finally:
        sys.setswitchinterval(previous)


def hosts_of(channel: ChannelConfig) -> list[str]:
    """The hosts a channel's poll may ask: its configured URLs with its source's defaults, ``allow_hosts``
    (redirects and article pages) and its columns' pages. A share keeps them together."""
    from channelwatch.sources.base import poll_source_class
    from channelwatch.sources.hosts import host_of

    assert channel.poll is not None
    options = poll_source_class(channel.poll["type"]).Options.model_validate(channel.poll)
    urls = [*options.given_urls(), *(column.url for column in channel.columns)]
    urls += [f"http://{host.strip()}/" for host in options.allow_hosts if host.strip()]
    hosts = [host for host in (host_of(url) for url in urls) if host]
    return hosts or [f"type:{channel.poll['type']}"]  # no URL: its source's fixed service, shared by its kind


def recovered_results(
    engine: Engine,
    pairs: list[tuple[Store, ChannelConfig]],
    run_ids: list[int],
    why: str,
    job_id: str | None = None,
) -> list[PollResult]:
    """What the store says of channels whose poll process ended without reporting, from the runs it started
    (``run_ids``, and no other: another process may be polling the same channels). Finished runs are reported
    as they are; runs it left running (which stored nothing) are closed as failed; a channel it never started
    gets a failed run of its own, so that the store shows the failure too."""
    message = f"抓取进程意外结束（{why}），本次未保存该渠道的数据，下次抓取会重新读取"
    wanted = {opened.channel_id(channel.id) for opened, channel in pairs}
    # channel's store id -> (run id, status, pages, seen, new, message)
    found: dict[int, tuple[int, str, int, int, int, str | None]] = {}
    table = Run.__table__  # type: ignore[attr-defined]
    with store.write(engine) as conn:
        query = table.select().where(table.c.id.in_(run_ids), table.c.kind == "poll").order_by(table.c.id)
        for run in conn.execute(query).all() if run_ids else []:
            if run.channel_id not in wanted:
                continue
            status, text = run.status, run.message
            if status == "running":
                status, text = "failed", message
                _close_run(conn, run.id, status, text, rows_read=run.rows_read, pages_fetched=run.pages_fetched)
            found[run.channel_id] = (int(run.id), status, run.pages_fetched, run.rows_read, run.rows_new, text)
        for opened, channel in pairs:
            key = opened.channel_id(channel.id)
            if key not in found:
                source = str((channel.poll or {}).get("type", "poll"))
                run_id = _insert_run(conn, channel_id=key, source=source, job_id=job_id)
                _close_run(conn, run_id, "failed", message, rows_read=0, pages_fetched=0)
                found[key] = (run_id, "failed", 0, 0, 0, message)
    return [PollResult(channel.id, *found[opened.channel_id(channel.id)]) for opened, channel in pairs]


class _Database:
    """Runs a poll's store work on one thread of its own, and commits writes in groups.

    SQLite lets one writer in at a time, and a writer that finds the lock taken sleeps in SQLite's busy
    handler (1, 2, 5, … 100 ms): threads writing runs at once spend the poll asleep (measured: 20× the
    ideal in scripts/bench_poll.py). So one thread does all store work, and the writes that queue up
    while it is busy (runs starting, channels' results) go in one transaction, each channel's work in
    a savepoint of its own: a channel's result is still stored whole or not at all.
    """

    def __init__(self, engine: Engine, turns: WriteTurns | None = None, runs: RunLog | None = None) -> None:
        self.engine = engine
        # A poll split over processes (ingest/shares.py): their store threads take turns writing, and a
        # forked poller notes each run it starts, for the parent to recover should this process die.
        self.turns: AbstractContextManager[Any] = turns if turns is not None else nullcontext()
        self.runs = runs
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="channelwatch-db")
        self._pending: list[tuple[Callable[[Connection], Any], asyncio.Future[Any], bool]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: function(*args, **kwargs))

    async def write(self, work: Callable[[Connection], Any], *, publications: bool = False) -> Any:
        """``work`` in the next grouped transaction; ``publications``: it stores publications."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((work, future, publications))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush())
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                works = [w for w, _, _ in batch]
                counted = any(p for _, _, p in batch)
                outcomes = await loop.run_in_executor(self.executor, self._write_batch, works, counted)
            except BaseException as exc:  # the commit itself failed: every write of the group failed
                for _, future, _ in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future, _), (ok, value) in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(value) if ok else future.set_exception(value)

    def _write_batch(self, works: list[Callable[[Connection], Any]], publications: bool) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        # The group's new publications are counted together at its end (store/counts.py, hold_counts) rather
        # than by the insert trigger's seven statements per row: a fifth less store time for new rows.
        with self.turns, store.write(self.engine) as conn, held_counts(conn) if publications else nullcontext():
            # Savepoints said to the driver itself: SQLAlchemy's begin_nested() costs more per channel
            # than the channel's few statements (profile of scripts/bench_poll.py).
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                for work in works:
                    cursor.execute("SAVEPOINT channelwatch_poll")
                    try:
                        value = work(conn)
                    except Exception as exc:
                        cursor.execute("ROLLBACK TO SAVEPOINT channelwatch_poll")
                        cursor.execute("RELEASE SAVEPOINT channelwatch_poll")
                        outcomes.append((False, exc))
                    else:
                        cursor.execute("RELEASE SAVEPOINT channelwatch_poll")
                        outcomes.append((True, value))
            finally:
                cursor.close()
        return outcomes

    def close(self) -> None:
        self.executor.shutdown(wait=True)


StoreThread = _Database  # public name for callers that share one store thread between polls


async def poll_channels_async(
    opened: Store,
    channels: list[ChannelConfig],
    *,
    full: bool = False,
    job_id: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    settings: HttpSettings | None = None,
    client: HttpClient | None = None,
    stop: threading.Event | None = None,
    database: _Database | None = None,
    last_good: dict[int, tuple[int, int]] | None = None,
) -> list[PollResult]:
    """``database``: a store thread shared with other calls (a county's offices, polled at once, write
    through one thread and one connection instead of one each); the caller closes it. ``last_good``:
    ``last_good_seen()`` of these channels, when the caller read it already (for every office at once)."""
    from channelwatch.sources.http import ConditionalCache, HttpClient

    limit = asyncio.Semaphore(max(1, concurrency))
    shared = database is not None
    database = database or _Database(opened.engine)
    positions = {c.id: i for i, c in enumerate(opened.instance.config.channels, 1)}
    # One future for every channel to wait on beside its walk (a waiting task per channel costs a
    # thousand-channel poll more than its stop check is worth).
    stopping: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    watcher = asyncio.ensure_future(_watch(stop, stopping)) if stop is not None else None
    try:
        # What each channel's last good poll saw (for the layout alarm), for all channels in one query:
        # a read per channel would queue a thousand small transactions on the store thread.
        if last_good is None:
            ids = [opened.channel_id(c.id) for c in channels]
            last_good = await database.call(last_good_seen, opened.engine, ids)
        seen_before = last_good

        def one(channel: ChannelConfig, http: HttpClient) -> Any:
            where = _where(opened, channel.id, positions)
            seen = seen_before.get(opened.channel_id(channel.id), (0, 0))
            watched = stopping if watcher is not None else None
            return _poll_one(opened, channel, http, database, limit, full, job_id, seen, where, watched)

        if client is not None:
            return await _each(channels, concurrency, lambda c: one(c, client))
        cache = _CACHES.setdefault(opened.instance.database_url, ConditionalCache())
        async with HttpClient(settings, cache=cache) as own:
            return await _each(channels, concurrency, lambda c: one(c, own))
    finally:
        if watcher is not None:
            watcher.cancel()
        if not shared:
            database.close()


async def _watch(stop: threading.Event, stopping: asyncio.Future[None]) -> None:
    """Carry the daemon's stop request (set from its signal handler's thread) into this event loop."""
    while not stop.is_set():
        await asyncio.sleep(0.1)
    if not stopping.done():
        stopping.set_result(None)


def _where(opened: Store, key: str, positions: dict[str, int] | None = None) -> str:
    index = (positions or {c.id: i for i, c in enumerate(opened.instance.config.channels, 1)})[key]
    return f"{opened.instance.config_path} 的 channels[{index}](id={key}).poll"


async def _each(
    channels: list[ChannelConfig], concurrency: int, poll: Callable[[ChannelConfig], Awaitable[PollResult]]
) -> list[PollResult]:
    """``poll`` of every channel, at most twice ``concurrency`` under way, results in the channels' order.

    A fixed set of workers taking the next channel, rather than a task per channel queued on the
    semaphore: a thousand waiting tasks cost the event loop more per page than a page's parsing.
    """
    results: list[PollResult | None] = [None] * len(channels)
    queue = iter(enumerate(channels))
    room = _room()

    async def worker() -> None:
        for index, channel in queue:
            async with room:
                results[index] = await poll(channel)

    # Twice the concurrency: a worker whose channel parses its page or waits for the store thread holds no
    # place among the ``concurrency`` requests in flight (``limit`` in ``_poll_one``); another worker takes it.
    await asyncio.gather(*(worker() for _ in range(max(1, min(2 * concurrency, len(channels))))))
    return [r for r in results if r is not None]


_ROOMS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _room() -> asyncio.Semaphore:
    """The channels this process polls at once, every office of a county together (``channels_under_way``)."""
    loop = asyncio.get_running_loop()
    room = _ROOMS.get(loop)
    if room is None:
        room = _ROOMS[loop] = asyncio.Semaphore(channels_under_way())
    return room


async def _within(waiters: set[asyncio.Future[Any]], timeout: float, slots: RequestSlots) -> None:
    """Until one of ``waiters`` is done, or the channel has used ``timeout`` seconds of its own time.

    The time it queued for a place among the poll's requests in flight is the poll's, not the channel's:
    a channel behind a hundred slow sites must not be failed as overdue before it asked anything.
    """
    counted = 0.0
    while True:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        queued = slots.queued()
        if done or queued - counted <= 0.001:
            return
        timeout, counted = queued - counted, queued


async def _poll_one(
    opened: Store,
    channel: ChannelConfig,
    client: HttpClient,
    database: _Database,
    limit: asyncio.Semaphore,
    full: bool,
    job_id: str | None,
    last_good_run: tuple[int, int],
    where: str,
    stopping: asyncio.Future[None] | None = None,
) -> PollResult:
    from channelwatch.sources.base import PollContext, poll_source_class
    from channelwatch.sources.hosts import HostPolicy
    from channelwatch.sources.http import RequestSlots, request_slots

    assert channel.poll is not None
    engine = opened.engine
    zone = opened.instance.timezone
    channel_id = opened.channel_id(channel.id)
    cls = poll_source_class(channel.poll["type"])
    options = cls.Options.model_validate(channel.poll)  # validated at load; this cannot fail

    async def known(observed: list[Observed]) -> dict[int, datetime]:
        keys = {index: _identity(o, zone, channel.kind) for index, o in enumerate(observed)}
        stored = await database.call(_lookup, engine, channel_id, [k for k in keys.values() if k])
        return {index: stored[key] for index, key in keys.items() if key in stored}

    last_good, last_good_pages = last_good_run
    policy = HostPolicy.of(options.given_urls(), options.allow_hosts)
    context = PollContext(channel=channel.id, zone=zone, client=client, full=full, known=known, policy=policy)
    context.where = where
    context.last_good, context.last_good_pages = last_good, last_good_pages
    source: PollSource = cls(options, context)
    # Every request of this channel (its walk's, in a task that copies this context, and its columns')
    # takes a place among the poll's ``concurrency`` requests in flight.
    slots = RequestSlots(limit)
    request_slots.set(slots)
    if stopping is not None and stopping.done():
        return PollResult(channel.id, 0, INTERRUPTED, 0, 0, 0, STOPPED_MESSAGE)
    started = time.monotonic()
    # The run is recorded while the first page is on its way (it is committed long before anything
    # is stored under it): waiting for the store thread before each channel's first request kept
    # the channel from the network doing nothing (scripts/bench_poll.py).
    run_insert = asyncio.ensure_future(
        database.write(partial(_insert_run, channel_id=channel_id, source=source.describe(), job_id=job_id))
    )
    run_insert.add_done_callback(_retrieve)
    if database.runs is not None:
        run_insert.add_done_callback(partial(_note_run, database.runs))
    walk = _Walk()
    status = "failed"
    message: str | None = None
    read: tuple[int, list[PageRecord], str | None] | None = None  # what the walk read, when it succeeded
    work = asyncio.ensure_future(_walk(source, walk, database, engine, channel_id, zone, channel.kind, full, last_good))
    waiters: set[asyncio.Future[Any]] = {work} if stopping is None else {work, stopping}
    try:
        await _within(waiters, options.timeout, slots)
    finally:
        if not work.done():
            # Cancelling ends the request being read and kills a parsing child (sources/isolated.py).
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
    try:
        if not work.cancelled():
            work.result()  # the source's own failure, if any
        elif stopping is not None and stopping.done():
            raise _Stopped
        else:
            raise _Overdue
        # The run's rows_read and pages_fetched describe the list walked above: the layout alarm
        # compares the next first page with them. Column entries are stored (new/known) beside it.
        listed = len(walk.collected)
        pages_read = await _read_site_pages(channel, client, zone, walk.collected)
        warning = None
        if not walk.collected and not last_good:
            warning = "未找到任何条目：如果该渠道确有发布，请检查配置中的地址和选择器"
        if walk.skipped:
            # Spacers and pagers among a list's entries: counted, so a change in them shows.
            note = f"跳过 {walk.skipped} 个不是条目的元素（分隔线、翻页、导航链接等）"
            warning = f"{warning}；{note}" if warning else note
        read = (listed, pages_read, warning)
    except _Stopped:
        status, message = INTERRUPTED, STOPPED_MESSAGE
    except _Overdue:
        message = (
            f"抓取超过时限 {options.timeout:g} 秒（[channels.poll] timeout）仍未完成，已中止"
            f"（已读 {walk.pages} 页）；本次未保存任何数据。如该渠道确实需要更长时间，请调大 timeout"
        )
    except Exception as exc:
        message = _failure(channel, exc)
    # Stored after the walk, holding no place among the requests in flight: other channels' requests go on meanwhile.
    run_id = await run_insert
    if read is not None:
        listed, pages_read, warning = read
        try:
            counts = await database.write(
                partial(
                    _store_run,
                    channel_id,
                    run_id,
                    walk.collected,
                    zone,
                    channel.kind,
                    walk.pages,
                    warning,
                    pages_read,
                    listed,
                ),
                publications=True,
            )
        except Exception as exc:
            message = _failure(channel, exc)
        else:
            seconds = time.monotonic() - started
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "poll %s: pages=%d seen=%d new=%d in %.2fs",
                    channel.id,
                    walk.pages,
                    len(walk.collected),
                    counts.new,
                    seconds,
                )
            return PollResult(channel.id, run_id, "ok", walk.pages, len(walk.collected), counts.new, warning, seconds)
    await database.write(
        partial(
            _close_run,
            run_id=run_id,
            status=status,
            message=message,
            rows_read=len(walk.collected),
            pages_fetched=walk.pages,
        )
    )
    seconds = time.monotonic() - started
    log.info("poll %s %s: %s", channel.id, status, message)
    return PollResult(channel.id, run_id, status, walk.pages, len(walk.collected), 0, message, seconds)


def _failure(channel: ChannelConfig, exc: Exception) -> str:
    """The run's message for a poll that failed: the source's Chinese reason, or the unforeseen error."""
    if isinstance(exc, ChannelwatchError):
        return upstream(str(exc), 2000)
    # A bug or an unforeseen answer must not stop the other channels.
    TRACEBACKS.debug("poll %s failed unexpectedly", channel.id, exc_info=exc)
    return upstream(f"抓取时发生意外错误：{describe(exc)}", 2000)


def _note_run(runs: RunLog, future: asyncio.Future[Any]) -> None:
    """A started run (committed) into the run log of a forked poller."""
    if not future.cancelled() and future.exception() is None:
        runs.add(int(future.result()))


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a background write's failure as seen (it is raised where the write is awaited, if it still is)."""
    if not future.cancelled():
        future.exception()


class _Stopped(Exception):
    """The daemon was asked to stop while the poll ran."""


class _Overdue(Exception):
    """The poll's deadline passed."""


@dataclass
class _Walk:
    """What a poll has read so far (kept when the poll is cut short, for the run's counts)."""

    pages: int = 0
    collected: list[Observed] = field(default_factory=list)
    skipped: int = 0  # elements of the pages that were not entries (spacers, pagers)


async def _walk(
    source: PollSource,
    walk: _Walk,
    database: _Database,
    engine: Engine,
    channel_id: int,
    zone: str,
    kind: str,
    full: bool,
    last_good: int,
) -> None:
    """Read the source's pages into ``walk``, stopping where incremental polling stops."""
    seen_identities: set[str] = set()
    listing = source.pages()
    try:
        async for page in listing:
            walk.pages += 1
            walk.skipped += page.skipped
            if page.count == 0:
                # An empty answer past the last page only ends the listing: not a page read.
                walk.pages = max(1, walk.pages - 1)
                if walk.pages == 1 and not walk.collected and last_good:
                    raise LayoutError(
                        f"{LAYOUT_CHANGED}：{page.url} 没有找到任何条目，而上次成功抓取时找到 {last_good} 条；"
                        "本次未保存任何数据，请检查网页或配置中的选择器"
                    )
                break
            _refuse_future_dates(page)
            walk.collected.extend(page.pinned)
            walk.collected.extend(page.entries)
            if page.last or full:
                continue  # no further page to decide about: spare the store a lookup
            if not await _has_new(page, database, engine, channel_id, zone, kind, seen_identities):
                break  # incremental: everything further down is older and already stored
    finally:
        await listing.aclose()  # type: ignore[attr-defined]


def _refuse_future_dates(page: Page) -> None:
    """An item dated after tomorrow is a typo on the site (2027 for 2026): stored, it would count in a year to
    come and keep the channel "fresh" until then, silencing the two-week alarm. The import refuses such a row;
    the poll fails, saying which item to correct, and stores nothing."""
    latest = datetime.now(UTC) + timedelta(days=1)
    for observed in [*page.entries, *page.pinned]:
        if observed.published_at > latest:
            what = f"「{observed.title[:40]}」" if observed.title else observed.url or observed.origin
            raise ImplausibleDate(
                f"{observed.origin} 的条目{what}发布时间为 {observed.published_at:%Y-%m-%d %H:%M}，晚于现在一天以上，"
                "不可能是发布时间：本次未保存任何数据，请在网站（或平台）上更正这一条的日期"
            )


async def _read_site_pages(
    channel: ChannelConfig, client: HttpClient, zone: str, collected: list[Observed]
) -> list[PageRecord]:
    """A website's homepage and the first page of each of its columns (docs/inspection.md).

    The dated entries of the columns join ``collected``: they are publications of the channel, and an
    article listed in two columns (or also in the main list) is one publication. A column that cannot
    be read does not fail the poll: its failure is recorded for the checks.
    """
    if channel.kind != "website" or channel.poll is None or not (channel.columns or channel.homepage):
        return []
    from channelwatch.sources.base import parse_duration
    from channelwatch.sources.website import column_options, read_page

    interval = parse_duration(channel.poll.get("min_interval", 2.0))
    records: list[PageRecord] = []
    if channel.homepage:
        reading = await read_page(client, channel.homepage, zone, min_interval=interval)
        records.append(
            PageRecord(
                "homepage",
                "首页",
                channel.homepage,
                reading.http_status,
                reading.error,
                [],
                reading.links,
                [d.isoformat() for d in reading.dates],
            )
        )
    known = {o.url for o in collected if o.url}
    for column in channel.columns:
        options = column_options(channel.poll, column.name, column.url, column.model_dump())
        reading = await read_page(client, column.url, zone, options=options, min_interval=interval)
        for observed in reading.observed(column.name):
            if observed.url is None or observed.url not in known:
                known.add(observed.url or "")
                collected.append(observed)
        records.append(
            PageRecord(
                "column",
                column.name,
                column.url,
                reading.http_status,
                reading.error,
                [
                    (link, to_office(d, zone).date().isoformat() if d else None, title)
                    for link, d, title in reading.entries
                ],
                reading.links,
                [],
            )
        )
    return records


def _identity(observed: Observed, zone: str, kind: str) -> str | None:
    try:
        return record_of(observed, zone, kind, remember=True).identity
    except ValueError:
        return None


async def _has_new(
    page: Page, database: _Database, engine: Engine, channel_id: int, zone: str, kind: str, seen: set[str]
) -> bool:
    """Whether any (non-pinned) entry of the page is neither stored nor seen earlier in this poll."""
    identities: list[str] = []
    for observed in [*page.entries, *page.pinned]:
        identity = _identity(observed, zone, kind)
        if identity is None:
            raise LayoutError(f"{LAYOUT_CHANGED}：{observed.origin} 既没有 id、链接也没有标题")
        identities.append(identity)
    ordered = identities[: len(page.entries)]
    candidates = [i for i in ordered if i not in seen]
    seen.update(identities)
    if not candidates:
        return False
    stored = await database.call(_lookup, engine, channel_id, candidates)
    return any(i not in stored for i in candidates)


def _lookup(engine: Engine, channel_id: int, identities: list[str]) -> dict[str, datetime]:
    """Stored publication time (UTC) of each of ``identities`` the channel already holds."""
    pub = Publication.__table__  # type: ignore[attr-defined]
    found: dict[str, datetime] = {}
    unique = list(dict.fromkeys(identities))
    with store.read(engine) as conn:
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[start : start + _LOOKUP_CHUNK]
            query = select(pub.c.identity, pub.c.published_at).where(
                pub.c.channel_id == channel_id, pub.c.identity.in_(chunk)
            )
            for identity, published in conn.execute(query):
                found[identity] = store.as_utc(published)
    return found


def last_good_seen(engine: Engine, channel_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Items seen and pages read by each channel's last successful poll (channels without one are absent)."""
    run = Run.__table__  # type: ignore[attr-defined]
    with store.read(engine) as conn:
        rows = conn.execute(
            select(run.c.channel_id, run.c.rows_read, run.c.pages_fetched).where(
                run.c.id.in_(latest_run_ids(channel_ids))
            )
        )
        return {int(channel_id): (int(seen or 0), int(pages or 0)) for channel_id, seen, pages in rows}


def _driver_sql(conn: Connection, sql: str, params: tuple[Any, ...]) -> Any:
    """Run one statement on the driver's own cursor: SQLAlchemy's compile and cache-key work per
    statement cost a poll more than the statement itself (a run's start and end, per channel).
    ``sql`` uses ``?``; PostgreSQL's driver wants ``%s``. Returns the cursor's first row, if any."""
    if conn.dialect.name != "sqlite":
        sql = sql.replace("?", "%s")
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description else None
    finally:
        cursor.close()


def _moment(conn: Connection, moment: datetime) -> Any:
    """A time as SQLAlchemy's ``DateTime`` column stores it: SQLite's text form, PostgreSQL's own type."""
    return store.sqlite_time(moment) if conn.dialect.name == "sqlite" else moment


_INSERT_RUN = (
    "INSERT INTO run (channel_id, kind, source, job_id, started_at, status, rows_read, rows_new, rows_known,"
    " rows_rejected, pages_fetched) VALUES (?, 'poll', ?, ?, ?, 'running', 0, 0, 0, 0, 0) RETURNING id"
)
_FINISH_RUN = (
    "UPDATE run SET status = ?, message = ?, finished_at = ?, rows_read = ?, rows_new = ?, rows_known = ?,"
    " pages_fetched = ? WHERE id = ?"
)


def _insert_run(conn: Connection, *, channel_id: int, source: str, job_id: str | None) -> int:
    """A ``running`` poll run, as ``ingest.start_run`` records one, inside the caller's transaction."""
    row = _driver_sql(conn, _INSERT_RUN, (channel_id, source[:250], job_id, _moment(conn, store.utc_now())))
    return int(row[0])


def _close_run(
    conn: Connection,
    run_id: int,
    status: str,
    message: str | None,
    *,
    rows_read: int,
    pages_fetched: int,
    rows_new: int = 0,
    rows_known: int = 0,
) -> None:
    """``ingest.finish_run`` of a poll run, inside the caller's transaction."""
    moment = _moment(conn, store.utc_now())
    _driver_sql(conn, _FINISH_RUN, (status, message, moment, rows_read, rows_new, rows_known, pages_fetched, run_id))


def _store_run(
    channel_id: int,
    run_id: int,
    observed: list[Observed],
    zone: str,
    kind: str,
    pages: int,
    message: str | None,
    pages_read: list[PageRecord],
    listed: int,
    conn: Connection,
) -> Any:
    """Store what the poll saw and close its run (inside the group's transaction, in a savepoint)."""
    counts = store_observed(conn, channel_id, observed, zone=zone, kind=kind, run_id=run_id)
    record_pages(conn, channel_id, pages_read)
    _close_run(
        conn,
        run_id,
        "ok",
        message,
        rows_read=listed,
        rows_new=counts.new,
        rows_known=counts.known,
        pages_fetched=pages,
    )
    return counts
