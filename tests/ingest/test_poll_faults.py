"""End to end: every fault mode of the loopback platforms ends in a recorded failed run, with exact counts after."""

from __future__ import annotations

import logging
import time

import pytest

from channelwatch import store
from channelwatch.sources.http import HttpSettings
from tests.fakeplatforms import WECHAT_SECRET, FakePlatforms, fake_platforms
from tests.sources.contract import FAST, PollEnv, poll_env_factory

__all__ = ["fake_platforms", "poll_env_factory"]

Factory = object


def _env(factory: Factory, channel: str, **overrides: str) -> PollEnv:
    return factory(channel, **overrides)  # type: ignore[operator, no-any-return]


def _fill(server: FakePlatforms) -> dict[str, int]:
    server.add_site_articles(12)
    server.add_weibo_posts(25, reposts=3, pinned=1)
    server.add_wechat_pushes(7, articles=2)
    return {"website": 12, "rss": 12, "weibo": 25, "wechat": 14}


@pytest.mark.parametrize("channel", ["website", "rss", "weibo", "wechat"])
def test_timeout_fails_then_next_poll_is_exact(poll_env_factory: Factory, channel: str) -> None:
    env = _env(poll_env_factory, channel)
    expected = _fill(env.server)[channel]
    env.server.fault("timeout", delay=2.0)
    started = time.monotonic()
    result = env.poll()
    assert result.status == "failed"
    assert result.message and "超时" in result.message and "已尝试 3 次" in result.message
    assert time.monotonic() - started < 5
    assert env.stored() == 0
    env.server.clear_faults()
    again = env.poll()
    assert (again.status, again.new) == ("ok", expected), again.message
    assert env.stored() == expected


@pytest.mark.parametrize("channel", ["website", "weibo", "wechat"])
def test_500_then_200_is_retried(poll_env_factory: Factory, channel: str) -> None:
    env = _env(poll_env_factory, channel)
    expected = _fill(env.server)[channel]
    env.server.fault("500", times=2)
    result = env.poll()
    assert (result.status, result.new) == ("ok", expected), result.message
    assert [r.status for r in env.server.requests[:3]] == [500, 500, 200]


def test_429_retry_after_is_honoured(poll_env_factory: Factory) -> None:
    env = _env(poll_env_factory, "website")
    _fill(env.server)
    env.server.fault("429", target="site", times=1, retry_after=0.6)
    result = env.poll()
    assert (result.status, result.new) == ("ok", 12), result.message
    first, second = env.server.requests[0], env.server.requests[1]
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 0.55  # waited for Retry-After, not the 20 ms backoff


def test_429_persisting_fails_with_reason(poll_env_factory: Factory) -> None:
    env = _env(poll_env_factory, "wechat")
    _fill(env.server)
    env.server.fault("429", target="wechat", retry_after=0.05)
    result = env.poll()
    assert result.status == "failed"
    assert result.message and "HTTP 429" in result.message
    assert env.stored() == 0


def test_retry_after_beyond_limit_fails_at_once(poll_env_factory: Factory) -> None:
    env = _env(poll_env_factory, "website")
    _fill(env.server)
    env.server.fault("429", target="site", retry_after=3600)
    started = time.monotonic()
    result = env.poll()
    assert result.status == "failed" and result.message and "3600" in result.message
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("mode", ["weibo432", "weibo-100"])
def test_weibo_cookie_expired_says_renew_cookie(poll_env_factory: Factory, mode: str) -> None:
    env = _env(poll_env_factory, "weibo")
    _fill(env.server)
    env.server.fault(mode, target="weibo", match="page=2")
    result = env.poll()
    assert result.status == "failed"
    assert result.message and "Cookie" in result.message and "CW_TEST_WEIBO_COOKIE" in result.message
    assert "更新" in result.message
    assert env.stored() == 0  # page 1 was fine, but the run stores nothing
    assert env.run(result.run_id).message == result.message


def test_weibo_without_cookie_env_set(poll_env_factory: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env(poll_env_factory, "weibo")
    _fill(env.server)
    monkeypatch.delenv("CW_TEST_WEIBO_COOKIE")
    result = env.poll()
    assert result.status == "failed"
    assert result.message and "CW_TEST_WEIBO_COOKIE" in result.message and "未设置" in result.message


def test_weibo_418_backs_off_and_fails(poll_env_factory: Factory) -> None:
    env = _env(poll_env_factory, "weibo", backoff='"60s"')
    _fill(env.server)
    env.server.fault("weibo418", target="weibo", times=1)
    result = env.poll()
    assert result.status == "failed" and result.message and "418" in result.message
    requests = len(env.server.requests)
    again = env.poll()  # still backing off: no request at all
    assert again.status == "failed" and again.message and "退避" in again.message
    assert len(env.server.requests) == requests
    assert env.stored() == 0


def test_wechat_42001_once_renews_token(poll_env_factory: Factory) -> None:
    env = _env(poll_env_factory, "wechat")
    _fill(env.server)
    env.server.fault("wechat42001", target="wechat", times=1)
    result = env.poll()
    assert (result.status, result.new) == ("ok", 14), result.message
    assert env.server.tokens_issued == 2


def test_wechat_42001_twice_fails(poll_env_factory: Factory) -> None:
    env = _env(poll_env_factory, "wechat")
    _fill(env.server)
    env.server.fault("wechat42001", target="wechat", times=2)
    result = env.poll()
    assert result.status == "failed" and result.message and "42001" in result.message


@pytest.mark.parametrize(("code", "words"), [(45009, "上限"), (45011, "频繁"), (48001, "权限")])
def test_wechat_quota_errors_fail_clearly(poll_env_factory: Factory, code: int, words: str) -> None:
    env = _env(poll_env_factory, "wechat")
    _fill(env.server)
    env.server.fault("wechat-errcode", target="wechat", errcode=code)
    result = env.poll()
    assert result.status == "failed"
    assert result.message and str(code) in result.message and words in result.message
    assert env.stored() == 0


def test_wechat_secret_never_leaks(
    poll_env_factory: Factory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    env = _env(poll_env_factory, "wechat")
    _fill(env.server)
    env.server.fault("timeout", target="wechat", match="/cgi-bin/token", delay=2.0)
    failed = env.poll()
    assert failed.status == "failed" and failed.message
    env.server.clear_faults()
    env.server.fault("500", target="wechat", match="/cgi-bin/token", times=1)
    assert env.poll().status == "ok"
    token_requests = env.server.requests_to("/cgi-bin/token")
    assert token_requests and token_requests[0].query["secret"] == WECHAT_SECRET  # it was really sent
    assert WECHAT_SECRET not in caplog.text
    assert WECHAT_SECRET not in failed.message
    with store.read(env.opened.engine) as conn:
        for row in conn.exec_driver_sql("SELECT message, source FROM run"):
            assert WECHAT_SECRET not in f"{row[0]} {row[1]}"
    db_bytes = b"".join(p.read_bytes() for p in (env.opened.instance.root / "data").glob("*"))
    assert WECHAT_SECRET.encode() not in db_bytes


def test_truncated_json_fails(poll_env_factory: Factory) -> None:
    env = _env(poll_env_factory, "weibo")
    _fill(env.server)
    env.server.fault("truncate", target="weibo", match="page=3", times=1)
    result = env.poll()
    assert result.status == "failed" and result.message and "JSON" in result.message
    assert env.stored() == 0
    assert env.poll().new == 25


def test_redesigned_list_page_is_layout_alarm(poll_env_factory: Factory) -> None:
    env = _env(poll_env_factory, "website")
    _fill(env.server)
    assert env.poll().new == 12
    env.server.add_site_articles(2)
    env.server.fault("redesign", target="site")
    result = env.poll()
    assert result.status == "failed"
    assert result.message and "页面结构可能已变化" in result.message and "12" in result.message
    assert env.stored() == 12  # nothing from the redesigned page
    env.server.clear_faults()
    assert env.poll().new == 2


def test_unparseable_dates_are_layout_alarm(poll_env_factory: Factory) -> None:
    env = _env(poll_env_factory, "weibo")
    posts = env.server.add_weibo_posts(5)
    posts[2].created_at = "大约很久以前"
    result = env.poll()
    assert result.status == "failed"
    assert result.message and "页面结构可能已变化" in result.message and "大约很久以前" in result.message
    assert env.stored() == 0


def test_oversize_answer_fails(poll_env_factory: Factory) -> None:
    env = _env(poll_env_factory, "website")
    _fill(env.server)
    tiny = HttpSettings(**{**FAST.__dict__, "max_bytes": 500})
    result = env.poll(settings=tiny)
    assert result.status == "failed" and result.message and "上限" in result.message


def test_an_item_dated_after_tomorrow_fails_the_poll_and_names_it(poll_env_factory: Factory) -> None:
    """A typo on the site (2027 for 2026) stored kept the channel "fresh" for months: the two-week alarm was off.
    The import refuses such a row; a poll fails, names the item, and stores nothing."""
    from datetime import datetime, timedelta

    from tests.fakeplatforms import OFFICE_TZ

    env = _env(poll_env_factory, "website")
    env.server.add_site_articles(3)
    future = env.server.add_site_articles(1, start=datetime.now(OFFICE_TZ) + timedelta(days=150))[0]
    result = env.poll()
    assert result.status == "failed"
    assert result.message is not None
    assert f"「{future.title}」发布时间为 {future.published:%Y-%m-%d}" in result.message
    assert (
        "晚于现在一天以上，不可能是发布时间：本次未保存任何数据，请在网站（或平台）上更正这一条的日期" in result.message
    )
    assert env.stored() == 0
    future.published = datetime(2020, 6, 20, 9, 0, tzinfo=OFFICE_TZ)  # corrected on the site
    assert env.poll().new == 4
