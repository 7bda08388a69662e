"""Large polls on every core: the channels split by host into shares, each extra share polled by a forked process.

A poll's time is almost all CPU on one thread (HTTP, HTML parsing and the store thread share one GIL):
1,000 channels take about 0.9 ms of CPU per page, twice the 0.5 s the network alone needs at
concurrency 100 (scripts/bench_poll.py). A second core halves that. So a poll of many channels, in a
process that can fork safely, splits them:

* **by host**: channels that may ask the same host name (configured URLs, the source's defaults,
  ``allow_hosts``, column pages: ``ingest.poll.hosts_of``) stay in one share, so the per-host limit and
  pacing (``sources/http.py``) still hold for each site as a whole;
* **the concurrency is shared out**: the shares' limits add up to the poll's ``--concurrency``;
* **each forked process is a whole poller** (its own event loop, HTTP client, store thread and
  connections: the parent closes its pooled ones before forking); it records and stores its channels'
  runs exactly as the parent does, and sends back only their results;
* **a process that dies** (killed, out of memory) loses nothing stored: the parent reads back the runs it
  noted (``RunLog``), reports the finished ones as they are and closes the ones left running as failed;
* **a parent that fails** stops its children and reads their runs back before it raises;
* **stopping**: SIGTERM or Ctrl+C reaches the parent, which passes the stop on (the children ignore
  Ctrl+C themselves, so one Ctrl+C is one stop, not two).

Only where ``fork`` is safe: Linux, no other thread in the process, no event loop running (the daemon
runs jobs in threads and polls in one process as before). ``CHANNELWATCH_POLL_PROCESSES`` caps the
number of processes (1: never split).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import struct
import sys
import tempfile
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from multiprocessing.connection import Connection as Pipe
from typing import Any, TypeVar

from channelwatch.failures import describe

__all__ = [
    "MIN_SHARE",
    "RunLog",
    "WriteTurns",
    "poll_in_processes",
    "poll_split",
    "processes_for",
    "split_by_host",
]

# At INFO, shown by --verbose: what the terminal needs (which channels failed, and why) is in each
# channel's Chinese result; these English lines say which process ended and how.
log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Below this many channels a share's process (fork, a store connection, an event loop) costs more than its core saves.
MIN_SHARE = 100
MAX_PROCESSES = 4  # beyond a few, writers queue for SQLite's one write lock
PROCESSES_VARIABLE = "CHANNELWATCH_POLL_PROCESSES"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _may_fork() -> bool:
    """Whether forking this process is safe: a lock another thread holds would stay held in the child."""
    import asyncio

    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False


def processes_for(channels: int, concurrency: int, engine: Any = None) -> int:
    """How many processes a poll of ``channels`` channels at most ``concurrency`` at a time uses (1: this one)."""
    if engine is not None and engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:"):
        return 1  # a database in this process's memory: a child would see a new, empty one
    wanted = min(_cores(), MAX_PROCESSES)
    given = os.environ.get(PROCESSES_VARIABLE, "").strip()
    if given.isdigit() and int(given) >= 1:
        wanted = int(given)
    # Every share polls at least one channel at a time: no more shares than the concurrency allows.
    wanted = min(wanted, channels // MIN_SHARE, concurrency)
    return wanted if wanted > 1 and _may_fork() else 1


def split_by_host(items: Sequence[T], hosts: Callable[[T], Iterable[Hashable]], parts: int) -> list[list[T]]:
    """``items`` in at most ``parts`` shares of about equal size, items sharing a host in the same share.

    Shares keep the items' order, and the first share is never smaller than the others (the parent
    polls it, and starts the children first).
    """
    owner: dict[Hashable, int] = {}
    root = list(range(len(items)))

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for index, item in enumerate(items):
        for host in hosts(item):
            other = owner.setdefault(host, index)
            root[find(index)] = find(other)
    groups: dict[int, list[int]] = {}
    for index in range(len(items)):
        groups.setdefault(find(index), []).append(index)
    bins: list[list[int]] = [[] for _ in range(max(1, parts))]
    for group in sorted(groups.values(), key=len, reverse=True):
        min(bins, key=len).extend(group)
    bins = sorted((b for b in bins if b), key=len, reverse=True)
    return [[items[i] for i in sorted(b)] for b in bins]


class WriteTurns:
    """The shares' store threads (one per process) take turns writing to SQLite by this lock.

    SQLite lets one writer in at a time and has a waiting one sleep 1, 2, 5, … ms in its busy handler;
    a lock wakes it as soon as the other is done. A turn is waited for at most ``WAIT`` seconds: a
    process killed during its turn takes the lock's release with it, and must not hold the others
    forever (SQLite's own busy wait still keeps their writes apart).
    """

    WAIT = 2.0

    def __init__(self) -> None:
        self._lock = multiprocessing.get_context("fork").Lock()
        self._taken = False
        self._abandoned = False  # per process: a turn timed out once, so the lock may be a dead process's

    def __enter__(self) -> WriteTurns:
        if not self._abandoned:
            self._taken = self._lock.acquire(timeout=self.WAIT)
            if not self._taken:
                log.info("poll: no write turn in %.0f s; this process writes on SQLite's own waiting", self.WAIT)
                self._abandoned = True
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._taken:
            self._taken = False
            self._lock.release()


def _write_turns(engine: Any) -> WriteTurns | None:
    """Turns for SQLite's one writer; None for PostgreSQL, whose row locks wake a waiter at once."""
    return WriteTurns() if engine.dialect.name == "sqlite" else None


def poll_split(
    items: Sequence[T],
    hosts: Callable[[T], Iterable[Hashable]],
    processes: int,
    *,
    engine: Any,
    stop: threading.Event | None,
    poll: Callable[[list[T], WriteTurns | None, RunLog | None], R],
    recover: Callable[[list[T], list[int], str], R],
    what: str = "poll",
) -> list[R]:
    """``items`` (channels) split by host into at most ``processes`` shares, each polled by
    ``poll(share, turns, runs)``: the first here, the others in forked children (``poll_in_processes``).

    ``turns`` is the SQLite writers' lock (None on PostgreSQL) and ``runs`` a child's run log (None here);
    the poll hands both to its store thread. A child takes over the stop signals before ``poll`` runs in it.
    """
    parts = split_by_host(items, hosts, processes)
    log.info("%s of %d channels in %d processes (shares of %s)", what, len(items), len(parts), [len(p) for p in parts])
    turns = _write_turns(engine)
    # No open connection crosses the fork (SQLite warns against it): the children and this process then
    # each open their own, and none can close or use another's.
    engine.dispose()

    def share_poll(share: list[T], runs: RunLog | None) -> R:
        if runs is not None:  # in a forked child
            _start_share(stop)
        return poll(share, turns, runs)

    return poll_in_processes(parts, share_poll, recover, stop)


class RunLog:
    """The ids of the runs a share's process started, written as each is committed.

    If the process dies, the parent reads them here: its recovery then touches only this poll's runs,
    never those another process (the daemon, a second command) has running on the same channels.
    The file is shared across the fork; the child appends, the parent reads from the start.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close(), after the poll

    def add(self, run_id: int) -> None:
        os.write(self._file.fileno(), struct.pack("<q", run_id))

    def ids(self) -> list[int]:
        fd = self._file.fileno()
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        return [value for (value,) in struct.iter_unpack("<q", data[: len(data) // 8 * 8])]

    def close(self) -> None:
        self._file.close()


def _start_share(stop: threading.Event | None) -> None:
    """In a forked child, before it polls: Ctrl+C is the parent's to pass on, SIGTERM sets the child's stop."""
    if stop is None:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())


# How long a failing parent waits for its children to stop and close their runs (they stop within a second).
STOP_WAIT = 10.0


class _Child:
    """A share polled by a forked process: the process, the pipe its results come by, its run log."""

    def __init__(self, share: Any, process: Any, receiving: Pipe, runs: RunLog) -> None:
        self.share, self.process, self.receiving, self.runs = share, process, receiving, runs
        self.collected = False


def poll_in_processes(
    shares: Sequence[T],
    poll: Callable[[T, RunLog | None], R],
    recover: Callable[[T, list[int], str], R],
    stop: threading.Event | None,
) -> list[R]:
    """``poll(share, runs)`` of each share: the first here (``runs`` None), the others in forked children.

    A child that ends without its results gets ``recover(share, run ids, why)``: what the store says
    of the runs it started. A share whose process cannot be started is polled here, after the first.
    If this process fails (or a second Ctrl+C ends it), the children are stopped and recovered too,
    not left polling or killed with their runs open.
    """
    context = multiprocessing.get_context("fork")
    here: list[T] = [shares[0]]
    children: list[_Child] = []
    for number, share in enumerate(shares[1:], 1):
        runs = RunLog()
        receiving, sending = context.Pipe(duplex=False)
        process = context.Process(
            target=_child, args=(poll, share, runs, sending), name=f"channelwatch-poll-{number}", daemon=True
        )
        try:
            process.start()
        except OSError as exc:  # no memory or no process left for it: this process polls the share
            log.info("poll: could not start a process for share %d (%s); polled here", number, exc)
            for end in (receiving, sending):
                end.close()
            runs.close()
            here.append(share)
            continue
        sending.close()
        children.append(_Child(share, process, receiving, runs))
    done = threading.Event()
    if stop is not None and children:
        threading.Thread(
            target=_pass_stop_on,
            args=(stop, done, [c.process for c in children]),
            name="channelwatch-stop",
            daemon=True,
        ).start()
    try:
        outcomes = [poll(share, None) for share in here]
        for child in children:
            outcomes.append(_collect(child, recover))
        return outcomes
    except BaseException:
        _signal(children, signal.SIGTERM)
        for child in children:
            if not child.collected:
                try:
                    _collect(child, recover, wait=STOP_WAIT, why="主进程出错而停止")
                except Exception:  # the store itself may be what failed: the runs then show as interrupted
                    log.info("poll: the runs of process %s could not be read back", child.process.name)
        raise
    finally:
        done.set()
        for child in children:
            child.receiving.close()
            child.process.join(timeout=5)
            if child.process.is_alive():
                child.process.kill()
                child.process.join()
            child.runs.close()


def _child(poll: Callable[[Any, RunLog | None], Any], share: Any, runs: RunLog, sending: Pipe) -> None:
    try:
        outcome: tuple[str, Any] = ("ok", poll(share, runs))
    except BaseException as exc:  # anything: the parent reads the store instead
        outcome = ("failed", describe(exc)[:500])
    try:
        sending.send(outcome)
    except OSError:  # the parent is gone (killed): what this share stored is in the store
        pass
    finally:
        sending.close()


def _collect(child: _Child, recover: Callable[[Any, list[int], str], R], wait: float | None = None, why: str = "") -> R:
    """The child's results, or (it ended without them, or gave none within ``wait``) its recovered runs."""
    child.collected = True
    process = child.process
    try:
        if wait is not None and not child.receiving.poll(wait):
            process.kill()
            raise EOFError
        status, value = child.receiving.recv()
    except (EOFError, OSError):
        process.join()
        if not why:
            why = (
                f"退出码 {process.exitcode}" if process.exitcode is not None and process.exitcode >= 0 else "被信号结束"
            )
        log.info("poll process %s ended without its results (exit code %s)", process.name, process.exitcode)
        return recover(child.share, child.runs.ids(), why)
    if status == "ok":
        return value
    log.info("poll process %s failed: %s", process.name, value)
    return recover(child.share, child.runs.ids(), why or "发生意外错误")


def _signal(children: list[_Child], signum: int) -> None:
    for child in children:
        if child.process.is_alive() and child.process.pid is not None:
            with contextlib.suppress(ProcessLookupError):  # ended meanwhile
                os.kill(child.process.pid, signum)


def _pass_stop_on(stop: threading.Event, done: threading.Event, children: list[Any]) -> None:
    """SIGTERM to the children once this process is asked to stop (its signal handler set ``stop``)."""
    while not done.wait(0.1):
        if stop.is_set():
            for process in children:
                if process.is_alive() and process.pid is not None:
                    with contextlib.suppress(ProcessLookupError):  # ended meanwhile
                        os.kill(process.pid, signal.SIGTERM)
            return
