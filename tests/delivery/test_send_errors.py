"""SMTP and webhook failures reach the clerk in Chinese, the library's words only in brackets."""

from __future__ import annotations

import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

from typer.testing import CliRunner

from channelwatch.cli import app
from tests.conftest import _free_port, write_instance

HAN = re.compile(r"[\u4e00-\u9fff]")


def _instance(tmp_path: Path, delivery: str) -> Path:
    root = write_instance(tmp_path / "instance", extra=delivery)
    export = tmp_path / "weibo.csv"
    export.write_text("标题,发布时间\n一条,2020-11-01 09:00\n", encoding="utf-8")
    assert CliRunner().invoke(app, ["--instance", str(root), "import", "weibo", str(export)]).exit_code == 0
    return root


def _send(root: Path) -> list[str]:
    result = CliRunner().invoke(app, ["--instance", str(root), "quarterly", "-y", "2020", "-q", "4", "--send"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.output.splitlines()


def _reason(lines: list[str], target: str) -> str:
    line = next(line for line in lines if line.startswith(f"{target}：失败"))
    reason = line.removeprefix(f"{target}：失败：")
    assert HAN.search(reason.split("（")[0]), line  # Chinese first, the library's words after
    return reason


def _smtp_delivery(port: int, to: str = '"gongkaiban@example.gov.cn"') -> str:
    return f"""
[delivery]
outbox = "outbox"
  [delivery.email]
  host = "127.0.0.1"
  port = {port}
  security = "none"
  from = "tongji@example.gov.cn"
  to = [{to}]
  timeout = 5
"""


def _refusing_smtp(tmp_path: Path) -> Path:
    """An instance whose e-mail goes to a loopback port nothing listens on."""
    return _instance(tmp_path, _smtp_delivery(_free_port()))


def test_smtp_server_that_refuses_the_connection(tmp_path: Path) -> None:
    root = _refusing_smtp(tmp_path)
    reason = _reason(_send(root), "邮件")
    assert reason.startswith("无法连接邮件服务器：对方拒绝连接（")
    assert "Connection refused" in reason  # the library's own detail, in brackets


class _Failing(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhook_failures(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        root = _instance(
            tmp_path / "a", f'[delivery]\noutbox = "outbox"\nwebhook = "http://127.0.0.1:{server.server_port}/hook"\n'
        )
        reason = _reason(_send(root), "webhook")
        assert reason.startswith("webhook 返回") and "HTTP 500" in reason
    finally:
        server.shutdown()
    closed = _free_port()
    root = _instance(tmp_path / "b", f'[delivery]\noutbox = "outbox"\nwebhook = "http://127.0.0.1:{closed}/hook"\n')
    assert _reason(_send(root), "webhook").startswith("无法连接 webhook 地址（")


def test_a_retried_delivery_keeps_one_outbox_copy_and_the_terminal_has_no_english_log_line(tmp_path: Path) -> None:
    """The outbox copy is the office's record of the report, written once; each retry of a failing e-mail is the
    same message. The failure is said in Chinese by the command; the library's English log line is for the
    daemon's log (and --verbose), not the clerk's terminal."""
    import os
    import subprocess
    import sys

    root = _refusing_smtp(tmp_path)
    command = [sys.executable, "-m", "channelwatch", "--instance", str(root), "quarterly", "-y", "2020", "-q", "4"]
    copies: list[set[Path]] = []
    for attempt in (1, 2):
        done = subprocess.run([*command, "--send"], capture_output=True, text=True, env=dict(os.environ), timeout=60)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "邮件：失败：无法连接邮件服务器：对方拒绝连接" in done.stdout + done.stderr
        assert "WARNING" not in done.stderr and "delivery of" not in done.stderr, done.stderr
        outbox_line = next(line for line in done.stdout.splitlines() if line.startswith("outbox") or "发件箱" in line)
        assert ("跳过" in outbox_line) == (attempt == 2), outbox_line
        copies.append({p for p in (root / "outbox").rglob("*") if p.is_file()})
    assert copies[0] and copies[1] == copies[0]  # the message and its attachment, once


def _answering(status: int, body: bytes, headers: dict[str, str] | None = None) -> ThreadingHTTPServer:
    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    Thread(target=server.serve_forever, daemon=True).start()
    return server


def _hooked(tmp_path: Path, server: ThreadingHTTPServer) -> Path:
    return _instance(
        tmp_path, f'[delivery]\noutbox = "outbox"\nwebhook = "http://127.0.0.1:{server.server_port}/hook"\n'
    )


def test_a_webhook_that_redirects_or_answers_an_error_code_has_not_taken_the_report(tmp_path: Path) -> None:
    """A redirect to a login page, or a robot's 200 with {"errcode": …}, is no delivery: failed, and retried."""
    cases = [
        (302, b"", {"Location": "/login"}, "webhook 返回 HTTP 302：转到 /login"),
        (200, b'{"errcode":310000,"errmsg":"keywords not in content"}', {},
         "webhook 返回 HTTP 200，但对方回答错误码 310000：keywords not in content"),
        (200, b'{"code":19024,"msg":"Key Words Not Found"}', {},
         "webhook 返回 HTTP 200，但对方回答错误码 19024：Key Words Not Found"),
        (200, b'{"ok":false,"error":"invalid_token"}', {}, "webhook 返回 HTTP 200，但对方回答 ok=false：invalid_token"),
        (200, b'{"success":false}', {}, "webhook 返回 HTTP 200，但对方回答 success=false"),
    ]  # fmt: skip
    for number, (status, body, headers, expected) in enumerate(cases):
        server = _answering(status, body, headers)
        try:
            root = _hooked(tmp_path / str(number), server)
            assert _reason(_send(root), "webhook") == expected
            again = _send(root)  # not "已发送过": it is tried again
            assert any(line.startswith("webhook：失败") for line in again), again
        finally:
            server.shutdown()


def test_a_webhook_answering_success_in_its_own_words_has_taken_it(tmp_path: Path) -> None:
    for number, body in enumerate([b"", b"ok", b'{"errcode":0,"errmsg":"ok"}', b'{"code":200,"msg":"ok"}', b"[1]"]):
        server = _answering(200, body)
        try:
            root = _hooked(tmp_path / str(number), server)
            result = CliRunner().invoke(app, ["--instance", str(root), "quarterly", "-y", "2020", "-q", "4", "--send"])
            assert result.exit_code == 0, (body, result.output)
            assert "webhook：已发送" in result.output, (body, result.output)
        finally:
            server.shutdown()


def test_a_recipient_the_mail_server_refuses_makes_the_mail_unsent(tmp_path: Path) -> None:
    """smtplib reports refused recipients only in its return value when others were accepted: that mail did not
    reach everyone it is for, so it is a failure (retried later), not "已发送"."""
    from aiosmtpd.controller import Controller

    received: list[list[str]] = []

    class Handler:
        async def handle_RCPT(
            self, server: object, session: object, envelope: object, address: str, options: object
        ) -> str:
            if address.startswith("zhuren@"):
                return "550 no such user"
            envelope.rcpt_tos.append(address)  # type: ignore[attr-defined]
            return "250 OK"

        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            received.append(list(envelope.rcpt_tos))  # type: ignore[attr-defined]
            return "250 OK"

    port = _free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        root = _instance(tmp_path, _smtp_delivery(port, '"gongkaiban@example.gov.cn", "zhuren@example.gov.cn"'))
        reason = _reason(_send(root), "邮件")
        assert reason == (
            "邮件服务器拒收了收件人 zhuren@example.gov.cn（550 no such user），本次计为未发送，重试时会再发给全部收件人"
        )
        assert any(line.startswith("邮件：失败") for line in _send(root))  # retried, not "已发送过"
    finally:
        controller.stop()
    assert received == [["gongkaiban@example.gov.cn"], ["gongkaiban@example.gov.cn"]]
