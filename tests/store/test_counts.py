"""The counts kept beside the publications always equal counting the publications themselves.

Property: after any sequence of imports and polls (upserts, new and known, alone or in a poll's grouped
write whose new rows are counted at its end), ``runs undo`` of any of them, deletions by hand,
and updates of the counted columns (a channel rename moving publications, a hand fix of a date or a repost
mark), ``summarise`` read from the counts gives exactly what ``summarise_publications`` counts from the
rows, for every year, quarter and month and for any subset of channels; and ``recount`` finds nothing to repair.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, text
from typer.testing import CliRunner

from channelwatch import store
from channelwatch.cli import app
from channelwatch.instance.config import load_instance
from channelwatch.stats.figures import Period, summarise, summarise_publications
from channelwatch.store import counts, open_store, upsert
from channelwatch.store.counts import counts_held, held_counts
from channelwatch.store.maintenance import undo_run
from channelwatch.store.models import Run
from tests.conftest import new_postgres_database, write_instance

CHANNELS = """
[[channels]]
id = "site"
kind = "website"
name = "门户网站"

[[channels]]
id = "mp"
kind = "wechat"
name = "公众号"

[[channels]]
id = "weibo2"
kind = "weibo"
name = "微博"
"""
KEYS = ["site", "mp", "weibo2"]

publication = st.tuples(
    st.integers(0, 29),  # identity: few, so that upserts hit known rows
    st.sampled_from(KEYS),
    st.integers(2019, 2020),
    st.integers(1, 12),
    st.booleans(),  # repost
    st.one_of(st.none(), st.sampled_from(["ta", "tb", "tc", "td"])),  # title key: shared across channels
    st.one_of(st.none(), st.sampled_from(["p1", "p2", "p3"])),  # push id
)
operation = st.one_of(
    st.tuples(st.just("upsert"), st.lists(publication, min_size=1, max_size=12)),
    # A poll's grouped write: each channel's upsert in a savepoint of its own, one of them rolled back,
    # the group's new rows counted at its end (``hold_counts``).
    st.tuples(st.just("group"), st.lists(publication, min_size=1, max_size=12), st.integers(-1, 3)),
    st.tuples(st.just("insert"), publication),  # another write path: a plain INSERT, counted by the trigger
    st.tuples(st.just("delete"), st.integers(0, 29)),
    st.tuples(st.just("undo"), st.integers(0, 20)),  # `runs undo` of an earlier upsert's run, if there is one
    st.tuples(
        st.just("update"),
        st.integers(0, 29),
        st.sampled_from(["title_key", "push_id", "is_repost", "local_month", "local_year", "channel_id"]),
        st.integers(0, 11),
    ),
)


def _record(ident: int, year: int, month: int, repost: bool, title: str | None, push: str | None) -> tuple:
    published = datetime(year, month, 10, 2, 0, tzinfo=UTC)
    return (f"id:{ident}", None, title, None, None, push, repost, published, year, month,
            f"{year}-{month:02d}-10", title)  # fmt: skip


def _rows(conn: Connection) -> int:
    return int(conn.execute(text("SELECT count(*) FROM publication")).scalar_one())


def _upsert_each_channel(conn: Connection, ids: dict[str, int], drawn: list[tuple], failing: int = -1) -> None:
    """One upsert per channel, of all its records in the order drawn (an import of one file); the
    ``failing``-th channel's is rolled back to its savepoint, as a poll's failed channel is."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    for index, channel in enumerate(dict.fromkeys(p[1] for p in drawn)):
        records = [_record(i, y, m, r, t, pu) for i, key, y, m, r, t, pu in drawn if key == channel]
        cursor.execute("SAVEPOINT counted")
        before = _rows(conn)
        # Each upsert its own run, as an import's or a poll's: PostgreSQL defers counting a run's own rows.
        run = Run.__table__  # type: ignore[attr-defined]
        run_id = conn.execute(
            run.insert()
            .values(channel_id=ids[channel], kind="import", source="t", started_at=datetime.now(UTC))
            .returning(run.c.id)
        ).scalar_one()
        counts = store.upsert_publications(conn, ids[channel], records, run_id=run_id)
        conn.execute(run.update().where(run.c.id == run_id).values(status="ok", finished_at=datetime.now(UTC)))
        # What it says it inserted is what it inserted, and every other record was a known row.
        assert (counts.new, counts.new + counts.known) == (_rows(conn) - before, len(records))
        cursor.execute("ROLLBACK TO SAVEPOINT counted" if index == failing else "RELEASE SAVEPOINT counted")
        if index == failing:
            cursor.execute("RELEASE SAVEPOINT counted")
    cursor.close()


def _apply(opened: store.Store, op: tuple) -> None:
    ids = opened.channel_ids
    with store.write(opened.engine) as conn:
        if op[0] == "upsert":
            _upsert_each_channel(conn, ids, op[1])
        elif op[0] == "group":
            with held_counts(conn):
                _upsert_each_channel(conn, ids, op[1], failing=op[2])
        elif op[0] == "insert":
            ident, key, year, month, repost, title, push = op[1]
            conn.execute(
                text(
                    "INSERT INTO publication (channel_id, identity, title, push_id, is_repost, published_at, "
                    "local_year, local_month, local_date, title_key, first_seen, last_seen) SELECT :c, :i, :t, :p, "
                    ":r, :at, :y, :m, :d, :t2, :at, :at WHERE NOT EXISTS "
                    "(SELECT 1 FROM publication WHERE channel_id = :c2 AND identity = :i2)"
                ),
                {"c": ids[key], "i": f"id:{ident}", "c2": ids[key], "i2": f"id:{ident}", "t": title,
                 "t2": title, "p": push, "r": repost, "y": year, "m": month,
                 "d": f"{year}-{month:02d}-10", "at": datetime(year, month, 10, 2, tzinfo=UTC)},
            )  # fmt: skip
        elif op[0] == "undo":
            done = conn.execute(text("SELECT id FROM run WHERE status = 'ok' ORDER BY id")).scalars().all()
            if done:
                undo_run(conn, opened.office_id, done[op[1] % len(done)])
        elif op[0] == "delete":
            conn.execute(text("DELETE FROM publication WHERE identity = :i"), {"i": f"id:{op[1]}"})
        else:
            _, ident, column, n = op
            value: object = {
                "title_key": [None, "ta", "tb", "te"][n % 4],
                "push_id": [None, "p1", "p4"][n % 3],
                "is_repost": n % 2 == 0,
                "local_month": n + 1,
                "local_year": 2019 + n % 2,
                "channel_id": ids[KEYS[n % 3]],
            }[column]
            # One row per identity and channel: a move onto a channel that already holds it is skipped.
            conn.execute(
                text(
                    f"UPDATE publication SET {column} = :v WHERE id = (SELECT min(p.id) FROM publication p "
                    "WHERE p.identity = :i AND NOT EXISTS (SELECT 1 FROM publication q WHERE q.identity = :i "
                    "AND q.channel_id = :c AND q.id <> p.id))"
                ),
                {"v": value, "i": f"id:{ident}", "c": ids[KEYS[n % 3]] if column == "channel_id" else -1},
            )


def _periods() -> list[Period]:
    found = []
    for year in (2019, 2020):
        found.append(Period(year))
        found += [Period(year, quarter=q) for q in range(1, 5)]
        found += [Period(year, month=m) for m in range(1, 13)]
    return found


def _same_figures(opened: store.Store) -> None:
    with store.read(opened.engine) as conn:
        for period in _periods():
            for keys in (None, KEYS, ["mp", "site"], ["weibo2"]):
                kept = summarise(conn, opened.office_id, period, keys)
                counted = summarise_publications(conn, opened.office_id, period, keys)
                assert kept.as_json() == counted.as_json(), (period, keys)
                assert [c.pushes for c in kept.channels] == [c.pushes for c in counted.channels]
                assert {c.key: c.by_month for c in kept.channels} == {c.key: c.by_month for c in counted.channels}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=1, max_size=12))
@pytest.mark.parametrize("scan", [False, True], ids=["probe-each-new-row", "scan-the-value-index"])
def test_counts_equal_counting_the_publications(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scan: bool, operations: list[tuple]
) -> None:
    # Batches of two: an upsert of one or two rows is counted by the triggers, a longer one set-based
    # at its end (as a bulk import is), with identities repeated inside it and across batches.
    monkeypatch.setattr(upsert, "BATCH_SIZE", 2)
    # SQLite's set-based count of distinct values: a probe per new row, or a scan for the repeated values first.
    monkeypatch.setattr(counts, "_SCAN_SHARE", 10**9 if scan else 0)
    # Known rows that change a counted column are held back until the triggers are back; a few at a time
    # here, so that holding, counting and deferring again happen inside one upsert too.
    monkeypatch.setattr(upsert, "_HELD_MAX", 3)
    root = tmp_path / "instance"
    if not (root / "config").exists():
        write_instance(root, url=database_url, extra=CHANNELS)
    opened = open_store(load_instance(root))
    try:
        with store.write(opened.engine) as conn:
            conn.execute(text("DELETE FROM publication"))  # the triggers take every row back out
            left = conn.execute(text("SELECT count(*) FROM publication_count WHERE publications <> 0")).scalar()
            assert left == 0
        for op in operations:
            _apply(opened, op)
        _same_figures(opened)
        with store.write(opened.engine) as conn:
            assert store.rebuild_counts(conn) == 0  # the triggers left nothing to repair
    finally:
        opened.dispose()


def test_runs_undo_takes_a_runs_rows_out_of_the_counts(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import of many rows (counted set-based at its end) undone: every figure is what counting the rows
    left gives, titles and pushes the undone run shared with another run included; nothing to recount."""
    monkeypatch.setattr(upsert, "BATCH_SIZE", 4)
    root = write_instance(tmp_path / "instance", url=database_url, extra=CHANNELS)
    opened = open_store(load_instance(root))
    try:
        shared = [(n, "site", 2020, 3, n % 2 == 0, f"t{n % 3}", None) for n in range(10)]
        _apply(opened, ("upsert", shared))
        undone = [(100 + n, "site", 2020, 3 + n % 2, False, f"t{n % 5}", None) for n in range(12)]
        undone += [(200 + n, "mp", 2020, 3, False, f"t{n % 4}", f"p{n % 3}") for n in range(9)]
        _apply(opened, ("upsert", undone))
        with store.read(opened.engine) as conn:
            before = summarise(conn, opened.office_id, Period(2020)).as_json()
            runs = conn.execute(text("SELECT id FROM run ORDER BY id")).scalars().all()
        assert (before["total"], before["unique_items"]) == (31, 5)
        with store.write(opened.engine) as conn:
            undo_run(conn, opened.office_id, runs[1])  # the site's second upsert
            undo_run(conn, opened.office_id, runs[2])  # the WeChat channel's
        _same_figures(opened)
        with store.read(opened.engine) as conn:
            after = summarise(conn, opened.office_id, Period(2020)).as_json()
        assert (after["total"], after["unique_items"]) == (10, 3)
        with store.write(opened.engine) as conn:
            assert store.rebuild_counts(conn) == 0
    finally:
        opened.dispose()


def test_counts_are_filled_when_an_older_store_is_upgraded(database_url: str, tmp_path: Path) -> None:
    """A store of the first schema version, with publications, gets counts equal to its rows on opening."""
    root = write_instance(tmp_path / "instance", url=database_url, extra=CHANNELS)
    opened = open_store(load_instance(root))
    for op in [("upsert", [(n, KEYS[n % 3], 2020, n % 12 + 1, n % 2 == 0, "ta" if n % 5 else None, None)
                           for n in range(20)])]:  # fmt: skip
        _apply(opened, op)
    with store.write(opened.engine) as conn:  # back to version 1: no count tables, no triggers
        on = " ON publication" if conn.dialect.name == "postgresql" else ""
        for name in ("insert", "delete", "update"):
            conn.execute(text(f"DROP TRIGGER publication_counted_{name}{on}"))
        for table in ("publication_count", "figure_distinct", "counts_deferred"):
            conn.execute(text(f"DROP TABLE {table}"))
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP TABLE figure_value"))
        else:
            for index in ("ix_publication_title", "ix_publication_push"):
                conn.execute(text(f"DROP INDEX {index}"))
        conn.execute(text("UPDATE schema_version SET version = 1"))
    opened.dispose()
    opened = open_store(load_instance(root))
    try:
        _same_figures(opened)
        with store.read(opened.engine) as conn:
            assert summarise(conn, opened.office_id, Period(2020)).total == 20
    finally:
        opened.dispose()


@pytest.mark.postgres
def test_a_postgres_store_of_version_9_gets_the_triggers_that_defer(postgres_server: str, tmp_path: Path) -> None:
    """v10 replaces PostgreSQL's one INSERT OR DELETE trigger, which counted a bulk import row by row
    (quadratic in the rows of one month), by triggers that leave an upsert's own rows to its end."""
    root = write_instance(tmp_path / "instance", url=new_postgres_database(postgres_server), extra=CHANNELS)
    opened = open_store(load_instance(root))
    with store.write(opened.engine) as conn:  # the triggers of version 9
        for name in ("insert", "delete"):
            conn.execute(text(f"DROP TRIGGER publication_counted_{name} ON publication"))
        conn.execute(
            text(
                "CREATE TRIGGER publication_counted AFTER INSERT OR DELETE ON publication "
                "FOR EACH ROW EXECUTE FUNCTION channelwatch_count_trigger()"
            )
        )
        conn.execute(text("UPDATE schema_version SET version = 9"))
    opened.dispose()
    opened = open_store(load_instance(root))
    try:
        with store.read(opened.engine) as conn:
            names = conn.execute(
                text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'publication'::regclass AND NOT tgisinternal")
            ).scalars()
            assert sorted(names) == [f"publication_counted_{n}" for n in ("delete", "insert", "update")]
        _apply(opened, ("upsert", [(n, "site", 2020, n % 12 + 1, False, f"t{n % 7}", None) for n in range(30)]))
        _same_figures(opened)
    finally:
        opened.dispose()


@pytest.mark.postgres
def test_a_bulk_import_and_polls_of_one_office_at_once_keep_the_counts(
    postgres_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a bulk import (its rows counted set-based at its end) and polls of another channel of the same
    office (counted row by row), in concurrent transactions sharing titles, neither deadlock nor miscount."""
    monkeypatch.setattr(upsert, "BATCH_SIZE", 50)
    root = write_instance(tmp_path / "instance", url=new_postgres_database(postgres_server), extra=CHANNELS)
    opened = open_store(load_instance(root))
    ids = opened.channel_ids
    failures: list[BaseException] = []

    def run_of(conn: Connection, channel: str) -> int:
        run = Run.__table__  # type: ignore[attr-defined]
        values = {"channel_id": ids[channel], "kind": "import", "source": "t", "started_at": datetime.now(UTC)}
        return int(conn.execute(run.insert().values(**values).returning(run.c.id)).scalar_one())

    def bulk() -> None:
        try:
            with store.write(opened.engine) as conn:
                records = [_record(n, 2020, n % 12 + 1, n % 4 == 0, f"t{n % 40}", None) for n in range(600)]
                store.upsert_publications(conn, ids["site"], records, run_id=run_of(conn, "site"))
        except BaseException as exc:  # reported below: an assertion in a thread would pass unseen
            failures.append(exc)

    def polls() -> None:
        try:
            for poll in range(15):
                with store.write(opened.engine) as conn:
                    records = [_record(1000 + poll * 10 + n, 2020, 3, False, f"t{(poll + n) % 50}", f"p{n}")
                               for n in range(10)]  # fmt: skip
                    store.upsert_publications(conn, ids["mp"], records, run_id=run_of(conn, "mp"))
        except BaseException as exc:
            failures.append(exc)

    try:
        threads = [threading.Thread(target=bulk), threading.Thread(target=polls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in threads) and not failures, failures
        _same_figures(opened)
        with store.write(opened.engine) as conn:
            assert store.rebuild_counts(conn) == 0
    finally:
        opened.dispose()


def test_an_import_read_by_its_own_process_says_how_many_rows_were_new(database_url: str, tmp_path: Path) -> None:
    """Rows an import's reading process prepared (``checked``) go the bulk way from the first row, however few
    (a 4 MiB file of long rows may hold fewer than a batch): the new and known counts are still measured."""
    root = write_instance(tmp_path / "instance", url=database_url, extra=CHANNELS)
    opened = open_store(load_instance(root))
    try:
        records = [_record(n, 2020, 3, False, f"t{n}", None) for n in range(7)]
        for expected_new in (7, 0):
            with store.write(opened.engine) as conn:
                sqlite = conn.dialect.name == "sqlite"
                ready = [(*r[:7], upsert.sqlite_time(r[7]), *r[8:]) if sqlite else r for r in records]
                run = Run.__table__  # type: ignore[attr-defined]
                values = {"channel_id": opened.channel_ids["site"], "kind": "import", "source": "t"}
                run_id = conn.execute(
                    run.insert().values(**values, started_at=datetime.now(UTC)).returning(run.c.id)
                ).scalar_one()
                counts = store.upsert_publications(conn, values["channel_id"], ready, run_id=run_id, checked=True)
            assert (counts.new, counts.known) == (expected_new, 7 - expected_new)
        _same_figures(opened)
    finally:
        opened.dispose()


def test_a_poll_group_that_fails_leaves_no_hold_behind(tmp_path: Path) -> None:
    """A grouped write whose transaction fails counts nothing and leaves the pooled connection as it was: the next
    upsert on it is counted (by its triggers, or set-based when it is a bulk one)."""
    root = write_instance(tmp_path / "instance", extra=CHANNELS)
    opened = open_store(load_instance(root))
    try:
        with pytest.raises(RuntimeError), store.write(opened.engine) as conn, held_counts(conn):
            _upsert_each_channel(conn, opened.channel_ids, [(n, "site", 2020, 3, False, "ta", None) for n in range(3)])
            raise RuntimeError("the commit failed")
        with store.write(opened.engine) as conn:
            assert not counts_held(conn)
            assert conn.execute(text("SELECT count(*) FROM counts_deferred")).scalar() == 0
        _apply(opened, ("upsert", [(n, "mp", 2020, 4, False, f"t{n}", None) for n in range(4)]))
        _same_figures(opened)
        with store.read(opened.engine) as conn:
            assert summarise(conn, opened.office_id, Period(2020)).total == 4
    finally:
        opened.dispose()


def test_recount_command_repairs_counts(instance_dir: Path) -> None:
    """Counts damaged by hand are put right by `channelwatch recount`, which says how many rows it fixed."""
    root = write_instance(instance_dir.parent / "counted", extra=CHANNELS)
    opened = open_store(load_instance(root))
    _apply(opened, ("upsert", [(n, "site", 2020, 3, False, f"t{n}", None) for n in range(5)]))
    with store.write(opened.engine) as conn:
        conn.execute(text("UPDATE publication_count SET publications = 99"))
    with store.read(opened.engine) as conn:
        assert summarise(conn, opened.office_id, Period(2020)).total == 99
    opened.dispose()
    result = CliRunner().invoke(app, ["--instance", str(root), "recount"])
    assert result.exit_code == 0, result.output
    assert "修正了 1 行计数" in result.output
    opened = open_store(load_instance(root))
    with store.read(opened.engine) as conn:
        assert summarise(conn, opened.office_id, Period(2020)).total == 5
    opened.dispose()
    again = CliRunner().invoke(app, ["--instance", str(root), "recount"])
    assert again.exit_code == 0 and "一致" in again.output


def test_a_failed_bulk_upsert_leaves_the_triggers_and_counts_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bulk upsert that fails half way (a bad row, a killed import) rolls back its trigger changes too."""
    monkeypatch.setattr(upsert, "BATCH_SIZE", 2)
    root = write_instance(tmp_path / "instance", extra=CHANNELS)
    opened = open_store(load_instance(root))

    def records_then_failure() -> Iterator[tuple]:
        for n in range(5):
            yield _record(n, 2020, 5, False, f"t{n}", None)
        raise ValueError("第 6 行无效")

    with pytest.raises(ValueError), store.write(opened.engine) as conn:
        store.upsert_publications(conn, opened.channel_ids["site"], records_then_failure(), run_id=None)
    with store.read(opened.engine) as conn:
        triggers = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars().all()
        assert "publication_counted_insert" in triggers
        assert conn.execute(text("SELECT count(*) FROM counts_deferred")).scalar() == 0
    _apply(opened, ("insert", (1, "site", 2020, 5, False, "ta", None)))  # counted by the trigger again
    _same_figures(opened)
    with store.read(opened.engine) as conn:
        assert summarise(conn, opened.office_id, Period(2020)).total == 1
    opened.dispose()


fill = st.tuples(
    st.integers(0, 9),  # identity: few, so that rows repeat inside an upsert and across upserts
    st.booleans(),  # repost
    *(st.one_of(st.none(), st.sampled_from(["a", "b"])) for _ in range(5)),  # platform id, title, url, 栏目, push
)


def _filled(ident: int, repost: bool, platform: str | None, title: str | None, url: str | None,
            column: str | None, push: str | None) -> tuple:  # fmt: skip
    published = datetime(2020, 3, 10, 2, 0, tzinfo=UTC)
    return (f"id:{ident}", platform, title, url, column, push, repost, published, 2020, 3, "2020-03-10", title)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(upserts=st.lists(st.lists(fill, min_size=1, max_size=14), min_size=1, max_size=4))
def test_bulk_upserts_store_what_one_plain_batch_stores(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upserts: list[list[tuple]]
) -> None:
    """Every stored column, last_seen included, is the same whether rows go through the bulk path (SQLite:
    known rows touched or held back; PostgreSQL: COPY and one merged INSERT; counts deferred on both) or
    one plain ``INSERT … ON CONFLICT`` batch with the triggers."""
    stored = []
    for batch_size in (3, 10**6):
        monkeypatch.setattr(upsert, "BATCH_SIZE", batch_size)
        root = tmp_path / f"instance-{batch_size}"
        if not (root / "config").exists():
            # A store of its own for each path: another SQLite file, or another PostgreSQL database.
            url = database_url
            if batch_size != 3:
                sqlite = database_url.startswith("sqlite")
                url = database_url.replace("store.db", "plain.db") if sqlite else new_postgres_database(database_url)
            write_instance(root, url=url, extra=CHANNELS)
        opened = open_store(load_instance(root))
        try:
            with store.write(opened.engine) as conn:
                conn.execute(text("DELETE FROM publication"))
            for number, rows in enumerate(upserts):
                seen = datetime(2021, 1, 1 + number, tzinfo=UTC)
                with store.write(opened.engine) as conn:
                    records = [_filled(*row) for row in rows]
                    store.upsert_publications(conn, opened.channel_ids["site"], records, run_id=None, seen_at=seen)
            with store.read(opened.engine) as conn:
                stored.append(
                    conn.exec_driver_sql(
                        "SELECT identity, platform_id, title, url, column_name, push_id, is_repost, title_key, "
                        "first_seen, last_seen FROM publication ORDER BY identity"
                    ).all()
                )
            with store.write(opened.engine) as conn:
                assert store.rebuild_counts(conn) == 0
        finally:
            opened.dispose()
    assert stored[0] == stored[1]
