"""Failures nobody foresaw, as a clerk reads them in ``runs``, ``jobs``, the web view and the inbox's report."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest
from sqlalchemy import event

from channelwatch.errors import InputError
from channelwatch.failures import describe
from channelwatch.ingest.imports import import_file
from channelwatch.instance.config import load_instance
from channelwatch.store import open_store, read
from tests.conftest import write_instance


def _export(path: Path, rows: int) -> Path:
    lines = ["微博ID,微博内容,发布时间"]
    lines += [
        f"{4400000000000000 + n},园区动态第{n}条：安全生产检查与企业服务工作推进情况,2020-06-01 08:00"
        for n in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_full_disk_during_an_import_is_said_in_chinese_and_stores_nothing(tmp_path: Path) -> None:
    opened = open_store(load_instance(write_instance(tmp_path / "office")))
    try:
        with read(opened.engine) as conn:
            pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
        opened.engine.dispose()

        # SQLite's answer when the disk is full, without filling one: a page limit just above the empty store.
        @event.listens_for(opened.engine, "connect")
        def _small(dbapi_connection: object, record: object) -> None:
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 20}")  # type: ignore[attr-defined]

        with pytest.raises(Exception) as raised:
            import_file(opened, "weibo", _export(tmp_path / "weibo.csv", 5000))
        assert describe(raised.value).startswith("数据库所在的磁盘空间不足（或数据库已达大小上限），本次写入已撤销（")
        with read(opened.engine) as conn:
            status, message = conn.exec_driver_sql("SELECT status, message FROM run").one()
            stored = conn.exec_driver_sql("SELECT count(*) FROM publication").scalar_one()
        assert status == "failed" and stored == 0
        assert message.startswith("数据库所在的磁盘空间不足") and message.endswith("（database or disk is full）")
    finally:
        opened.dispose()


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (InputError("第3行，字段「发布时间」：缺少发布时间"), "第3行，字段「发布时间」：缺少发布时间"),
        (KeyboardInterrupt(), "被中断（Ctrl+C 或停止信号），本次未完成"),
        (MemoryError(), "内存不足，本次未完成"),
        (
            PermissionError(errno.EACCES, "Permission denied", "/srv/inbox/a.csv"),
            "无法读写 /srv/inbox/a.csv：没有权限（Permission denied）",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device", "/srv/x.db"),
            "无法读写 /srv/x.db：磁盘空间不足（No space left on device）",
        ),
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            "对方拒绝连接，该地址上没有网站服务在运行（[Errno 111] Connection refused）",
        ),
        (
            socket.gaierror(-2, "Name or service not known"),
            "找不到网址中的主机名，域名无法解析（[Errno -2] Name or service not known）",
        ),
        (ValueError("bad thing"), "程序内部错误（ValueError: bad thing）"),
        (RuntimeError(), "程序内部错误（RuntimeError）"),
    ],
)
def test_each_failure_gets_a_chinese_reason_first(failure: BaseException, said: str) -> None:
    assert describe(failure) == said
