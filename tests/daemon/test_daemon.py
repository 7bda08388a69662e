"""The daemon as a subprocess: jobs every 1–2 s against the loopback platforms of the polling tests.

- counts appear, and grow when the platforms publish more;
- a second daemon on the same database refuses to start;
- ``kill -9`` in the middle of a poll, restart: counts exact (nothing lost, nothing doubled);
- a quarterly job whose time passed while the daemon was down runs once at start;
- SIGTERM stops it cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from channelwatch import store
from channelwatch.instance.config import load_instance
from channelwatch.store import open_store
from channelwatch.store.jobstate import Delivery, JobRun, JobState
from channelwatch.store.models import Publication, Run
from tests.conftest import wait_for
from tests.fakeplatforms import WEIBO_COOKIE, FakePlatforms
from tests.sources.contract import poll_tables, write_poll_instance

pytestmark = pytest.mark.slow

ZONE = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def platforms() -> Iterator[FakePlatforms]:
    server = FakePlatforms().start()
    yield server
    server.stop()


class Daemon:
    """``python -m channelwatch --instance DIR daemon`` with its stderr in a file."""

    def __init__(self, root: Path, name: str = "daemon") -> None:
        self.root = root
        self.log = root / f"{name}.log"
        env = {**os.environ, "CW_TEST_WEIBO_COOKIE": WEIBO_COOKIE}
        env.pop("CHANNELWATCH_DATABASE_URL", None)
        with self.log.open("wb") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "channelwatch", "--instance", str(root), "daemon"],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
            )

    @property
    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def started(self, timeout: float = 20) -> bool:
        return wait_for(lambda: "daemon started" in self.output or self.process.poll() is not None, timeout)

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        self.process.kill()  # SIGKILL
        self.process.wait(10)


def _instance(tmp_path: Path, server: FakePlatforms, jobs: dict[str, str]) -> Path:
    tables = poll_tables(server)
    root = write_poll_instance(tmp_path / "instance", {"website": tables["website"], "weibo": tables["weibo"]})
    (root / "jobs").mkdir(exist_ok=True)
    for name, text in jobs.items():
        (root / "jobs" / name).write_text(text, encoding="utf-8")
    return root


class Counts:
    def __init__(self, root: Path) -> None:
        self.opened = open_store(load_instance(root))

    def stored(self) -> dict[str, int]:
        pub = Publication.__table__  # type: ignore[attr-defined]
        with store.read(self.opened.engine) as conn:
            rows = conn.execute(select(pub.c.channel_id, func.count()).group_by(pub.c.channel_id))
            by_id = dict(rows.all())
        return {key: int(by_id.get(cid, 0)) for key, cid in self.opened.channel_ids.items()}

    def runs(self, **where: Any) -> list[Any]:
        run = Run.__table__  # type: ignore[attr-defined]
        query = select(run)
        for column, value in where.items():
            query = query.where(run.c[column] == value)
        with store.read(self.opened.engine) as conn:
            return list(conn.execute(query.order_by(run.c.id)))

    def table(self, model: Any) -> list[Any]:
        with store.read(self.opened.engine) as conn:
            return list(conn.execute(select(model.__table__)))

    def close(self) -> None:
        self.opened.dispose()


def test_polls_fill_counts_one_daemon_per_database_clean_stop(tmp_path: Path, platforms: FakePlatforms) -> None:
    platforms.add_site_articles(12)
    platforms.add_weibo_posts(15, reposts=2)
    root = _instance(tmp_path, platforms, {"poll.toml": 'action = "poll"\nevery = "1s"\n'})
    counts = Counts(root)
    daemon = Daemon(root)
    try:
        assert daemon.started(), daemon.output
        assert wait_for(lambda: counts.stored() == {"website": 12, "weibo": 15}, 30), (counts.stored(), daemon.output)

        # A second daemon on the same database exits at once, saying why.
        second = subprocess.run(
            [sys.executable, "-m", "channelwatch", "--instance", str(root), "daemon"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert "另一个 channelwatch 守护进程已在使用这个数据库" in second.stderr
        assert "Traceback" not in second.stderr

        # The platforms publish more: the next polls pick it up.
        platforms.add_site_articles(3)
        platforms.add_weibo_posts(4)
        assert wait_for(lambda: counts.stored() == {"website": 15, "weibo": 19}, 30), counts.stored()
    finally:
        code = daemon.stop()
    assert code == 0, daemon.output
    output = daemon.output
    assert "job poll (poll) ok" in output and "daemon stopped" in output
    assert "website 成功：" in output
    # Every poll run was closed: a clean stop leaves no run half-way.
    assert counts.runs(status="running") == []
    assert all(r.status == "ok" for r in counts.runs())
    counts.close()


def test_kill_9_in_the_middle_of_a_poll_then_restart_counts_exact(tmp_path: Path, platforms: FakePlatforms) -> None:
    platforms.site_page_size = 4
    platforms.add_site_articles(14)  # 4 pages
    platforms.add_weibo_posts(12, reposts=3)
    # Every answer takes 0.3 s: a poll of the website lasts over a second, time enough to kill it mid-way.
    platforms.fault("timeout", delay=0.3)
    root = _instance(tmp_path, platforms, {"poll.toml": 'action = "poll"\nevery = "1s"\n'})
    counts = Counts(root)
    killed = 0
    for round_number in range(3):
        known = {r.id for r in counts.runs()}
        daemon = Daemon(root, f"daemon-{round_number}")
        assert daemon.started(), daemon.output

        def mid_poll(known: set[int] = known) -> bool:
            return any(r.status == "running" and r.id not in known for r in counts.runs(kind="poll"))

        assert wait_for(mid_poll, 20, interval=0.02), daemon.output
        daemon.kill()
        killed += 1
        # The killed runs stored nothing half-way: every publication belongs to a finished run.
        stored = counts.stored()
        assert stored["website"] in (0, 14) and stored["weibo"] in (0, 12)

    assert killed == 3
    daemon = Daemon(root, "daemon-final")
    try:
        assert daemon.started(), daemon.output
        assert wait_for(lambda: counts.stored() == {"website": 14, "weibo": 12}, 40), (counts.stored(), daemon.output)
        # Some more complete polls after that: nothing doubled.
        done = len([r for r in counts.runs(kind="poll") if r.status == "ok"])
        assert wait_for(lambda: len([r for r in counts.runs(kind="poll") if r.status == "ok"]) >= done + 2, 30)
        assert counts.stored() == {"website": 14, "weibo": 12}
    finally:
        assert daemon.stop() == 0, daemon.output
    pub = Publication.__table__  # type: ignore[attr-defined]
    with store.read(counts.opened.engine) as conn:
        reposts = conn.execute(select(func.count()).where(pub.c.is_repost.is_(True))).scalar_one()
    assert reposts == 3
    # The killed runs show as interrupted (still "running" in the run log), never as a success.
    assert len(counts.runs(status="running")) >= 1
    counts.close()


def test_quarterly_missed_while_down_runs_once_at_start(tmp_path: Path, platforms: FakePlatforms) -> None:
    # A daily cron five minutes ago (office time): its latest fire time has just passed.
    fire = (datetime.now(ZONE) - timedelta(minutes=5)).replace(second=0, microsecond=0)
    job = f'action = "quarterly-report"\ncron = "{fire.minute} {fire.hour} * * *"\n'
    root = _instance(tmp_path, platforms, {"quarterly.toml": job})
    counts = Counts(root)

    # First start: the job is registered now, after the fire time: nothing to catch up.
    first = Daemon(root, "first")
    assert first.started(), first.output
    assert first.stop() == 0, first.output
    assert counts.table(JobRun) == []
    assert "catching up" not in first.output

    # The daemon had been down since yesterday (it first saw the job a day ago, the job never ran).
    states = JobState.__table__  # type: ignore[attr-defined]
    with store.write(counts.opened.engine) as conn:
        conn.execute(states.update().values(registered_at=store.utc_now() - timedelta(days=1)))

    second = Daemon(root, "second")
    try:
        assert second.started(), second.output
        assert wait_for(lambda: any(r.status != "running" for r in counts.table(JobRun)), 30), second.output
    finally:
        assert second.stop() == 0, second.output
    runs = counts.table(JobRun)
    # This instance configures no e-mail and no webhook: the run fails and says what to configure,
    # rather than calling the outbox copy "sent" (a run is a run: it is not caught up again below).
    assert [(r.job_id, r.trigger, r.status) for r in runs] == [("quarterly", "catch-up", "failed")], second.output
    assert "没有配置发送目标" in runs[0].message and "[delivery.email]" in runs[0].message
    assert "catching up once now" in second.output
    assert counts.table(Delivery) == []
    assert list((root / "outbox").glob("*.eml")) == []

    # Started again: that run is done; it does not run a second time.
    third = Daemon(root, "third")
    try:
        assert third.started(), third.output
        assert not wait_for(lambda: len(counts.table(JobRun)) > 1, 3)
    finally:
        assert third.stop() == 0, third.output
    assert len(counts.table(JobRun)) == 1
    counts.close()
