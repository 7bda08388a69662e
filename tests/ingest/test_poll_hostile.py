"""Hostile servers over real loopback sockets: redirects off the channel's host, dripping and silent
servers, pages that cost minutes to parse. Each ends in a failed run, in time, naming what happened."""

from __future__ import annotations

import socket
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from channelwatch import store
from channelwatch.ingest.poll import PollResult, poll_channels
from channelwatch.instance.config import load_instance
from channelwatch.sources.http import HttpSettings
from channelwatch.store import Store, open_store
from channelwatch.store.models import Publication, Run
from tests.fakeplatforms import FakePlatforms, HostileServer, fake_platforms, site_list_page
from tests.sources.contract import FAST, poll_tables, write_poll_instance

__all__ = ["fake_platforms"]

ENTRIES = [(f"/site/a{i}.html", f"公告{i}", f"2020-12-{10 + i:02d}") for i in range(3)]
# Per-read timeouts as real as the defaults: only the poll's own deadline can end a drip or a silence.
PATIENT = HttpSettings(connect_timeout=5.0, read_timeout=30.0, retries=0)


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


@pytest.fixture
def other_host() -> Iterator[HostileServer]:
    """A second host: 127.0.0.2 (every address of 127.0.0.0/8 answers on Linux)."""
    try:
        server = HostileServer(host="127.0.0.2").start()
    except OSError:
        pytest.skip("127.0.0.2 is not available on this machine")
    yield server
    server.stop()


class Env:
    def __init__(self, root: Path) -> None:
        self.opened: Store = open_store(load_instance(root))

    def poll(self, key: str = "site", settings: HttpSettings = FAST) -> PollResult:
        (result,) = poll_channels(self.opened, [key], settings=settings)
        return result

    def stored(self) -> int:
        pub = Publication.__table__  # type: ignore[attr-defined]
        with store.read(self.opened.engine) as conn:
            return int(conn.execute(select(func.count()).select_from(pub)).scalar_one())

    def run(self, run_id: int) -> Run:
        table = Run.__table__  # type: ignore[attr-defined]
        with store.read(self.opened.engine) as conn:
            return Run(**conn.execute(select(table).where(table.c.id == run_id)).one()._mapping)


MakeEnv = Callable[..., Env]


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[MakeEnv]:
    made: list[Env] = []

    def make(url: str, **extra: str) -> Env:
        lines = [
            'type = "html-list"',
            f'url = "{url}"',
            'item = "ul.list li"',
            'min_interval = "0s"',
            'timeout = "2s"',
        ]
        lines = [line for line in lines if line.split(" =")[0] not in extra]
        lines += [f"{key} = {value}" for key, value in extra.items()]
        root = write_poll_instance(tmp_path / f"instance{len(made)}", {"site": "\n".join(lines)})
        env = Env(root)
        made.append(env)
        return env

    yield make
    for env in made:
        env.opened.dispose()


# --- §6 redirects ---------------------------------------------------------------------------------------


def test_redirect_to_another_host_is_not_followed(
    hostile: HostileServer, other_host: HostileServer, make_env: MakeEnv
) -> None:
    other_host.page("/list.html", site_list_page(ENTRIES))
    target = other_host.url("/list.html")
    hostile.redirect("/list.html", target)
    env = make_env(hostile.url("/list.html"))
    result = env.poll()
    assert result.status == "failed"
    assert result.message is not None
    assert "重定向" in result.message and target in result.message and "allow_hosts" in result.message
    assert other_host.hits == []  # not even one request reached the other host
    assert env.stored() == 0
    run = env.run(result.run_id)
    assert (run.status, run.message) == ("failed", result.message)


def test_allow_hosts_lets_the_redirect_through(
    hostile: HostileServer, other_host: HostileServer, make_env: MakeEnv
) -> None:
    other_host.page("/list.html", site_list_page(ENTRIES))
    hostile.redirect("/list.html", other_host.url("/list.html"), status=301)
    env = make_env(hostile.url("/list.html"), allow_hosts='["127.0.0.2"]')
    result = env.poll()
    assert (result.status, result.new) == ("ok", len(ENTRIES)), result.message
    assert other_host.hits == ["/list.html"]
    assert env.stored() == len(ENTRIES)


@pytest.mark.parametrize(
    "location",
    [
        "http://localhost:{port}/list.html",  # the same machine under another name is another host
        "//localhost:{port}/list.html",  # scheme-relative
        "http://127.0.0.2:{port}/list.html",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://2852039166/latest/meta-data/",
        "http://[fe80::1]/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
    ],
)
def test_redirects_off_the_host_are_refused(hostile: HostileServer, make_env: MakeEnv, location: str) -> None:
    location = location.format(port=hostile.port)
    hostile.page("/real.html", site_list_page(ENTRIES))
    hostile.redirect("/list.html", location, status=307)
    env = make_env(hostile.url("/list.html"))
    started = time.monotonic()
    result = env.poll()
    assert result.status == "failed"
    assert result.message is not None and "重定向" in result.message and "未跟随" in result.message
    assert time.monotonic() - started < 2
    assert hostile.hits == ["/list.html"]  # refused before any request to the target
    assert env.stored() == 0


def test_redirect_on_the_same_host_is_followed_and_a_loop_is_cut(hostile: HostileServer, make_env: MakeEnv) -> None:
    hostile.page("/real.html", site_list_page(ENTRIES))
    hostile.redirect("/list.html", "/moved.html", status=301)
    hostile.redirect("/moved.html", hostile.url("/real.html"), status=302)
    env = make_env(hostile.url("/list.html"))
    result = env.poll()
    assert (result.status, result.new) == ("ok", len(ENTRIES)), result.message

    hostile.redirect("/loop.html", "/loop.html")
    looping = make_env(hostile.url("/loop.html")).poll()
    assert looping.status == "failed" and looping.message and "重定向超过" in looping.message


def test_article_link_to_another_host_is_not_fetched(
    hostile: HostileServer, other_host: HostileServer, make_env: MakeEnv
) -> None:
    other_host.page("/a.html", '<html><head><meta name="PubDate" content="2020-12-01 10:00"></head></html>')
    hostile.page("/list.html", site_list_page([(other_host.url("/a.html"), "外站文章", "")]))
    env = make_env(hostile.url("/list.html"), date='"span.none"', detail_date="true")
    result = env.poll()
    assert result.status == "failed", result.message
    assert result.message and "不访问" in result.message and "allow_hosts" in result.message
    assert other_host.hits == []


def _public_address() -> str | None:
    """An address of this machine that is not loopback (no packet is sent to find it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_redirect_to_loopback_from_a_channel_that_is_not_loopback(make_env: MakeEnv) -> None:
    address = _public_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    with HostileServer(host="0.0.0.0") as server:
        server.page("/admin.html", site_list_page(ENTRIES))
        server.redirect("/list.html", server.url("/admin.html", host="127.0.0.1"))
        env = make_env(server.url("/list.html", host=address), allow_hosts='["127.0.0.1"]')
        result = env.poll()
    assert result.status == "failed"
    assert result.message and "回环地址" in result.message and "重定向" in result.message
    assert server.hits == ["/list.html"]


@pytest.mark.parametrize("channel", ["rss", "weibo", "wechat"])
def test_every_source_refuses_redirects_off_the_host(
    fake_platforms: FakePlatforms,
    other_host: HostileServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    channel: str,
) -> None:
    from tests.fakeplatforms import WECHAT_SECRET, WEIBO_COOKIE

    monkeypatch.setenv("CW_TEST_WEIBO_COOKIE", WEIBO_COOKIE)
    monkeypatch.setenv("CW_TEST_WECHAT_SECRET", WECHAT_SECRET)
    fake_platforms.add_site_articles(3)
    fake_platforms.add_weibo_posts(3)
    fake_platforms.add_wechat_pushes(2)
    with HostileServer() as front:
        # The channel's host answers every request with a redirect to another host.
        table = textwrap.dedent(poll_tables(fake_platforms)[channel]).replace(fake_platforms.url, front.url(""))
        root = write_poll_instance(tmp_path / "instance", {channel: table})
        for path in ("/site/rss.xml", "/api/container/getIndex", "/cgi-bin/token", "/cgi-bin/freepublish/batchget"):
            front.redirect(path, other_host.url(path), status=302)
        env = Env(root)
        try:
            result = env.poll(channel)
        finally:
            env.opened.dispose()
    assert result.status == "failed"
    assert result.message and "重定向" in result.message and "127.0.0.2" in result.message
    assert other_host.hits == []
    assert WECHAT_SECRET not in result.message


# --- §7 deadlines ---------------------------------------------------------------------------------------


def test_a_server_dripping_bytes_ends_at_the_deadline(hostile: HostileServer, make_env: MakeEnv) -> None:
    hostile.drip("/list.html", interval=0.05)  # every read gets bytes: no per-read timeout ever fires
    env = make_env(hostile.url("/list.html"), timeout='"1.5s"')
    started = time.monotonic()
    result = env.poll(settings=PATIENT)
    elapsed = time.monotonic() - started
    assert result.status == "failed"
    assert result.message and "时限 1.5 秒" in result.message
    assert 1.4 < elapsed < 3, elapsed
    run = env.run(result.run_id)
    assert (run.status, run.rows_new) == ("failed", 0)


def test_a_server_dripping_its_headers_ends_at_the_deadline(hostile: HostileServer, make_env: MakeEnv) -> None:
    hostile.drip_headers("/list.html", interval=0.05)
    env = make_env(hostile.url("/list.html"), timeout='"1s"')
    started = time.monotonic()
    result = env.poll(settings=PATIENT)
    assert result.status == "failed" and result.message and "时限 1 秒" in result.message
    assert time.monotonic() - started < 2.5


def test_a_decompression_bomb_stops_at_the_size_cap(hostile: HostileServer, make_env: MakeEnv) -> None:
    hostile.gzip_bomb("/list.html", 50 * 1024 * 1024)  # 50 MB in about 50 KB
    env = make_env(hostile.url("/list.html"))
    started = time.monotonic()
    result = env.poll(settings=HttpSettings(retries=0, max_bytes=1024 * 1024))
    assert result.status == "failed" and result.message and "超过上限" in result.message
    assert time.monotonic() - started < 2


def test_a_server_that_never_answers_ends_at_the_deadline(hostile: HostileServer, make_env: MakeEnv) -> None:
    hostile.silent("/list.html")
    env = make_env(hostile.url("/list.html"), timeout='"1s"')
    started = time.monotonic()
    result = env.poll(settings=PATIENT)
    assert result.status == "failed" and result.message and "时限 1 秒" in result.message
    assert time.monotonic() - started < 2.5


def test_a_page_that_costs_minutes_to_parse_ends_at_the_deadline(hostile: HostileServer, make_env: MakeEnv) -> None:
    # 300,000 unclosed <div>: lexbor needs about 200 s for it (measured; quadratic in the depth).
    page = "<html><body>" + "<div>" * 300_000 + site_list_page(ENTRIES)[12:]
    hostile.page("/list.html", page)
    env = make_env(hostile.url("/list.html"), timeout='"2s"')
    started = time.monotonic()
    result = env.poll()
    elapsed = time.monotonic() - started
    assert result.status == "failed" and result.message and "时限 2 秒" in result.message
    assert elapsed < 3.5, elapsed
    assert env.stored() == 0


def test_a_deep_but_honest_page_is_still_read(hostile: HostileServer, make_env: MakeEnv) -> None:
    # Deep enough to be parsed in the child process, cheap enough to finish there.
    page = site_list_page(ENTRIES).replace("<body>", "<body>" + "<div>" * 3000)
    hostile.page("/list.html", page)
    result = make_env(hostile.url("/list.html")).poll()
    assert (result.status, result.new) == ("ok", len(ENTRIES)), result.message


@pytest.mark.parametrize(
    "page",
    [
        # Every <p> reopens every formatting element still open: n² nodes for n repetitions.
        "<html><body>" + "".join(f"<b id={i}><p>x" for i in range(30_000)) + "</body></html>",
        # Shallow (399 open) but 20,000 paragraphs after them: 8 million nodes, 2.9 GB in place.
        "<html><body>" + "".join(f"<b id={i}><p>x" for i in range(399)) + "<p>y" * 20_000 + "</body></html>",
    ],
    ids=["deep", "shallow"],
)
def test_a_node_bomb_fails_with_a_message(hostile: HostileServer, make_env: MakeEnv, page: str) -> None:
    hostile.page("/list.html", page)
    env = make_env(hostile.url("/list.html"), timeout='"5s"')
    started = time.monotonic()
    result = env.poll()
    assert result.status == "failed" and result.message, result
    assert "解析" in result.message or "时限" in result.message, result.message  # not any other failure
    assert time.monotonic() - started < 6


def test_one_stuck_channel_does_not_hold_up_the_others(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.silent("/stuck.html")
    hostile.page("/good.html", site_list_page(ENTRIES))
    tables = {
        key: f'type = "html-list"\nurl = "{hostile.url(path)}"\nitem = "ul.list li"\nmin_interval = "0s"\n'
        f"timeout = {seconds}"
        for key, path, seconds in (("stuck", "/stuck.html", 1), ("good", "/good.html", 30))
    }
    env = Env(write_poll_instance(tmp_path / "instance", tables))
    try:
        started = time.monotonic()
        results = {r.channel: r for r in poll_channels(env.opened, None, settings=PATIENT)}
        assert time.monotonic() - started < 2.5
    finally:
        env.opened.dispose()
    assert results["stuck"].status == "failed" and "时限" in (results["stuck"].message or "")
    assert (results["good"].status, results["good"].new) == ("ok", len(ENTRIES))


# --- §8 a failing poll prints one line, the traceback goes to the log -----------------------------------


def test_an_unexpected_failure_is_one_line_and_its_traceback_is_logged(
    hostile: HostileServer, make_env: MakeEnv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from typer.testing import CliRunner

    from channelwatch.cli import app
    from channelwatch.sources.website import HtmlListSource

    async def broken(self: HtmlListSource) -> Any:
        raise RuntimeError("the parser met\nsomething it did not expect\r\n  at all")
        yield  # an async generator, like the real one

    monkeypatch.setattr(HtmlListSource, "pages", broken)
    hostile.page("/list.html", site_list_page(ENTRIES))
    env = make_env(hostile.url("/list.html"))
    root = env.opened.instance.root
    with caplog.at_level(logging.DEBUG, logger="channelwatch.tracebacks"):
        result = CliRunner().invoke(app, ["--instance", str(root), "poll"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 2, result.output  # the channel's line and the summary
    assert lines[0].startswith("site：失败") and "something it did not expect at all" in lines[0]
    assert "Traceback" not in result.output
    logged = [r for r in caplog.records if r.name == "channelwatch.tracebacks"]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert "RuntimeError" in logging.Formatter().formatException(logged[0].exc_info)


def test_sigterm_during_a_command_line_poll_closes_the_run_as_interrupted(
    hostile: HostileServer, make_env: MakeEnv
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import wait_for

    hostile.silent("/list.html")
    env = make_env(hostile.url("/list.html"), timeout='"5m"')
    root = env.opened.instance.root
    environment = {k: v for k, v in os.environ.items() if k != "CHANNELWATCH_DATABASE_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "channelwatch", "--instance", str(root), "poll"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        assert wait_for(lambda: hostile.hits, 20)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, err
    assert elapsed < 3, elapsed
    assert "site：中断" in err and "Traceback" not in err
    table = Run.__table__  # type: ignore[attr-defined]
    with store.read(env.opened.engine) as conn:
        statuses = [r.status for r in conn.execute(select(table))]
    assert statuses == ["interrupted"]
