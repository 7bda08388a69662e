"""The WeChat source against the contract, and its token rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from channelwatch.dates import from_timestamp
from channelwatch.instance.config import load_instance
from channelwatch.sources.wechat import articles_from_push
from channelwatch.store import open_store
from tests.fakeplatforms import FakePlatforms
from tests.sources.contract import PollEnv, SourceContract, write_poll_instance

DATA = Path(__file__).resolve().parent.parent / "data" / "platforms"
ZONE = "Asia/Shanghai"


class TestWechatContract(SourceContract):
    channel = "wechat"
    page_size = 10  # count = 5 pushes per page, two articles each

    def add_items(self, server: FakePlatforms, pages: float) -> int:
        pushes = server.add_wechat_pushes(round(pages * 5), articles=2)
        return sum(len(p.titles) for p in pushes)

    def break_payload(self, server: FakePlatforms) -> None:
        server.fault("truncate", target="wechat", match="batchget")


def test_saved_batchget_articles() -> None:
    payload = json.loads((DATA / "wechat_batchget.json").read_text(encoding="utf-8"))
    articles = [a for push in payload["item"] for a in articles_from_push(push, ZONE, "saved")]
    assert len(articles) == 3
    assert [a.is_repost for a in articles] == [False, True, False]
    assert len({a.push_id for a in articles}) == 2


def test_token_cached_across_polls(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("wechat")  # type: ignore[operator]
    env.server.add_wechat_pushes(3)
    assert env.poll().status == "ok"
    assert env.poll().status == "ok"
    assert env.server.tokens_issued == 1


def test_token_renewed_shortly_before_expiry(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("wechat")  # type: ignore[operator]
    env.server.wechat_expires_in = 1  # renewed 10 % early: at once usable, expired by the next poll
    env.server.add_wechat_pushes(2)
    assert env.poll().status == "ok"
    import time

    time.sleep(1.0)
    assert env.poll().status == "ok"
    assert env.server.tokens_issued == 2


def test_push_count_kept(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("wechat")  # type: ignore[operator]
    env.server.add_wechat_pushes(4, articles=3)
    result = env.poll()
    assert (result.status, result.new) == ("ok", 12)
    pushes = env.opened.engine.connect().exec_driver_sql("SELECT count(DISTINCT push_id) FROM publication")
    assert pushes.scalar_one() == 4


# --- where real answers carry the times -------------------------------------------------------------------------


def test_saved_real_answer_times_inside_content_and_news_items() -> None:
    payload = json.loads((DATA / "wechat_batchget_real_times.json").read_text(encoding="utf-8"))
    first, second = payload["item"]
    (article,) = articles_from_push(first, ZONE, "saved")
    assert article.published_at == from_timestamp(first["content"]["create_time"], ZONE)  # not update_time
    assert first["content"]["update_time"] > first["content"]["create_time"]
    late = articles_from_push(second, ZONE, "saved")
    assert [a.published_at.year for a in late] == [2020, 2020]  # edited in 2021, published in 2020


def test_publish_time_preferred_wherever_it_sits() -> None:
    push = {
        "article_id": "A1",
        "update_time": 1700000900,
        "content": {"news_item": [{"title": "甲", "url": "", "publish_time": 1700000000}], "update_time": 1700000800},
    }
    (article,) = articles_from_push(push, ZONE, "unit")
    assert article.published_at == from_timestamp(1700000000, ZONE)


@pytest.mark.parametrize("where", ["content", "news_item"])
def test_poll_reads_times_where_real_answers_carry_them(poll_env_factory: object, where: str) -> None:
    env: PollEnv = poll_env_factory("wechat")  # type: ignore[operator]
    env.server.wechat_time_at = where
    env.server.wechat_edit_delay = 12
    pushes = env.server.add_wechat_pushes(7, articles=2)
    result = env.poll()
    assert (result.status, result.new, result.pages) == ("ok", 14, 2), result.message
    stored = env.opened.engine.connect().exec_driver_sql("SELECT min(published_at) FROM publication").scalar_one()
    earliest = min(p.update_time for p in pushes)  # the fake's publication time; updates come 12 s later
    assert str(stored).startswith(f"{datetime.fromtimestamp(earliest, UTC):%Y-%m-%d %H:%M:%S}")


def test_poll_without_any_time_fails_naming_the_places(poll_env_factory: object) -> None:
    env: PollEnv = poll_env_factory("wechat")  # type: ignore[operator]
    env.server.wechat_time_at = "none"
    env.server.add_wechat_pushes(2)
    result = env.poll()
    assert result.status == "failed"
    assert result.message and "没有发布时间" in result.message and "content" in result.message
    assert env.stored() == 0


# --- pushes of short links (RSS feeds of an account) --------------------------------------------------------------


def test_feed_of_short_links_counts_pushes_by_publish_time(fake_platforms: FakePlatforms, tmp_path: Path) -> None:
    table = f'type = "rss"\nurl = "{fake_platforms.url}/wechat/feed.xml"\nmin_interval = "0s"'
    opened = open_store(load_instance(write_poll_instance(tmp_path / "feed", {"wechat": table})))
    env = PollEnv(fake_platforms, opened, "wechat")
    cst = timezone(timedelta(hours=8))
    times = [datetime(2021, 6, 16, 15, 2, 11, tzinfo=cst) + timedelta(hours=5 * n) for n in range(7)]
    sizes = [3, 3, 3, 2, 3, 3, 3]
    for push, (moment, size) in enumerate(zip(times, sizes, strict=True)):
        env.server.wechat_feed.extend((f"第{push}次推送第{n}篇", f"c{push}n{n}Xy_-", moment) for n in range(size))
    env.server.wechat_feed.append(("第0次推送第0篇", "lateSameTitle1", times[-1]))  # same title, other article
    result = env.poll()
    assert (result.status, result.new) == ("ok", 21), result.message
    conn = env.opened.engine.connect()
    assert conn.exec_driver_sql("SELECT count(DISTINCT push_id) FROM publication").scalar_one() == 7
    assert conn.exec_driver_sql("SELECT count(*) FROM publication WHERE push_id IS NULL").scalar_one() == 0
    again = env.poll()
    assert (again.status, again.new) == ("ok", 0)
    opened.dispose()
