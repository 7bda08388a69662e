"""Benchmark: a county instance on PostgreSQL — one office's summary, the county roll-up, and a county poll.

Builds a county instance in a temporary folder (``--offices`` offices × ``--channels`` channels, one
website, Weibo and WeChat account each), fills it with ``--years`` × ``--per-year`` publications per
channel through one server-side ``INSERT … SELECT generate_series`` (the bulk path: nothing crosses the
wire; the upsert path is measured by scripts/benchmark.py), then times as whole processes:

- ``channelwatch summary --year Y --office o000`` (target < 0.5 s),
- ``channelwatch county summary --year Y`` (target < 2 s),
- ``psql`` running the roll-up's two statements (``county.rollup.rollup_queries``: counts per channel,
  repost mark and in-period/earlier from the counts table; distinct titles per office) on the same
  database, for comparison, and the same figures grouped from the publications themselves, for scale,
- the interpreter importing the libraries every command needs (the floor of any channelwatch process),

and ``channelwatch county poll`` of every office's channels against a loopback server answering each
page after ``--delay`` (each channel its own port), beside the ideal (one page per channel, all at once).
The issue's size is 100 offices × 3 channels × 10 years = 10 million publications (``--per-year 3334``).

    .venv/bin/python scripts/bench_county.py [--offices 100] [--channels 3] [--years 10] [--per-year 3334]
        [--postgres-url postgresql+psycopg://…/db]   # default: a temporary server (initdb/pg_ctl)
        [--data-dir /tmp/cw-county-10m]   # keep the server and the filled store there; reused next time
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
KINDS = [("website", "website", "政府网站"), ("weibo", "weibo", "微博"), ("wechat", "wechat", "微信公众号")]


def _pg_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        sys.exit(f"{name} not found")
    return str(candidates[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_postgres(base: Path) -> tuple[str, list[str]]:
    """A throw-away server (as the test suite starts one); returns its URL and the stop command.

    A ``base`` whose ``data`` folder exists already (``--data-dir`` of an earlier run) is started again as it is.
    """
    base.mkdir(parents=True, exist_ok=True)
    base.parent.chmod(0o755)  # mkdtemp makes it private: the postgres user must reach its data folder
    data = base / "data"
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    if not (data / "PG_VERSION").exists():
        subprocess.run(
            [
                *as_postgres,
                _pg_binary("initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            check=True,
            capture_output=True,
        )
    options = f"-p {port} -k {base} -h 127.0.0.1 -c fsync=off -c shared_buffers=1GB -c max_wal_size=4GB"
    subprocess.run(
        [*as_postgres, _pg_binary("pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-o", options, "start"],
        check=True,
        capture_output=True,
    )
    stop = [*as_postgres, _pg_binary("pg_ctl"), "-D", str(data), "-m", "fast", "stop"]
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop


def write_county(root: Path, url: str, offices: int, channels: int, ports: list[str] | None) -> None:
    (root / "config" / "offices").mkdir(parents=True, exist_ok=True)
    (root / "config" / "channelwatch.toml").write_text(
        f'[county]\nname = "基准县"\n\n[database]\nurl = "{url}"\n', encoding="utf-8"
    )
    for office in range(offices):
        body = [f'[office]\nname = "基准县第{office:03d}单位"\ngroup = "{"乡镇" if office % 4 == 0 else "县直部门"}"\n']
        for index in range(channels):
            key, kind, name = KINDS[index % 3]
            key = key if index < 3 else f"{key}{index}"
            body.append(f'\n[[channels]]\nid = "{key}"\nkind = "{kind}"\nname = "{name}"\n')
            if ports:
                site = ports[office * channels + index]  # "address:port"
                body.append(
                    '  [channels.poll]\n  type = "html-list"\n'
                    f'  url = "http://{site}/xxgk/index.html"\n'
                    '  item = "ul.list li"\n  max_pages = 1\n  min_interval = "10ms"\n'
                )
        (root / "config" / "offices" / f"o{office:03d}.toml").write_text("".join(body), encoding="utf-8")


FILL = """
INSERT INTO publication (channel_id, identity, title, is_repost, published_at, local_year, local_month, local_date,
                         title_key, first_seen, last_seen)
SELECT c.id,
       'b:' || n,
       '基准信息' || (n % 5000),
       n % 7 = 0,
       ts,
       EXTRACT(YEAR FROM ts)::int,
       EXTRACT(MONTH FROM ts)::int,
       ts::date,
       md5(c.office_id || ':' || (n % 5000)),
       now(), now()
FROM channel c
CROSS JOIN LATERAL (
    SELECT n, make_timestamptz(:first_year + (n / :per_year), 1, 1, 8, 0, 0, 'UTC')
              + ((n % :per_year) * interval '1 day' * 365 / :per_year) AS ts
    FROM generate_series(0, :total - 1) AS n
) AS g
WHERE c.office_id = :office_id
"""

# The same rows on SQLite (no generate_series, no md5): a recursive sequence, the title key as plain text.
SQLITE_FILL = """
WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < :total - 1)
INSERT INTO publication (channel_id, identity, title, is_repost, published_at, local_year, local_month, local_date,
                         title_key, first_seen, last_seen)
SELECT c.id, 'b:' || n, '基准信息' || (n % 5000), n % 7 = 0,
       strftime('%Y-%m-%d %H:%M:%f000', ts), CAST(strftime('%Y', ts) AS INTEGER), CAST(strftime('%m', ts) AS INTEGER),
       date(ts), c.office_id || ':' || (n % 5000), :now, :now
FROM channel c,
     (SELECT n, julianday(printf('%04d-01-01 08:00:00', :first_year + n / :per_year))
                + (n % :per_year) * 365.0 / :per_year AS ts FROM seq) AS g
WHERE c.office_id = :office_id
"""

# The roll-up counted from the publications themselves (as before the counts table): printed for scale.
PUBLICATIONS_SQL = """
SELECT channel_id, local_month, is_repost, count(*), count(title_key) FROM publication
 WHERE local_year = {year} AND local_month <= 12 GROUP BY channel_id, local_month, is_repost;
SELECT office_id, count(*) FROM (SELECT c.office_id, p.title_key FROM publication p
 JOIN channel c ON c.id = p.channel_id
 WHERE p.local_year = {year} AND p.local_month BETWEEN 1 AND 12 AND p.title_key IS NOT NULL
 GROUP BY c.office_id, p.title_key) AS d GROUP BY office_id;
"""


def timed(command: list[str], runs: int, env: dict[str, str]) -> tuple[float, str]:
    """Median wall time of ``runs`` runs; the median CPU time (user + system) is kept in ``CPU[command]``."""
    import resource

    times, cpu, output = [], [], ""
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode not in (0, 1):
            sys.exit(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
        output = done.stdout
    CPU[" ".join(command)] = statistics.median(cpu)
    return statistics.median(times), output


CPU: dict[str, float] = {}


def cpu_of(command: list[str]) -> str:
    return f"cpu {CPU.get(' '.join(command), 0.0):.2f} s"


def fill(own: Any, stores: dict[str, Any], plain: str, args: argparse.Namespace) -> tuple[float, float]:
    """Fill the county store server-side; returns (fill seconds, index + counts + analyze seconds).

    The count triggers are switched off for the bulk insert and the counts rebuilt once, set-based, at
    the end (``rebuild_counts``, as ``channelwatch recount`` does): row triggers on ten million rows
    would take the better part of an hour on this machine and prove nothing about reading the figures.
    """
    import psycopg
    from sqlalchemy import text

    from channelwatch.store.counts import rebuild_counts

    per_channel = args.years * args.per_year
    first_year = 2020 - args.years + 1
    if args.database == "sqlite":
        return _fill_sqlite(own, stores, per_channel, first_year, args)
    started = time.perf_counter()
    with own.engine.begin() as conn:
        conn.execute(text("DROP INDEX IF EXISTS ix_publication_period"))
        conn.execute(text("ALTER TABLE publication DROP CONSTRAINT IF EXISTS uq_publication_identity"))
        conn.execute(text("ALTER TABLE publication DISABLE TRIGGER USER"))
    for opened in stores.values():
        with own.engine.begin() as conn:
            conn.execute(
                text(FILL),
                {
                    "first_year": first_year,
                    "per_year": args.per_year,
                    "total": per_channel,
                    "office_id": opened.office_id,
                },
            )
    filled = time.perf_counter() - started
    started = time.perf_counter()
    with own.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE INDEX ix_publication_period ON publication "
                "(channel_id, local_year, local_month, is_repost, title_key, push_id)"
            )
        )
        conn.execute(
            text("ALTER TABLE publication ADD CONSTRAINT uq_publication_identity UNIQUE (channel_id, identity)")
        )
        conn.execute(text("ALTER TABLE publication ENABLE TRIGGER USER"))
        rebuild_counts(conn)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return filled, time.perf_counter() - started


def _fill_sqlite(
    own: Any, stores: dict[str, Any], per_channel: int, first_year: int, args: argparse.Namespace
) -> tuple[float, float]:
    """The SQLite fill: triggers and secondary indexes dropped for the insert, then put back and counted once."""
    from sqlalchemy import text

    from channelwatch.store.counts import install_counts

    started = time.perf_counter()
    with own.engine.begin() as conn:
        for trigger in ("publication_counted_insert", "publication_counted_delete", "publication_counted_update"):
            conn.execute(text(f"DROP TRIGGER IF EXISTS {trigger}"))
        for index in ("ix_publication_period", "ix_publication_title", "ix_publication_push"):
            conn.execute(text(f"DROP INDEX IF EXISTS {index}"))
    now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
    for opened in stores.values():
        with own.engine.begin() as conn:
            conn.execute(
                text(SQLITE_FILL),
                {
                    "first_year": first_year,
                    "per_year": args.per_year,
                    "total": per_channel,
                    "office_id": opened.office_id,
                    "now": now,
                },
            )
    filled = time.perf_counter() - started
    started = time.perf_counter()
    with own.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE INDEX ix_publication_period ON publication "
                "(channel_id, local_year, local_month, is_repost, title_key, push_id)"
            )
        )
        install_counts(conn)  # the partial indexes and the triggers again, and every count rebuilt
    with own.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return filled, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--offices", type=int, default=100)
    parser.add_argument("--channels", type=int, default=3, help="channels per office")
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--per-year", type=int, default=3334, help="publications per channel and year")
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--runs", type=int, default=3, help="runs of each timed process (median printed)")
    parser.add_argument("--delay", type=float, default=0.05, help="loopback answer time per page, seconds")
    parser.add_argument("--no-poll", action="store_true")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="keep the server and the filled county store here and reuse them on the next run of the same size",
    )
    args = parser.parse_args(argv)

    import psycopg
    from sqlalchemy import text

    from channelwatch import store
    from channelwatch.instance.config import load_instance

    keep = Path(args.data_dir).resolve() if args.data_dir else None
    base = keep or Path(tempfile.mkdtemp(prefix="cw-bench-county-"))
    stop: list[str] | None = None
    server = None
    parent = None
    try:
        size = {"offices": args.offices, "channels": args.channels, "years": args.years, "per_year": args.per_year}
        sqlite = args.database == "sqlite"
        args.no_poll = args.no_poll or sqlite  # the county poll is measured on PostgreSQL, the county's store
        marker = base / ("filled-sqlite.json" if sqlite else "filled.json")
        reuse = keep is not None and marker.exists() and json.loads(marker.read_text()) == size
        if sqlite:
            database = base / "sqlite" / "county.db"
            database.parent.mkdir(parents=True, exist_ok=True)
            if not reuse:
                database.unlink(missing_ok=True)
            url = plain = f"sqlite:///{database}"
        else:
            url = args.postgres_url
            if url is None:
                url, stop = start_postgres(base / "pg")
            plain = url.replace("postgresql+psycopg://", "postgresql://")
            name = "cw_bench" if keep else f"cw_bench_{os.getpid()}"
            with psycopg.connect(plain, autocommit=True) as conn:
                if not reuse:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                    conn.execute(f'CREATE DATABASE "{name}"')
            url = url.rsplit("/", 1)[0] + "/" + name
            plain = url.replace("postgresql+psycopg://", "postgresql://")

        ports = None
        if not args.no_poll:
            spec = importlib.util.spec_from_file_location("bench_poll", REPO / "scripts" / "bench_poll.py")
            assert spec is not None and spec.loader is not None
            bench_poll = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(bench_poll)
            parent, child = multiprocessing.Pipe()
            count = args.offices * args.channels
            server = multiprocessing.Process(target=bench_poll._serve, args=(count, args.delay, child), daemon=True)
            server.start()
            ports = parent.recv()
        root = base / ("county-sqlite" if sqlite else "county")
        write_county(root, url, args.offices, args.channels, ports)
        county = load_instance(root)
        own, stores = store.open_offices(county)
        filled = indexed = 0.0
        if not reuse:
            filled, indexed = fill(own, stores, plain, args)
            marker.write_text(json.dumps(size), encoding="utf-8")
        with own.engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM publication")).scalar_one()
        own.dispose()

        env = dict(os.environ, CHANNELWATCH_INSTANCE=str(root))
        cli = [sys.executable, "-m", "channelwatch"]
        year = "2020"
        office_cmd = [*cli, "summary", "--year", year, "--office", "o000", "--format", "json"]
        office_time, office_out = timed(office_cmd, args.runs, env)
        county_cmd = [*cli, "county", "summary", "--year", year, "--format", "json"]
        county_time, county_out = timed(county_cmd, args.runs, env)
        from channelwatch.county.rollup import rollup_queries
        from channelwatch.stats.figures import Period

        office_ids = [opened.office_id for opened in stores.values()]

        def shell(sql: str) -> list[str]:
            """The database's own command-line client running ``sql``, output discarded."""
            if sqlite:
                return ["sqlite3", "-cmd", ".output /dev/null", str(database), sql]
            return [_pg_binary("psql"), plain, "-q", "-o", "/dev/null", "-c", sql]

        statements = ";\n".join(rollup_queries(office_ids, Period(int(year)))) + ";"
        psql_time, _ = timed(shell(statements), args.runs, env)
        office_sql = ";\n".join(rollup_queries([stores["o000"].office_id], Period(int(year)))) + ";"
        psql_office_time, _ = timed(shell(office_sql), 3, env)
        scan_time, _ = timed(shell(PUBLICATIONS_SQL.format(year=year)), 1, env)
        # What any channelwatch process pays before its first query: the interpreter and its libraries.
        floor_cmd = [sys.executable, "-c", "import sqlalchemy, sqlmodel, psycopg, typer"]
        floor_time, _ = timed(floor_cmd, args.runs, env)
        help_cmd = [*cli, "--help"]
        help_time, _ = timed(help_cmd, args.runs, env)
        load = os.getloadavg()[0]

        county_json = json.loads(county_out)
        client = "sqlite3" if sqlite else "psql"
        print(
            f"database:          {'SQLite' if sqlite else 'PostgreSQL'}, {rows:,} publications "
            f"({args.offices} offices × {args.channels} channels"
            f" × {args.years} years × {args.per_year}/year)"
        )
        if reuse:
            print(f"fill:              reused the store filled earlier in {base}")
        else:
            print(
                f"fill:              {filled:.1f} s (one INSERT … SELECT of a generated sequence per office), "
                f"indexes + counts + analyze {indexed:.1f} s"
            )
        print(f"machine:           {os.cpu_count()} CPUs, load average {load:.1f} while measuring")
        print(f"process start:     channelwatch --help {help_time:.2f} s ({cpu_of(help_cmd)})")
        print(
            f"office summary:    {office_time:.2f} s wall, {cpu_of(office_cmd)}  (summary --year {year} --office o000;"
            f" target < 0.5 s; total {json.loads(office_out)['total']:,})"
        )
        print(
            f"{client}, one office:  {psql_office_time:.2f} s  (the roll-up's statements for that office, as a process)"
        )
        print(
            f"county summary:    {county_time:.2f} s wall, {cpu_of(county_cmd)}  (county summary --year {year};"
            f" target < 2 s; {len(county_json['offices'])} offices, total {county_json['total']:,})"
        )
        print(f"{client}, county:      {psql_time:.2f} s  (the roll-up's two statements over the counts, as a process)")
        print(f"{client}, publications: {scan_time:.2f} s  (the same figures grouped from the publications themselves)")
        print(f"python floor:      {floor_time:.2f} s  (python -c 'import sqlalchemy, sqlmodel, psycopg, typer')")
        print(
            f"ratios:            office / {client} {office_time / psql_office_time:.1f}×, county / {client} "
            f"{county_time / psql_time:.1f}×, county / office {county_time / office_time:.2f}×, "
            f"county / python floor {county_time / floor_time:.1f}×, office / python floor "
            f"{office_time / floor_time:.1f}×; publications / counts in {client} {scan_time / psql_time:.1f}×"
        )

        if ports:
            poll_time, poll_out = timed([*cli, "county", "poll"], 1, env)
            ok = poll_out.count("：成功")
            ideal = args.delay
            print(
                f"county poll:       {poll_time:.2f} s as a process for {len(ports)} channels of {args.offices} offices"
                f" ({ok} ok); ideal {ideal:.2f} s (one {args.delay * 1000:.0f} ms page each, all at once);"
                f" ratio {poll_time / ideal:.1f}"
            )
            from channelwatch.county.poll_all import poll_offices

            own, stores = store.open_offices(load_instance(root))
            started = time.perf_counter()
            results = poll_offices(stores)
            again = time.perf_counter() - started
            own.dispose()
            done = sum(r.status == "ok" for found in results.values() for r in found)
            print(
                f"county poll again: {again:.2f} s in process (poll_offices, {done} ok, nothing new);"
                f" ratio {again / ideal:.1f}"
            )
            # The same channels as ONE office on the same server: what polling them costs without the county.
            from channelwatch.ingest.poll import poll_channels

            single_db = f"{name}_single"
            with psycopg.connect(plain.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
                # A store kept in --data-dir holds the previous run's: it starts empty every time.
                conn.execute(f'DROP DATABASE IF EXISTS "{single_db}"')
                conn.execute(f'CREATE DATABASE "{single_db}"')
            single = base / "single"
            shutil.rmtree(single, ignore_errors=True)
            (single / "config").mkdir(parents=True)
            config = bench_poll._config(ports, single / "unused.db").replace(
                f'url = "sqlite:///{single / "unused.db"}"', f'url = "{url.rsplit("/", 1)[0]}/{single_db}"'
            )
            (single / "config" / "channelwatch.toml").write_text(config, encoding="utf-8")
            opened = store.open_store(load_instance(single))
            first = poll_channels(opened, concurrency=len(ports))
            started = time.perf_counter()
            repeat = poll_channels(opened, concurrency=len(ports))
            one_office = time.perf_counter() - started
            opened.dispose()
            print(
                f"one office, same:  {one_office:.2f} s in process for the same {len(ports)} channels as one office"
                f" ({sum(r.status == 'ok' for r in first)} ok first, {sum(r.status == 'ok' for r in repeat)} ok again);"
                f" county / one office = {again / one_office:.2f} (target ≤ 1.5)"
            )
    finally:
        if parent is not None:
            parent.send("stop")
        if server is not None:
            server.join(timeout=5)
            if server.is_alive():
                server.terminate()
        if stop is not None:
            subprocess.run(stop, capture_output=True)
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
