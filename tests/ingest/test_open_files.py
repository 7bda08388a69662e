"""A poll of many channels on a host whose limit of open files is low (systemd gives a service 1,024).

Each channel under way holds a connection, and each host's idle ones are kept: before the poll raised its
soft limit of open files to the hard one, every channel beyond the limit failed with "Too many open files".
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from channelwatch.failures import network_problem
from channelwatch.ingest import shares
from tests.ingest.manysites import ENTRIES, ManySites

LOW = 64  # the poll's own files (database, WAL, pipes, event loop) leave room for a few dozen sockets
SITES = 150


def _hard() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def _low_soft_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW, _hard()))


def _poll_every_site(root: Path, command: list[str], limit: Callable[[], None]) -> None:
    """``command`` (a poll, in one process, 200 requests at a time) under ``limit``: every site's entries new."""
    done = subprocess.run(
        [sys.executable, "-m", "channelwatch", "--instance", str(root), *command, "--concurrency", "200"],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        env=dict(os.environ, **{shares.PROCESSES_VARIABLE: "1"}),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.count(f"新增 {ENTRIES} 条") == SITES


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    code = (
        "import resource\nfrom channelwatch.openfiles import open_files_limit\n"
        "print(open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=_low_soft_limit, check=True
    )
    hard = _hard()
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    assert done.stdout.split() == [str(wanted), str(wanted)]


@pytest.mark.slow
@pytest.mark.skipif(_hard() != resource.RLIM_INFINITY and _hard() < 4 * SITES, reason="the hard limit is too low")
def test_a_poll_of_more_channels_than_the_soft_limit_allows_succeeds(tmp_path: Path) -> None:
    with ManySites(SITES) as sites:
        root = sites.office(tmp_path / "office")
        _poll_every_site(root, ["poll"], _low_soft_limit)


def test_too_many_open_files_is_said_in_chinese() -> None:
    message = network_problem(OSError(24, "Too many open files"))
    assert message.startswith("本程序同时打开的连接和文件已达系统允许的上限（ulimit -n）")
    assert message.endswith("（[Errno 24] Too many open files）")


def _low_hard_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW * 2, LOW * 2))


@pytest.mark.slow
def test_a_poll_queues_its_channels_where_the_hard_limit_is_low(tmp_path: Path) -> None:
    """Where even the hard limit is too low for the channels under way, they wait for each other's files."""
    with ManySites(SITES) as sites:
        root = sites.county(tmp_path / "county", offices=3)
        _poll_every_site(root, ["county", "poll"], _low_hard_limit)
