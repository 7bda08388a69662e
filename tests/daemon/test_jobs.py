"""Job files: validation messages name the file and key; schedules; catch-up arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from channelwatch.daemon.jobs import (
    crontab_weekdays,
    find_job,
    load_jobs,
    missed_fire,
    next_fire,
    parse_duration,
)
from channelwatch.errors import ConfigError
from channelwatch.instance.config import load_instance
from tests.conftest import REPO, write_instance

SHANGHAI = ZoneInfo("Asia/Shanghai")
POLLABLE = """
[[channels]]
id = "site2"
kind = "website"
name = "政府网站（栏目二）"
  [channels.poll]
  type = "rss"
  url = "http://127.0.0.1:9/rss.xml"
"""


def _instance(tmp_path: Path, jobs: dict[str, str], extra: str = "") -> Path:
    root = write_instance(tmp_path / "inst", extra=extra)
    for name, text in jobs.items():
        (root / "jobs" / name).write_text(text, encoding="utf-8")
    return root


def _load(root: Path) -> list:
    return load_jobs(load_instance(root))


def test_example_office_jobs_load() -> None:
    repo = REPO
    jobs = {j.id: j for j in load_jobs(load_instance(repo))}
    assert set(jobs) == {"poll", "inbox", "quarterly", "freshness", "probe", "links", "inspect"}
    assert (jobs["probe"].action, jobs["probe"].spec.every) == ("probe", 900)
    assert (jobs["inspect"].action, jobs["inspect"].spec.cron) == ("inspect", "30 8 * * *")
    assert jobs["poll"].spec.every == 1800
    assert jobs["inbox"].spec.every == 300
    assert jobs["quarterly"].spec.cron == "0 9 3 1,4,7,10 *"
    assert jobs["quarterly"].grace_seconds("Asia/Shanghai") == 7 * 86400
    assert jobs["freshness"].action == "freshness-check"


def test_init_template_jobs_load(tmp_path: Path) -> None:
    from channelwatch.instance.scaffold import write_instance as init

    init(tmp_path / "new")
    jobs = load_jobs(load_instance(tmp_path / "new"))
    assert {j.action for j in jobs} == {
        "poll",
        "import-inbox",
        "quarterly-report",
        "freshness-check",
        "probe",
        "link-check",
        "inspect",
    }


def test_id_defaults_to_file_name_and_fields_parse(tmp_path: Path) -> None:
    root = _instance(
        tmp_path,
        {
            "a.toml": 'action = "poll"\nevery = "2h"\njitter = "30s"\nchannels = ["site2"]\n',
            "b.toml": 'id = "inbox-main"\naction = "import-inbox"\nevery = "5m"\npath = "drop"\nsettle = "3s"\n',
            "c.toml": 'action = "freshness-check"\ncron = "0 8 * * *"\nwarn_days = 7\n',
        },
        extra=POLLABLE,
    )
    jobs = _load(root)
    assert [j.id for j in jobs] == ["a", "inbox-main", "c"]
    assert jobs[0].spec.every == 7200 and jobs[0].spec.jitter == 30 and jobs[0].spec.channels == ["site2"]
    assert jobs[0].schedule_text == "every 2h ±30s"
    assert jobs[0].schedule_label == "每 2 小时（随机推迟 0–30 秒）"
    assert (jobs[1].schedule_label, jobs[2].schedule_label) == ("每 5 分钟", "cron：0 8 * * *")
    assert jobs[1].spec.path == "drop" and jobs[1].spec.settle == 3
    assert jobs[2].spec.warn_days == 7 and jobs[2].spec.limit_days is None
    assert find_job(jobs, "c") is jobs[2]


def test_jobs_shows_schedules_in_chinese(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from channelwatch.cli import app

    root = _instance(tmp_path, {"inbox.toml": 'action = "import-inbox"\nevery = "30s"\n'})
    listing = CliRunner().invoke(app, ["--instance", str(root), "jobs"])
    assert listing.exit_code == 0, listing.output
    line = next(x for x in listing.output.splitlines() if x.startswith("inbox "))
    assert "每 30 秒" in line and "every" not in line
    assert "收件箱导入" in line and "import-inbox" not in line  # the action as the clerk reads it


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ('action = "poll"\nevery = "30x"\n', "every", "30x"),
        ('action = "poll"\n', "every/cron", "every 和 cron"),
        ('action = "poll"\nevery = "1m"\ncron = "* * * * *"\n', "every/cron", "every 和 cron"),
        ('action = "poll"\ncron = "61 * * * *"\n', "cron", "61 * * * *"),
        ('action = "poll"\ncron = "0 9 * *"\n', "cron", "5 个字段"),
        ('action = "poll"\ncron = "0 9 31 2 *"\n', "cron", "cron 表达式「0 9 31 2 *」永远不会触发（2 月没有 31 日）"),
        ('action = "poll"\ncron = "0 9 30,31 2,feb *"\n', "cron", "「0 9 30,31 2,feb *」永远不会触发（"),
        ('action = "poll"\nevery = "1m"\nchanels = ["x"]\n', "chanels", "未知的配置项"),
        ('action = "publish"\nevery = "1m"\n', "action", "publish"),
        ('every = "1m"\n', "action", "缺少必填项"),
        ('action = "freshness-check"\nevery = "1d"\nwarn_days = 0\n', "warn_days", "数值过小"),
        ('action = "poll"\nevery = "1m"\nchannels = ["nosuch"]\n', "channels", "nosuch"),
        ('action = "poll"\nevery = "1m"\nchannels = ["weibo"]\n', "channels", "没有 [channels.poll]"),
        ('action = "import-inbox"\nevery = 5\npath = 3\n', "path", "应为字符串"),
    ],
)
def test_bad_job_file_names_file_and_key(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    root = _instance(tmp_path, {"broken.toml": text})
    with pytest.raises(ConfigError) as caught:
        _load(root)
    message = str(caught.value)
    assert str(root / "jobs" / "broken.toml") in message
    assert f"  {key}" in message
    assert fragment in message


def test_bad_toml_and_duplicate_ids(tmp_path: Path) -> None:
    root = _instance(tmp_path, {"x.toml": "action = \n"})
    with pytest.raises(ConfigError, match=r"x\.toml 不是有效的 TOML"):
        _load(root)
    root = _instance(
        tmp_path / "dup",
        {
            "a.toml": 'id = "same"\naction = "poll"\nevery = "1m"\n',
            "b.toml": 'id = "same"\naction = "poll"\nevery = "1m"\n',
        },
    )
    with pytest.raises(ConfigError, match=r"b\.toml 有误：\n  id：任务 id「same」与 .*a\.toml 重复"):
        _load(root)


def test_daemon_refuses_bad_job_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = _instance(tmp_path, {"oops.toml": 'action = "poll"\nevery = "soon"\n'})
    done = subprocess.run(
        [sys.executable, "-m", "channelwatch", "--instance", str(root), "daemon"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "oops.toml" in done.stderr and "every" in done.stderr and "soon" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("value", "seconds"), [("30s", 30), ("30m", 1800), ("2h", 7200), ("1d", 86400), (45, 45), ("1.5s", 1.5)]
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("*", "*"),
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0,6", "sun,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("mon-fri", "mon-fri"),
    ],
)
def test_crontab_weekdays_follow_crontab_numbering(field: str, expected: str) -> None:
    assert crontab_weekdays(field) == expected


def _job(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    return _load(_instance(tmp_path, {"j.toml": text}))[0]


def test_cron_runs_in_office_time_and_sunday_is_zero(tmp_path: Path) -> None:
    job = _job(tmp_path, 'action = "quarterly-report"\ncron = "0 9 3 1,4,7,10 *"\n')
    after = datetime(2020, 12, 31, 0, 0, tzinfo=UTC)
    assert next_fire(job, "Asia/Shanghai", after) == datetime(2021, 1, 3, 9, 0, tzinfo=SHANGHAI)
    sunday = _job(tmp_path / "s", 'action = "freshness-check"\ncron = "0 8 * * 0"\n')
    fire = next_fire(sunday, "Asia/Shanghai", after)
    assert fire is not None and fire.weekday() == 6 and fire.hour == 8


def test_missed_fire_for_cron_within_and_beyond_grace(tmp_path: Path) -> None:
    job = _job(tmp_path, 'action = "quarterly-report"\ncron = "0 9 3 1,4,7,10 *"\n')
    zone = "Asia/Shanghai"
    fire = datetime(2021, 1, 3, 9, 0, tzinfo=SHANGHAI)
    last = datetime(2020, 10, 3, 9, 0, tzinfo=SHANGHAI)
    # Down over the fire time, back 2 days later: caught up, for the 3 January run.
    assert missed_fire(job, zone, last, fire + timedelta(days=2)) == fire
    # Back 8 days later: beyond the 7-day grace, nothing to catch up.
    assert missed_fire(job, zone, last, fire + timedelta(days=8)) is None
    # Already ran for it: nothing.
    assert missed_fire(job, zone, fire, fire + timedelta(days=2)) is None
    # Before the fire time: nothing.
    assert missed_fire(job, zone, last, fire - timedelta(minutes=1)) is None


def test_missed_fire_for_intervals_is_the_latest_due_time(tmp_path: Path) -> None:
    job = _job(tmp_path, 'action = "poll"\nevery = "30m"\n')
    zone = "Asia/Shanghai"
    last = datetime(2021, 3, 1, 8, 0, tzinfo=UTC)
    assert missed_fire(job, zone, last, last + timedelta(minutes=29)) is None
    assert missed_fire(job, zone, last, last + timedelta(minutes=95)) == last + timedelta(minutes=90)
    assert job.grace_seconds(zone) == 1800


def test_grace_override(tmp_path: Path) -> None:
    job = _job(tmp_path, 'action = "quarterly-report"\ncron = "0 9 3 1,4,7,10 *"\ngrace = "1d"\n')
    fire = datetime(2021, 1, 3, 9, 0, tzinfo=SHANGHAI)
    assert missed_fire(job, "Asia/Shanghai", fire - timedelta(days=30), fire + timedelta(days=2)) is None
    assert missed_fire(job, "Asia/Shanghai", fire - timedelta(days=30), fire + timedelta(hours=2)) == fire
