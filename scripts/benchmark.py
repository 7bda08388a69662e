"""channelwatch benchmarks: print the figures behind the performance targets in the README.

    python scripts/benchmark.py import  [--rows 1000000] [--database sqlite|postgresql|both]
                                                              import speed and memory vs sqlite3 .import
                                                              (PostgreSQL: vs psql \\copy, with re-import and undo)
    python scripts/benchmark.py xlsx    [--rows 100000]       XLSX import vs python-calamine reading the file
    python scripts/benchmark.py summary [--rows 10000000] [--database sqlite|postgresql|both]
                                                              summary --year over N publications vs the grouped query
    python scripts/benchmark.py poll    [--channels 1000]     1,000 website channels against loopback, then
                                                              a county's 300 channels of 100 offices
    python scripts/benchmark.py help                          `channelwatch --help` start-up time
    python scripts/benchmark.py all                           everything, with the default sizes

Each import measurement runs in a fresh child process, so its peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INSTANCE_CONFIG = """
[office]
name = "基准测试单位"
short_name = "我单位"
timezone = "Asia/Shanghai"

[database]
url = "sqlite:///{db}"

[[channels]]
id = "weibo"
kind = "weibo"
name = "微博"
"""


# One row per figure of the run, printed together at the end (the README's performance table):
# (what, target, channelwatch, floor, ratio, met).
SUMMARY: list[tuple[str, str, str, str, str, str]] = []


def _row(what: str, target: str, ours: str, floor: str, ratio: float | None, met: bool | None) -> None:
    shown = "" if ratio is None else f"{ratio:.2f}x"
    SUMMARY.append((what, target, ours, floor, shown, "" if met is None else ("met" if met else "NOT met")))


def print_summary() -> None:
    if not SUMMARY:
        return
    load = os.getloadavg()
    print(f"\n== all figures of this run ({os.cpu_count()} cores, load average now {load[0]:.2f} {load[1]:.2f})\n")
    print("| what | target | channelwatch | floor (same run) | ratio | |")
    print("|---|---|---|---|---|---|")
    for row in SUMMARY:
        print("| " + " | ".join(row) + " |")


def _instance(work: Path, url: str | None = None) -> Path:
    """The benchmark office's instance in ``work``: a SQLite file there, or the database at ``url``."""
    (work / "config").mkdir(parents=True)
    database = url or f"sqlite:///{work / 'cw.db'}"
    config = INSTANCE_CONFIG.replace('"sqlite:///{db}"', f'"{database}"')
    (work / "config" / "channelwatch.toml").write_text(config, encoding="utf-8")
    return work


def write_export(path: Path, rows: int, seed: int = 7) -> None:
    """A Weibo-style export: id, text, time, repost mark; ids unique, times spread over 2019–2021."""
    rng = random.Random(seed)
    start = datetime(2019, 1, 1, 8, 0)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["微博ID", "微博内容", "发布时间", "是否转发"])
        for n in range(rows):
            moment = start + timedelta(minutes=n * 1577 // 1000 + rng.randint(0, 5))
            writer.writerow(
                [
                    str(4400000000000000 + n),
                    f"园区动态第{n}条：安全生产检查与企业服务工作推进情况",
                    moment.strftime("%Y-%m-%d %H:%M:%S"),
                    "转发" if n % 3 == 0 else "原创",
                ]
            )


def _child_import(export: Path, workdir: Path) -> dict[str, float]:
    """Run one import in a child process; returns its seconds and peak RSS (MiB)."""
    code = textwrap.dedent(f"""
        import json, resource, time
        from pathlib import Path
        from channelwatch.instance.config import load_instance
        from channelwatch.store import open_store
        from channelwatch.ingest.imports import import_file
        instance = load_instance(Path({str(workdir)!r}))
        opened = open_store(instance)
        started = time.perf_counter()
        cpu = time.process_time()
        result = import_file(opened, "weibo", Path({str(export)!r}))
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        reader = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({{"seconds": seconds, "peak_mib": peak, "new": result.rows_new,
                          "read": result.rows_read, "cpu": cpu, "reader_cpu": reader.ru_utime + reader.ru_stime,
                          "reader_peak_mib": reader.ru_maxrss / 1024}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _shell_floor(program: str, arguments: list[str], load: str) -> float:
    """Seconds for a database's own shell to load the export into a table with a unique key (the floor)."""
    found = shutil.which(program)
    if found is None:
        return float("nan")
    script = f"CREATE TABLE ref (id TEXT, title TEXT, published_at TEXT, repost TEXT, UNIQUE (id));\n{load}\n"
    started = time.perf_counter()
    subprocess.run([found, *arguments], input=script, text=True, check=True, capture_output=True)
    return time.perf_counter() - started


def _reference_import(export: Path, db: Path) -> float:
    return _shell_floor("sqlite3", [str(db)], f".import --csv --skip 1 '{export}' ref")


def bench_import(rows: int) -> None:
    print(f"== import: {rows:,} rows (CSV, UTF-8) into a fresh SQLite file, dedup on")
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        base = Path(tmp)
        sizes = sorted({max(rows // 4, 1), rows})
        results = {}
        for size in sizes:
            export = base / f"export-{size}.csv"
            write_export(export, size)
            work = _instance(base / f"inst-{size}")
            first = _child_import(export, work)
            again = _child_import(export, work)  # every row already known
            results[size] = (first, again, export)
            print(
                f"  {size:>10,} rows: {first['seconds']:.2f} s = {size / first['seconds']:,.0f} rows/s, "
                f"peak RSS {first['peak_mib']:.0f} MiB (reading process {first['reader_peak_mib']:.0f} MiB), "
                f"new {first['new']:,}; re-import {again['seconds']:.2f} s "
                f"= {size / again['seconds']:,.0f} rows/s, new {again['new']:,}"
            )
            print(
                f"  {'':>10}  CPU: import {first['cpu']:.2f} s + reading process {first['reader_cpu']:.2f} s; "
                f"re-import {again['cpu']:.2f} s + {again['reader_cpu']:.2f} s"
            )
        first, again, export = results[rows]
        reference = _reference_import(export, base / "reference.db")
        ours = rows / first["seconds"]
        print(f"  load: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
        print(f"  floor (sqlite3 .import, table with UNIQUE(id)): {reference:.2f} s = {rows / reference:,.0f} rows/s")
        print(
            f"  ratio channelwatch/floor: import {first['seconds'] / reference:.2f}x (target ≤ 2x), "
            f"re-import {again['seconds'] / reference:.2f}x (target ≤ 1.5x); "
            f"channelwatch {ours:,.0f} rows/s (target ≥ 300,000)"
        )
        floor = f"sqlite3 .import {reference:.2f} s"
        _row(f"import {rows:,} CSV rows, new SQLite store", "≤ 2x floor, ≥ 300,000 rows/s",
             f"{first['seconds']:.2f} s = {ours:,.0f} rows/s", floor, first["seconds"] / reference,
             first["seconds"] <= 2 * reference and ours >= 300_000)  # fmt: skip
        _row("re-import of the same file (every row known)", "≤ 1.5x floor", f"{again['seconds']:.2f} s", floor,
             again["seconds"] / reference, again["seconds"] <= 1.5 * reference)  # fmt: skip
        if len(sizes) == 2:
            small, large = results[sizes[0]][0]["peak_mib"], results[sizes[1]][0]["peak_mib"]
            reading = max(results[size][0]["reader_peak_mib"] for size in sizes)
            print(
                f"  peak memory {sizes[0]:,} rows: {small:.0f} MiB, {sizes[1]:,} rows: {large:.0f} MiB "
                f"(growth {large - small:+.0f} MiB for {sizes[1] / sizes[0]:.0f}x the rows)"
            )
            memory = f"{sizes[0]:,} rows {small:.0f} MiB, {sizes[1]:,} rows {large:.0f} MiB"
            _row("import memory (peak RSS)", "flat, < 200 MB", f"{memory}; reading process ≤ {reading:.0f} MiB", "",
                 None, max(large, reading) < 200 * 1e6 / 2**20)  # fmt: skip


def bench_import_postgres(rows: int) -> None:
    """The same import into a fresh PostgreSQL database (a county's store), its re-import and its undo."""
    print(f"== import: {rows:,} rows (CSV, UTF-8) into a fresh PostgreSQL database, dedup on")
    url, prefix, data = _start_postgres()
    try:
        with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
            base = Path(tmp)
            export = base / "export.csv"
            write_export(export, rows)
            work = _instance(base / "inst", url)
            first = _child_import(export, work)
            again = _child_import(export, work)
            started = time.perf_counter()
            subprocess.run([*_channelwatch(), "--instance", str(work), "runs", "undo", "1"], check=True,
                           capture_output=True)  # fmt: skip
            undo = time.perf_counter() - started
            print(
                f"  import {first['seconds']:.2f} s = {rows / first['seconds']:,.0f} rows/s, new {first['new']:,}; "
                f"re-import {again['seconds']:.2f} s, new {again['new']:,}; `runs undo` of the import {undo:.2f} s"
            )
            floor = _reference_copy(export, url)
            print(f"  load: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
            print(f"  floor (psql \\copy into a table with UNIQUE(id)): {floor:.2f} s = {rows / floor:,.0f} rows/s")
            ratios = f"import {first['seconds'] / floor:.2f}x, re-import {again['seconds'] / floor:.2f}x"
            print(f"  ratio channelwatch/floor: {ratios} (no target: PostgreSQL keeps a count per title and period)")
            _row(f"import {rows:,} CSV rows, new PostgreSQL database", "no target",
                 f"{first['seconds']:.2f} s; re-import {again['seconds']:.2f} s; undo {undo:.2f} s",
                 f"psql \\copy {floor:.2f} s", first["seconds"] / floor, None)  # fmt: skip
    finally:
        bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
        pg_ctl = shutil.which("pg_ctl") or str(bindir[0] / "pg_ctl")
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(data.parent, ignore_errors=True)


def _reference_copy(export: Path, url: str) -> float:
    load = f"\\copy ref FROM '{export}' WITH (FORMAT csv, HEADER true)"
    return _shell_floor("psql", ["-q", "-v", "ON_ERROR_STOP=1", url], load)


def write_xlsx(path: Path, rows: int, seed: int = 7) -> None:
    """The Weibo-style export of ``write_export`` as an XLSX sheet, publication times as real date cells."""
    from openpyxl import Workbook

    rng = random.Random(seed)
    start = datetime(2019, 1, 1, 8, 0)
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(["微博ID", "微博内容", "发布时间", "是否转发"])
    for n in range(rows):
        moment = start + timedelta(minutes=n * 1577 // 1000 + rng.randint(0, 5))
        sheet.append(
            [str(4400000000000000 + n), f"园区动态第{n}条：安全生产检查与企业服务工作推进情况", moment,
             "转发" if n % 3 == 0 else "原创"]
        )  # fmt: skip
    book.save(path)


_CALAMINE = """
import sys, time
from python_calamine import CalamineWorkbook
started = time.perf_counter()
rows = CalamineWorkbook.from_path(sys.argv[1]).get_sheet_by_index(0).to_python()
print(time.perf_counter() - started, len(rows))
"""


def bench_xlsx(rows: int) -> None:
    """An XLSX import beside the time python-calamine (Rust) takes just to read the same file."""
    print(f"== import: {rows:,} rows (XLSX, date cells) into a fresh SQLite file")
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        base = Path(tmp)
        export = base / "export.xlsx"
        write_xlsx(export, rows)
        work = _instance(base / "inst")
        ours = _child_import(export, work)
        out = subprocess.run([sys.executable, "-c", _CALAMINE, str(export)], check=True, capture_output=True, text=True)
        floor, read = out.stdout.split()
        print(
            f"  channelwatch {ours['seconds']:.2f} s = {rows / ours['seconds']:,.0f} rows/s (CPU {ours['cpu']:.2f} s "
            f"+ checking process {ours['reader_cpu']:.2f} s), peak RSS {ours['peak_mib']:.0f} MiB "
            f"(checking process {ours['reader_peak_mib']:.0f} MiB), new {ours['new']:,}"
        )
        print(f"  floor (python-calamine reading the sheet, {int(read) - 1:,} rows): {float(floor):.2f} s")
        print(
            f"  ratio channelwatch/floor: {ours['seconds'] / float(floor):.2f}x (target ≤ 3x); "
            f"load {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores"
        )
        _row(f"import {rows:,} XLSX rows (date cells)", "≤ 3x floor", f"{ours['seconds']:.2f} s",
             f"python-calamine reading {float(floor):.2f} s", ours["seconds"] / float(floor),
             ours["seconds"] <= 3 * float(floor))  # fmt: skip


_FILL_SQLITE = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows} - 1)
INSERT INTO publication (channel_id, identity, title, is_repost, published_at, local_year, local_month,
                         local_date, title_key, first_seen, last_seen)
SELECT 1 + i % 3, 'id:' || i, 'title ' || i, i % 3 = 0,
       datetime(1420041600 + i * (315532800 / {rows}.0), 'unixepoch'),
       CAST(strftime('%Y', 1420070400 + i * (315532800 / {rows}.0), 'unixepoch') AS INTEGER),
       CAST(strftime('%m', 1420070400 + i * (315532800 / {rows}.0), 'unixepoch') AS INTEGER),
       date(1420070400 + i * (315532800 / {rows}.0), 'unixepoch'),
       hex(randomblob(8)), datetime('now'), datetime('now')
FROM n
"""
_FILL_PG = """
INSERT INTO publication (channel_id, identity, title, is_repost, published_at, local_year, local_month,
                         local_date, title_key, first_seen, last_seen)
SELECT 1 + i %% 3, 'id:' || i, 'title ' || i, i %% 3 = 0, t, extract(year FROM t AT TIME ZONE 'Asia/Shanghai'),
       extract(month FROM t AT TIME ZONE 'Asia/Shanghai'), (t AT TIME ZONE 'Asia/Shanghai')::date,
       substr(md5(random()::text), 1, 16), now(), now()
FROM (SELECT i, to_timestamp(1420041600 + i * (315532800.0 / {rows})) AS t FROM generate_series(0, {rows} - 1) i) g
"""
# The floor: the database's own shell running the grouped query the figures need (counts per channel,
# month and repost; distinct titles), from a store with the indexes channelwatch keeps.
_GROUPED = (
    "SELECT channel_id, local_month, is_repost, count(*), count(title_key) FROM publication "
    "WHERE local_year = 2020 AND channel_id IN (1, 2, 3) GROUP BY channel_id, local_month, is_repost; "
    "SELECT count(*) FROM (SELECT title_key FROM publication WHERE local_year = 2020 AND channel_id IN (1, 2, 3) "
    "AND title_key IS NOT NULL GROUP BY title_key) t;"
)

_FILL_CHILD = """
import sys, time
from pathlib import Path
from channelwatch import store
from channelwatch.instance.config import load_instance
from channelwatch.store import open_store
from channelwatch.store.counts import count_deferred, defer_counts
opened = open_store(load_instance(Path(sys.argv[1])))
started = time.perf_counter()
with store.write(opened.engine) as conn:
    if conn.dialect.name == "sqlite":
        after = defer_counts(conn)  # counted set-based at the end, as a bulk import is
        conn.exec_driver_sql(sys.argv[2])
        count_deferred(conn, after)
    else:
        conn.exec_driver_sql("ALTER TABLE publication DISABLE TRIGGER USER")
        conn.exec_driver_sql(sys.argv[2])
        conn.exec_driver_sql("ALTER TABLE publication ENABLE TRIGGER USER")
        store.rebuild_counts(conn)
if opened.engine.dialect.name == "postgresql":
    with opened.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
print(time.perf_counter() - started)
"""


def _median_run(command: list[str], runs: int = 5, env: dict[str, str] | None = None) -> float:
    subprocess.run(command, check=True, capture_output=True, env=env)  # warm the page cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - started)
    return sorted(times)[runs // 2]


def _channelwatch() -> list[str]:
    exe = Path(sys.executable).with_name("channelwatch")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "channelwatch"]


def _start_postgres() -> tuple[str, list[str], Path]:
    """A throw-away PostgreSQL server (as the tests start one); returns its URL, the runuser prefix, data dir."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    found = shutil.which("initdb") or (str(bins[0] / "initdb") if bins else None)
    if found is None:
        raise SystemExit("PostgreSQL (initdb) not found")
    bindir = Path(found).parent
    base = Path(tempfile.mkdtemp(prefix="cw-bench-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                    "--no-locale"], check=True, capture_output=True)  # fmt: skip
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-t", "120", "-o",
                    f"-p {port} -k {base} -h 127.0.0.1 -c fsync=off -c shared_buffers=512MB", "start"],
                   check=True, capture_output=True)  # fmt: skip
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", prefix, data


def bench_summary(rows: int, databases: list[str]) -> None:
    """N publications over ten years (2015-2024) on three channels, generated by bulk SQL; `summary --year 2020`.

    Whole processes, side by side: `channelwatch summary --year 2020` (which also reads 2019 for the
    year-on-year sentence) against the database's own shell running the grouped query once.
    """
    print(f"== summary --year 2020 over {rows:,} stored publications (whole processes, median of 5)")
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        for database in databases:
            work = Path(tmp) / database
            (work / "config").mkdir(parents=True)
            if database == "postgresql":
                url, prefix, data = _start_postgres()
                fill = _FILL_PG.format(rows=rows)
                floor = [*prefix, str(Path(shutil.which("psql") or "psql")), url, "-q", "-A", "-t", "-c", _GROUPED]
            else:
                url, prefix, data = f"sqlite:///{work / 'cw.db'}", [], Path()
                fill = _FILL_SQLITE.format(rows=rows)
                floor = ["sqlite3", str(work / "cw.db"), _GROUPED]
            config = INSTANCE_CONFIG.replace('"sqlite:///{db}"', f'"{url}"')
            for key, name in (("website", "政府网站"), ("wechat", "微信公众号")):
                config += f'\n[[channels]]\nid = "{key}"\nkind = "{key}"\nname = "{name}"\n'
            (work / "config" / "channelwatch.toml").write_text(config, encoding="utf-8")
            try:
                out = subprocess.run([sys.executable, "-c", _FILL_CHILD, str(work), fill], check=False,
                                     capture_output=True, text=True)  # fmt: skip
                if out.returncode:
                    raise SystemExit(out.stderr[-3000:])
                filled = float(out.stdout.strip().splitlines()[-1])
                ours_cmd = [*_channelwatch(), "--instance", str(work), "summary", "--year", "2020"]
                text = subprocess.run(ours_cmd, check=True, capture_output=True, text=True).stdout
                ours = _median_run(ours_cmd)
                reference = _median_run(floor)
                print(f"  {database}: filled in {filled:.0f} s; channelwatch summary {ours:.3f} s, "
                      f"floor ({floor[0].rsplit('/', 1)[-1] if not prefix else 'psql'} grouped query) "
                      f"{reference:.3f} s, ratio {ours / reference:.2f}x (target: whole process < 0.5 s)")  # fmt: skip
                print("   ", text.strip().splitlines()[0][:150])
                shell = "psql" if prefix else "sqlite3"
                what = f"`summary --year 2020` over {rows:,} publications, {database} (whole process)"
                _row(what, "< 0.5 s", f"{ours:.3f} s", f"{shell} grouped query {reference:.3f} s", ours / reference,
                     ours < 0.5)  # fmt: skip
            finally:
                if database == "postgresql":
                    initdb = shutil.which("initdb") or str(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1])
                    subprocess.run([*prefix, str(Path(initdb).with_name("pg_ctl")), "-D", str(data), "-m", "immediate",
                                    "stop"], capture_output=True)  # fmt: skip
                    shutil.rmtree(data.parent, ignore_errors=True)


def bench_help() -> None:
    """`channelwatch --help` beside the floor, a bare `python -c pass` of the same interpreter."""
    ours = _median_run([*_channelwatch(), "--help"], runs=11)
    floor = _median_run([sys.executable, "-c", "pass"], runs=11)
    print(
        f"== channelwatch --help: median {ours * 1000:.0f} ms (target < 150 ms); "
        f"floor (python -c pass) {floor * 1000:.0f} ms, ratio {ours / floor:.2f}x"
    )
    _row("`channelwatch --help` (median of 11)", "< 0.15 s", f"{ours:.3f} s", f"python -c pass {floor:.3f} s",
         ours / floor, ours < 0.15)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["import", "xlsx", "summary", "poll", "help", "all"])
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument(
        "--database", choices=["sqlite", "postgresql", "both"], default=None, help="summary: both; import: sqlite"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "scripts"))
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if args.which in {"import", "all"}:
        if args.database in (None, "sqlite", "both"):
            bench_import(args.rows or 1_000_000)
        if args.database in ("postgresql", "both"):
            bench_import_postgres(args.rows or 1_000_000)
    if args.which in {"xlsx", "all"}:
        bench_xlsx(args.rows or 100_000)
    if args.which in {"summary", "all"}:
        databases = ["sqlite", "postgresql"] if args.database in (None, "both") else [args.database]
        bench_summary(args.rows or 10_000_000, databases)
    if args.which in {"poll", "all"}:
        import bench_poll  # type: ignore[import-not-found]

        for what, argv in (
            (f"one poll of {args.channels:,} website channels, 50 ms per page, concurrency 100, SQLite",
             ["--channels", str(args.channels)]),
            ("a county's poll: 300 channels of 100 offices (3 each), SQLite",
             ["--channels", "300", "--offices", "100"]),
        ):  # fmt: skip
            got: dict[str, float] = {}
            bench_poll.main(argv, got)
            print()
            ideal = f"ideal {got['ideal']:.2f} s"
            if "--offices" in argv:  # county poll's concurrency is per office: every channel at once
                ideal += " (all at once; 0.15 s at 100 at a time in all)"
            _row(what, "≤ 1.5x ideal", f"{got['wall']:.2f} s ({got['processes']:.0f} processes; "
                 f"CPU {got['cpu_per_page'] * 1000:.2f} ms per page)", ideal,
                 got["wall"] / got["ideal"], got["wall"] <= 1.5 * got["ideal"])  # fmt: skip
    if args.which in {"help", "all"}:
        bench_help()
    print_summary()


if __name__ == "__main__":
    main()
