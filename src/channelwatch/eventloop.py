"""Running a coroutine to its end on the fastest event loop the machine has.

A poll spends most of its event loop's time in the loop itself: opening a connection per channel,
waking on each socket, scheduling tasks. uvloop (libuv, written in Cython) does that work in C, which
cuts a 1,000-channel poll's CPU per page by about a tenth and its wall time by more (scripts/bench_poll.py);
where it is not installed (it has no Windows build) the standard loop runs the same code.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["run", "run_coroutine"]

T = TypeVar("T")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency wherever it builds
        return None
    return uvloop.new_event_loop


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop when it is there.

    What the process holds when the loop starts (modules, configuration, caches) is set aside from the
    garbage collector until it ends: a poll makes garbage fast, and each full collection walked every
    object of the process again (a tenth of a 1,000-channel poll's CPU, scripts/bench_poll.py). Freezing
    only changes which objects a collection visits; in a process running several loops at once (the
    daemon) one loop's end unfreezing another's objects costs nothing but that saving.
    """
    gc.freeze()
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(coroutine)
    finally:
        gc.unfreeze()


def run_coroutine(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end, on a loop of its own when the caller already runs one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: run(factory())).result()
