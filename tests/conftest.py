"""Shared fixtures: an instance in a temporary folder, and the database backends to test on.

PostgreSQL: the test run starts its own server (``initdb`` + ``pg_ctl``, as the ``postgres`` user
when run as root) in a temporary folder on a free port, and stops it at the end. Where no
PostgreSQL binaries exist the PostgreSQL tests are skipped with the reason; with ``CI=true`` (or
``CHANNELWATCH_REQUIRE_POSTGRES=1``) that is an error instead, so CI can never go green without them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples" / "2020"

CONFIG = """
[office]
name = "彭阳县王洼产业园区管理委员会"
short_name = "我委"
timezone = "Asia/Shanghai"

[database]
url = "{url}"

[[channels]]
id = "website"
kind = "website"
name = "政府网站"

[[channels]]
id = "weibo"
kind = "weibo"
name = "微博"

[[channels]]
id = "wechat"
kind = "wechat"
name = "微信公众号"
"""


def write_instance(root: Path, url: str = "sqlite:///data/channelwatch.db", extra: str = "") -> Path:
    """A minimal instance with the example office's three channels; ``extra`` is appended TOML."""
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "jobs").mkdir(exist_ok=True)
    (root / "config" / "channelwatch.toml").write_text(
        CONFIG.format(url=url) + textwrap.dedent(extra), encoding="utf-8"
    )
    return root


def _find(binary: str) -> str | None:
    found = shutil.which(binary)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{binary}"), reverse=True):
        return str(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("CHANNELWATCH_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a maintenance database on a PostgreSQL server started for this test run."""
    if os.environ.get("CHANNELWATCH_TEST_POSTGRES_URL"):
        yield os.environ["CHANNELWATCH_TEST_POSTGRES_URL"]
        return
    initdb, pg_ctl = _find("initdb"), _find("pg_ctl")
    if not initdb or not pg_ctl:
        if _required():
            pytest.fail("PostgreSQL 的 initdb/pg_ctl 不存在，CI 中必须运行 PostgreSQL 测试")
        pytest.skip("没有找到 PostgreSQL 的 initdb/pg_ctl：跳过 PostgreSQL 测试")
    base = Path(tempfile.mkdtemp(prefix="cw-pg-"))
    data = base / "data"
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root.
        shutil.chown(base, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    log = base / "server.log"
    subprocess.run(
        [*as_postgres, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_postgres,
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {port} -k {base} -h 127.0.0.1 -c fsync=off -c full_page_writes=off",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def new_postgres_database(server_url: str) -> str:
    """A fresh, empty database on the test server; returns its URL."""
    import psycopg

    name = "cw_" + uuid.uuid4().hex[:12]
    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs twice: on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return new_postgres_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
def instance_dir(tmp_path: Path) -> Path:
    """An example-office instance on a SQLite file in ``tmp_path``."""
    return write_instance(tmp_path / "instance")


@pytest.fixture
def any_instance_dir(tmp_path: Path, database_url: str) -> Path:
    """The example-office instance, once on SQLite and once on PostgreSQL."""
    return write_instance(tmp_path / "instance", url=database_url)


def wait_for(predicate: object, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False


def json_of(output: str) -> Any:
    """The JSON document a command printed, read from the start of its output: the notes a figure command
    writes on stderr after its figures (CliRunner mixes both streams) are for its reader, not the data."""
    return json.JSONDecoder().raw_decode(output)[0]
