"""Large polls split by host over forked processes (ingest/shares.py): every channel polled once, counted once,
stopped as one poll, and a share's process that dies loses nothing stored and leaves no run running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from channelwatch import store
from channelwatch.ingest import shares
from channelwatch.ingest.poll import latest_run_id, recovered_results
from channelwatch.instance.config import load_instance
from channelwatch.store.models import Run
from tests.conftest import wait_for, write_instance
from tests.ingest.manysites import ENTRIES, ManySites

REPO = Path(__file__).resolve().parents[2]


# --- splitting -----------------------------------------------------------------------------------------------


def test_split_keeps_hosts_together_balances_and_keeps_order() -> None:
    items = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("d", 5), ("b", 6), ("e", 7), ("a", 8)]
    parts = shares.split_by_host(items, lambda item: [item[0]], 2)
    assert sorted(i for part in parts for i in part) == sorted(items)
    for part in parts:
        assert part == sorted(part, key=lambda item: item[1])  # the items' own order
    hosts = [{h for h, _ in part} for part in parts]
    assert not hosts[0] & hosts[1]  # a host is never in two shares
    assert [len(p) for p in parts] == [4, 4] and len(parts[0]) >= len(parts[1])


def test_split_joins_channels_linked_through_any_host() -> None:
    # 1 and 2 share x, 2 and 3 share y: all three stay together, though 1 and 3 share no host.
    items = [(1, ["x"]), (2, ["x", "y"]), (3, ["y"]), (4, ["z"]), (5, ["w"])]
    parts = shares.split_by_host(items, lambda item: item[1], 3)
    together = next(p for p in parts if items[0] in p)
    assert items[1] in together and items[2] in together
    assert len(parts) == 3 and sum(map(len, parts)) == 5


def test_split_never_makes_more_shares_than_hosts() -> None:
    items = list(range(10))
    assert shares.split_by_host(items, lambda _: ["one host"], 4) == [items]


def test_processes_follow_the_cores_the_variable_and_the_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shares, "_cores", lambda: 2)
    monkeypatch.delenv(shares.PROCESSES_VARIABLE, raising=False)
    monkeypatch.setattr(shares, "_may_fork", lambda: True)
    assert shares.processes_for(1000, 100) == 2
    assert shares.processes_for(2 * shares.MIN_SHARE - 1, 100) == 1  # too few channels to be worth a process
    assert shares.processes_for(1000, 1) == 1  # --concurrency 1 is one request at a time in all
    monkeypatch.setenv(shares.PROCESSES_VARIABLE, "1")
    assert shares.processes_for(1000, 100) == 1
    monkeypatch.setenv(shares.PROCESSES_VARIABLE, "3")
    assert shares.processes_for(1000, 100) == 3
    monkeypatch.setattr(shares, "_may_fork", lambda: False)
    assert shares.processes_for(1000, 100) == 1


def test_a_process_with_another_thread_does_not_fork() -> None:
    import threading

    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not shares._may_fork()
    finally:
        release.set()
        other.join()


# --- children that fail ----------------------------------------------------------------------------------------

_CHILDREN = """
import json, os, sys
from channelwatch.ingest import shares

def poll(share, forked):
    if forked and share == "dies":
        os._exit(3)
    if forked and share == "raises":
        raise RuntimeError("boom")
    return ["polled", share, forked]

def recover(share, why):
    return ["recovered", share, why]

print(json.dumps(shares.poll_in_processes(["here", "dies", "raises", "fine"], poll, recover, None)))
"""


def test_a_child_that_dies_or_raises_is_recovered_the_others_are_not() -> None:
    # In a process of its own: pytest's process has threads, and this one forks.
    done = subprocess.run([sys.executable, "-c", _CHILDREN], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        ["polled", "here", False],
        ["recovered", "dies", "退出码 3"],
        ["recovered", "raises", "发生意外错误"],
        ["polled", "fine", True],
    ]


def test_recovered_results_report_what_the_store_holds(tmp_path: Path) -> None:
    from channelwatch.ingest.runs import finish_run, start_run

    root = write_instance(tmp_path / "instance")
    opened = store.open_store(load_instance(root))
    channels = {c.id: c for c in opened.instance.config.channels}
    engine, weibo, website = opened.engine, opened.channel_id("weibo"), opened.channel_id("website")
    before = start_run(engine, weibo, "poll", "old")  # before the mark: not this poll's
    finish_run(engine, before, "ok", rows_read=9)
    mark = latest_run_id(engine)
    finished = start_run(engine, weibo, "poll", "html-list")
    finish_run(engine, finished, "ok", rows_read=5, rows_new=2, pages_fetched=1)
    left = start_run(engine, website, "poll", "html-list")
    pairs = [(opened, channels[key]) for key in ("weibo", "website", "wechat")]
    results = recovered_results(opened.engine, pairs, mark, "退出码 9")
    assert [(r.channel, r.status, r.run_id) for r in results] == [
        ("weibo", "ok", finished),
        ("website", "failed", left),
        ("wechat", "failed", 0),
    ]
    assert (results[0].seen, results[0].new, results[0].pages) == (5, 2, 1)
    assert results[1].message and "抓取进程意外结束（退出码 9）" in results[1].message
    with store.read(opened.engine) as conn:
        closed = conn.execute(select(Run).where(Run.id == left)).one()
    assert closed.status == "failed" and closed.finished_at is not None
    assert closed.message == results[1].message
    opened.engine.dispose()


# --- whole commands ---------------------------------------------------------------------------------------------

SITES = 2 * shares.MIN_SHARE + 20


def _cli(root: Path, *args: str, processes: int = 2) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "channelwatch", "--instance", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, **{shares.PROCESSES_VARIABLE: str(processes)}),
    )


def _stored(root: Path) -> tuple[int, list[str]]:
    engine = store.open_engine(f"sqlite:///{root / 'data' / 'channelwatch.db'}")
    with store.read(engine) as conn:
        publications = conn.exec_driver_sql("SELECT count(*) FROM publication").scalar()
        statuses = [row[0] for row in conn.exec_driver_sql("SELECT status FROM run WHERE kind = 'poll'")]
    engine.dispose()
    return int(publications or 0), statuses


@pytest.mark.slow
def test_a_large_poll_is_split_and_every_channel_counted_once(tmp_path: Path) -> None:
    with ManySites(SITES) as sites:
        root = sites.office(tmp_path / "office")
        done = _cli(root, "--verbose", "poll")
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"poll of {SITES} channels in 2 processes" in done.stderr
        assert done.stdout.count("：成功") == SITES and done.stdout.count(f"新增 {ENTRIES} 条") == SITES
        # Results come back in the channels' order, whichever process polled them.
        assert [line.split("：")[0] for line in done.stdout.splitlines()] == [f"s{p}" for p in sites.ports]
        assert _stored(root) == (SITES * ENTRIES, ["ok"] * SITES)
        again = _cli(root, "poll")
        assert again.returncode == 0 and again.stdout.count("新增 0 条") == SITES, again.stderr[-3000:]
        summary = _cli(root, "summary", "--year", "2020", "--format", "json")
        assert json.loads(summary.stdout)["total"] == SITES * ENTRIES
        single = _cli(root, "poll", processes=1)  # the same poll in one process: the same answer
        assert single.returncode == 0 and single.stdout.count("新增 0 条") == SITES


@pytest.mark.slow
def test_a_county_poll_is_split_and_each_office_gets_its_own_results(tmp_path: Path) -> None:
    with ManySites(SITES) as sites:
        root = sites.county(tmp_path / "county", offices=4)
        done = _cli(root, "--verbose", "county", "poll")
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"county poll of {SITES} channels in 2 processes" in done.stderr
        lines = done.stdout.splitlines()
        expected = [f"o{office}/s{port}" for office in range(4) for port in sites.ports[office::4]]
        assert [line.split("：")[0] for line in lines] == expected
        assert all(f"新增 {ENTRIES} 条" in line for line in lines)
        assert _stored(root) == (SITES * ENTRIES, ["ok"] * SITES)
        summary = _cli(root, "county", "summary", "--year", "2020", "--format", "json")
        figures = json.loads(summary.stdout)
        assert figures["total"] == SITES * ENTRIES
        assert {o["id"]: o["total"] for o in figures["offices"]} == {
            f"o{office}": len(sites.ports[office::4]) * ENTRIES for office in range(4)
        }


@pytest.mark.slow
@pytest.mark.parametrize("ctrl_c", [False, True], ids=["sigterm-to-the-parent", "ctrl-c-to-the-process-group"])
def test_a_stop_reaches_every_share_and_no_run_is_left_running(tmp_path: Path, ctrl_c: bool) -> None:
    with ManySites(SITES) as sites:
        root = sites.office(tmp_path / "office")
        sites.hold.set()
        poll = subprocess.Popen(
            [sys.executable, "-m", "channelwatch", "--instance", str(root), "poll"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, **{shares.PROCESSES_VARIABLE: "2"}),
            start_new_session=True,  # a process group of its own, as a command typed at a terminal
        )
        try:
            # Both processes have requests waiting: the concurrency (100) is shared out, 50 each.
            assert wait_for(lambda: sites.hits >= 100, 60), sites.hits
            time.sleep(0.3)
            started = time.monotonic()
            if ctrl_c:  # the terminal sends SIGINT to every process of the group: one Ctrl+C is one stop
                os.killpg(poll.pid, signal.SIGINT)
            else:  # `kill PID`: only the parent hears it, and passes it on
                poll.send_signal(signal.SIGTERM)
            _out, err = poll.communicate(timeout=30)
            elapsed = time.monotonic() - started
        finally:
            if poll.poll() is None:
                poll.kill()
                poll.communicate()
        assert poll.returncode == 1, err[-3000:]
        assert elapsed < 10, elapsed
        assert "Traceback" not in err and "收到停止信号" in err
        publications, statuses = _stored(root)
        assert publications == 0
        # Both processes' started runs (50 each) closed as interrupted, none left running; the channels not
        # yet started have no run, and all are reported as interrupted.
        assert len(statuses) >= 100 and set(statuses) == {"interrupted"}, statuses
        assert err.count("：中断") == SITES
