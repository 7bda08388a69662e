"""The RSS/Atom source against the contract, and the saved feeds."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from channelwatch.dates import parse_datetime
from channelwatch.errors import FetchError
from channelwatch.sources.rss import parse_feed
from tests.fakeplatforms import OFFICE_TZ, FakePlatforms
from tests.sources.contract import PollEnv, SourceContract

DATA = Path(__file__).resolve().parent.parent / "data" / "platforms"
ZONE = "Asia/Shanghai"


class TestFeedContract(SourceContract):
    channel = "rss"
    page_size = 1000  # a feed is one page

    def add_items(self, server: FakePlatforms, pages: float) -> int:
        start = datetime(2020, 1, 1, 9, 0, tzinfo=OFFICE_TZ) if not server.site_articles else None
        return len(server.add_site_articles(round(pages * 5), start=start))

    def break_payload(self, server: FakePlatforms) -> None:
        server.fault("truncate", target="rss")

    def test_repeat_poll_changes_nothing(self, env: PollEnv) -> None:
        items = self.add_items(env.server, 2)
        first, second = env.poll(), env.poll()
        assert (first.new, second.new, second.seen) == (items, 0, items)
        assert env.stored() == items


def test_saved_rss_guid_and_link() -> None:
    observed = parse_feed((DATA / "rss.xml").read_bytes(), "http://www.example.gov.cn/rss.xml", ZONE)
    assert [o.platform_id for o in observed] == [None, "xxgk-2999"]  # a permalink guid is the URL
    assert observed[0].url == "http://www.example.gov.cn/xxgk/202011/t20201128_3000.html"
    assert observed[0].published_at == parse_datetime("2020-11-28 09:30", ZONE)


def test_saved_atom() -> None:
    (entry,) = parse_feed((DATA / "atom.xml").read_bytes(), "http://www.example.gov.cn/atom.xml", ZONE)
    assert entry.platform_id == "urn:example:wangwa:3001"
    assert entry.published_at == parse_datetime("2020-12-28T10:00:00+08:00", ZONE)


def test_not_a_feed() -> None:
    with pytest.raises(FetchError):
        parse_feed(b"<html><body>503</body></html>", "http://www.example.gov.cn/rss.xml", ZONE)


def test_atom_over_http(poll_env_factory: object, fake_platforms: FakePlatforms) -> None:
    env: PollEnv = poll_env_factory("rss", url=f'"{fake_platforms.atom_url}"')  # type: ignore[operator]
    fake_platforms.add_site_articles(4)
    result = env.poll()
    assert (result.status, result.new) == ("ok", 4), result.message
