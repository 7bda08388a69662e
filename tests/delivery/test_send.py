"""Delivery against a real SMTP server on loopback (aiosmtpd) and a real webhook receiver."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from typer.testing import CliRunner

from channelwatch import store
from channelwatch.cli import app
from channelwatch.delivery.send import undelivered
from channelwatch.ingest.imports import import_file
from channelwatch.instance.config import load_instance
from channelwatch.stats.figures import Period, summarise
from channelwatch.store import open_store
from channelwatch.store.jobstate import Delivery
from tests.conftest import SAMPLES, _free_port, write_instance

OFFICE = "彭阳县王洼产业园区管理委员会"
SUBJECT = f"{OFFICE}2020年第四季度政府信息公开统计"
PASSWORD = "pa55-word-for-tests-only"


@dataclass
class SmtpServer:
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)


def start_smtp(port: int, *, auth: bool = False) -> tuple[Any, SmtpServer]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    server = SmtpServer(port=port)

    class Handler:
        async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
            server.envelopes.append(envelope)
            server.messages.append(message_from_bytes(envelope.original_content, policy=default))  # type: ignore[arg-type]
            return "250 OK"

    def authenticator(smtp: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword):
            login, password = data.login.decode(), data.password.decode()
            server.logins.append((login, password))
            return AuthResult(success=login == "tongji@example.gov.cn" and password == PASSWORD)
        return AuthResult(success=False)

    options: dict[str, Any] = {}
    if auth:
        options = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False}
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, **options)
    controller.start()
    return controller, server


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    controller, server = start_smtp(_free_port())
    yield server
    controller.stop()


def delivery_toml(port: int, *, auth: bool = False, webhook: str | None = None, warn_to: bool = False) -> str:
    text = f"""
[delivery]
outbox = "outbox"
{f'webhook = "{webhook}"' if webhook else ""}
  [delivery.email]
  host = "127.0.0.1"
  port = {port}
  security = "none"
  from = "tongji@example.gov.cn"
  to = ["gongkaiban@example.gov.cn", "archive@example.gov.cn"]
  timeout = 10
"""
    if auth:
        text += '  username = "tongji@example.gov.cn"\n  password_env = "CW_TEST_SMTP_PASSWORD"\n'
    if warn_to:
        text += '  warn_to = ["bangongshi@example.gov.cn"]\n'
    return text


def make_instance(tmp_path: Path, delivery: str, jobs: dict[str, str] | None = None) -> Path:
    root = write_instance(tmp_path / "inst", extra=delivery)
    for name, text in (jobs or {}).items():
        (root / "jobs" / name).write_text(text, encoding="utf-8")
    opened = open_store(load_instance(root))
    for channel_dir in sorted(p for p in SAMPLES.iterdir() if p.is_dir()):
        for path in sorted(channel_dir.iterdir()):
            import_file(opened, channel_dir.name, path)
    opened.dispose()
    return root


def cli(root: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--instance", str(root), *args])


def xlsx_of(message: EmailMessage) -> tuple[str, bytes]:
    parts = [p for p in message.iter_attachments() if p.get_filename(failobj="").endswith(".xlsx")]
    assert len(parts) == 1
    return parts[0].get_filename(), parts[0].get_content()


def test_quarterly_arrives_with_xlsx_and_is_not_sent_twice(tmp_path: Path, smtp: SmtpServer) -> None:
    root = make_instance(tmp_path, delivery_toml(smtp.port))
    result = cli(root, "quarterly", "--year", "2020", "--quarter", "4", "--send")
    assert result.exit_code == 0, result.output
    assert "邮件：已发送" in result.output
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["Subject"] == SUBJECT
    assert smtp.envelopes[0].rcpt_tos == ["gongkaiban@example.gov.cn", "archive@example.gov.cn"]
    assert smtp.envelopes[0].mail_from == "tongji@example.gov.cn"

    opened = open_store(load_instance(root))
    with store.read(opened.engine) as conn:
        quarter = summarise(conn, opened.office_id, Period(2020, quarter=4))
        year = summarise(conn, opened.office_id, Period(2020))
    body = message.get_body(("plain",)).get_content()
    assert f"共发布信息{quarter.total}条" in body
    assert message.get_body(("html",)) is not None

    name, content = xlsx_of(message)
    assert name == f"{SUBJECT}.xlsx"
    sheet = load_workbook(io.BytesIO(content)).active
    names = {sheet.cell(row=r, column=1).value: r for r in range(5, 9)}
    for channel in quarter.channels:
        line = names[channel.name]
        assert sheet.cell(row=line, column=11).value == channel.total  # 本季度合计
        assert sheet.cell(row=line, column=13).value == channel.reposts
    total_line = names["合计"]
    assert sheet.cell(row=total_line, column=11).value == quarter.total
    assert sheet.cell(row=total_line, column=14).value == year.total  # 本年累计 (Q4: the whole year)

    # The outbox holds the same message and its attachment.
    emls = sorted((root / "outbox").glob("*.eml"))
    assert len(emls) == 1
    copy = message_from_bytes(emls[0].read_bytes(), policy=default)
    assert copy["Message-ID"] == message["Message-ID"]
    assert (root / "outbox" / f"{emls[0].stem}-{SUBJECT}.xlsx").read_bytes() == content

    # Not sent twice.
    again = cli(root, "quarterly", "--year", "2020", "--quarter", "4", "--send")
    assert again.exit_code == 0, again.output
    assert "邮件：跳过" in again.output
    assert "发件箱：跳过：已存过副本" in again.output  # a copy kept is not "已发送过"
    assert len(smtp.messages) == 1
    assert len(list((root / "outbox").glob("*.eml"))) == 1

    # Unless asked.
    resent = cli(root, "quarterly", "--year", "2020", "--quarter", "4", "--resend")
    assert resent.exit_code == 0, resent.output
    assert len(smtp.messages) == 2
    assert len(list((root / "outbox").glob("*.eml"))) == 2
    with store.read(opened.engine) as conn:
        rows = list(conn.execute(Delivery.__table__.select()))  # type: ignore[attr-defined]
    assert sorted((r.target, r.status) for r in rows) == [
        ("email", "sent"),
        ("email", "sent"),
        ("outbox", "sent"),
        ("outbox", "sent"),
    ]
    opened.dispose()


def test_the_mail_comes_from_the_office_and_the_lines_name_targets_in_chinese(tmp_path: Path, smtp: SmtpServer) -> None:
    root = make_instance(tmp_path, delivery_toml(smtp.port))
    result = cli(root, "quarterly", "--year", "2020", "--quarter", "4", "--send")
    assert result.exit_code == 0, result.output
    # The recipients see the office that reports, at the configured address; not the program's name.
    sender = smtp.messages[0]["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == (OFFICE, "tongji@example.gov.cn")
    copy = message_from_bytes(next((root / "outbox").glob("*.eml")).read_bytes(), policy=default)
    assert copy["From"].addresses[0].display_name == OFFICE
    lines = result.output.splitlines()
    assert "发件箱：已存副本（副本不算发送）：" in result.output and "邮件：已发送" in lines
    assert not [line for line in lines if line.startswith(("outbox", "email", "webhook："))]


def test_failed_send_is_shown_and_retried_at_the_next_run(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens here yet
    job = 'action = "quarterly-report"\ncron = "0 9 3 1,4,7,10 *"\n'
    root = make_instance(tmp_path, delivery_toml(port), {"quarterly.toml": job})
    failed = cli(root, "quarterly", "--year", "2020", "--quarter", "4", "--send")
    assert failed.exit_code == 1
    assert "邮件：失败" in failed.output
    assert "发件箱：已存副本（副本不算发送）" in failed.output  # the copy is kept even when the send fails
    assert "发件箱：已发送" not in failed.output
    listing = cli(root, "jobs")
    assert "季度统计 2020Q4 → 邮件  发送失败，已尝试 1 次" in listing.output

    controller, server = start_smtp(port)
    try:
        ran = cli(root, "run-job", "quarterly")
        assert ran.exit_code == 0, ran.output
    finally:
        controller.stop()
    subjects = [m["Subject"] for m in server.messages]
    # The failed 2020 Q4 send is retried. The quarter that just ended (today's) has no publication
    # in these 2020 samples: it is not sent to the county, and the job ends as a warning.
    assert subjects == [SUBJECT]
    assert "警告" in ran.output and "各渠道发布数均为 0，未发送" in ran.output
    opened = open_store(load_instance(root))
    assert undelivered(opened) == []
    opened.dispose()
    assert "尚未发送成功" not in cli(root, "jobs").output


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_with_password_from_environment_never_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()
    controller, server = start_smtp(port, auth=True)
    try:
        root = make_instance(tmp_path, delivery_toml(port, auth=True))
        missing = cli(root, "quarterly", "-y", "2020", "-q", "4", "--send")
        assert missing.exit_code == 1
        assert "CW_TEST_SMTP_PASSWORD" in missing.output and not server.messages

        monkeypatch.setenv("CW_TEST_SMTP_PASSWORD", PASSWORD)
        sent = cli(root, "quarterly", "-y", "2020", "-q", "4", "--send")
        assert sent.exit_code == 0, sent.output
        assert server.logins == [("tongji@example.gov.cn", PASSWORD)]
        assert len(server.messages) == 1
    finally:
        controller.stop()
    for path in root.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert PASSWORD not in cli(root, "jobs", "--format", "json").output


def test_webhook_receives_json(tmp_path: Path, smtp: SmtpServer) -> None:
    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=hook.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{hook.server_address[1]}/hook"
        root = make_instance(tmp_path, delivery_toml(smtp.port, webhook=url))
        result = cli(root, "quarterly", "-y", "2020", "-q", "4", "--send")
        assert result.exit_code == 0, result.output
    finally:
        hook.shutdown()
        hook.server_close()
    assert len(received) == 1
    payload = received[0]
    assert payload["report"] == "quarterly" and payload["period"] == "2020Q4"
    assert payload["subject"] == SUBJECT
    assert payload["data"]["total"]["quarter"]["total"] == sum(
        c["quarter"]["total"] for c in payload["data"]["channels"]
    )
    assert payload["attachments"][0]["name"].endswith(".xlsx")
    assert len(smtp.messages) == 1


def test_bad_delivery_config_names_the_key(tmp_path: Path) -> None:
    root = write_instance(tmp_path / "inst", extra='[delivery]\noutbox = "out"\nsmpt = 1\n')
    result = cli(root, "jobs")
    assert result.exit_code == 1
    assert "delivery.smpt" in result.output and "未知的配置项" in result.output
    root = write_instance(
        tmp_path / "inst2",
        extra='[delivery.email]\nhost = "h"\nfrom = "a@b.cn"\nto = []\nsecurity = "tls"\n',
    )
    result = cli(root, "jobs")
    assert result.exit_code == 1
    assert "delivery.email.to" in result.output and "delivery.email.security" in result.output


def test_stale_freshness_warning_is_superseded_not_kept_pending(tmp_path: Path) -> None:
    from channelwatch.delivery.send import Outgoing, deliver, supersede

    root = write_instance(tmp_path / "inst", extra=delivery_toml(_free_port(), warn_to=True))  # nothing listens
    opened = open_store(load_instance(root))
    try:
        warning = Outgoing(report="freshness", period="2021-03-01", subject="预警", text="微博已 11 天未更新。")
        outcome = deliver(opened, warning)
        assert [t.target for t in outcome.failed] == ["email"]
        assert [(r.period, r.target) for r in undelivered(opened)] == [("2021-03-01", "email")]
        assert supersede(opened, "freshness", "2021-03-02") == 1
        assert undelivered(opened) == []
    finally:
        opened.dispose()


def test_send_interrupted_by_a_kill_is_retried_with_the_same_message_id(tmp_path: Path) -> None:
    port = _free_port()
    root = make_instance(tmp_path, delivery_toml(port))
    assert cli(root, "quarterly", "-y", "2020", "-q", "4", "--send").exit_code == 1  # server down
    opened = open_store(load_instance(root))
    table = Delivery.__table__  # type: ignore[attr-defined]
    # What a process killed during the SMTP exchange leaves behind: the row still says "sending".
    with store.write(opened.engine) as conn:
        conn.execute(table.update().where(table.c.target == "email").values(status="sending"))
        first_id = conn.execute(select(table.c.message_id).where(table.c.target == "email")).scalar_one()
    assert "发送中断" in cli(root, "jobs").output
    controller, server = start_smtp(port)
    try:
        assert cli(root, "quarterly", "-y", "2020", "-q", "4", "--send").exit_code == 0
        assert cli(root, "quarterly", "-y", "2020", "-q", "4", "--send").exit_code == 0
    finally:
        controller.stop()
    assert [m["Message-ID"] for m in server.messages] == [first_id]  # once, recognisable as the same message
    assert undelivered(opened) == []
    opened.dispose()


def test_freshness_warnings_go_to_the_office_not_to_the_county(smtp: SmtpServer, tmp_path: Path) -> None:
    from channelwatch.delivery.send import Outgoing, deliver

    webhook_url = "http://127.0.0.1:9/never-called"  # the quarterly webhook must not get warnings
    warning = Outgoing(report="freshness", period="2021-03-01", subject="预警", text="微博已 11 天未更新。")
    root = write_instance(tmp_path / "without", extra=delivery_toml(smtp.port, webhook=webhook_url))
    opened = open_store(load_instance(root))
    try:
        outcome = deliver(opened, warning)
        assert [(t.target, t.status) for t in outcome.targets] == [("outbox", "sent")]  # no warn_to: outbox only
    finally:
        opened.dispose()
    assert smtp.messages == []

    root = write_instance(tmp_path / "with", extra=delivery_toml(smtp.port, webhook=webhook_url, warn_to=True))
    opened = open_store(load_instance(root))
    try:
        outcome = deliver(opened, warning)
        assert [(t.target, t.status) for t in outcome.targets] == [("outbox", "sent"), ("email", "sent")]
    finally:
        opened.dispose()
    assert [e.rcpt_tos for e in smtp.envelopes] == [["bangongshi@example.gov.cn"]]
    assert smtp.messages[0]["To"] == "bangongshi@example.gov.cn"
