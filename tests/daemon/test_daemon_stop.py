"""The daemon against a server that never answers: its other jobs go on, SIGTERM stops it within 10 s
in the middle of that poll, and the poll's run is closed as interrupted (中断), in ``runs`` and ``jobs``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from channelwatch.store.jobstate import JobRun
from tests.conftest import wait_for
from tests.daemon.test_daemon import Counts, Daemon
from tests.fakeplatforms import FakePlatforms, HostileServer
from tests.sources.contract import poll_tables, write_poll_instance

pytestmark = pytest.mark.slow


@pytest.fixture
def platforms() -> Iterator[FakePlatforms]:
    server = FakePlatforms().start()
    yield server
    server.stop()


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "channelwatch", "--instance", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sigterm_in_the_middle_of_a_poll_stops_within_10s(tmp_path: Path, platforms: FakePlatforms) -> None:
    platforms.add_site_articles(6)
    with HostileServer() as hostile:
        hostile.silent("/stuck.html")
        stuck = f'type = "html-list"\nurl = "{hostile.url("/stuck.html")}"\nmin_interval = "0s"\ntimeout = "5m"\n'
        root = write_poll_instance(
            tmp_path / "instance", {"website": poll_tables(platforms)["website"], "stuck": stuck}
        )
        jobs = root / "jobs"
        jobs.mkdir(exist_ok=True)
        (jobs / "stuck.toml").write_text('action = "poll"\nevery = "1s"\nchannels = ["stuck"]\n', encoding="utf-8")
        (jobs / "good.toml").write_text('action = "poll"\nevery = "1s"\nchannels = ["website"]\n', encoding="utf-8")
        counts = Counts(root)
        daemon = Daemon(root)
        try:
            assert daemon.started(), daemon.output
            # The stuck poll is under way, and meanwhile the other job keeps polling.
            assert wait_for(lambda: hostile.hits, 20), daemon.output
            assert wait_for(lambda: len([r for r in counts.table(JobRun) if r.job_id == "good"]) >= 3, 20)
            assert counts.stored()["website"] == 6
            assert [r.status for r in counts.runs(kind="poll", channel_id=counts.opened.channel_id("stuck"))] == [
                "running"
            ]
        finally:
            started = time.monotonic()
            code = daemon.stop(timeout=15)
            elapsed = time.monotonic() - started
        assert code == 0, daemon.output
        assert elapsed < 10, elapsed
        assert "daemon stopped" in daemon.output
        assert "Traceback" not in daemon.output

    (stuck_run,) = counts.runs(kind="poll", channel_id=counts.opened.channel_id("stuck"))
    assert stuck_run.status == "interrupted"
    assert stuck_run.finished_at is not None and stuck_run.message and "中断" in stuck_run.message
    assert counts.runs(status="running") == []
    stuck_jobs = [r for r in counts.table(JobRun) if r.job_id == "stuck"]
    assert [r.status for r in stuck_jobs] == ["interrupted"]
    counts.close()

    runs = _cli(root, "runs", "--channel", "stuck")
    assert runs.returncode == 0, runs.stderr
    assert "中断" in runs.stdout and "进行中" not in runs.stdout
    listing = _cli(root, "jobs", "--format", "json")
    states = {j["id"]: j["last_status"] for j in json.loads(listing.stdout)["jobs"]}
    assert states["stuck"] == "interrupted"
    assert "中断" in _cli(root, "jobs").stdout
