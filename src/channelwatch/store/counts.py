"""Counts kept beside the publications, so that a figure costs the same over ten years as over one.

Two small tables, kept by database triggers on ``publication`` (INSERT, DELETE and UPDATE of a counted
column), so that every write path — import, poll, ``runs undo``, a channel rename, a hand-written SQL
fix — keeps them right in the same transaction, with no Python code to forget:

- ``publication_count``: publications per channel, office-time year and month, and repost mark, with how
  many of them have no title (each counts as an item of its own) and no push (each counts as a push);
- ``figure_distinct``: how many distinct title keys an office has in a period (the unique-items figure:
  one item posted on several channels counts once), and how many distinct push ids a WeChat channel has.

A period is one integer: ``year * 100`` for the year, ``year * 100 + 20 + q`` for quarter ``q``,
``year * 100 + m`` for month ``m``; every publication counts in its year, its quarter and its month.
On SQLite, a publication changes a distinct count only when no *other* publication of the office (of the channel,
for pushes) carries its title (push) in that period: a probe of the partial indexes on ``title_key`` and
``push_id``, one index entry per publication — cheaper on import than a table of every title per period,
which cost three times the import (measured on a million rows, ``scripts/benchmark.py import``).
PostgreSQL keeps that table (``figure_value``, a reference count per value and period) because its row
triggers fire only when a whole statement is done, when a probe would see every row of the statement.

``channel_totals``, ``channel_first_months`` and ``channel_months`` read ``publication_count`` for the places
that need a channel's publications without counting them (the orphan-channel and unrecorded-channel warnings,
the web view).

A bulk upsert on SQLite counts its new rows with a few set-based statements when it ends instead of
row by row (``defer_counts`` / ``count_deferred``). ``rebuild_counts`` recomputes everything from the
publications (the ``recount`` command, and the schema step that adds the tables to an existing store).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection

__all__ = [
    "PUSH",
    "TITLE",
    "count_deferred",
    "count_held",
    "counts_held",
    "defer_counts",
    "held_counts",
    "hold_counts",
    "install_counts",
    "install_pg_triggers",
    "lock_channel",
    "note_inserted",
    "period_code",
    "rebuild_counts",
    "run_uncounted",
]

TITLE = "t"  # figure_distinct rows of title keys; owner is the office
PUSH = "p"  # figure_distinct rows of WeChat push ids; owner is the channel


def period_code(year: int, quarter: int | None = None, month: int | None = None) -> int:
    if month is not None:
        return year * 100 + month
    if quarter is not None:
        return year * 100 + 20 + quarter
    return year * 100


_TABLES = [
    """CREATE TABLE publication_count (
        channel_id INTEGER NOT NULL,
        local_year INTEGER NOT NULL,
        local_month INTEGER NOT NULL,
        is_repost BOOLEAN NOT NULL,
        publications BIGINT NOT NULL,
        untitled BIGINT NOT NULL,
        unpushed BIGINT NOT NULL,
        PRIMARY KEY (channel_id, local_year, local_month, is_repost)
    ){without_rowid}""",
    """CREATE TABLE figure_distinct (
        kind VARCHAR(1) NOT NULL,
        owner_id INTEGER NOT NULL,
        period INTEGER NOT NULL,
        distinct_values BIGINT NOT NULL,
        PRIMARY KEY (kind, owner_id, period)
    ){without_rowid}""",
    # PostgreSQL only (see _PG_FUNCTIONS): how many publications carry one value in one period.
    """CREATE TABLE figure_value (
        kind VARCHAR(1) NOT NULL,
        owner_id INTEGER NOT NULL,
        period INTEGER NOT NULL,
        value VARCHAR NOT NULL,
        publications BIGINT NOT NULL,
        PRIMARY KEY (kind, owner_id, period, value)
    ){without_rowid}""",
    # Present (one row, never committed) only inside a SQLite bulk upsert: rows above ``after_id`` are
    # counted set-based when the batch ends instead of row by row (see ``defer_counts``).
    "CREATE TABLE counts_deferred (after_id BIGINT NOT NULL)",
    "CREATE INDEX ix_publication_title ON publication (title_key) WHERE title_key IS NOT NULL",
    "CREATE INDEX ix_publication_push ON publication (push_id) WHERE push_id IS NOT NULL",
]

# The columns a figure depends on: an UPDATE that leaves all of them as they were (the usual re-import,
# which only moves last_seen) costs no counting work.
_COUNTED = ("channel_id", "local_year", "local_month", "is_repost", "title_key", "push_id")

# Period kinds: (the period code of row r, the condition that row o is in the same period as row r).
_PERIODS = (
    ("{r}.local_year * 100", "o.local_year = {r}.local_year"),
    (
        "{r}.local_year * 100 + 20 + ({r}.local_month + 2) / 3",
        "o.local_year = {r}.local_year AND (o.local_month + 2) / 3 = ({r}.local_month + 2) / 3",
    ),
    ("{r}.local_year * 100 + {r}.local_month", "o.local_year = {r}.local_year AND o.local_month = {r}.local_month"),
)


def _others(kind: str, r: str, office: str, extra: str = "") -> list[tuple[str, str]]:
    """(period code, EXISTS condition: another publication of the owner holds r's value in that period)."""
    if kind == TITLE:
        base = (
            f"SELECT 1 FROM publication o JOIN channel oc ON oc.id = o.channel_id WHERE o.title_key = {r}.title_key "
            f"AND o.id <> {r}.id AND oc.office_id = {office}"
        )
    else:
        base = (
            f"SELECT 1 FROM publication o WHERE o.push_id = {r}.push_id AND o.id <> {r}.id "
            f"AND o.channel_id = {r}.channel_id"
        )
    return [(code.format(r=r), f"EXISTS ({base} AND {same.format(r=r)}{extra})") for code, same in _PERIODS]


def _sqlite_change(r: str, sign: int) -> list[str]:
    """Statements adding (sign 1, r = NEW) or taking out (sign -1, r = OLD) publication r (SQLite trigger body)."""
    office = f"(SELECT office_id FROM channel WHERE id = {r}.channel_id)"
    # Rows a deferred bulk upsert inserted are not counted yet: they must not decide a distinct count.
    counted = " AND NOT EXISTS (SELECT 1 FROM counts_deferred d WHERE o.id > d.after_id)"
    key = (
        f"channel_id = {r}.channel_id AND local_year = {r}.local_year AND local_month = {r}.local_month "
        f"AND is_repost = {r}.is_repost"
    )
    if sign > 0:
        statements = [
            f"""INSERT INTO publication_count
                (channel_id, local_year, local_month, is_repost, publications, untitled, unpushed)
                VALUES ({r}.channel_id, {r}.local_year, {r}.local_month, {r}.is_repost, 1,
                        {r}.title_key IS NULL, {r}.push_id IS NULL)
                ON CONFLICT (channel_id, local_year, local_month, is_repost) DO UPDATE SET
                publications = publications + 1, untitled = untitled + excluded.untitled,
                unpushed = unpushed + excluded.unpushed"""
        ]
    else:
        statements = [
            f"""UPDATE publication_count SET publications = publications - 1,
                untitled = untitled - ({r}.title_key IS NULL), unpushed = unpushed - ({r}.push_id IS NULL)
                WHERE {key}""",
            f"DELETE FROM publication_count WHERE {key} AND publications = 0",
        ]
    for kind, owner, column in ((TITLE, office, "title_key"), (PUSH, f"{r}.channel_id", "push_id")):
        for code, exists in _others(kind, r, office, counted):
            if sign > 0:
                statements.append(
                    f"""INSERT INTO figure_distinct (kind, owner_id, period, distinct_values)
                        SELECT '{kind}', {owner}, {code}, 1 WHERE {r}.{column} IS NOT NULL AND NOT {exists}
                        ON CONFLICT (kind, owner_id, period) DO UPDATE SET distinct_values = distinct_values + 1"""
                )
            else:
                statements.append(
                    f"""UPDATE figure_distinct SET distinct_values = distinct_values - 1
                        WHERE kind = '{kind}' AND owner_id = {owner} AND period = {code}
                        AND {r}.{column} IS NOT NULL AND NOT {exists}"""
                )
    return statements


def _sqlite_insert_trigger() -> str:
    body = ";\n".join(_sqlite_change("NEW", 1))
    return (
        "CREATE TRIGGER publication_counted_insert AFTER INSERT ON publication "
        f"WHEN NOT EXISTS (SELECT 1 FROM counts_deferred) BEGIN\n{body};\nEND"
    )


_COUNTED_OLD = "NOT EXISTS (SELECT 1 FROM counts_deferred d WHERE OLD.id > d.after_id)"


def _trigger_body(statements: list[str]) -> str:
    return "BEGIN\n" + ";\n".join(statements) + ";\nEND"


def _sqlite_update_trigger() -> str:
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _COUNTED)
    return (
        f"CREATE TRIGGER publication_counted_update AFTER UPDATE OF {', '.join(_COUNTED)} ON publication "
        f"WHEN ({changed}) AND {_COUNTED_OLD} "
        f"{_trigger_body(_sqlite_change('OLD', -1) + _sqlite_change('NEW', 1))}"
    )


def _sqlite_triggers() -> list[str]:
    return [
        _sqlite_insert_trigger(),
        "CREATE TRIGGER publication_counted_delete AFTER DELETE ON publication "
        f"WHEN {_COUNTED_OLD} {_trigger_body(_sqlite_change('OLD', -1))}",
        _sqlite_update_trigger(),
    ]


# On PostgreSQL, AFTER ROW triggers fire when the whole statement is done, so a probe for "another row with
# this title" would see every row of a many-row INSERT or DELETE at once. There, each (owner, period,
# value) keeps a reference count instead (``figure_value``), which any firing order adds up right.
_PG_FUNCTIONS = [
    """CREATE OR REPLACE FUNCTION channelwatch_count_value(k text, owner integer, periods integer[], v text,
                                                       sign integer) RETURNS void AS $$
    DECLARE
        p integer;
        n bigint;
    BEGIN
        FOREACH p IN ARRAY periods LOOP
            INSERT INTO figure_value AS f (kind, owner_id, period, value, publications)
            VALUES (k, owner, p, v, sign)
            ON CONFLICT (kind, owner_id, period, value) DO UPDATE SET publications = f.publications + sign
            RETURNING f.publications INTO n;
            IF sign > 0 AND n = 1 THEN
                INSERT INTO figure_distinct AS d (kind, owner_id, period, distinct_values) VALUES (k, owner, p, 1)
                ON CONFLICT (kind, owner_id, period) DO UPDATE SET distinct_values = d.distinct_values + 1;
            ELSIF sign < 0 AND n = 0 THEN
                DELETE FROM figure_value WHERE kind = k AND owner_id = owner AND period = p AND value = v;
                UPDATE figure_distinct SET distinct_values = distinct_values - 1
                WHERE kind = k AND owner_id = owner AND period = p;
            END IF;
        END LOOP;
    END $$ LANGUAGE plpgsql""",
    """CREATE OR REPLACE FUNCTION channelwatch_count_publication(r publication, sign integer) RETURNS void AS $$
    DECLARE
        office integer;
        periods integer[];
        n bigint;
    BEGIN
        SELECT office_id INTO office FROM channel WHERE id = r.channel_id;
        -- Counters are rows every writer of an office updates: one lock per office first, taken in the
        -- same order by every transaction, so that two concurrent writers queue instead of deadlocking.
        PERFORM pg_advisory_xact_lock(727002, office);
        INSERT INTO publication_count AS c
            (channel_id, local_year, local_month, is_repost, publications, untitled, unpushed)
        VALUES (r.channel_id, r.local_year, r.local_month, r.is_repost, sign,
                CASE WHEN r.title_key IS NULL THEN sign ELSE 0 END, CASE WHEN r.push_id IS NULL THEN sign ELSE 0 END)
        ON CONFLICT (channel_id, local_year, local_month, is_repost) DO UPDATE SET
            publications = c.publications + excluded.publications, untitled = c.untitled + excluded.untitled,
            unpushed = c.unpushed + excluded.unpushed
        RETURNING c.publications INTO n;
        IF n = 0 THEN
            DELETE FROM publication_count WHERE channel_id = r.channel_id AND local_year = r.local_year
                AND local_month = r.local_month AND is_repost = r.is_repost;
        END IF;
        periods := ARRAY[r.local_year * 100, r.local_year * 100 + 20 + (r.local_month + 2) / 3,
                         r.local_year * 100 + r.local_month];
        IF r.title_key IS NOT NULL THEN
            PERFORM channelwatch_count_value('t', office, periods, r.title_key, sign);
        END IF;
        IF r.push_id IS NOT NULL THEN
            PERFORM channelwatch_count_value('p', r.channel_id, periods, r.push_id, sign);
        END IF;
    END $$ LANGUAGE plpgsql""",
    """CREATE OR REPLACE FUNCTION channelwatch_count_trigger() RETURNS trigger AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            PERFORM channelwatch_count_publication(OLD, -1);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM channelwatch_count_publication(NEW, 1);
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
]


# A bulk upsert on PostgreSQL counts the rows it inserts set-based when it ends (``defer_counts``), and so does
# a poll's grouped write (``hold_counts``): row triggers updating the same few counter rows tens of thousands
# of times in one transaction leave a chain of row versions each update walks, which made a 100,000-row import
# take three minutes. Its rows are those of its runs above the largest id when it began, named by two
# settings local to the transaction (``channelwatch.deferred_runs``: ",12,13,"); the triggers' WHEN leaves
# exactly those rows alone.
_PG_DEFERRED = (
    "coalesce(position(',' || {r}.first_run_id || ',' in current_setting('channelwatch.deferred_runs', true)) > 0 "
    "AND {r}.id > nullif(current_setting('channelwatch.deferred_after', true), '')::bigint, false)"
)
_PG_DEFER = (
    "SELECT set_config('channelwatch.deferred_runs', %s, true), set_config('channelwatch.deferred_after', %s, true)"
)


def _pg_triggers() -> list[str]:
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in _COUNTED)
    new, old = _PG_DEFERRED.format(r="NEW"), _PG_DEFERRED.format(r="OLD")
    return [
        *_PG_FUNCTIONS,
        "DROP TRIGGER IF EXISTS publication_counted ON publication",  # INSERT OR DELETE in one, until v10
        "CREATE TRIGGER publication_counted_insert AFTER INSERT ON publication "
        f"FOR EACH ROW WHEN (NOT {new}) EXECUTE FUNCTION channelwatch_count_trigger()",
        "CREATE TRIGGER publication_counted_delete AFTER DELETE ON publication "
        f"FOR EACH ROW WHEN (NOT {old}) EXECUTE FUNCTION channelwatch_count_trigger()",
        f"CREATE TRIGGER publication_counted_update AFTER UPDATE OF {', '.join(_COUNTED)} ON publication "
        f"FOR EACH ROW WHEN (({changed}) AND NOT {old}) EXECUTE FUNCTION channelwatch_count_trigger()",
    ]


def install_pg_triggers(conn: Connection) -> None:
    """(Re)create PostgreSQL's counting functions and triggers; nothing on SQLite."""
    if conn.dialect.name == "sqlite":
        return
    for statement in _pg_triggers():
        if statement.startswith("CREATE TRIGGER "):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {statement.split()[2]} ON publication")
        conn.exec_driver_sql(statement)


def install_counts(conn: Connection) -> None:
    """Create the count tables, indexes and triggers, and fill the tables from the publications already stored."""
    sqlite = conn.dialect.name == "sqlite"
    for table in _TABLES:
        if sqlite and "figure_value" in table:
            continue
        if not sqlite and "INDEX" in table:
            continue  # PostgreSQL counts by reference, without probing the publications
        # Idempotent: a store whose schema was written by newer code than its recorded version (an upgrade
        # run again, a database copied back) may hold some of these already; the counts are rebuilt below.
        statement = table.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1)
        statement = statement.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1)
        conn.exec_driver_sql(statement.format(without_rowid=" WITHOUT ROWID" if sqlite else ""))
    if sqlite:
        for statement in _sqlite_triggers():
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {statement.split()[2]}")
            conn.exec_driver_sql(statement)
    install_pg_triggers(conn)
    rebuild_counts(conn)


def defer_counts(conn: Connection, run_id: int | None = None) -> int | None:
    """Start a bulk upsert: rows inserted from now on are counted by ``count_deferred``.

    Per-row triggers cost an import of a million rows more than storing its rows; counting the new rows
    with a few grouped statements when the batch ends costs a fraction of it. Ids grow, so "inserted since"
    is "id above the largest id now": on SQLite, whose write transaction is exclusive, every such row; on
    PostgreSQL, whose ids come from a sequence concurrent writers share, those of the upsert's run
    ``run_id`` (without one, the triggers count every row there). Returns that id, or None.
    """
    if conn.dialect.name != "sqlite":
        if run_id is None:
            return None
        after = int(conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM publication").scalar_one())
        conn.exec_driver_sql(_PG_DEFER, (f",{int(run_id)},", str(after)))
        return after
    after = int(conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM publication").scalar_one())
    conn.exec_driver_sql("INSERT INTO counts_deferred (after_id) VALUES (?)", (after,))
    # A table with an INSERT trigger costs SQLite about 7 µs more per inserted row even when the trigger's
    # WHEN says no, and the UPDATE trigger's mere presence makes every INSERT … ON CONFLICT DO UPDATE
    # compile and run its trigger program: both are dropped for the batch and created again at its end,
    # in the same transaction (SQLite's schema changes are transactional; a killed import leaves it as it
    # was). Without the UPDATE trigger, the caller must not change a counted column of a row at or below
    # ``after`` until ``count_deferred`` has put it back (``upsert_publications`` holds such rows back).
    conn.exec_driver_sql("DROP TRIGGER IF EXISTS publication_counted_insert")
    conn.exec_driver_sql("DROP TRIGGER IF EXISTS publication_counted_update")
    return after


def count_deferred(conn: Connection, after: int | None, run_id: int | None = None) -> None:
    """End a bulk upsert started by ``defer_counts``: count every row it inserted, set-based.

    On PostgreSQL, ``run_id`` is the upsert's run.
    """
    if after is None:
        return
    if conn.dialect.name != "sqlite":
        _clear_pg_deferral(conn)
        _pg_count(conn, int(after), [int(run_id or 0)])
        return
    conn.exec_driver_sql("DELETE FROM counts_deferred")
    conn.exec_driver_sql(_sqlite_insert_trigger())
    conn.exec_driver_sql(_sqlite_update_trigger())
    _count_above(conn, int(after))


def _pg_count(conn: Connection, after: int, run_ids: list[int]) -> None:
    """Count the rows of ``run_ids`` above id ``after`` (none of them counted yet), set-based."""
    runs = ", ".join(str(int(r)) for r in run_ids) or "NULL"
    _lock_offices(conn, f"SELECT c.office_id FROM run r JOIN channel c ON c.id = r.channel_id WHERE r.id IN ({runs})")
    mine = f"p.id > {after} AND p.first_run_id IN ({runs})"
    conn.exec_driver_sql(
        "INSERT INTO publication_count AS c "
        "(channel_id, local_year, local_month, is_repost, publications, untitled, unpushed) "
        "SELECT channel_id, local_year, local_month, is_repost, count(*), count(*) FILTER (WHERE title_key IS NULL), "
        f"count(*) FILTER (WHERE push_id IS NULL) FROM publication p WHERE {mine} "
        "GROUP BY channel_id, local_year, local_month, is_repost "
        "ON CONFLICT (channel_id, local_year, local_month, is_repost) DO UPDATE SET "
        "publications = c.publications + excluded.publications, untitled = c.untitled + excluded.untitled, "
        "unpushed = c.unpushed + excluded.unpushed"
    )
    # Each value's reference count grows by its rows; a value whose count was 0 is a new distinct value,
    # exactly as the row trigger's channelwatch_count_value decides one row at a time.
    conn.exec_driver_sql(
        f"WITH v AS ({_pg_values(mine)}), up AS ("
        "INSERT INTO figure_value AS f (kind, owner_id, period, value, publications) "
        "SELECT kind, owner_id, period, value, n FROM v "
        "ON CONFLICT (kind, owner_id, period, value) DO UPDATE SET "
        "publications = f.publications + excluded.publications "
        "RETURNING f.kind, f.owner_id, f.period, f.value, f.publications"
        ") INSERT INTO figure_distinct AS d (kind, owner_id, period, distinct_values) "
        "SELECT up.kind, up.owner_id, up.period, count(*) FROM up JOIN v ON v.kind = up.kind "
        "AND v.owner_id = up.owner_id AND v.period = up.period AND v.value = up.value "
        "WHERE up.publications = v.n GROUP BY 1, 2, 3 "
        "ON CONFLICT (kind, owner_id, period) DO UPDATE SET "
        "distinct_values = d.distinct_values + excluded.distinct_values"
    )


@contextmanager
def run_uncounted(conn: Connection, channel_id: int, run_id: int) -> Iterator[None]:
    """Around ``runs undo`` deleting the rows a run stored first (the channel's rows of ``first_run_id``): they are
    taken out of the counts set-based before the block, and the delete trigger leaves them inside it.

    PostgreSQL only (row by row, deleting 100,000 rows took three minutes there, as inserting them did;
    see ``defer_counts``); on SQLite the delete trigger counts each row.
    """
    if conn.dialect.name == "sqlite":
        yield
        return
    conn.exec_driver_sql(_PG_DEFER, (f",{int(run_id)},", "0"))
    channel_id = int(channel_id)
    _lock_offices(conn, f"SELECT office_id FROM channel WHERE id = {channel_id}")
    mine = f"p.channel_id = {channel_id} AND p.first_run_id = {int(run_id)}"
    conn.exec_driver_sql(
        "UPDATE publication_count AS c SET publications = c.publications - d.n, untitled = c.untitled - d.untitled, "
        "unpushed = c.unpushed - d.unpushed FROM ("
        "SELECT channel_id, local_year, local_month, is_repost, count(*) AS n, "
        "count(*) FILTER (WHERE title_key IS NULL) AS untitled, count(*) FILTER (WHERE push_id IS NULL) AS unpushed "
        f"FROM publication p WHERE {mine} GROUP BY 1, 2, 3, 4) AS d WHERE c.channel_id = d.channel_id "
        "AND c.local_year = d.local_year AND c.local_month = d.local_month AND c.is_repost = d.is_repost"
    )
    conn.exec_driver_sql(f"DELETE FROM publication_count WHERE channel_id = {channel_id} AND publications = 0")
    # A value whose reference count falls to 0 is one distinct value fewer, as channelwatch_count_value decides.
    conn.exec_driver_sql(
        f"WITH v AS ({_pg_values(mine)}), down AS ("
        "UPDATE figure_value AS f SET publications = f.publications - v.n FROM v WHERE f.kind = v.kind "
        "AND f.owner_id = v.owner_id AND f.period = v.period AND f.value = v.value "
        "RETURNING f.kind, f.owner_id, f.period, f.publications"
        ") UPDATE figure_distinct AS d SET distinct_values = d.distinct_values - g.n FROM ("
        "SELECT kind, owner_id, period, count(*) AS n FROM down WHERE publications = 0 GROUP BY 1, 2, 3) AS g "
        "WHERE d.kind = g.kind AND d.owner_id = g.owner_id AND d.period = g.period"
    )
    conn.exec_driver_sql(
        "DELETE FROM figure_value WHERE publications = 0 AND ("
        f"(kind = '{TITLE}' AND owner_id = (SELECT office_id FROM channel WHERE id = {channel_id})) "
        f"OR (kind = '{PUSH}' AND owner_id = {channel_id}))"
    )
    yield
    _clear_pg_deferral(conn)  # the triggers count every row again


def _lock_offices(conn: Connection, offices: str) -> None:
    """Lock the counters of the offices ``offices`` (a query of office ids) as the row triggers lock them, in
    office order: concurrent writers of an office queue instead of deadlocking."""
    conn.exec_driver_sql(
        f"SELECT pg_advisory_xact_lock(727002, office_id) FROM (SELECT DISTINCT office_id FROM ({offices}) AS i "
        "ORDER BY 1) AS o"
    )


def _clear_pg_deferral(conn: Connection) -> None:
    conn.exec_driver_sql(_PG_DEFER, ("", ""))


def _pg_values(mine: str) -> str:
    """The rows ``mine`` selects (alias p) as (kind, owner_id, period, value, n): rows per value and period."""
    periods = (
        "CROSS JOIN LATERAL unnest(ARRAY[p.local_year * 100, p.local_year * 100 + 20 + (p.local_month + 2) / 3, "
        "p.local_year * 100 + p.local_month]) AS x(period)"
    )
    return (
        f"SELECT CAST('{TITLE}' AS VARCHAR) AS kind, c.office_id AS owner_id, x.period, p.title_key AS value, "
        f"count(*) AS n FROM publication p JOIN channel c ON c.id = p.channel_id {periods} "
        f"WHERE {mine} AND p.title_key IS NOT NULL GROUP BY 1, 2, 3, 4 "
        f"UNION ALL SELECT CAST('{PUSH}' AS VARCHAR), p.channel_id, x.period, p.push_id, count(*) "
        f"FROM publication p {periods} WHERE {mine} AND p.push_id IS NOT NULL GROUP BY 1, 2, 3, 4"
    )


HELD = "channelwatch_counts_held"  # key of the connection's ``info``: a group of upserts is counted at its end


def hold_counts(conn: Connection) -> int | None:
    """Start a group of small upserts (a poll's grouped write) whose new rows are counted together when
    ``count_held`` ends it, instead of by the insert trigger one by one.

    SQLite: the insert trigger's own condition skips while ``counts_deferred`` holds a row, so the group changes
    no schema (a dropped trigger would make SQLite prepare every statement of the connection again); the update
    and delete triggers still count rows stored before the group, and leave rows of the group to ``count_held``.
    Measured on 10,000 new rows of 1,000 channels in groups of 35 (one thread, no contention): 0.39 s stored
    with the insert trigger, 0.32 s held and counted at each group's end.

    PostgreSQL: each upsert of the group adds its run to the transaction's ``channelwatch.deferred_runs``
    as it locks its channel (``lock_channel``), which the triggers leave to ``count_held``; a savepoint rolled
    back takes its run out again.

    Returns the largest id before the group.
    """
    if conn.dialect.name != "sqlite":
        # Started by the group's first upsert as it locks its channel (lock_channel): no round trip of its own,
        # as a poll's groups are many and small.
        conn.info[HELD] = 0
        return 0
    after = int(conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM publication").scalar_one())
    conn.exec_driver_sql("INSERT INTO counts_deferred (after_id) VALUES (?)", (after,))
    conn.info[HELD] = after
    return after


# PostgreSQL, inside ``hold_counts``: lock a channel's row (the second ``%s``: its id) for an upsert of run ``%s``
# whose rows are counted with the rest of the group; the group's first upsert also notes the largest id before it.
# One statement, as the lock is taken anyway.
_PG_LOCK_HELD = (
    "SELECT set_config('channelwatch.deferred_after', coalesce(nullif(current_setting("
    "'channelwatch.deferred_after', true), ''), (SELECT CAST(coalesce(max(id), 0) AS TEXT) FROM publication)), true), "
    "set_config('channelwatch.deferred_runs', coalesce(nullif(current_setting("
    "'channelwatch.deferred_runs', true), ''), ',') || %s, true) FROM channel WHERE id = %s FOR UPDATE"
)
HELD_NEW = "channelwatch_counts_held_new"  # key of the connection's ``info``: rows the group's upserts inserted


def counts_held(conn: Connection) -> bool:
    """Whether an upsert on ``conn`` is part of a group whose counts are held (``hold_counts``)."""
    return HELD in conn.info


def lock_channel(conn: Connection, cursor: Any, channel_id: int, run_id: int | None) -> None:
    """PostgreSQL: lock the channel's row for an upsert of ``run_id``; inside ``hold_counts`` the same statement
    puts the run's rows into the group's count."""
    if counts_held(conn) and run_id is not None:
        cursor.execute(_PG_LOCK_HELD, (f"{int(run_id)},", channel_id))
    else:
        cursor.execute("SELECT id FROM channel WHERE id = %s FOR UPDATE", (channel_id,))
    cursor.fetchall()


def note_inserted(conn: Connection, count: int) -> None:
    """An upsert inserted ``count`` rows: inside ``hold_counts`` its group has rows to count at its end."""
    if count and counts_held(conn):
        conn.info[HELD_NEW] = conn.info.get(HELD_NEW, 0) + count


def count_held(conn: Connection, after: int | None) -> None:
    """End a group started by ``hold_counts``: count its rows (those above ``after``) set-based.

    On PostgreSQL a group that inserted nothing (a repeat poll) leaves its settings, local to the transaction,
    until the transaction ends rather than pay a round trip to clear them: end the transaction next.
    """
    if after is None:
        return
    conn.info.pop(HELD, None)
    inserted = conn.info.pop(HELD_NEW, 0)
    if conn.dialect.name != "sqlite":
        if inserted:
            held = conn.exec_driver_sql(
                "SELECT current_setting('channelwatch.deferred_after', true), "
                "current_setting('channelwatch.deferred_runs', true), "
                "set_config('channelwatch.deferred_runs', '', true), "
                "set_config('channelwatch.deferred_after', '', true)"
            ).one()
            runs = [int(r) for r in str(held[1] or "").split(",") if r]
            if runs and held[0]:
                _pg_count(conn, int(held[0]), runs)
        return
    conn.exec_driver_sql("DELETE FROM counts_deferred")
    _count_above(conn, int(after))


@contextmanager
def held_counts(conn: Connection) -> Iterator[None]:
    """``hold_counts`` before the block and ``count_held`` after it; the transaction should end right after.
    On an exception nothing is counted (the caller's transaction rolls back) and the pooled connection forgets
    the hold, or its next bulk upsert would believe a group still counts for it."""
    after = hold_counts(conn)
    try:
        yield
    except BaseException:
        conn.info.pop(HELD, None)
        conn.info.pop(HELD_NEW, None)
        raise
    count_held(conn, after)


# A set-based count scans the value indexes whole when its new rows are at least 1/_SCAN_SHARE of the store: a pass
# over an index costs about a tenth of a probe per entry (scripts/benchmark.py import).
_SCAN_SHARE = 8


def _count_above(conn: Connection, after: int) -> None:
    """Add every publication above id ``after`` to the counts (none of them is counted yet)."""
    conn.exec_driver_sql(
        "INSERT INTO publication_count "
        "(channel_id, local_year, local_month, is_repost, publications, untitled, unpushed) "
        "SELECT channel_id, local_year, local_month, is_repost, count(*), sum(title_key IS NULL), "
        f"sum(push_id IS NULL) FROM publication WHERE id > {after} "
        "GROUP BY channel_id, local_year, local_month, is_repost "
        "ON CONFLICT (channel_id, local_year, local_month, is_repost) DO UPDATE SET "
        "publications = publications + excluded.publications, untitled = untitled + excluded.untitled, "
        "unpushed = unpushed + excluded.unpushed"
    )
    # A new row adds a distinct value to a period when no row with a smaller id (stored before, or
    # earlier in this batch) holds its value there: each value counts once, at its first row. One probe
    # of the partial index per new row gives all three periods.
    #
    # When the new rows are a good part of the store (an import into a new store, a first poll), one pass
    # over the value's index first finds the values held by more than one row: a new row whose value no
    # other row holds, in any office, is the first of it in each of its periods, counted without a probe.
    # Only the rows of repeated values are probed (an import of a million rows: 2.1 s to 0.6 s).
    top = int(conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM publication").scalar_one())
    scan = (top - after) * _SCAN_SHARE >= top
    same_quarter = "(o.local_month + 2) / 3 = (n.local_month + 2) / 3"
    for kind, owner, column, owner_match in (
        (TITLE, "c.office_id", "title_key", "o.channel_id IN (SELECT id FROM channel WHERE office_id = c.office_id)"),
        (PUSH, "n.channel_id", "push_id", "o.channel_id = n.channel_id"),
    ):
        added: dict[tuple[int, int], int] = defaultdict(int)
        source = "publication n JOIN channel c ON c.id = n.channel_id"
        where = f"n.id > {after} AND n.{column} IS NOT NULL"
        if scan:
            conn.exec_driver_sql("DROP TABLE IF EXISTS temp.channelwatch_repeated")
            conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE channelwatch_repeated AS SELECT {column} AS value FROM publication "
                f"WHERE {column} IS NOT NULL GROUP BY {column} HAVING count(*) > 1"
            )
            alone = conn.exec_driver_sql(
                f"SELECT {owner}, n.local_year, n.local_month, count(*) FROM {source} WHERE {where} "
                f"AND n.{column} NOT IN (SELECT value FROM temp.channelwatch_repeated) GROUP BY 1, 2, 3"
            )
            for owner_id, year, month, first in alone:
                added[owner_id, period_code(year)] += first
                added[owner_id, period_code(year, quarter=(month + 2) // 3)] += first
                added[owner_id, period_code(year, month=month)] += first
            source = (
                f"temp.channelwatch_repeated r JOIN publication n ON n.{column} = r.value "
                "JOIN channel c ON c.id = n.channel_id"
            )
            where = f"n.id > {after}"
        firsts = conn.exec_driver_sql(
            f"SELECT owner_id, local_year, local_month, sum(NOT coalesce(y, 0)), sum(NOT coalesce(q, 0)), "
            "sum(NOT coalesce(m, 0)) FROM ("
            f"SELECT {owner} AS owner_id, n.local_year, n.local_month, max(o.local_year = n.local_year) AS y, "
            f"max(o.local_year = n.local_year AND {same_quarter}) AS q, "
            "max(o.local_year = n.local_year AND o.local_month = n.local_month) AS m "
            f"FROM {source} LEFT JOIN publication o ON o.{column} = n.{column} AND o.id < n.id AND {owner_match} "
            f"WHERE {where} GROUP BY n.id) GROUP BY owner_id, local_year, local_month"
        )
        for owner_id, year, month, year_first, quarter_first, month_first in firsts:
            added[owner_id, period_code(year)] += year_first
            added[owner_id, period_code(year, quarter=(month + 2) // 3)] += quarter_first
            added[owner_id, period_code(year, month=month)] += month_first
        if scan:
            conn.exec_driver_sql("DROP TABLE temp.channelwatch_repeated")
        rows = [(kind, owner_id, period, n) for (owner_id, period), n in added.items() if n]
        if rows:
            conn.exec_driver_sql(
                "INSERT INTO figure_distinct (kind, owner_id, period, distinct_values) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (kind, owner_id, period) DO UPDATE SET "
                "distinct_values = distinct_values + excluded.distinct_values",
                rows,
            )


def rebuild_counts(conn: Connection) -> int:
    """Recompute every count from the publications (inside the caller's write transaction).

    Returns how many count rows differed from the recomputed ones (0 when the triggers kept them right).
    """
    before = _snapshot(conn)
    postgres = conn.dialect.name == "postgresql"
    for table in ("publication_count", "figure_distinct", *(["figure_value"] if postgres else [])):
        conn.exec_driver_sql(f"DELETE FROM {table}")
    is_null = "CAST(({col} IS NULL) AS INTEGER)" if conn.dialect.name == "postgresql" else "({col} IS NULL)"
    conn.exec_driver_sql(
        "INSERT INTO publication_count "
        "(channel_id, local_year, local_month, is_repost, publications, untitled, unpushed) "
        f"SELECT channel_id, local_year, local_month, is_repost, count(*), "
        f"sum({is_null.format(col='title_key')}), sum({is_null.format(col='push_id')}) "
        "FROM publication GROUP BY channel_id, local_year, local_month, is_repost"
    )
    for kind, owner, column, source in (
        (TITLE, "c.office_id", "title_key", "publication p JOIN channel c ON c.id = p.channel_id"),
        (PUSH, "p.channel_id", "push_id", "publication p"),
    ):
        for code, _same in _PERIODS:
            period = code.format(r="p")
            if postgres:
                conn.exec_driver_sql(
                    "INSERT INTO figure_value (kind, owner_id, period, value, publications) "
                    f"SELECT '{kind}', {owner}, {period}, p.{column}, count(*) FROM {source} "
                    f"WHERE p.{column} IS NOT NULL GROUP BY {owner}, {period}, p.{column}"
                )
            conn.exec_driver_sql(
                "INSERT INTO figure_distinct (kind, owner_id, period, distinct_values) "
                f"SELECT '{kind}', {owner}, {period}, count(DISTINCT p.{column}) FROM {source} "
                f"WHERE p.{column} IS NOT NULL GROUP BY {owner}, {period}"
            )
    after = _snapshot(conn)
    return sum(1 for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def _snapshot(conn: Connection) -> dict[tuple[object, ...], tuple[int, ...]]:
    """Every count row (zero rows left by deletions are the same as absent ones)."""
    rows: dict[tuple[object, ...], tuple[int, ...]] = {}
    for channel_id, year, month, repost, *counts in conn.exec_driver_sql(
        "SELECT channel_id, local_year, local_month, is_repost, publications, untitled, unpushed "
        "FROM publication_count WHERE publications <> 0"
    ):
        rows["count", int(channel_id), int(year), int(month), bool(repost)] = tuple(int(n) for n in counts)
    for kind, owner, period, n in conn.exec_driver_sql(
        "SELECT kind, owner_id, period, distinct_values FROM figure_distinct WHERE distinct_values <> 0"
    ):
        rows["distinct", kind, int(owner), int(period)] = (int(n),)
    return rows


MonthCounts = dict[tuple[int, bool], int]  # (office-time month, is_repost) → publications


def _id_list(channel_ids: list[int]) -> str:
    # Integers only, written into the statement: the placeholder style differs between the drivers.
    return ", ".join(str(int(i)) for i in channel_ids)


def channel_totals(conn: Connection, channel_ids: list[int]) -> dict[int, int]:
    """How many publications each channel holds, all years (channels without any are left out)."""
    if not channel_ids:
        return {}
    rows = conn.exec_driver_sql(
        "SELECT channel_id, sum(publications) FROM publication_count "
        f"WHERE channel_id IN ({_id_list(channel_ids)}) GROUP BY channel_id"
    )
    return {int(cid): int(total) for cid, total in rows if total}


def channel_first_months(conn: Connection, channel_ids: list[int]) -> dict[int, tuple[int, int]]:
    """The office-time (year, month) of each channel's earliest publication (channels without any are left out)."""
    if not channel_ids:
        return {}
    rows = conn.exec_driver_sql(
        "SELECT channel_id, min(local_year * 100 + local_month) FROM publication_count "
        f"WHERE channel_id IN ({_id_list(channel_ids)}) AND publications > 0 GROUP BY channel_id"
    )
    return {int(cid): divmod(int(first), 100) for cid, first in rows if first is not None}


def channel_months(conn: Connection, channel_ids: list[int], year: int) -> dict[int, MonthCounts]:
    """Each channel's publications of one office-time year per month and repost mark."""
    found: dict[int, MonthCounts] = {int(i): {} for i in channel_ids}
    if not channel_ids:
        return found
    rows = conn.exec_driver_sql(
        "SELECT channel_id, local_month, is_repost, publications FROM publication_count "
        f"WHERE channel_id IN ({_id_list(channel_ids)}) AND local_year = {int(year)} AND publications > 0"
    )
    for channel_id, month, repost, count in rows:
        found[int(channel_id)][int(month), bool(repost)] = int(count)
    return found
