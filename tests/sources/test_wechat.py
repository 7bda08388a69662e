"""The WeChat source against the contract, and its token rules."""

from __future__ import annotations

import json
from pathlib import Path

from channelwatch.sources.wechat import articles_from_push
from tests.fakeplatforms import FakePlatforms
from tests.sources.contract import PollEnv, SourceContract

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
