"""A booby-trapped inbox: only regular files are read, one bad thing never stops the rest."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from channelwatch import store
from channelwatch.cli import app
from channelwatch.ingest import inbox as inbox_module
from channelwatch.ingest.inbox import import_inbox
from channelwatch.instance.config import load_instance
from channelwatch.stats.figures import Period, summarise
from channelwatch.stats.listing import list_runs
from channelwatch.store import open_store
from channelwatch.store.models import Run

GOOD = "标题,发布时间,链接\n园区召开安全生产会议,2020-06-01 09:00,http://www.example.gov.cn/a/1.html\n"
OTHER = "标题,发布时间,链接\n园区开展消防演练,2020-06-02 09:00,http://www.example.gov.cn/a/2.html\n"
SECRET = "CHANNELWATCH_TEST_SMTP_PASSWORD"


def _inbox(instance_dir: Path) -> Path:
    (instance_dir / "jobs" / "inbox.toml").write_text(
        'action = "import-inbox"\nevery = "5m"\npath = "inbox"\nsettle = "0s"\n', encoding="utf-8"
    )
    inbox = instance_dir / "inbox"
    for channel in ("website", "weibo", "wechat"):
        (inbox / channel).mkdir(parents=True, exist_ok=True)
    return inbox


def _round(instance_dir: Path) -> inbox_module.InboxResult:
    opened = open_store(load_instance(instance_dir))
    try:
        return import_inbox(opened, instance_dir / "inbox", settle=0)
    finally:
        opened.dispose()


def _totals(instance_dir: Path) -> dict[str, int]:
    opened = open_store(load_instance(instance_dir))
    try:
        with store.read(opened.engine) as conn:
            return {c.key: c.total for c in summarise(conn, opened.office_id, Period(2020)).channels}
    finally:
        opened.dispose()


def _runs(instance_dir: Path) -> list[Run]:
    opened = open_store(load_instance(instance_dir))
    try:
        with store.read(opened.engine) as conn:
            return list(list_runs(conn, opened, limit=100))
    finally:
        opened.dispose()


def test_symlinks_fifos_and_devices_are_never_opened_nor_moved(
    instance_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET, "hunter2-secret")
    inbox = _inbox(instance_dir)
    outside = tmp_path / "outside.csv"
    outside.write_text(OTHER, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.csv").write_text(OTHER, encoding="utf-8")
    website = inbox / "website"
    (website / "environ.csv").symlink_to("/proc/self/environ")
    (website / "shadow.csv").symlink_to("/etc/shadow")
    (website / "outside.csv").symlink_to(outside)
    (website / "folder").symlink_to(elsewhere)
    os.mkfifo(website / "pipe.csv")
    os.mknod(website / "null.csv", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    (website / "good.csv").write_text(GOOD, encoding="utf-8")

    result = _round(instance_dir)  # a FIFO opened for reading would block here forever

    assert [(f.path.name, f.status) for f in result.files] == [("good.csv", "imported")]
    text = result.summary()
    for name in ("environ.csv", "shadow.csv", "outside.csv", "folder", "pipe.csv", "null.csv"):
        assert name in text
        assert os.path.lexists(website / name)  # left where it was
    assert "hunter2-secret" not in text
    assert not (website / "failed").exists()
    assert outside.read_text(encoding="utf-8") == OTHER and (elsewhere / "x.csv").is_file()
    assert _totals(instance_dir)["website"] == 1
    assert all("hunter2" not in (r.message or "") and r.source == "good.csv" for r in _runs(instance_dir))


def test_a_channel_folder_that_is_a_symlink_is_not_followed(instance_dir: Path, tmp_path: Path) -> None:
    inbox = _inbox(instance_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.csv").write_text(GOOD, encoding="utf-8")
    (inbox / "weibo").rmdir()
    (inbox / "weibo").symlink_to(elsewhere)
    (inbox / "website" / "good.csv").write_text(OTHER, encoding="utf-8")

    result = _round(instance_dir)

    assert "weibo：是符号链接" in result.summary()
    assert (elsewhere / "x.csv").is_file() and not (elsewhere / "done").exists()
    assert _totals(instance_dir) == {"website": 1, "weibo": 0, "wechat": 0}


def test_a_file_named_done_and_a_non_utf8_name_stop_only_themselves(instance_dir: Path) -> None:
    inbox = _inbox(instance_dir)
    (inbox / "weibo" / "done").write_text("not a folder", encoding="utf-8")
    (inbox / "weibo" / "w.csv").write_text(GOOD, encoding="utf-8")
    bad_name = os.fsdecode(b"\xb9\xab\xb8\xe6.csv")  # GBK bytes of 公告, not UTF-8
    (inbox / "wechat" / bad_name).write_text(GOOD, encoding="utf-8")
    (inbox / "wechat" / "fine.csv").write_text(OTHER, encoding="utf-8")
    (inbox / "website" / "site.csv").write_text(GOOD, encoding="utf-8")

    result = _round(instance_dir)

    text = result.summary()
    assert "weibo/done：不是文件夹" in text
    assert "\\xb9\\xab\\xb8\\xe6.csv：文件名不是 UTF-8 编码" in text
    assert (inbox / "weibo" / "w.csv").is_file() and (inbox / "wechat" / bad_name).is_file()
    assert _totals(instance_dir) == {"website": 1, "weibo": 0, "wechat": 1}
    text.encode("utf-8")  # printable and storable as it is


def test_an_unreadable_channel_folder_is_reported_and_the_others_imported(
    instance_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = _inbox(instance_dir)
    (inbox / "weibo" / "w.csv").write_text(GOOD, encoding="utf-8")
    (inbox / "website" / "site.csv").write_text(GOOD, encoding="utf-8")
    real_scandir = os.scandir

    # The test runs as root, for whom permissions do not apply: the refusal is the kernel's answer.
    def scandir(path: object) -> object:
        if str(path).endswith("weibo"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(inbox_module.os, "scandir", scandir)
    result = _round(instance_dir)
    assert "weibo/：无法读取（Permission denied）" in result.summary()
    assert _totals(instance_dir)["website"] == 1


def test_a_failed_move_never_imports_the_file_twice(instance_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = _inbox(instance_dir)
    (inbox / "website" / "site.csv").write_text(GOOD, encoding="utf-8")
    real_move = inbox_module._move

    def failing(path: Path, folder: Path) -> Path:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(inbox_module, "_move", failing)
    first = _round(instance_dir)
    assert [f.status for f in first.files] == ["error"] and "无法移到 done/" in (first.files[0].message or "")
    monkeypatch.setattr(inbox_module, "_move", real_move)
    second = _round(instance_dir)
    assert [(f.status, f.message) for f in second.files] == [("imported", "已导入过，未重复导入")]
    assert (inbox / "website" / "done" / "site.csv").is_file()
    imports = [r for r in _runs(instance_dir) if r.kind == "import"]
    assert len(imports) == 1  # one import: the second round only moved the file
    assert _totals(instance_dir)["website"] == 1


def test_a_file_that_changes_during_its_import_is_retried_once_settled(
    instance_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = _inbox(instance_dir)
    target = inbox / "website" / "site.csv"
    target.write_text(GOOD, encoding="utf-8")
    real_import = inbox_module.import_file

    def import_while_someone_appends(*args: object, **kwargs: object) -> object:
        with target.open("a", encoding="utf-8") as handle:  # the copy is still going on
            handle.write("园区开展消防演练,2020-06-02 09:00,http://www.example.gov.cn/a/2.html\n")
        return real_import(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(inbox_module, "import_file", import_while_someone_appends)
    first = _round(instance_dir)
    assert [f.status for f in first.files] == ["waiting"]
    assert target.is_file() and not (inbox / "website" / "done").exists()
    assert _totals(instance_dir)["website"] == 0  # the torn read was rolled back

    monkeypatch.setattr(inbox_module, "import_file", real_import)
    second = _round(instance_dir)
    assert [f.status for f in second.files] == ["imported"]
    assert _totals(instance_dir)["website"] == 2
    third = _round(instance_dir)
    assert third.files == [] and _totals(instance_dir)["website"] == 2  # nothing counted twice


def test_error_file_speaks_to_the_clerk_and_quotes_at_most_200_characters(instance_dir: Path) -> None:
    inbox = _inbox(instance_dir)
    secret_like = "x" * 5000
    (inbox / "website" / "bad.csv").write_text(
        f"标题,发布时间,链接\n园区通知,{secret_like},http://www.example.gov.cn/a.html\n", encoding="utf-8"
    )
    (inbox / "website" / "noheader.csv").write_text("甲" * 3000 + ",乙\n1,2\n", encoding="utf-8")
    _round(instance_dir)
    for name in ("bad.csv", "noheader.csv"):
        reasons = (inbox / "website" / "failed" / f"{name}.error.txt").read_text(encoding="utf-8")
        assert "--" not in reasons  # no command-line flag: the clerk works in the inbox
        assert "放回收件箱的 website/ 文件夹" in reasons
        assert "x" * 201 not in reasons and "甲" * 201 not in reasons
    bad = (inbox / "website" / "failed" / "bad.csv.error.txt").read_text(encoding="utf-8")
    assert "第2行" in bad


def test_loose_files_and_unknown_folders_are_named_in_a_warning(instance_dir: Path) -> None:
    inbox = _inbox(instance_dir)
    (inbox / "loose.csv").write_text(GOOD, encoding="utf-8")
    (inbox / "toutiao").mkdir()
    (inbox / "toutiao" / "t.csv").write_text(GOOD, encoding="utf-8")
    result = CliRunner().invoke(app, ["--instance", str(instance_dir), "run-job", "inbox"])
    assert result.exit_code == 0
    assert "警告" in result.output
    assert "loose.csv：不在渠道子目录中" in result.output and "toutiao/：配置中没有这个渠道 id" in result.output


def test_init_creates_a_folder_per_channel(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["init", str(tmp_path / "new")])
    assert result.exit_code == 0, result.output
    config = load_instance(tmp_path / "new").config
    for channel in config.channels:
        assert (tmp_path / "new" / "inbox" / channel.id).is_dir()


def test_daemon_start_creates_a_folder_per_channel(instance_dir: Path) -> None:
    from channelwatch.daemon.jobs import load_jobs
    from channelwatch.daemon.scheduler import _prepare_inboxes

    (instance_dir / "jobs" / "inbox.toml").write_text(
        'action = "import-inbox"\nevery = "5m"\npath = "drop"\n', encoding="utf-8"
    )
    instance = load_instance(instance_dir)
    _prepare_inboxes(instance, load_jobs(instance))
    assert sorted(p.name for p in (instance_dir / "drop").iterdir()) == ["website", "wechat", "weibo"]
