"""The web view over real loopback HTTP: security headers, the login rules, downloads, read-only store."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from channelwatch import store
from channelwatch.errors import ConfigError
from channelwatch.instance.config import load_instance
from channelwatch.web import gate_for, is_loopback
from channelwatch.web.auth import Throttle
from channelwatch.web.data import open_readonly
from channelwatch.web.svg import monthly_chart
from tests.conftest import write_instance
from tests.web.conftest import PASSWORD, PASSWORD_ENV, Server, cw, load_sample_instance, start_server, stop_server

pytestmark = pytest.mark.slow

PAGES = ["/", "/?year=2020", "/channels/weibo?year=2020", "/runs", "/reports"]


@pytest.mark.parametrize("path", [*PAGES, "/login", "/healthz", "/no-such-page", "/static/style.css"])
def test_security_headers_on_every_answer(server: Server, path: str) -> None:
    response = server.get(path)
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'none'" in policy and "unsafe-inline" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", PAGES)
def test_pages_answer_in_chinese_without_login_on_loopback(server: Server, path: str) -> None:
    response = server.get(path)
    assert response.status_code == 200
    assert '<html lang="zh-CN">' in response.text
    assert "https://" not in response.text.split("<main>")[0]  # no CDN: every asset comes from the view


def test_healthz(server: Server) -> None:
    response = server.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok")


def test_bad_parameters_give_a_chinese_400(server: Server) -> None:
    response = server.get("/?year=abc")
    assert response.status_code == 400
    assert "参数 year 的值「abc」不是整数" in response.text
    assert server.get("/channels/nope").status_code == 404
    assert server.get("/reports/quarterly.xlsx?year=2020&quarter=5").status_code == 400


def test_downloads(server: Server) -> None:
    quarterly = server.get("/reports/quarterly.xlsx?year=2020&quarter=1")
    assert quarterly.status_code == 200
    assert "filename*=UTF-8''" in quarterly.headers["content-disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(quarterly.content)).active
    assert "2020年第一季度" in str(sheet["A1"].value)
    annual = server.get("/reports/annual.docx?year=2020")
    assert annual.status_code == 200
    from docx import Document

    text_of_draft = "\n".join(p.text for p in Document(io.BytesIO(annual.content)).paragraphs)
    assert "共1279条" in text_of_draft


def test_locked_pages_redirect_to_login(locked_server: Server) -> None:
    for path in [*PAGES, "/reports/summary.xlsx?year=2020"]:
        response = locked_server.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")
    assert locked_server.get("/healthz").status_code == 200
    assert locked_server.get("/login").status_code == 200


def test_login_over_http_sets_a_strict_cookie_and_refuses_foreign_next(locked_server: Server) -> None:
    with httpx.Client(base_url=locked_server.base) as client:
        response = client.post("/login", data={"password": PASSWORD, "next": "//evil.example/x"})
        assert response.status_code == 303
        assert response.headers["location"] == "/"
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert client.get("/runs").status_code == 200
        client.post("/logout")
        assert client.get("/runs").status_code == 303


def test_cookie_is_secure_behind_https(locked_server: Server) -> None:
    # uvicorn trusts X-Forwarded-Proto from a proxy on this machine (loopback).
    response = httpx.post(
        locked_server.base + "/login", data={"password": PASSWORD}, headers={"x-forwarded-proto": "https"}
    )
    assert "secure" in response.headers["set-cookie"].lower()


def test_failed_logins_wait_longer_each_time() -> None:
    throttle = Throttle(base=1.0, ceiling=30.0)
    assert [throttle.delay_after_failure("10.0.0.9") for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert throttle.delay_after_failure("10.0.0.8") == 1  # per address
    throttle.succeeded("10.0.0.9")
    assert throttle.delay_after_failure("10.0.0.9") == 1


def test_wrong_password_is_slowed_down(locked_server: Server) -> None:
    started = time.monotonic()
    response = httpx.post(locked_server.base + "/login", data={"password": "nope"}, timeout=60)
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert time.monotonic() - started >= 0.9


def test_loopback_rule() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.8.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("office-server")


def test_non_loopback_refuses_to_start_without_a_password(instance_dir: Path) -> None:
    result = cw(instance_dir, "serve", "--host", "0.0.0.0", "--port", "1")
    assert result.returncode == 1
    assert "password_env" in result.stderr and "Traceback" not in result.stderr


def test_non_loopback_needs_the_variable_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_instance(tmp_path / "instance", extra=f'[web]\npassword_env = "{PASSWORD_ENV}"\n')
    result = cw(root, "serve", "--host", "0.0.0.0", "--port", "1", env={PASSWORD_ENV: ""})
    assert result.returncode == 1
    assert PASSWORD_ENV in result.stderr and "Traceback" not in result.stderr
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    gate = gate_for(load_instance(root), "0.0.0.0")
    assert gate.required and gate.check_password(PASSWORD) and not gate.check_password(PASSWORD + "x")
    monkeypatch.setenv(PASSWORD_ENV, "short")
    with pytest.raises(ConfigError, match="太短"):
        gate_for(load_instance(root), "0.0.0.0")


def readonly_engine(root: Path) -> Any:
    return open_readonly(load_instance(root)).engine


def test_the_view_cannot_write(sample_instance: Path) -> None:
    readonly = open_readonly(load_instance(sample_instance))
    try:
        with pytest.raises(DBAPIError, match="readonly"), store.read(readonly.engine) as conn:
            conn.execute(text("DELETE FROM publication"))
    finally:
        readonly.dispose()


def test_pages_read_while_an_import_writes(tmp_path: Path) -> None:
    root = load_sample_instance(tmp_path / "instance")
    running = start_server(root)
    try:
        big = tmp_path / "weibo.csv"
        lines = ["微博ID,微博内容,发布时间"]
        lines += [f"88{n:08d},并发写入测试第{n}条,2021-{n % 12 + 1:02d}-0{n % 9 + 1} 10:00" for n in range(60_000)]
        big.write_text("\n".join(lines) + "\n", encoding="utf-8")
        writer = subprocess.Popen(
            [sys.executable, "-m", "channelwatch", "--instance", str(root), "import", "weibo", str(big)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        answers = []
        while writer.poll() is None:
            answers.append(running.get("/?year=2021").status_code)
            answers.append(running.get("/channels/weibo?year=2021&month=5").status_code)
        assert writer.wait() == 0, writer.stderr.read() if writer.stderr else ""
        assert answers and set(answers) == {200}
        with store.read(readonly_engine(root)) as conn:
            stored = conn.execute(text("SELECT count(*) FROM publication WHERE local_year = 2021")).scalar_one()
        assert stored >= 60_000
        assert f'<th class="num total">{stored}</th>' in running.get("/?year=2021").text
    finally:
        stop_server(running)


@pytest.mark.postgres
def test_the_view_reads_postgresql(tmp_path: Path, postgres_server: str) -> None:
    from tests.conftest import new_postgres_database

    root = load_sample_instance(tmp_path / "instance", url=new_postgres_database(postgres_server))
    running = start_server(root)
    try:
        page = running.get("/?year=2020").text
        assert '<th class="num total">1279</th>' in page
        assert "原因：" in running.get("/runs").text
    finally:
        stop_server(running)
    readonly = open_readonly(load_instance(root))
    try:
        with pytest.raises(DBAPIError, match="read-only"), store.read(readonly.engine) as conn:
            conn.execute(text("DELETE FROM publication"))
    finally:
        readonly.dispose()


def test_chart_escapes_its_text() -> None:
    drawn = str(monthly_chart("<script>x</script>", {1: 3}, {1: 1}))
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn
    assert 'data-total="3"' in drawn


def test_freshness_badges_count_the_days_left(tmp_path: Path) -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    root = write_instance(tmp_path / "instance")
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    for channel, days_ago in (("website", 3), ("weibo", 11)):
        export = tmp_path / f"{channel}.csv"
        day = today - timedelta(days=days_ago)
        export.write_text(f"标题,发布时间\n{channel}最近的一条,{day.isoformat()} 09:00\n", encoding="utf-8")
        assert cw(root, "import", channel, str(export)).returncode == 0
    running = start_server(root)
    try:
        page = running.get("/").text
    finally:
        stop_server(running)
    limit = load_instance(root).config.freshness.limit_days
    assert f'<span class="badge ok">正常 · 还有{limit - 3}天</span>' in page
    assert f'<span class="badge warn">预警 · {limit - 11}天后超期</span>' in page
    assert '<span class="badge empty">无数据</span>' in page
    assert f"本月（{today.month}月）" in page


def test_before_the_store_exists_the_view_says_so_and_creates_nothing(tmp_path: Path) -> None:
    root = write_instance(tmp_path / "instance")
    (root / "data").mkdir()
    # In-process (the serve fixture waits for a healthy /healthz, which this store cannot give yet).
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from channelwatch.web import create_app

    instance = load_instance(root)
    application = create_app(instance, gate_for(instance, "127.0.0.1"))

    async def ask() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.get("/"), await client.get("/healthz")

    # A thread of its own: the session's Playwright keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        page, health = pool.submit(asyncio.run, ask()).result()
    assert page.status_code == 200 and "统计库中还没有数据" in page.text
    assert health.status_code == 503
    assert list((root / "data").iterdir()) == []


def test_one_login_attempt_at_a_time_per_address() -> None:
    throttle = Throttle()
    assert throttle.lock_for("10.0.0.9") is throttle.lock_for("10.0.0.9")
    assert throttle.lock_for("10.0.0.9") is not throttle.lock_for("10.0.0.8")


def test_chart_marks_the_selected_month() -> None:
    assert 'class="highlight"' in str(monthly_chart("x", {3: 2}, {}, selected=3))
    assert 'class="highlight"' not in str(monthly_chart("x", {3: 2}, {}))


def test_verdicts_are_read_as_inspect_stored_them_and_orphans_warned(tmp_path: Path) -> None:
    import json
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    old_channel = '\n[[channels]]\nid = "old"\nkind = "weibo"\nname = "旧账号"\n'
    root = write_instance(tmp_path / "instance", extra=old_channel)
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    for channel, days_ago in (("website", 3), ("weibo", 11), ("old", 400), ("old", 401)):
        export = tmp_path / f"{channel}{days_ago}.csv"
        day = today - timedelta(days=days_ago)
        export.write_text(f"标题,发布时间\n{channel}的一条{days_ago},{day.isoformat()} 09:00\n", encoding="utf-8")
        assert cw(root, "import", channel, str(export)).returncode == 0
    write_instance(root)  # the channel "old" leaves the config; its two publications stay in the store
    running = start_server(root)
    try:
        page = running.get("/").text
        assert page.count('<span class="verdict none"') == 3  # never inspected: 未检查, never judged here
        assert "未检查" in page
        assert "渠道 id「old」有 2 条发布记录" in page and 'class="banner"' in page

        inspected = cw(root, "inspect", "--format", "json")
        assert inspected.returncode == 0, inspected.stderr
        result = json.loads(inspected.stdout)
        page = running.get("/").text
        labels = {"veto": "否决风险", "warning": "预警", "ok": "正常"}
        for channel in result["channels"]:
            label = labels[channel["verdict"]] if channel["checked"] else "无检查项"
            shown = page.split(f'<tr data-channel="{channel["channel"]}">')[1].split("</tr>")[0]
            assert f">{label}</span>" in shown, channel
        assert {c["channel"]: c["verdict"] for c in result["channels"]}["weibo"] == "warning"
        assert f"按 {today.isoformat()} 检查" in page

        # An inspection as of an earlier day does not pass for today's state.
        earlier = (today - timedelta(days=30)).isoformat()
        assert cw(root, "inspect", "--as-of", earlier).returncode == 0
        assert running.get("/").text.count("verdict none") == 0
        assert f"按 {today.isoformat()} 检查" in running.get("/").text
    finally:
        stop_server(running)


def _serve_output(root: Path, *options: str) -> str:
    """What ``channelwatch [options] serve`` prints from start to a healthy page to its stop."""
    import os
    import signal

    from tests.conftest import _free_port, wait_for

    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "channelwatch", "--instance", str(root), *options, "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None

    try:
        assert wait_for(up, timeout=30) and process.poll() is None, "the web view did not answer /healthz"
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=30).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl+C, as the start line says
        output, _ = process.communicate(timeout=20)
    return output.replace(str(port), "PORT")


def test_serve_prints_its_chinese_line_and_not_uvicorns_unless_verbose(tmp_path: Path) -> None:
    root = write_instance(tmp_path / "instance")
    export = tmp_path / "weibo.csv"
    export.write_text("标题,发布时间\n一条,2020-11-01 09:00\n", encoding="utf-8")
    assert cw(root, "import", "weibo", str(export)).returncode == 0
    quiet = _serve_output(root)
    assert "网页视图：http://127.0.0.1:PORT/ （无需登录，仅本机可访问；按 Ctrl+C 停止）" in quiet
    for english in ("Uvicorn running", "Started server process", "Application startup", "GET /", "INFO"):
        assert english not in quiet, quiet
    verbose = _serve_output(root, "--verbose")
    assert "网页视图：" in verbose and "Uvicorn running on http://127.0.0.1:PORT" in verbose


def test_a_port_in_use_is_one_chinese_line(server: Server, sample_instance: Path) -> None:
    """uvicorn says it in English after the start line; serve says it in Chinese, before."""
    port = int(server.base.rsplit(":", 1)[1])
    second = cw(sample_instance, "serve", "--port", str(port))
    assert second.returncode == 1
    assert second.stdout == ""
    assert second.stderr.strip().splitlines() == [
        f"错误：无法在 127.0.0.1:{port} 启动网页视图：端口已被其他程序占用：可用 --port 换一个端口，"
        "或先停止占用它的程序（Address already in use）"
    ]


def test_titles_with_direction_overrides_or_control_characters_are_shown_escaped() -> None:
    """A right-to-left override reversed a title on the page ("\\u202egpj.exe" displayed as "exe.jpg"), as the
    CLI never lets it: every value a page shows is written as the terminal writes it, and still HTML-escaped."""
    from markupsafe import Markup

    from channelwatch.web.app import template_environment

    page = template_environment(None).from_string("<td>{{ title }}</td>{{ markup }}")
    shown = page.render(title="\u202eRTL标题 gpj.exe<b>\x1b[2J", markup=Markup("<i>安全</i>"))
    assert shown == "<td>\\u202eRTL标题 gpj.exe&lt;b&gt;\\x1b[2J</td><i>安全</i>"
