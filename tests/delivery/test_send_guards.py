"""Nothing is "sent" that did not leave: no target, an unfinished quarter, an all-zero quarter."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from channelwatch import store
from channelwatch.instance.config import load_instance
from channelwatch.store import open_store
from channelwatch.store.jobstate import Delivery
from tests.conftest import _free_port
from tests.delivery.test_send import SmtpServer, cli, delivery_toml, make_instance, smtp

__all__ = ["smtp"]  # the SMTP fixture, used by name below

QUARTERLY_JOB = 'action = "quarterly-report"\ncron = "0 9 3 1,4,7,10 *"\n'


def deliveries(root: Path) -> list[tuple[str, str, str, str]]:
    opened = open_store(load_instance(root))
    try:
        with store.read(opened.engine) as conn:
            rows = conn.execute(Delivery.__table__.select().order_by(Delivery.__table__.c.id))  # type: ignore[attr-defined]
            return [(r.report, r.period, r.target, r.status) for r in rows]
    finally:
        opened.dispose()


def test_without_email_or_webhook_nothing_is_called_sent(tmp_path: Path) -> None:
    root = make_instance(tmp_path, '[delivery]\noutbox = "outbox"\n', {"quarterly.toml": QUARTERLY_JOB})
    result = cli(root, "quarterly", "-y", "2020", "-q", "4", "--send")
    assert result.exit_code == 1
    assert "没有配置发送目标，季度统计未发送" in result.output
    assert "[delivery.email]（host、from、to）或 webhook" in result.output
    assert "已发送" not in result.output and "Traceback" not in result.output
    assert list((root / "outbox").glob("*")) == [] and deliveries(root) == []

    job = cli(root, "run-job", "quarterly")
    assert job.exit_code == 1
    assert "失败" in job.output and "没有配置发送目标" in job.output
    listing = cli(root, "jobs")
    line = next(t for t in listing.output.splitlines() if t.startswith("quarterly"))
    assert "失败" in line
    assert "没有配置发送目标" in listing.output
    assert deliveries(root) == []


def test_a_quarter_that_has_not_ended_is_never_sent(tmp_path: Path, smtp: SmtpServer) -> None:
    root = make_instance(tmp_path, delivery_toml(smtp.port))
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    current = (today.month - 1) // 3 + 1
    for year, quarter in ((today.year, current), (today.year + 1, 1)):
        result = cli(root, "quarterly", "-y", str(year), "-q", str(quarter), "--send", "--allow-empty")
        assert result.exit_code == 1, result.output
        assert "尚未结束" in result.output and f"今天是 {today.isoformat()}" in result.output
    assert smtp.messages == [] and deliveries(root) == []
    preview = cli(root, "quarterly", "-y", str(today.year), "-q", str(current))
    assert preview.exit_code == 0  # looking at an unfinished quarter is fine; sending it is not
    assert f"注意：本季度尚未结束，数字统计至 {today.isoformat()}" in preview.output


def test_an_all_zero_quarter_needs_allow_empty(tmp_path: Path, smtp: SmtpServer) -> None:
    root = make_instance(tmp_path, delivery_toml(smtp.port))
    result = cli(root, "quarterly", "-y", "2018", "-q", "4", "--send")
    assert result.exit_code == 1
    assert "2018年第四季度各渠道发布数均为 0，未发送" in result.output and "--allow-empty" in result.output
    assert smtp.messages == [] and deliveries(root) == []
    allowed = cli(root, "quarterly", "-y", "2018", "-q", "4", "--send", "--allow-empty")
    assert allowed.exit_code == 0, allowed.output
    assert "邮件：已发送" in allowed.output
    assert len(smtp.messages) == 1 and "2018年第四季度" in smtp.messages[0]["Subject"]


def test_the_job_warns_the_office_and_sends_nothing_to_the_county_for_an_all_zero_quarter(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    # The 2020 samples hold nothing of the quarter that ended most recently (today's previous quarter).
    root = make_instance(tmp_path, delivery_toml(smtp.port, warn_to=True), {"quarterly.toml": QUARTERLY_JOB})
    job = cli(root, "run-job", "quarterly")
    assert job.exit_code == 0, job.output
    assert "警告" in job.output and "各渠道发布数均为 0，未发送" in job.output
    assert [e.rcpt_tos for e in smtp.envelopes] == [["bangongshi@example.gov.cn"]]  # warn_to only
    assert "各渠道发布数均为 0" in smtp.messages[0]["Subject"]
    assert "--allow-empty" in smtp.messages[0].get_body(("plain",)).get_content()
    assert {(r[0], r[2], r[3]) for r in deliveries(root)} == {
        ("quarterly-empty", "outbox", "sent"),
        ("quarterly-empty", "email", "sent"),
    }
    line = next(t for t in cli(root, "jobs").output.splitlines() if t.startswith("quarterly"))
    assert "警告" in line


def test_without_warn_to_the_warning_says_it_stayed_in_the_outbox(tmp_path: Path) -> None:
    port = _free_port()  # the county's SMTP server: must not even be tried
    root = make_instance(tmp_path, delivery_toml(port), {"quarterly.toml": QUARTERLY_JOB})
    job = cli(root, "run-job", "quarterly")
    assert job.exit_code == 0, job.output
    assert "警告" in job.output and "未配置 [delivery.email] warn_to，提醒只存入发件箱" in job.output
    assert [r[2] for r in deliveries(root)] == ["outbox"]


def test_run_job_prints_its_chinese_line_once_and_the_whole_command_to_send_zeros(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from channelwatch.reports.quarterly import previous_quarter

    root = make_instance(tmp_path, delivery_toml(_free_port()), {"quarterly.toml": QUARTERLY_JOB})
    year, quarter = previous_quarter(datetime.now(ZoneInfo("Asia/Shanghai")).date())

    def run_job(*options: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "channelwatch", "--instance", str(root), *options, "run-job", "quarterly"]
        return subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), timeout=120)

    ran = run_job()
    assert ran.returncode == 0, ran.stderr
    # run-job has no --allow-empty: the message gives the command that has it.
    assert (
        f"确认确实为 0 时运行 channelwatch quarterly --year {year} --quarter {quarter} --send --allow-empty"
        in ran.stdout
    )
    assert ran.stderr == ""  # the daemon's English log line is not repeated under the Chinese one
    verbose = run_job("--verbose")
    assert "channelwatch.daemon.actions: job quarterly (quarterly-report) warn" in verbose.stderr


def test_the_job_warns_about_publications_under_a_channel_id_the_config_lost(tmp_path: Path, smtp: SmtpServer) -> None:
    job = 'action = "quarterly-report"\ncron = "0 9 3 1,4,7,10 *"\n'
    root = make_instance(tmp_path, delivery_toml(smtp.port, warn_to=True), {"quarterly.toml": job})
    config = root / "config" / "channelwatch.toml"
    config.write_text(config.read_text(encoding="utf-8").replace('id = "weibo"', 'id = "sina"'), encoding="utf-8")
    ran = cli(root, "run-job", "quarterly")
    assert "警告" in ran.output
    assert "渠道 id「weibo」有 1227 条发布记录" in ran.output and "channels rename weibo" in ran.output


def test_the_quarterly_job_warns_of_a_channel_whose_zero_counts_nothing(tmp_path: Path, smtp: SmtpServer) -> None:
    """The quarter is sent (its figures are right as far as the store knows) and the job's result, which `jobs`
    shows, names the configured channel without any record: its 0 on the county's sheet counts nothing."""
    from channelwatch.daemon.actions import ACTIONS
    from channelwatch.daemon.jobs import load_job

    root = make_instance(tmp_path, delivery_toml(smtp.port), {"quarterly.toml": QUARTERLY_JOB})
    config = root / "config" / "channelwatch.toml"
    config.write_text(
        config.read_text(encoding="utf-8") + '\n[[channels]]\nid = "douyin"\nkind = "other"\nname = "抖音号"\n',
        encoding="utf-8",
    )
    instance = load_instance(root)
    opened = open_store(instance)
    try:
        job = load_job(root / "jobs" / "quarterly.toml", instance)
        outcome = ACTIONS["quarterly-report"](
            opened, job, datetime(2021, 1, 3, 9, tzinfo=ZoneInfo("Asia/Shanghai")), None
        )
    finally:
        opened.dispose()
    assert outcome.status == "warn", outcome
    assert "季度统计 2020Q4：发件箱已存副本（未发出），邮件已发送" in outcome.message
    assert (
        "渠道「抖音号」（douyin）还没有任何发布记录（没有导入或抓取到过它的数据），2020年第四季度它的“0条”只表示没有数据"
        in (outcome.message)
    )
    assert len(smtp.messages) == 1 and deliveries(root)[-1][1:] == ("2020Q4", "email", "sent")
