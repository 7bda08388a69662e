"""What an SMTP relay, a webhook or a platform answers is upstream text: stored and printed only after
every configured secret is masked, one line per failing channel, the traceback in the log only."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import _free_port
from tests.delivery.test_send import PASSWORD, delivery_toml, make_instance
from tests.fakeplatforms import WECHAT_SECRET, FakePlatforms, fake_platforms
from tests.sources.contract import poll_tables, write_poll_instance

__all__ = ["fake_platforms"]

USER = "tongji@example.gov.cn"
PLAIN = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()  # what AUTH PLAIN sends
LOGIN = base64.b64encode(PASSWORD.encode()).decode()  # what AUTH LOGIN sends
WEBHOOK_TOKEN = "hook-token-0123456789abcdef"
FORMS = (PASSWORD, PLAIN, LOGIN, WEBHOOK_TOKEN)


def _echoing_smtp(port: int) -> Any:
    """A relay that accepts the login, then refuses the message quoting the credentials back."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    class Handler:
        async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
            return f"554 5.7.1 refused for {USER} password={PASSWORD} pass:{PASSWORD} auth {PLAIN} {LOGIN}"

    def authenticator(smtp: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password.decode() == PASSWORD
        return AuthResult(success=ok)

    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    return controller


@pytest.fixture
def echoing_webhook() -> Iterator[str]:
    """A webhook that answers 500 quoting its own URL's token and the SMTP password, over two lines."""

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = f"error: bad request {self.path}\ntoken {WEBHOOK_TOKEN} / {PASSWORD}".encode()
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=hook.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{hook.server_address[1]}/hook?token={WEBHOOK_TOKEN}"
    hook.shutdown()
    hook.server_close()


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CW_TEST_SMTP_PASSWORD": PASSWORD}
    env.pop("CHANNELWATCH_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "channelwatch", "--instance", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_relay_and_webhook_quoting_credentials_leave_no_trace(tmp_path: Path, echoing_webhook: str) -> None:
    port = _free_port()
    controller = _echoing_smtp(port)
    try:
        job = 'action = "quarterly-report"\ncron = "0 9 3 1,4,7,10 *"\n'
        root = make_instance(tmp_path, delivery_toml(port, auth=True, webhook=echoing_webhook), {"q.toml": job})
        # --verbose: every log line, at DEBUG. The job itself finds the last quarter empty (a warning,
        # nothing sent); its output must be as clean as the send's.
        ran = _run(root, "--verbose", "quarterly", "-y", "2020", "-q", "4", "--send")
        sent = _run(root, "--verbose", "run-job", "q")
    finally:
        controller.stop()
    assert ran.returncode == 1 and sent.returncode in (0, 1)
    assert "554" in ran.stdout and "邮件：失败" in ran.stdout  # the relay's answer is shown …
    assert "webhook" in ran.stdout and "HTTP 500" in ran.stdout
    assert "***" in ran.stdout
    jobs_text, jobs_json = _run(root, "jobs"), _run(root, "jobs", "--format", "json")
    for shown in (ran.stdout, ran.stderr, sent.stdout, sent.stderr, jobs_text.stdout, jobs_json.stdout):
        for form in FORMS:
            assert form not in shown, (form, shown)  # … without any form of a credential
    stored = json.loads(jobs_json.stdout)
    messages = [d["message"] for d in stored["undelivered"]]
    assert any("554" in m for m in messages) and any("HTTP 500" in m for m in messages)
    assert all("\n" not in m for m in messages)
    # The database (and its journal), the outbox, every file the instance holds but the config file,
    # where the webhook's URL (and so its token) is configured.
    config = root / "config" / "channelwatch.toml"
    assert WEBHOOK_TOKEN in config.read_text(encoding="utf-8")
    for path in root.rglob("*"):
        if path.is_file() and path != config:
            content = path.read_bytes()
            for form in FORMS:
                assert form.encode() not in content, (form, path)


def test_platform_answer_quoting_the_secret_is_redacted_on_one_line(
    tmp_path: Path, fake_platforms: FakePlatforms
) -> None:
    fake_platforms.add_wechat_pushes(3)
    fake_platforms.fault("wechat-errcode", target="wechat", errcode=40164, errmsg=f"bad\nsecret {WECHAT_SECRET}\n")
    fake_platforms.fault("500", target="site")
    tables = poll_tables(fake_platforms)
    root = write_poll_instance(tmp_path / "instance", {"wechat": tables["wechat"], "website": tables["website"]})
    env = {**os.environ, "CW_TEST_WECHAT_SECRET": WECHAT_SECRET}
    env.pop("CHANNELWATCH_DATABASE_URL", None)
    polled = subprocess.run(
        [sys.executable, "-m", "channelwatch", "--instance", str(root), "poll"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert polled.returncode == 1
    lines = polled.stderr.strip().splitlines()
    # One line per failing channel, then the summary; no traceback, no log noise.
    assert len(lines) == 3, polled.stderr
    assert lines[0].startswith("wechat：失败") or lines[1].startswith("wechat：失败")
    assert any(line.startswith("website：失败") for line in lines[:2])
    assert "40164" in polled.stderr and "secret ***" in polled.stderr
    assert WECHAT_SECRET not in polled.stderr + polled.stdout
    assert "Traceback" not in polled.stderr
    for path in root.rglob("*"):
        if path.is_file():
            assert WECHAT_SECRET.encode() not in path.read_bytes(), path
