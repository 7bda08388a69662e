"""How many files and sockets this process may open, and how many channels a poll keeps under way because of it."""

from __future__ import annotations

import contextlib
import functools

__all__ = ["channels_under_way", "open_files_limit"]

_FILES_WANTED = 65536


@functools.cache
def open_files_limit() -> int:
    """How many files (sockets included) this process may open: its soft limit, raised to its hard one first.

    A poll holds a connection for each channel under way and keeps each host's idle ones: a county's two
    thousand channels exceed the 1,024 that systemd gives a service by default (the hard limit it gives is
    524,288), and then every channel failed with "Too many open files" (scripts/bench_poll.py with the soft
    limit at 1,024: 0 of 3,000 channels). Raising the soft limit up to the hard one needs no privilege.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Unix
        return _FILES_WANTED
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _FILES_WANTED if hard == resource.RLIM_INFINITY else min(hard, _FILES_WANTED)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return _FILES_WANTED if soft == resource.RLIM_INFINITY else int(soft)


def channels_under_way() -> int:
    """How many channels one process polls at once, whatever the concurrency: each holds a connection and may
    parse its page in a child process (three pipes), and the process keeps some files of its own (the database,
    its journal, the event loop). Where the hard limit cannot be raised, a larger poll queues instead of failing."""
    return max(8, (open_files_limit() - 64) // 3)
