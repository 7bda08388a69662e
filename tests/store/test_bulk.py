"""A bulk upsert into an empty store builds its indexes at the end: the same indexes, the same counts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from channelwatch import store
from channelwatch.instance.config import load_instance
from channelwatch.store import open_store, upsert
from tests.conftest import write_instance


def _schema(opened: store.Store) -> list[tuple[str, str]]:
    with store.read(opened.engine) as conn:
        rows = conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'publication' ORDER BY name")
        ).all()
    return [(str(name), str(sql)) for name, sql in rows]


def _records(count: int, title_of: int) -> list[tuple]:
    moment = datetime(2020, 5, 1, 2, 0, tzinfo=UTC)
    return [
        (f"id:{n}", str(n), f"t{n % title_of}", None, None, None, n % 2 == 0, moment, 2020, 5 + n % 3,
         f"2020-{5 + n % 3:02d}-01", f"k{n % title_of}")
        for n in range(count)
    ]  # fmt: skip


def test_bulk_upsert_into_an_empty_store_keeps_its_schema_and_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upsert, "BATCH_SIZE", 4)
    opened = open_store(load_instance(write_instance(tmp_path / "instance")))
    schema = _schema(opened)
    assert any(name == "ix_publication_title" for name, _sql in schema)
    with store.write(opened.engine) as conn:
        counts = store.upsert_publications(conn, opened.channel_ids["weibo"], _records(30, 7), run_id=None)
    assert (counts.new, counts.known) == (30, 0)
    assert _schema(opened) == schema
    with store.write(opened.engine) as conn:
        assert store.rebuild_counts(conn) == 0
        plan = conn.execute(text("EXPLAIN QUERY PLAN SELECT id FROM publication WHERE title_key = 'k1'")).all()
    assert "ix_publication_title" in str(plan)  # built again, and used
    # Again, on top: every row known, half of them now marked as reposts (held until the triggers are back).
    again = [(*r[:6], True, *r[7:]) for r in _records(30, 7)]
    with store.write(opened.engine) as conn:
        counts = store.upsert_publications(conn, opened.channel_ids["weibo"], again, run_id=None)
        assert (counts.new, counts.known) == (0, 30)
        assert store.rebuild_counts(conn) == 0
        reposts = conn.execute(text("SELECT count(*) FROM publication WHERE is_repost")).scalar()
    assert reposts == 30
    assert _schema(opened) == schema
    opened.dispose()
