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
from channelwatch.ingest.poll import recovered_results
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
import json, os, sys, time
from channelwatch.ingest import shares

def poll(share, runs):
    if runs is not None:
        runs.add(len(share))  # a run id, as a forked poller notes each run it starts
        if share == "dies":
            os._exit(3)
        if share == "raises":
            raise RuntimeError("boom")
    return ["polled", share, runs is not None]

def recover(share, run_ids, why):
    return ["recovered", share, run_ids, why]

print(json.dumps(shares.poll_in_processes(["here", "dies", "raises", "fine"], poll, recover, None)))
"""


def test_a_child_that_dies_or_raises_is_recovered_from_its_own_runs() -> None:
    # In a process of its own: pytest's process has threads, and this one forks.
    done = subprocess.run([sys.executable, "-c", _CHILDREN], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        ["polled", "here", False],
        ["recovered", "dies", [4], "退出码 3"],
        ["recovered", "raises", [6], "发生意外错误"],
        ["polled", "fine", True],
    ]


_PARENT_FAILS = """
import json, sys, time
from channelwatch.ingest import shares

def poll(share, runs):
    if runs is None:
        time.sleep(0.5)
        raise RuntimeError("the parent's own share failed")
    runs.add(7)
    time.sleep(60)  # a long poll: it must be stopped, not waited for nor left running

def recover(share, run_ids, why):
    print(json.dumps(["recovered", share, run_ids, why]), flush=True)

started = time.monotonic()
try:
    shares.poll_in_processes(["here", "child"], poll, recover, None)
except RuntimeError as exc:
    print(json.dumps(["raised", str(exc), round(time.monotonic() - started)]), flush=True)
"""


def test_a_failing_parent_stops_its_children_and_recovers_their_runs() -> None:
    done = subprocess.run([sys.executable, "-c", _PARENT_FAILS], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[0] == ["recovered", "child", [7], "主进程出错而停止"]
    assert lines[1][:2] == ["raised", "the parent's own share failed"] and lines[1][2] < 5


def test_a_turn_held_by_a_dead_process_is_waited_for_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shares.WriteTurns, "WAIT", 0.2)
    turns = shares.WriteTurns()
    assert turns._lock.acquire()  # as a process killed during its turn leaves it
    started = time.monotonic()
    with turns:
        pass
    first = time.monotonic() - started
    started = time.monotonic()
    for _ in range(5):
        with turns:
            pass
    assert first >= 0.2 and time.monotonic() - started < 0.1


def test_channels_reaching_one_host_stay_together() -> None:
    from channelwatch.ingest.poll import hosts_of
    from channelwatch.instance.config import ChannelConfig

    def channel(key: str, **poll: object) -> ChannelConfig:
        return ChannelConfig.model_validate({"id": key, "kind": "website", "name": key, "poll": poll})

    redirecting = channel("a", type="html-list", url="http://a.gov.cn/xxgk/", item="li", allow_hosts=["www.a.gov.cn"])
    other_port = channel("b", type="html-list", url="http://www.a.gov.cn:8080/list.html", item="li")
    assert set(hosts_of(redirecting)) == {"a.gov.cn", "www.a.gov.cn"}
    assert hosts_of(other_port) == ["www.a.gov.cn"]  # a redirect may reach the host's other ports
    weibo = ChannelConfig.model_validate(
        {"id": "w", "kind": "weibo", "name": "微博", "poll": {"type": "weibo", "uid": "12345678"}}
    )
    assert hosts_of(weibo) == ["m.weibo.cn"]  # its source's default host, shared by every Weibo channel
    parts = shares.split_by_host([redirecting, other_port, weibo], hosts_of, 3)
    assert any({c.id for c in part} >= {"a", "b"} for part in parts)


def test_recovered_results_touch_only_this_polls_runs(tmp_path: Path) -> None:
    from channelwatch.ingest.runs import finish_run, start_run

    root = write_instance(tmp_path / "instance")
    opened = store.open_store(load_instance(root))
    channels = {c.id: c for c in opened.instance.config.channels}
    engine, weibo, website = opened.engine, opened.channel_id("weibo"), opened.channel_id("website")
    finished = start_run(engine, weibo, "poll", "html-list")
    finish_run(engine, finished, "ok", rows_read=5, rows_new=2, pages_fetched=1)
    left = start_run(engine, website, "poll", "html-list")
    # The daemon polls the same channel meanwhile: its run is not this poll's, and stays as it is.
    daemons = start_run(engine, website, "poll", "html-list", job_id="nightly")
    pairs = [(opened, channels[key]) for key in ("weibo", "website", "wechat")]
    results = recovered_results(engine, pairs, [finished, left], "退出码 9")
    assert [(r.channel, r.status) for r in results] == [("weibo", "ok"), ("website", "failed"), ("wechat", "failed")]
    assert (results[0].run_id, results[0].seen, results[0].new, results[0].pages) == (finished, 5, 2, 1)
    assert results[1].run_id == left and results[1].message and "抓取进程意外结束（退出码 9）" in results[1].message
    with store.read(engine) as conn:
        rows = {r.id: r for r in conn.execute(select(Run)).all()}
    assert rows[left].status == "failed" and rows[left].finished_at is not None
    assert rows[daemons].status == "running"
    # A channel the dead process never started gets a failed run of its own: the store shows the failure.
    never = rows[results[2].run_id]
    assert never.status == "failed" and never.channel_id == opened.channel_id("wechat")
    assert never.message == results[2].message
    opened.engine.dispose()


def test_recovered_results_keep_offices_apart(tmp_path: Path) -> None:
    from channelwatch.ingest.runs import finish_run, start_run

    root = tmp_path / "county"
    (root / "config" / "offices").mkdir(parents=True)
    (root / "config" / "channelwatch.toml").write_text(
        '[county]\nname = "测试县"\n\n[database]\nurl = "sqlite:///data/channelwatch.db"\n', encoding="utf-8"
    )
    table = '\n[[channels]]\nid = "website"\nkind = "website"\nname = "网站"\n'
    for office in ("o0", "o1"):
        (root / "config" / "offices" / f"{office}.toml").write_text(
            f'[office]\nname = "单位{office}"\n{table}', encoding="utf-8"
        )
    own, stores = store.open_offices(load_instance(root))
    engine = own.engine
    # Both offices have a channel "website": o0's run was left running, o1's finished with 7 new.
    left = start_run(engine, stores["o0"].channel_id("website"), "poll", "html-list")
    done = start_run(engine, stores["o1"].channel_id("website"), "poll", "html-list")
    finish_run(engine, done, "ok", rows_read=7, rows_new=7, pages_fetched=1)
    pairs = [(stores[key], stores[key].instance.config.channels[0]) for key in ("o0", "o1")]
    o0, o1 = recovered_results(engine, pairs, [left, done], "被信号结束")
    assert (o0.run_id, o0.status, o0.new) == (left, "failed", 0)
    assert (o1.run_id, o1.status, o1.new) == (done, "ok", 7)
    engine.dispose()


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
        assert [line.split("：")[0] for line in done.stdout.splitlines()] == [f"s{n}" for n in range(SITES)]
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
        expected = [f"o{office}/s{n}" for office in range(4) for n in range(office, SITES, 4)]
        assert [line.split("：")[0] for line in lines] == expected
        assert all(f"新增 {ENTRIES} 条" in line for line in lines)
        assert _stored(root) == (SITES * ENTRIES, ["ok"] * SITES)
        summary = _cli(root, "county", "summary", "--year", "2020", "--format", "json")
        figures = json.loads(summary.stdout)
        assert figures["total"] == SITES * ENTRIES
        assert {o["id"]: o["total"] for o in figures["offices"]} == {
            f"o{office}": len(range(office, SITES, 4)) * ENTRIES for office in range(4)
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
        # Channels stopped before they began have no run, and say so rather than "run #0".
        assert err.count("中断（尚未开始抓取）") == SITES - len(statuses) and "#0）" not in err
