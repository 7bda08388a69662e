"""``channelwatch poll``: all three channels at once, exit codes, runs and channels afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from channelwatch.cli import app
from tests.fakeplatforms import WECHAT_SECRET, WEIBO_COOKIE, FakePlatforms, fake_platforms
from tests.sources.contract import poll_tables, write_poll_instance

__all__ = ["fake_platforms"]


@pytest.fixture
def instance(tmp_path: Path, fake_platforms: FakePlatforms, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CW_TEST_WEIBO_COOKIE", WEIBO_COOKIE)
    monkeypatch.setenv("CW_TEST_WECHAT_SECRET", WECHAT_SECRET)
    tables = poll_tables(fake_platforms)
    fake_platforms.add_site_articles(8)
    fake_platforms.add_weibo_posts(15, reposts=2, pinned=1)
    fake_platforms.add_wechat_pushes(3, articles=2)
    return write_poll_instance(tmp_path / "inst", {k: tables[k] for k in ("website", "weibo", "wechat")})


def run(instance: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--instance", str(instance), *args])
    return result.exit_code, result.output


def data(instance: Path, *args: str) -> str:
    """What a command prints on stdout (its notes on stderr are for the reader, not the data)."""
    result = CliRunner().invoke(app, ["--instance", str(instance), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_poll_all_then_again_changes_no_count(instance: Path) -> None:
    code, out = run(instance, "poll")
    assert code == 0, out
    assert "website：成功" in out and "新增 8 条" in out and "新增 15 条" in out and "新增 6 条" in out
    code, summary = run(instance, "summary", "--year", "2020", "--format", "json")
    assert code == 0, summary
    figures = {c["id"]: (c["total"], c["reposts"]) for c in json.loads(summary)["channels"]}
    assert figures == {"website": (8, 0), "weibo": (15, 2), "wechat": (6, 0)}
    code, out = run(instance, "poll")
    assert code == 0 and out.count("新增 0 条") == 3, out
    assert json.loads(data(instance, "summary", "--year", "2020", "--format", "json"))["total"] == 29
    code, runs = run(instance, "runs", "--format", "json")
    polls = [r for r in json.loads(runs) if r["kind"] == "poll"]
    assert len(polls) == 6 and all(r["status"] == "ok" for r in polls)
    assert {r["pages_fetched"] for r in polls if r["channel"] == "weibo"} == {1, 2}
    code, channels = run(instance, "channels")
    assert code == 0 and channels.count("20") >= 3  # each channel shows its last successful poll


def test_poll_exit_1_names_failed_channel(instance: Path, fake_platforms: FakePlatforms) -> None:
    fake_platforms.fault("weibo432", target="weibo")
    code, out = run(instance, "poll")
    assert code == 1
    assert "weibo：失败" in out and "Cookie" in out and "1 个渠道抓取失败：weibo" in out
    assert "website：成功" in out and "wechat：成功" in out


def test_poll_named_channel_and_unknown(instance: Path) -> None:
    code, out = run(instance, "poll", "wechat")
    assert code == 0 and "wechat：成功" in out and "website" not in out
    code, out = run(instance, "poll", "nope")
    assert code == 1 and "nope" in out


def test_poll_without_pollable_channels(tmp_path: Path) -> None:
    from tests.conftest import write_instance

    root = write_instance(tmp_path / "plain")
    code, out = run(root, "poll")
    assert code == 1 and "[channels.poll]" in out
    code, out = run(root, "poll", "weibo")
    assert code == 1 and "没有配置抓取方式" in out


def test_bad_poll_config_names_key(tmp_path: Path, fake_platforms: FakePlatforms) -> None:
    tables = poll_tables(fake_platforms)
    root = write_poll_instance(tmp_path / "bad", {"weibo": tables["weibo"] + '\nuid_typo = "1"'})
    code, out = run(root, "poll")
    assert code == 1 and "uid_typo" in out and "未知的配置项" in out


def test_poll_on_both_backends(
    tmp_path: Path, database_url: str, fake_platforms: FakePlatforms, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Grouped commits with a savepoint per channel work on SQLite and PostgreSQL alike."""
    monkeypatch.setenv("CW_TEST_WEIBO_COOKIE", WEIBO_COOKIE)
    monkeypatch.setenv("CW_TEST_WECHAT_SECRET", WECHAT_SECRET)
    tables = poll_tables(fake_platforms)
    fake_platforms.add_site_articles(6)
    fake_platforms.add_weibo_posts(12, reposts=1)
    fake_platforms.add_wechat_pushes(2)
    fake_platforms.fault("weibo432", target="weibo", match="page=2")
    root = write_poll_instance(tmp_path / "both", {k: tables[k] for k in ("website", "weibo", "wechat")}, database_url)
    code, out = run(root, "poll")
    assert code == 1 and "weibo：失败" in out
    summary = json.loads(data(root, "summary", "--year", "2020", "--format", "json"))
    assert {c["id"]: c["total"] for c in summary["channels"]} == {"website": 6, "weibo": 0, "wechat": 4}
    fake_platforms.clear_faults()
    assert run(root, "poll")[0] == 0
    assert run(root, "poll")[0] == 0
    summary = json.loads(data(root, "summary", "--year", "2020", "--format", "json"))
    assert {c["id"]: c["total"] for c in summary["channels"]} == {"website": 6, "weibo": 12, "wechat": 4}


def test_a_poll_run_can_be_undone_and_the_next_poll_counts_as_if_it_never_ran(
    instance: Path, fake_platforms: FakePlatforms
) -> None:
    code, out = run(instance, "poll", "website")
    assert code == 0 and "新增 8 条" in out, out
    fake_platforms.add_site_articles(3)
    code, out = run(instance, "poll", "website")
    assert code == 0 and "新增 3 条" in out, out
    polls = [r for r in json.loads(run(instance, "runs", "--format", "json")[1]) if r["kind"] == "poll"]
    latest = polls[0]["id"]
    code, out = run(instance, "runs", "undo", str(latest))
    assert code == 0, out
    assert f"已撤销运行 {latest}（website 抓取" in out and "删除了 3 条由该次运行首次写入的发布记录" in out
    total = json.loads(data(instance, "summary", "--year", "2020", "--format", "json"))["channels"][0]["total"]
    assert total == 8
    code, out = run(instance, "poll", "website")
    assert code == 0 and "新增 3 条" in out, out  # what the undone poll had found, found again
