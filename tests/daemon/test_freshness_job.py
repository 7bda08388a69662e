"""Freshness: the ``freshness`` command, the freshness-check job (warning delivered once a day), ``jobs``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from zoneinfo import ZoneInfo

from typer.testing import CliRunner

from channelwatch.cli import app
from channelwatch.ingest.imports import import_file
from channelwatch.instance.config import load_instance
from channelwatch.store import open_store
from channelwatch.store.jobstate import start_job_run

ZONE = ZoneInfo("Asia/Shanghai")


def _publish(instance_dir: Path, channel: str, days_ago: list[int]) -> None:
    today = datetime.now(ZONE).replace(hour=9, minute=0, second=0, microsecond=0)
    lines = ["标题,发布时间,链接"]
    for n, days in enumerate(days_ago):
        moment = today - timedelta(days=days)
        lines.append(f"{channel}信息{n},{moment:%Y-%m-%d %H:%M},http://www.example.gov.cn/{channel}/{n}.html")
    path = instance_dir / f"{channel}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    opened = open_store(load_instance(instance_dir))
    import_file(opened, channel, path)
    opened.dispose()


def cli(root: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["--instance", str(root), *args])


def test_freshness_command_and_channels(instance_dir: Path) -> None:
    _publish(instance_dir, "website", [3, 20])
    _publish(instance_dir, "weibo", [11, 30])
    result = cli(instance_dir, "freshness", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(result.output)}
    assert (rows["website"]["status"], rows["website"]["days_since"]) == ("ok", 3)
    assert (rows["weibo"]["status"], rows["weibo"]["days_since"], rows["weibo"]["days_left"]) == ("warn", 11, 3)
    assert rows["wechat"]["status"] == "empty"
    text = cli(instance_dir, "freshness").output
    assert "微博（weibo）已 11 天未更新" in text and "距 14 天期限还剩 3 天" in text
    assert "微信公众号（wechat）尚无任何发布记录" in text
    stricter = json.loads(cli(instance_dir, "freshness", "--warn-days", "2", "-f", "json").output)
    assert {r["id"]: r["status"] for r in stricter}["website"] == "warn"
    assert "预警（3天后超期）" in cli(instance_dir, "channels").output


def test_freshness_job_warns_once_a_day_and_jobs_lists_it(instance_dir: Path) -> None:
    _publish(instance_dir, "website", [1])
    _publish(instance_dir, "weibo", [16])
    _publish(instance_dir, "wechat", [12])
    (instance_dir / "jobs" / "fresh.toml").write_text(
        'action = "freshness-check"\ncron = "0 8 * * *"\n', encoding="utf-8"
    )
    first = cli(instance_dir, "run-job", "fresh")
    assert first.exit_code == 0, first.output
    assert "weibo 已 16 天未更新，超期 2 天" in first.output
    assert "wechat 已 12 天未更新，距期限还剩 2 天" in first.output
    second = cli(instance_dir, "run-job", "fresh")
    assert second.exit_code == 0
    emails = list((instance_dir / "outbox").glob("*freshness*.eml"))
    assert len(emails) == 1  # one warning a day, however often the check runs
    message = message_from_bytes(emails[0].read_bytes(), policy=default)
    body = message.get_body(("plain",)).get_content()
    assert "微博（weibo）已 16 天未更新" in body and "已超过 14 天的期限" in body
    assert "微信公众号（wechat）已 12 天未更新" in body and "还剩 2 天" in body
    assert "政府网站" not in body
    assert message["Subject"].endswith("2个渠道需要更新")

    listing = cli(instance_dir, "jobs")
    assert listing.exit_code == 0, listing.output
    line = next(x for x in listing.output.splitlines() if x.startswith("fresh "))
    assert "警告" in line and "cron：0 8 * * *" in line and " 08:00:00" in line


def test_jobs_shows_a_run_killed_half_way_as_interrupted(instance_dir: Path) -> None:
    (instance_dir / "jobs" / "inbox.toml").write_text('action = "import-inbox"\nevery = "5m"\n', encoding="utf-8")
    opened = open_store(load_instance(instance_dir))
    # What a killed process leaves: a run recorded as running, and nobody holding the job's lock.
    start_job_run(opened.engine, opened.office_id, "inbox", "import-inbox", "schedule", None)
    opened.dispose()
    data = json.loads(cli(instance_dir, "jobs", "--format", "json").output)
    assert data["jobs"][0]["last_status"] == "interrupted"
    assert "中断" in cli(instance_dir, "jobs").output
