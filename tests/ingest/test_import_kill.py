"""kill -9 in the middle of a large import: nothing stored, no reader left behind, a rerun counts exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from channelwatch import store
from channelwatch.instance.config import load_instance
from channelwatch.stats.figures import Period, summarise
from channelwatch.stats.listing import list_runs
from channelwatch.store import open_store
from tests.conftest import wait_for

ROWS = 120_000  # about 9 MiB: above the read-ahead threshold, so a reader child is running


def _export(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("微博ID,微博内容,发布时间,是否转发\n")
        for n in range(ROWS):
            handle.write(
                f"{4400000000000000 + n},园区动态第{n}条：安全生产检查与企业服务,2020-{n % 12 + 1:02d}-15 09:00,原创\n"
            )
    return path


def _total(instance: Path) -> int:
    opened = open_store(load_instance(instance))
    with store.read(opened.engine) as conn:
        total = summarise(conn, opened.office_id, Period(2020), ["weibo"]).total
    opened.dispose()
    return total


def _readers(parent: int) -> list[str]:
    """This import's reader children only: other test runs on the machine may be importing too."""
    found = subprocess.run(
        ["pgrep", "-P", str(parent), "-f", "channelwatch.ingest.readahead"], capture_output=True, text=True
    )
    return found.stdout.split()


def _alive(pids: list[str]) -> bool:
    return any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_kill_9_during_import_then_rerun(instance_dir: Path, tmp_path: Path) -> None:
    export = _export(tmp_path / "weibo.csv")
    assert export.stat().st_size > 4 << 20
    command = [sys.executable, "-m", "channelwatch", "--instance", str(instance_dir), "import", "weibo", str(export)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Kill once the import's run is recorded and its reader is at work, i.e. in the middle of it.
    assert wait_for(lambda: bool(_readers(process.pid)), timeout=30), "the reader child never started"
    readers = _readers(process.pid)
    time.sleep(0.5)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL

    assert _total(instance_dir) == 0  # the transaction died with the process: nothing half-stored
    assert wait_for(lambda: not _alive(readers), timeout=15), "the reader outlived its parent"
    opened = open_store(load_instance(instance_dir))
    with store.read(opened.engine) as conn:
        runs = list_runs(conn, opened, limit=5)
    opened.dispose()
    assert [r.status for r in runs] == ["running"]  # shown as interrupted, never as a success

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"读取 {ROWS} 行，新增 {ROWS}，已有 0" in rerun.stdout
    assert _total(instance_dir) == ROWS
