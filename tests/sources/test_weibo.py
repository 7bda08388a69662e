"""The Weibo source against the contract, and Weibo's own rules (pinned, reposts, cookie, blocking)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from channelwatch.dates import parse_datetime
from channelwatch.sources.weibo import WeiboSource, iter_posts, post_observed
from tests.fakeplatforms import WEIBO_COOKIE, FakePlatforms
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
