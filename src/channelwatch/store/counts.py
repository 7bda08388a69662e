"""Counts kept beside the publications, so that a figure costs the same over ten years as over one.

Three small tables, kept by database triggers on ``publication`` (INSERT, DELETE and UPDATE of a counted
column), so that every write path — import, poll, ``runs undo``, a channel rename, a hand-written SQL
fix — keeps them right in the same transaction, with no Python code to forget:

- ``publication_count``: publications per channel, office-time year and month, and repost mark, with how
  many of them have no title (each counts as an item of its own) and no push (each counts as a push);
- ``figure_value``: how many publications carry one value in one period — a title key per office (the
  unique-items figure: one item posted on several channels counts once) and a push id per WeChat channel;
- ``figure_distinct``: how many values of ``figure_value`` each office or channel has in each period.

A period is one integer: ``year * 100`` for the year, ``year * 100 + 20 + q`` for quarter ``q``,
``year * 100 + m`` for month ``m``; every publication counts in its year, its quarter and its month.

``rebuild_counts`` recomputes all three from the publications (the ``recount`` command, and the schema
step that adds them to an existing store).
"""

from __future__ import annotations

from sqlalchemy import Connection

__all__ = ["PUSH", "TITLE", "count_deferred", "defer_counts", "install_counts", "period_code", "rebuild_counts"]

TITLE = "t"  # figure_value rows of title keys; owner is the office
PUSH = "p"  # figure_value rows of WeChat push ids; owner is the channel


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
    """CREATE TABLE counts_deferred (after_id BIGINT NOT NULL)""",
    """CREATE TABLE figure_distinct (
        kind VARCHAR(1) NOT NULL,
        owner_id INTEGER NOT NULL,
        period INTEGER NOT NULL,
        distinct_values BIGINT NOT NULL,
        PRIMARY KEY (kind, owner_id, period)
    ){without_rowid}""",
]
_DEFERRED = "counts_deferred"

# The columns a figure depends on: an UPDATE that leaves all of them as they were (the usual re-import,
# which only moves last_seen) costs no counting work.
_COUNTED = ("channel_id", "local_year", "local_month", "is_repost", "title_key", "push_id")


def _periods(row: str) -> list[str]:
    return [
        f"{row}.local_year * 100",
        f"{row}.local_year * 100 + 20 + ({row}.local_month + 2) / 3",
        f"{row}.local_year * 100 + {row}.local_month",
    ]


def _sqlite_add(row: str) -> list[str]:
    """Statements adding publication ``row`` (NEW) to the counts (SQLite trigger bodies take no CTEs)."""
    periods = " UNION ALL ".join(f"SELECT {p} AS period" for p in _periods(row))
    office = f"(SELECT office_id FROM channel WHERE id = {row}.channel_id)"
    statements = [
        f"""INSERT INTO publication_count
            (channel_id, local_year, local_month, is_repost, publications, untitled, unpushed)
            VALUES ({row}.channel_id, {row}.local_year, {row}.local_month, {row}.is_repost, 1,
                    {row}.title_key IS NULL, {row}.push_id IS NULL)
            ON CONFLICT (channel_id, local_year, local_month, is_repost) DO UPDATE SET
            publications = publications + 1, untitled = untitled + excluded.untitled,
            unpushed = unpushed + excluded.unpushed"""
    ]
    for kind, owner, column in ((TITLE, office, "title_key"), (PUSH, f"{row}.channel_id", "push_id")):
        value = f"{row}.{column}"
        # A value seen for the first time in a period adds one distinct value to it ("WHERE true": an
        # INSERT … SELECT followed by ON CONFLICT needs a WHERE for SQLite's parser).
        statements.append(
            f"""INSERT INTO figure_distinct (kind, owner_id, period, distinct_values)
                SELECT '{kind}', {owner}, p.period, 1 FROM ({periods}) AS p
                WHERE {value} IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM figure_value f WHERE f.kind = '{kind}' AND f.owner_id = {owner}
                    AND f.period = p.period AND f.value = {value})
                ON CONFLICT (kind, owner_id, period) DO UPDATE SET distinct_values = distinct_values + 1"""
        )
        statements.append(
            f"""INSERT INTO figure_value (kind, owner_id, period, value, publications)
                SELECT '{kind}', {owner}, p.period, {value}, 1 FROM ({periods}) AS p WHERE {value} IS NOT NULL
                ON CONFLICT (kind, owner_id, period, value) DO UPDATE SET publications = publications + 1"""
        )
    return statements


def _sqlite_remove(row: str) -> list[str]:
    """Statements taking publication ``row`` (OLD) out of the counts."""
    periods = ", ".join(_periods(row))
    office = f"(SELECT office_id FROM channel WHERE id = {row}.channel_id)"
    key = (
        f"channel_id = {row}.channel_id AND local_year = {row}.local_year AND local_month = {row}.local_month "
        f"AND is_repost = {row}.is_repost"
    )
    statements = [
        f"""UPDATE publication_count SET publications = publications - 1,
            untitled = untitled - ({row}.title_key IS NULL), unpushed = unpushed - ({row}.push_id IS NULL)
            WHERE {key}""",
        f"DELETE FROM publication_count WHERE {key} AND publications = 0",
    ]
    for kind, owner, column in ((TITLE, office, "title_key"), (PUSH, f"{row}.channel_id", "push_id")):
        match = f"kind = '{kind}' AND owner_id = {owner} AND value = {row}.{column} AND period IN ({periods})"
        statements += [
            f"UPDATE figure_value SET publications = publications - 1 WHERE {match}",
            f"""UPDATE figure_distinct SET distinct_values = distinct_values - 1
                WHERE kind = '{kind}' AND owner_id = {owner} AND period IN (
                    SELECT period FROM figure_value WHERE {match} AND publications = 0)""",
            f"DELETE FROM figure_value WHERE {match} AND publications = 0",
        ]
    return statements


def _sqlite_triggers() -> list[str]:
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _COUNTED)
    # Rows a deferred bulk upsert inserted are counted when it ends, so they must not count here.
    counted_old = "NOT EXISTS (SELECT 1 FROM counts_deferred d WHERE OLD.id > d.after_id)"

    def body(statements: list[str]) -> str:
        return "BEGIN\n" + ";\n".join(statements) + ";\nEND"

    return [
        "CREATE TRIGGER publication_counted_insert AFTER INSERT ON publication "
        f"WHEN NOT EXISTS (SELECT 1 FROM counts_deferred) {body(_sqlite_add('NEW'))}",
        "CREATE TRIGGER publication_counted_delete AFTER DELETE ON publication "
        f"WHEN {counted_old} {body(_sqlite_remove('OLD'))}",
        f"CREATE TRIGGER publication_counted_update AFTER UPDATE OF {', '.join(_COUNTED)} ON publication "
        f"WHEN ({changed}) AND {counted_old} {body(_sqlite_remove('OLD') + _sqlite_add('NEW'))}",
    ]


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


def _pg_triggers() -> list[str]:
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in _COUNTED)
    return [
        *_PG_FUNCTIONS,
        "CREATE TRIGGER publication_counted AFTER INSERT OR DELETE ON publication "
        "FOR EACH ROW EXECUTE FUNCTION channelwatch_count_trigger()",
        f"CREATE TRIGGER publication_counted_update AFTER UPDATE OF {', '.join(_COUNTED)} ON publication "
        f"FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION channelwatch_count_trigger()",
    ]


def install_counts(conn: Connection) -> None:
    """Create the count tables and their triggers, and fill them from the publications already stored."""
    sqlite = conn.dialect.name == "sqlite"
    for table in _TABLES:
        conn.exec_driver_sql(table.format(without_rowid=" WITHOUT ROWID" if sqlite else ""))
    for statement in _sqlite_triggers() if sqlite else _pg_triggers():
        conn.exec_driver_sql(statement)
    rebuild_counts(conn)


def defer_counts(conn: Connection) -> int | None:
    """Start a bulk upsert on SQLite: rows inserted from now on are counted by ``count_deferred``.

    Per-row triggers cost an import more than storing its rows (three to four times the time on a
    million rows); counting the new rows with a few grouped statements when the batch ends costs a
    fraction of it. SQLite's write transaction is exclusive and rowids grow, so "inserted since" is
    exactly "id above the largest id now". Returns that id, or None where rows stay counted by the
    triggers (PostgreSQL, whose ids come from a sequence shared by concurrent writers).
    """
    if conn.dialect.name != "sqlite":
        return None
    after = int(conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM publication").scalar_one())
    conn.exec_driver_sql("INSERT INTO counts_deferred (after_id) VALUES (?)", (after,))
    return after


def count_deferred(conn: Connection, after: int | None) -> None:
    """End a bulk upsert started by ``defer_counts``: count every row above ``after``, set-based."""
    if after is None:
        return
    conn.exec_driver_sql("DELETE FROM counts_deferred")
    new = f"publication p WHERE p.id > {int(after)}"
    conn.exec_driver_sql(
        "INSERT INTO publication_count "
        "(channel_id, local_year, local_month, is_repost, publications, untitled, unpushed) "
        "SELECT channel_id, local_year, local_month, is_repost, count(*), sum(title_key IS NULL), "
        f"sum(push_id IS NULL) FROM {new} GROUP BY channel_id, local_year, local_month, is_repost "
        "ON CONFLICT (channel_id, local_year, local_month, is_repost) DO UPDATE SET "
        "publications = publications + excluded.publications, untitled = untitled + excluded.untitled, "
        "unpushed = unpushed + excluded.unpushed"
    )
    period_of = (
        "p.local_year * 100",
        "p.local_year * 100 + 20 + (p.local_month + 2) / 3",
        "p.local_year * 100 + p.local_month",
    )
    titled = f"publication p JOIN channel c ON c.id = p.channel_id WHERE p.id > {int(after)}"
    for kind, owner, column, source in (
        (TITLE, "c.office_id", "p.title_key", titled),
        (PUSH, "p.channel_id", "p.push_id", new),
    ):
        added = " UNION ALL ".join(
            f"SELECT {owner} AS owner_id, {period} AS period, {column} AS value FROM {source} AND {column} IS NOT NULL"
            for period in period_of
        )
        conn.exec_driver_sql(
            "INSERT INTO figure_distinct (kind, owner_id, period, distinct_values) "
            f"SELECT '{kind}', n.owner_id, n.period, count(*) FROM (SELECT DISTINCT owner_id, period, value "
            f"FROM ({added})) AS n WHERE NOT EXISTS (SELECT 1 FROM figure_value f WHERE f.kind = '{kind}' "
            "AND f.owner_id = n.owner_id AND f.period = n.period AND f.value = n.value) "
            "GROUP BY n.owner_id, n.period ON CONFLICT (kind, owner_id, period) DO UPDATE SET "
            "distinct_values = distinct_values + excluded.distinct_values"
        )
        conn.exec_driver_sql(
            "INSERT INTO figure_value (kind, owner_id, period, value, publications) "
            f"SELECT '{kind}', owner_id, period, value, count(*) FROM ({added}) AS n WHERE true "
            "GROUP BY owner_id, period, value ON CONFLICT (kind, owner_id, period, value) DO UPDATE SET "
            "publications = publications + excluded.publications"
        )


def rebuild_counts(conn: Connection) -> int:
    """Recompute every count from the publications (inside the caller's write transaction).

    Returns how many count rows differed from the recomputed ones (0 when the triggers kept them right).
    """
    before = _snapshot(conn)
    for table in ("publication_count", "figure_value", "figure_distinct"):
        conn.exec_driver_sql(f"DELETE FROM {table}")
    is_null = "CAST(({col} IS NULL) AS INTEGER)" if conn.dialect.name == "postgresql" else "({col} IS NULL)"
    conn.exec_driver_sql(
        "INSERT INTO publication_count "
        "(channel_id, local_year, local_month, is_repost, publications, untitled, unpushed) "
        f"SELECT channel_id, local_year, local_month, is_repost, count(*), "
        f"sum({is_null.format(col='title_key')}), sum({is_null.format(col='push_id')}) "
        "FROM publication GROUP BY channel_id, local_year, local_month, is_repost"
    )
    periods = (
        "local_year * 100",
        "local_year * 100 + 20 + (local_month + 2) / 3",
        "local_year * 100 + local_month",
    )
    for kind, owner, column, source in (
        (TITLE, "c.office_id", "title_key", "publication p JOIN channel c ON c.id = p.channel_id"),
        (PUSH, "p.channel_id", "push_id", "publication p"),
    ):
        for period in periods:
            conn.exec_driver_sql(
                "INSERT INTO figure_value (kind, owner_id, period, value, publications) "
                f"SELECT '{kind}', {owner}, {period}, {column}, count(*) FROM {source} "
                f"WHERE {column} IS NOT NULL GROUP BY {owner}, {period}, {column}"
            )
    conn.exec_driver_sql(
        "INSERT INTO figure_distinct (kind, owner_id, period, distinct_values) "
        "SELECT kind, owner_id, period, count(*) FROM figure_value GROUP BY kind, owner_id, period"
    )
    after = _snapshot(conn)
    return sum(1 for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def _snapshot(conn: Connection) -> dict[tuple[object, ...], tuple[int, ...]]:
    """The per-period counts (not the per-value rows, which may be many): what a repair is measured by."""
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
