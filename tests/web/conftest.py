"""Fixtures of the web view tests: the sample instance, a `channelwatch serve` process, headless Chromium.

The browser is Debian's ``chromium`` driven by Playwright through ``executable_path``; Playwright's own
browser download is never used (offices' and CI's networks are closed). Where no chromium exists the
browser tests are skipped with the reason, except under ``CI=true``, where that is an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SAMPLES, _free_port, _required, wait_for, write_instance

PASSWORD_ENV = "CW_TEST_WEB_PASSWORD"
PASSWORD = "正确的密码-correct-horse"
XSS_TITLE = "<script>alert('xss')</script><img src=x onerror=alert(1)>园区通知"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def cw(instance: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "channelwatch", "--instance", str(instance), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def load_sample_instance(root: Path, url: str | None = None) -> Path:
    """The example office with the 2020 samples, one hostile title (2019) and one rejected import."""
    write_instance(root, **({"url": url} if url else {}))
    result = cw(root, "import-tree", str(SAMPLES))
    assert result.returncode == 0, result.stderr
    hostile = root / "hostile.csv"
    hostile.write_text(
        "标题,发布时间,链接\n"
        f'"{XSS_TITLE}",2019-06-01 09:00,javascript:alert(document.cookie)\n'
        '"正常的一条",2019-06-02 09:00,http://www.example.gov.cn/a.html\n',
        encoding="utf-8",
    )
    result = cw(root, "import", "website", str(hostile))
    assert result.returncode == 0, result.stderr
    broken = root / "broken.csv"
    broken.write_text("标题,发布时间\n没有日期的一条,\n", encoding="utf-8")
    result = cw(root, "import", "website", str(broken))
    assert result.returncode == 1  # recorded as a rejected run: the run log must show it in red
    return root


@dataclass
class Server:
    base: str
    process: subprocess.Popen[str]
    instance: Path

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.base + path, timeout=30, **kwargs)


def start_server(instance: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> Server:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "channelwatch", "--instance", str(instance), "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"serve exited: {process.stdout.read() if process.stdout else ''}")
        try:
            return httpx.get(base + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_for(up, timeout=30), "the web view did not answer /healthz"
    return Server(base=base, process=process, instance=instance)


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def sample_instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_sample_instance(tmp_path_factory.mktemp("web") / "instance")


@pytest.fixture(scope="session")
def server(sample_instance: Path) -> Iterator[Server]:
    """The view on loopback without a password (the instance configures none)."""
    running = start_server(sample_instance)
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def locked_server(sample_instance: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The same store behind a password: a second instance folder whose config names the password variable."""
    root = tmp_path_factory.mktemp("web-locked") / "instance"
    database = sample_instance / "data" / "channelwatch.db"
    write_instance(
        root,
        url=f"sqlite:///{database}",
        extra=textwrap.dedent(f"""
            [web]
            password_env = "{PASSWORD_ENV}"
        """),
    )
    running = start_server(root, env={PASSWORD_ENV: PASSWORD})
    yield running
    stop_server(running)


def chromium_path() -> str | None:
    return os.environ.get("CHANNELWATCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        path = None
    if path is None:
        if _required():
            pytest.fail("没有找到 chromium 或 playwright：CI 中必须运行浏览器测试（.ci/run 会安装它们）")
        pytest.skip("没有找到 chromium 或 playwright：跳过浏览器测试")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True, locale="zh-CN")
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where page screenshots go: ``CHANNELWATCH_WEB_SCREENSHOTS`` to keep them, else a temporary folder."""
    chosen = os.environ.get("CHANNELWATCH_WEB_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
