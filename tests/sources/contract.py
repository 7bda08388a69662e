"""The questions every poll source answers the same way (vdirsyncer's storage contract, for sources).

A source's test module subclasses ``SourceContract`` and says how to put items on the fake platform
(``tests/fakeplatforms.py``), what its ``[channels.poll]`` table is and how to break its payload.
Every test polls through ``polling.poll_channels`` against the real loopback server and reads the
result back from a real SQLite store.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import func, select

from channelwatch import store
from channelwatch.ingest.poll import PollResult, poll_channels
from channelwatch.instance.config import load_instance
from channelwatch.sources.http import HttpSettings
from channelwatch.store import Store, open_store
from channelwatch.store.models import Publication, Run
from tests.fakeplatforms import WECHAT_SECRET, WEIBO_COOKIE, FakePlatforms

# Short times: a fault test must end in a second, not in the real defaults' minutes.
FAST = HttpSettings(connect_timeout=1.0, read_timeout=0.5, retries=2, backoff=0.02, backoff_max=0.1, max_retry_after=5)

OFFICE = """
[office]
name = "彭阳县王洼产业园区管理委员会"
short_name = "我委"
timezone = "Asia/Shanghai"

[database]
url = "sqlite:///data/channelwatch.db"
"""


def poll_tables(server: FakePlatforms) -> dict[str, str]:
    """``[channels.poll]`` bodies for each channel kind, pointing at ``server``."""
    return {
        "website": f"""
            type = "html-list"
            url = "{server.site_list_url}"
            item = "ul.list li"
            title = "a"
            link = "a@href"
            date = "span"
            page_url = "index_{{n}}.html"
            max_pages = 10
            min_interval = "0s"
        """,
        "rss": f"""
            type = "rss"
            url = "{server.rss_url}"
            min_interval = "0s"
        """,
        "weibo": f"""
            type = "weibo"
            uid = "{server.weibo_uid}"
            base_url = "{server.url}"
            cookie_env = "CW_TEST_WEIBO_COOKIE"
            max_pages = 10
            min_interval = "0s"
            rest_every = 0
        """,
        "wechat": f"""
            type = "wechat"
            appid = "{server.wechat_appid}"
            secret_env = "CW_TEST_WECHAT_SECRET"
            base_url = "{server.url}"
            count = 5
            max_pages = 10
            min_interval = "0s"
        """,
    }


KINDS = {"website": "website", "rss": "website", "weibo": "weibo", "wechat": "wechat"}


def write_poll_instance(root: Path, tables: dict[str, str], url: str | None = None) -> Path:
    """An instance whose channels (id = key of ``tables``) each poll with the given table."""
    parts = [OFFICE if url is None else OFFICE.replace("sqlite:///data/channelwatch.db", url)]
    for key, table in tables.items():
        parts.append(f'\n[[channels]]\nid = "{key}"\nkind = "{KINDS.get(key, "website")}"\nname = "{key}"\n')
        parts.append("  [channels.poll]\n" + textwrap.indent(textwrap.dedent(table).strip(), "  ") + "\n")
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "channelwatch.toml").write_text("".join(parts), encoding="utf-8")
    return root


@dataclass
class PollEnv:
    server: FakePlatforms
    opened: Store
    channel: str

    def poll(self, *, full: bool = False, settings: HttpSettings = FAST) -> PollResult:
        (result,) = poll_channels(self.opened, [self.channel], full=full, settings=settings)
        return result

    def stored(self) -> int:
        pub = Publication.__table__  # type: ignore[attr-defined]
        with store.read(self.opened.engine) as conn:
            return int(
                conn.execute(
                    select(func.count()).where(pub.c.channel_id == self.opened.channel_id(self.channel))
                ).scalar_one()
            )

    def reposts(self) -> int:
        pub = Publication.__table__  # type: ignore[attr-defined]
        with store.read(self.opened.engine) as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        pub.c.channel_id == self.opened.channel_id(self.channel), pub.c.is_repost.is_(True)
                    )
                ).scalar_one()
            )

    def run(self, run_id: int) -> Run:
        table = Run.__table__  # type: ignore[attr-defined]
        with store.read(self.opened.engine) as conn:
            row = conn.execute(select(table).where(table.c.id == run_id)).one()
        return Run(**row._mapping)


@pytest.fixture
def poll_env_factory(
    tmp_path: Path, fake_platforms: FakePlatforms, monkeypatch: pytest.MonkeyPatch
) -> Iterator[object]:
    monkeypatch.setenv("CW_TEST_WEIBO_COOKIE", WEIBO_COOKIE)
    monkeypatch.setenv("CW_TEST_WECHAT_SECRET", WECHAT_SECRET)
    opened_stores: list[Store] = []

    def make(channel: str, **overrides: str) -> PollEnv:
        """``overrides`` replace (or add) keys of the table: values are TOML (``url='"http://…"'``)."""
        lines = textwrap.dedent(poll_tables(fake_platforms)[channel]).strip().splitlines()
        for key, value in overrides.items():
            lines = [line for line in lines if not line.startswith(f"{key} =")] + [f"{key} = {value}"]
        table = "\n".join(lines)
        root = write_poll_instance(tmp_path / "instance", {channel: table})
        opened = open_store(load_instance(root))
        opened_stores.append(opened)
        return PollEnv(fake_platforms, opened, channel)

    yield make
    for opened in opened_stores:
        opened.dispose()


class SourceContract:
    """Subclass, set ``channel`` and implement the three hooks."""

    channel: ClassVar[str]
    page_size: ClassVar[int]  # observed publications per listing page

    def add_items(self, server: FakePlatforms, pages: float) -> int:
        """Put about ``pages`` listing pages of items on the server; return how many publications that is."""
        raise NotImplementedError

    def break_payload(self, server: FakePlatforms) -> None:
        """Make the next listing answer unreadable (truncated JSON, a page without its structure, …)."""
        raise NotImplementedError

    def expected_pages(self, items: int) -> int:
        """Listing pages holding entries that a full walk over ``items`` publications reads."""
        return -(-items // self.page_size)

    @pytest.fixture
    def env(self, poll_env_factory: object) -> PollEnv:
        return poll_env_factory(self.channel)  # type: ignore[operator, no-any-return]

    def test_empty_listing(self, env: PollEnv) -> None:
        result = env.poll()
        assert (result.status, result.seen, result.new) == ("ok", 0, 0), result.message
        assert env.stored() == 0
        assert result.message and "未找到任何条目" in result.message

    def test_several_pages(self, env: PollEnv) -> None:
        items = self.add_items(env.server, 2.5)
        result = env.poll()
        assert result.status == "ok", result.message
        assert (result.seen, result.new) == (items, items)
        assert result.pages == self.expected_pages(items)
        assert env.stored() == items
        run = env.run(result.run_id)
        assert (run.status, run.rows_read, run.rows_new, run.pages_fetched) == ("ok", items, items, result.pages)
        assert run.finished_at is not None and run.finished_at >= run.started_at

    def test_repeat_poll_changes_nothing(self, env: PollEnv) -> None:
        items = self.add_items(env.server, 2.5)
        first = env.poll()
        second = env.poll()
        assert (first.status, second.status) == ("ok", "ok"), (first.message, second.message)
        assert second.new == 0
        assert second.pages == 1  # incremental: page 1 holds nothing new
        assert env.stored() == items
        full = env.poll(full=True)
        assert (full.status, full.new, full.seen) == ("ok", 0, items)
        assert env.stored() == items

    def test_new_items_found_incrementally(self, env: PollEnv) -> None:
        items = self.add_items(env.server, 2.5)
        assert env.poll().new == items
        more = self.add_items(env.server, 0.2)
        result = env.poll()
        assert (result.status, result.new) == ("ok", more), result.message
        assert env.stored() == items + more

    def test_bad_payload_fails_and_stores_nothing(self, env: PollEnv) -> None:
        self.add_items(env.server, 1.5)
        self.break_payload(env.server)
        result = env.poll()
        assert result.status == "failed"
        assert result.message
        assert result.new == 0
        assert env.stored() == 0
        run = env.run(result.run_id)
        assert (run.status, run.rows_new) == ("failed", 0)
        assert run.message == result.message
