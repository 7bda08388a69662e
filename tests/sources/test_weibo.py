"""The Weibo source against the contract, and Weibo's own rules (pinned, reposts, cookie, blocking)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from channelwatch.dates import DateParseError, parse_datetime, weibo_id_time
from channelwatch.sources.weibo import WeiboSource, iter_posts, post_observed, post_time
from tests.fakeplatforms import WEIBO_COOKIE, FakePlatforms, weibo_id_for
from tests.sources.contract import PollEnv, SourceContract

DATA = Path(__file__).resolve().parent.parent / "data" / "platforms"
ZONE = "Asia/Shanghai"


class TestWeiboContract(SourceContract):
    channel = "weibo"
    page_size = 10

    def add_items(self, server: FakePlatforms, pages: float) -> int:
        return len(server.add_weibo_posts(round(pages * self.page_size)))

    def break_payload(self, server: FakePlatforms) -> None:
        server.fault("truncate", target="weibo", match="page=2")


def test_saved_page_pinned_nested_repost_relative() -> None:
    payload = json.loads((DATA / "weibo_getindex_posts.json").read_text(encoding="utf-8"))
    posts = list(iter_posts(payload))
    assert [p.id for p in posts] == ["4500000000000001", "4577000000000003", "4577000000000002"]
    assert [p.pinned for p in posts] == [True, False, False]
    assert [p.is_repost for p in posts] == [False, False, True]
    now = datetime(2020, 11, 28, 12, 0, tzinfo=UTC)
    relative = post_observed(posts[2], ZONE, now, "test")
    assert relative.published_at == parse_datetime("2020-11-28 17:00", ZONE)  # 20:00 +08:00 minus 3 hours
    assert relative.is_repost and relative.url == "https://weibo.com/1234567890/Jn0000002"


def test_saved_profile_names_the_container() -> None:
    profile = json.loads((DATA / "weibo_getindex_profile.json").read_text(encoding="utf-8"))
    assert WeiboSource._containerid(profile) == "1076031234567890"


def test_pinned_and_reposts(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("weibo")  # type: ignore[operator]
    env.server.add_weibo_posts(25, reposts=4, pinned=1)
    result = env.poll()
    assert (result.status, result.seen, result.new) == ("ok", 25, 25), result.message
    assert env.reposts() == 4
    # Only the pinned post is new: page 1's ordinary posts are known, so paging stops there.
    env.server.add_weibo_posts(1, pinned=1)
    env.server.weibo_posts[-1].created_at = "Wed Jan 01 09:00:00 +0800 2020"
    again = env.poll()
    assert (again.status, again.new, again.pages) == ("ok", 1, 1)


def test_headers_the_mobile_site_expects(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("weibo")  # type: ignore[operator]
    env.server.add_weibo_posts(3)
    assert env.poll().status == "ok"
    for request in env.server.requests_to("/api/"):
        assert request.headers["cookie"] == WEIBO_COOKIE
        assert request.headers["mweibo-pwa"] == "1"
        assert request.headers["x-requested-with"] == "XMLHttpRequest"
        assert request.headers["referer"] == f"{env.server.url}/u/{env.server.weibo_uid}"
        assert "Mobile" in request.headers["user-agent"]


def test_fallback_container_without_tabs(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("weibo")  # type: ignore[operator]
    env.server.weibo_tabs = False
    env.server.add_weibo_posts(12)
    result = env.poll()
    assert (result.status, result.new) == ("ok", 12), result.message


def test_relative_dates_resolved_against_fetch_time(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("weibo")  # type: ignore[operator]
    posts = env.server.add_weibo_posts(4)
    for post, text in zip(posts, ["刚刚", "5分钟前", "3小时前", "昨天 12:30"], strict=True):
        post.created_at = text
    result = env.poll()
    assert (result.status, result.new) == ("ok", 4), result.message


# --- ids as clocks --------------------------------------------------------------------------------------------------


def test_id_encodes_the_post_time() -> None:
    moment = datetime(2019, 6, 14, 20, 38, 3, tzinfo=UTC)
    assert weibo_id_time(weibo_id_for(moment, 4095), ZONE) == moment
    assert weibo_id_time("not-an-id", ZONE) is None and weibo_id_time("12345", ZONE) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("06-14", "2019-06-14 20:38:03"),  # month-day: the id gives the year and the time
        ("3小时前", "2019-06-14 20:38:03"),  # relative to a fetch long after: the id, not the fetch time
        ("昨天 20:38", "2019-06-14 20:38:03"),
        ("2019-06-14", "2019-06-14 20:38:03"),  # a bare day: the id's time when it falls on that day
        ("Fri Jun 14 20:38:03 +0800 2019", "2019-06-14 20:38:03"),
        ("Sat Jun 15 09:00:00 +0800 2019", "2019-06-15 09:00:00"),  # full date and id disagree: the date
        ("06-20", "2026-06-20 00:00:00"),  # the id says another day: the text, year from the fetch
        ("昨天 09:00", "2026-06-30 09:00:00"),  # the id says another time of day: the text
    ],
)
def test_post_time_from_text_and_id(text: str, expected: str) -> None:
    post_id = weibo_id_for(datetime(2019, 6, 14, 20, 38, 3, tzinfo=timezone(timedelta(hours=8))), 1)
    fetched = datetime(2026, 7, 1, 4, 0, tzinfo=UTC)
    assert post_time(post_id, text, ZONE, fetched).strftime("%Y-%m-%d %H:%M:%S") == expected


def test_id_after_the_fetch_is_no_clock() -> None:
    # An id that would be later than the page's fetch cannot be a real post's: the text decides.
    post_id = weibo_id_for(datetime(2030, 1, 1, tzinfo=UTC))
    fetched = datetime(2020, 11, 28, 12, 0, tzinfo=UTC)
    assert post_time(post_id, "3小时前", ZONE, fetched) == parse_datetime("2020-11-28 17:00", ZONE)


def test_unreadable_text_stays_an_error_even_with_an_id() -> None:
    with pytest.raises(DateParseError):
        post_time(weibo_id_for(datetime(2019, 6, 14, tzinfo=UTC)), "大约很久以前", ZONE, datetime.now(UTC))


def test_poll_stores_relative_dates_at_their_ids_time(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("weibo")  # type: ignore[operator]
    posts = env.server.add_weibo_posts(3, start=datetime(2019, 6, 14, 20, 38, 3, tzinfo=timezone(timedelta(hours=8))))
    for post in posts:
        post.created_at = "06-14" if post is posts[0] else "3小时前"
    result = env.poll()
    assert (result.status, result.new) == ("ok", 3), result.message
    stored = env.opened.engine.connect().exec_driver_sql("SELECT min(published_at) FROM publication").scalar_one()
    assert str(stored).startswith("2019-06-14 12:38:03")  # 20:38:03 +08:00


# --- paging as the platform does it now, and ok: 0 answers ----------------------------------------------------------


def test_since_id_paging(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("weibo")  # type: ignore[operator]
    env.server.weibo_paging = "since_id"
    env.server.add_weibo_posts(25, reposts=2, pinned=1)
    result = env.poll()
    assert (result.status, result.seen, result.new, result.pages) == ("ok", 25, 25, 3), result.message
    assert env.reposts() == 2
    lists = [r for r in env.server.requests_to("/api/") if "containerid" in r.query]
    assert len(lists) == 3  # the last page carries no since_id: no empty page is asked for
    assert "since_id" not in lists[0].query
    assert all("since_id" in r.query and "page" not in r.query for r in lists[1:])
    assert lists[1].query["since_id"] != lists[2].query["since_id"]
    env.server.add_weibo_posts(2)
    again = env.poll()  # page 1 holds the 2 new posts, page 2 (by its cursor) nothing new: the poll stops
    assert (again.status, again.new, again.pages) == ("ok", 2, 2), again.message
    assert env.stored() == 27


def test_page_numbers_when_the_answer_has_no_since_id(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("weibo")  # type: ignore[operator]
    env.server.add_weibo_posts(15)
    result = env.poll()
    assert (result.status, result.new) == ("ok", 15), result.message
    lists = [r for r in env.server.requests_to("/api/") if "containerid" in r.query]
    assert [r.query.get("page") for r in lists[1:]] == ["2", "3"]
    assert all("since_id" not in r.query for r in lists)


def test_refusing_ok0_answer_fails_naming_the_message(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("weibo")  # type: ignore[operator]
    env.server.add_weibo_posts(5)
    env.server.weibo_list_error = "请求过于频繁，请稍后再试"
    result = env.poll()
    assert result.status == "failed"
    assert result.message and "请求过于频繁，请稍后再试" in result.message
    assert env.stored() == 0


def test_unknown_account_fails_naming_the_message(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("weibo")  # type: ignore[operator]
    env.server.weibo_profile_error = "用户不存在"
    result = env.poll()
    assert result.status == "failed"
    assert result.message and "用户不存在" in result.message and "uid" in result.message


def test_empty_account_is_a_warning(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("weibo")  # type: ignore[operator]
    result = env.poll()  # the list answers {"ok": 0, "msg": "这里还没有内容"}
    assert (result.status, result.seen) == ("ok", 0)
    assert result.message and "未找到任何条目" in result.message
