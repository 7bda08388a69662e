"""The daemon runs the inspection jobs on their schedule: probes recorded, the verdict in ``jobs``."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from typer.testing import CliRunner

from channelwatch import store
from channelwatch.cli import app
from channelwatch.instance.config import load_instance
from channelwatch.store import open_store
from channelwatch.store.checkstate import PageObservation, ProbeResult
from tests.checks.site import Column, Entry, InspectionSite
from tests.conftest import wait_for, write_instance
from tests.daemon.test_daemon import Daemon

TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()


def test_daemon_probes_polls_and_inspects(tmp_path: Path) -> None:
    site = InspectionSite().start()
    try:
        site.columns["gzdt"] = Column("gzdt", [Entry("动态", "art/a.html", TODAY - timedelta(days=20))])
        root = write_instance(
            tmp_path / "inst",
            extra=f"""
[[channels]]
id = "site"
kind = "website"
name = "县政府网站"
  [channels.poll]
  homepage = "{site.homepage}"
  item = "ul.list li"
  min_interval = "0s"
  [[channels.columns]]
  name = "工作动态"
  url = "{site.column_url("gzdt")}"
""",
        )
        jobs = {
            "poll.toml": 'action = "poll"\nevery = "1s"\n',
            "probe.toml": 'action = "probe"\nevery = "1s"\n',
            "inspect.toml": 'action = "inspect"\nevery = "2s"\nnotify = false\n',
        }
        for name, text in jobs.items():
            (root / "jobs" / name).write_text(text, encoding="utf-8")
        opened = open_store(load_instance(root))

        def count(model: object) -> int:
            with store.read(opened.engine) as conn:
                return int(conn.execute(select(func.count()).select_from(model)).scalar_one())  # type: ignore[arg-type]

        daemon = Daemon(root)
        try:
            assert daemon.started(), daemon.output
            assert wait_for(lambda: count(ProbeResult) >= 3 and count(PageObservation) >= 2, 30), daemon.output
            listing = ""

            def verdict_shown() -> bool:
                nonlocal listing
                listing = CliRunner().invoke(app, ["--instance", str(root), "jobs"]).output
                return "结论：否决风险" in listing

            assert wait_for(verdict_shown, 30), listing + daemon.output
        finally:
            assert daemon.stop() == 0, daemon.output
            opened.dispose()
    finally:
        site.stop()
