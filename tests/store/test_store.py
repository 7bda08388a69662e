"""The store on SQLite and PostgreSQL: schema, dedup-aware upsert, transactions, concurrent writers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from channelwatch import store
from channelwatch.ingest.imports import import_file
from channelwatch.ingest.runs import record_of
from channelwatch.instance.config import load_instance
from channelwatch.sources.base import Observed
from channelwatch.stats.figures import Period, summarise
from channelwatch.stats.freshness import freshness
from channelwatch.store import open_store, schema
from channelwatch.store.models import Publication, SchemaVersion
from tests.conftest import SAMPLES, write_instance

ZONE = "Asia/Shanghai"


def observed(n: int, **fields: object) -> Observed:
    values: dict[str, object] = {
        "published_at": datetime(2020, 6, 1, 8, 0, tzinfo=UTC),
        "platform_id": f"44000000{n:08d}",
        "title": f"第{n}条",
    }
    values.update(fields)
    return Observed(**values)  # type: ignore[arg-type]


def test_schema_is_created_and_versioned(database_url: str) -> None:
    engine = store.open_engine(database_url)
    assert store.ensure_schema(engine) == 0
    assert store.ensure_schema(engine) == store.SCHEMA_VERSION  # second open: nothing to upgrade
    with store.read(engine) as conn:
        assert conn.execute(select(SchemaVersion.version)).scalar() == store.SCHEMA_VERSION  # type: ignore[call-overload]
    engine.dispose()


def test_newer_schema_is_refused(database_url: str) -> None:
    from channelwatch.errors import ConfigError

    engine = store.open_engine(database_url)
    store.ensure_schema(engine)
    with store.write(engine) as conn:
        conn.execute(text("UPDATE schema_version SET version = 99"))
    with pytest.raises(ConfigError, match="请升级 channelwatch"):
        store.ensure_schema(engine)
    engine.dispose()


def test_upsert_counts_new_and_known_and_fills_gaps(any_instance_dir: Path) -> None:
    opened = open_store(load_instance(any_instance_dir))
    channel = opened.channel_id("weibo")
    first = [record_of(observed(n, title=None if n == 2 else f"第{n}条"), ZONE, "weibo") for n in range(1, 4)]
    with store.write(opened.engine) as conn:
        counts = store.upsert_publications(conn, channel, first, run_id=None)
    assert (counts.new, counts.known) == (3, 0)

    again = [
        record_of(observed(2, title="补上的标题", is_repost=True), ZONE, "weibo"),
        record_of(observed(3, title="不会覆盖已有标题"), ZONE, "weibo"),
        record_of(observed(4), ZONE, "weibo"),
    ]
    with store.write(opened.engine) as conn:
        counts = store.upsert_publications(conn, channel, again, run_id=None)
    assert (counts.new, counts.known) == (1, 2)

    pub = Publication.__table__  # type: ignore[attr-defined]
    with store.read(opened.engine) as conn:
        rows = {r.platform_id: r for r in conn.execute(select(pub).where(pub.c.channel_id == channel))}
        figures = summarise(conn, opened.office_id, Period(2020))
    assert rows["4400000000000002"].title == "补上的标题"  # a missing field is filled
    assert rows["4400000000000003"].title == "第3条"  # a known one is kept
    assert bool(rows["4400000000000002"].is_repost) is True
    assert rows["4400000000000002"].last_seen >= rows["4400000000000002"].first_seen
    weibo = next(c for c in figures.channels if c.key == "weibo")
    assert (weibo.total, weibo.reposts, weibo.original) == (4, 1, 3)
    opened.dispose()


def test_failed_transaction_stores_nothing(any_instance_dir: Path) -> None:
    opened = open_store(load_instance(any_instance_dir))
    channel = opened.channel_id("weibo")

    def records_then_crash():  # type: ignore[no-untyped-def]
        for n in range(5000):
            yield record_of(observed(n), ZONE, "weibo")
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError), store.write(opened.engine) as conn:
        store.upsert_publications(conn, channel, records_then_crash(), run_id=None)
    pub = Publication.__table__  # type: ignore[attr-defined]
    with store.read(opened.engine) as conn:
        assert conn.execute(select(func.count()).select_from(pub)).scalar_one() == 0
    opened.dispose()


def test_samples_give_the_2020_report_figures(any_instance_dir: Path) -> None:
    opened = open_store(load_instance(any_instance_dir))
    for folder in sorted(SAMPLES.iterdir()):
        for path in sorted(folder.iterdir()):
            import_file(opened, folder.name, path)
    with store.read(opened.engine) as conn:
        figures = summarise(conn, opened.office_id, Period(2020), ["website", "weibo", "wechat"])
    by_key = {c.key: c for c in figures.channels}
    assert figures.total == 1279
    assert (by_key["website"].total, by_key["weibo"].total, by_key["wechat"].total) == (6, 1225, 48)
    assert (by_key["weibo"].reposts, by_key["wechat"].reposts, figures.reposts) == (400, 12, 412)
    assert figures.unique_items == 1270
    assert figures.as_json()["months"][0] == {
        "month": "2020-01",
        "total": 104,
        "channels": {"website": 1, "weibo": 99, "wechat": 4},
    }
    # The posts of the year's edges fall in their office-time year.
    with store.read(opened.engine) as conn:
        edge_2021 = summarise(conn, opened.office_id, Period(2021, month=1), ["weibo"])
        edge_2019 = summarise(conn, opened.office_id, Period(2019, month=12), ["weibo"])
    assert edge_2021.total == 1 and edge_2019.total == 1
    opened.dispose()


def test_freshness_reads_newest_publication(any_instance_dir: Path) -> None:
    opened = open_store(load_instance(any_instance_dir))
    records = [
        record_of(observed(1, published_at=datetime(2020, 11, 1, 9, 0, tzinfo=UTC)), ZONE, "weibo"),
        record_of(observed(2, published_at=datetime(2020, 11, 17, 23, 0, tzinfo=UTC)), ZONE, "weibo"),  # 18th CST
    ]
    with store.write(opened.engine) as conn:
        store.upsert_publications(conn, opened.channel_id("weibo"), records, run_id=None)
    now = datetime(2020, 11, 28, 4, 0, tzinfo=UTC)  # 28 Nov 12:00 in Shanghai
    with store.read(opened.engine) as conn:
        rows = {f.key: f for f in freshness(conn, opened.office_id, ZONE, warn_days=10, limit_days=14, now=now)}
    assert rows["weibo"].days_since == 10 and rows["weibo"].status == "warn" and rows["weibo"].days_left == 4
    assert rows["weibo"].last_published is not None and rows["weibo"].last_published.day == 18
    assert rows["website"].status == "empty" and rows["weibo"].total == 2
    opened.dispose()


def test_two_processes_write_one_sqlite_file_at_once(tmp_path: Path) -> None:
    """The daemon and the CLI share one SQLite file: concurrent writers queue, never 'database is locked'."""
    instance = write_instance(tmp_path / "instance")
    open_store(load_instance(instance)).dispose()
    script = textwrap.dedent(
        """
        import sys
        from datetime import UTC, datetime, timedelta
        from pathlib import Path
        from channelwatch import store
        from channelwatch.instance.config import load_instance
        from channelwatch.store import open_store
        from channelwatch.ingest.runs import record_of, start_run, finish_run
        from channelwatch.sources.base import Observed
        opened = open_store(load_instance(Path(sys.argv[1])))
        base = int(sys.argv[2])
        for batch in range(20):
            run = start_run(opened.engine, opened.channel_id("weibo"), "import", "w")
            records = [record_of(Observed(published_at=datetime(2020, 1, 1, tzinfo=UTC) + timedelta(hours=n),
                                          platform_id=str(base + batch * 500 + n), title="t"), "Asia/Shanghai", "weibo")
                       for n in range(500)]
            with store.write(opened.engine) as conn:
                store.upsert_publications(conn, opened.channel_id("weibo"), records, run_id=run)
            finish_run(opened.engine, run, "ok")
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(instance), str(base)], stderr=subprocess.PIPE, text=True)
        for base in (1_000_000, 2_000_000, 3_000_000)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    opened = open_store(load_instance(instance))
    with store.read(opened.engine) as conn:
        assert summarise(conn, opened.office_id, Period(2020)).total == 3 * 20 * 500
    opened.dispose()


def test_upgrade_runner_applies_new_steps_once(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database of the first release is upgraded in place by the steps appended after it."""
    engine = store.open_engine(database_url)
    assert store.ensure_schema(engine) == 0
    with store.write(engine) as conn:
        store.sync_office(conn, "某局", "我局", ZONE)

    applied: list[int] = []

    def add_note_column(conn) -> None:  # type: ignore[no-untyped-def]
        applied.append(1)
        conn.execute(text("ALTER TABLE office ADD COLUMN note VARCHAR"))

    released = schema.SCHEMA_VERSION
    monkeypatch.setattr(schema, "_MIGRATIONS", [*schema._MIGRATIONS, add_note_column])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", len(schema._MIGRATIONS))
    assert store.ensure_schema(engine) == released  # found the released version, upgraded from it
    assert store.ensure_schema(engine) == released + 1  # nothing left to do
    assert applied == [1]
    with store.read(engine) as conn:
        assert conn.execute(text("SELECT name, note FROM office")).one() == ("某局", None)  # data kept
        assert conn.execute(select(SchemaVersion.version)).scalar() == released + 1  # type: ignore[call-overload]
    engine.dispose()
