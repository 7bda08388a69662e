"""One daemon per database, on SQLite (file lock) and PostgreSQL (advisory lock); job runs never overlap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from channelwatch.cli import app
from channelwatch.daemon.locks import try_lock
from channelwatch.instance.config import load_instance
from channelwatch.store import open_store
from channelwatch.store.jobstate import job_states
from tests.conftest import wait_for


def test_lock_is_exclusive_and_released(any_instance_dir: Path) -> None:
    first = open_store(load_instance(any_instance_dir))
    second = open_store(load_instance(any_instance_dir))
    try:
        held = try_lock(first, "daemon")
        assert held is not None
        assert try_lock(second, "daemon") is None
        other = try_lock(second, "job-1-poll")  # another name is another lock
        assert other is not None
        other.release()
        held.release()
        again = try_lock(second, "daemon")
        assert again is not None
        again.release()
    finally:
        first.dispose()
        second.dispose()


def test_second_daemon_refuses_to_start(any_instance_dir: Path) -> None:
    (any_instance_dir / "jobs" / "fresh.toml").write_text(
        'action = "freshness-check"\nevery = "1s"\nnotify = false\n', encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if k != "CHANNELWATCH_DATABASE_URL"}
    command = [sys.executable, "-m", "channelwatch", "--instance", str(any_instance_dir), "daemon"]
    log = any_instance_dir / "daemon.log"
    with log.open("wb") as handle:
        daemon = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    try:
        assert wait_for(lambda: "job fresh (freshness-check) warn" in log.read_text(), 30), log.read_text()
        second = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)
        assert second.returncode == 1, second.stderr
        assert "另一个 channelwatch 守护进程已在使用这个数据库" in second.stderr
        # run-job by hand while the daemon runs the same job: allowed, the job lock keeps runs apart.
        result = CliRunner().invoke(app, ["--instance", str(any_instance_dir), "run-job", "fresh"])
        assert result.exit_code in (0, 1), result.output
        assert "website 无发布记录" in result.output or "正在另一个进程中运行" in result.output
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(30)
    assert code == 0, log.read_text()
    opened = open_store(load_instance(any_instance_dir))
    state = job_states(opened.engine, opened.office_id)["fresh"]
    opened.dispose()
    assert state.last_status == "warn"
    assert "website 无发布记录" in (state.last_message or "")
