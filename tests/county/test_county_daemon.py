"""One daemon polls every office of a county instance, on SQLite and PostgreSQL, against loopback platforms.

Each office's poll is a job of its own: both offices' counts appear and grow, the log names the office of
each run, a third office whose platform is unreachable fails on every run without stopping the others,
and ``offices = [...]`` limits a job to the offices it names.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from channelwatch import store
from channelwatch.instance.config import load_instance
from channelwatch.store.jobstate import JobRun, JobState
from channelwatch.store.models import Publication
from tests.conftest import wait_for
from tests.county.test_county import write_county
from tests.fakeplatforms import WEIBO_COOKIE, FakePlatforms
from tests.sources.contract import poll_tables

pytestmark = pytest.mark.slow


@pytest.fixture
def platforms() -> Iterator[FakePlatforms]:
    server = FakePlatforms().start()
    yield server
    server.stop()


def _stored(root: Path) -> dict[str, dict[str, int]]:
    county = load_instance(root)
    own, stores = store.open_offices(county)
    pub = Publication.__table__  # type: ignore[attr-defined]
    try:
        with store.read(own.engine) as conn:
            by_id = dict(conn.execute(select(pub.c.channel_id, func.count()).group_by(pub.c.channel_id)).all())
        return {
            key: {c: int(by_id.get(cid, 0)) for c, cid in opened.channel_ids.items()} for key, opened in stores.items()
        }
    finally:
        own.dispose()


def _job_states(root: Path) -> dict[tuple[str, str], str | None]:
    county = load_instance(root)
    own, stores = store.open_offices(county)
    states = JobState.__table__  # type: ignore[attr-defined]
    by_office = {opened.office_id: key for key, opened in stores.items()}
    try:
        with store.read(own.engine) as conn:
            rows = list(conn.execute(select(states)))
        return {(by_office.get(r.office_id, "?"), r.job_id): r.last_status for r in rows}
    finally:
        own.dispose()


def _job_runs(root: Path) -> dict[tuple[str, str], set[str]]:
    county = load_instance(root)
    own, stores = store.open_offices(county)
    runs = JobRun.__table__  # type: ignore[attr-defined]
    by_office = {opened.office_id: key for key, opened in stores.items()}
    found: dict[tuple[str, str], set[str]] = {}
    try:
        with store.read(own.engine) as conn:
            for row in conn.execute(select(runs.c.office_id, runs.c.job_id, runs.c.status)):
                found.setdefault((by_office.get(row.office_id, "?"), row.job_id), set()).add(row.status)
        return found
    finally:
        own.dispose()


def test_one_daemon_polls_every_office(tmp_path: Path, database_url: str, platforms: FakePlatforms) -> None:
    platforms.add_site_articles(6)
    platforms.add_weibo_posts(5, reposts=1)
    tables = poll_tables(platforms)
    broken = tables["website"].replace(platforms.site_list_url, "http://127.0.0.1:9/xxgk/index.html")
    root = write_county(
        tmp_path / "county",
        database_url,
        {
            "gongan": {"weibo": tables["weibo"]},
            "baiyang": {"website": tables["website"]},
            "jiaotong": {},
        },
    )
    # The sheet office gets a broken channel of its own for this test: its polls fail on every run.
    office_file = root / "config" / "offices" / "jiaotong.toml"
    office_file.write_text(
        office_file.read_text(encoding="utf-8")
        + '\n[[channels]]\nid = "website"\nkind = "website"\nname = "政府网站"\n  [channels.poll]\n'
        + broken
        + "\n",
        encoding="utf-8",
    )
    (root / "jobs").mkdir()
    (root / "jobs" / "poll.toml").write_text('action = "poll"\nevery = "1s"\n', encoding="utf-8")
    (root / "jobs" / "poll-gongan.toml").write_text(
        'action = "poll"\nevery = "1h"\noffices = ["gongan"]\n', encoding="utf-8"
    )
    env = {**os.environ, "CW_TEST_WEIBO_COOKIE": WEIBO_COOKIE}
    env.pop("CHANNELWATCH_DATABASE_URL", None)
    log = root / "daemon.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "channelwatch", "--instance", str(root), "daemon"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
        )
    output = lambda: log.read_text(encoding="utf-8", errors="replace")  # noqa: E731
    try:
        assert wait_for(lambda: "daemon started" in output() or process.poll() is not None, 30), output()
        want = {
            "gongan": {"website": 0, "weibo": 5},
            "baiyang": {"website": 6, "wechat": 0},
            "jiaotong": {"website": 0},
        }
        assert wait_for(lambda: _stored(root) == want, 40), (_stored(root), output())
        platforms.add_site_articles(2)
        platforms.add_weibo_posts(3)
        want = {
            "gongan": {"website": 0, "weibo": 8},
            "baiyang": {"website": 8, "wechat": 0},
            "jiaotong": {"website": 0},
        }
        assert wait_for(lambda: _stored(root) == want, 40), (_stored(root), output())
        assert wait_for(lambda: "job jiaotong:poll (poll) failed" in output(), 20), output()
        text = output()
        assert "job gongan:poll (poll) ok" in text and "job baiyang:poll (poll) ok" in text
        states = _job_states(root)  # a job may be running right now: judge by its finished runs
        outcomes = _job_runs(root)
        assert outcomes[("jiaotong", "poll")] >= {"failed"} and "ok" not in outcomes[("jiaotong", "poll")]
        assert outcomes[("gongan", "poll")] - {"running"} == {"ok"}
        assert outcomes[("baiyang", "poll")] - {"running"} == {"ok"}
        # offices = ["gongan"]: that job exists for gongan only.
        assert ("gongan", "poll-gongan") in states
        assert ("baiyang", "poll-gongan") not in states and ("jiaotong", "poll-gongan") not in states
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, output()
    assert "Traceback" not in output()
