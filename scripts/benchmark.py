"""channelwatch benchmarks: print the figures behind the performance targets in the README.

    python scripts/benchmark.py import  [--rows 1000000]      import speed and memory vs sqlite3 .import
    python scripts/benchmark.py summary [--rows 10000000]     summary for one year over N publications
    python scripts/benchmark.py poll    [--channels 1000]     1,000 website channels against loopback
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
        result = import_file(opened, "weibo", Path({str(export)!r}))
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({{"seconds": seconds, "peak_mib": peak, "new": result.rows_new,
                          "read": result.rows_read}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _reference_import(export: Path, db: Path) -> float:
    sqlite3 = shutil.which("sqlite3")
    if sqlite3 is None:
        return float("nan")
    script = (
        "CREATE TABLE ref (id TEXT, title TEXT, published_at TEXT, repost TEXT, UNIQUE (id));\n"
        f".import --csv --skip 1 '{export}' ref\n"
    )
    started = time.perf_counter()
    subprocess.run([sqlite3, str(db)], input=script, text=True, check=True, capture_output=True)
    return time.perf_counter() - started


def bench_import(rows: int) -> None:
    print(f"== import: {rows:,} rows (CSV, UTF-8) into a fresh SQLite file, dedup on")
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        base = Path(tmp)
        sizes = sorted({max(rows // 4, 1), rows})
        results = {}
        for size in sizes:
            export = base / f"export-{size}.csv"
            write_export(export, size)
            work = base / f"inst-{size}"
            (work / "config").mkdir(parents=True)
            (work / "config" / "channelwatch.toml").write_text(
                INSTANCE_CONFIG.format(db=work / "cw.db"), encoding="utf-8"
            )
            first = _child_import(export, work)
            again = _child_import(export, work)  # every row already known
            results[size] = (first, again, export)
            print(
                f"  {size:>10,} rows: {first['seconds']:.2f} s = {size / first['seconds']:,.0f} rows/s, "
                f"peak RSS {first['peak_mib']:.0f} MiB, new {first['new']:,}; re-import {again['seconds']:.2f} s "
                f"= {size / again['seconds']:,.0f} rows/s, new {again['new']:,}"
            )
        first, _again, export = results[rows]
        reference = _reference_import(export, base / "reference.db")
        ours = rows / first["seconds"]
        ref_rate = rows / reference
        print(f"  reference (sqlite3 .import, UNIQUE(id)): {reference:.2f} s = {ref_rate:,.0f} rows/s")
        print(
            f"  ratio floor/channelwatch: {reference and first['seconds'] / reference:.2f}x "
            f"(target ≤ 3x); channelwatch {ours:,.0f} rows/s (target ≥ 100,000)"
        )
        if len(sizes) == 2:
            small, large = results[sizes[0]][0]["peak_mib"], results[sizes[1]][0]["peak_mib"]
            print(
                f"  peak memory {sizes[0]:,} rows: {small:.0f} MiB, {sizes[1]:,} rows: {large:.0f} MiB "
                f"(growth {large - small:+.0f} MiB for {sizes[1] / sizes[0]:.0f}x the rows)"
            )


_FILL_SQL = """
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

_SUMMARY_CHILD = """
import json, sys, time
from pathlib import Path
from channelwatch import store
from channelwatch.instance.config import load_instance
from channelwatch.store import open_store
from channelwatch.stats.figures import Period, summarise
opened = open_store(load_instance(Path(sys.argv[1])))
started = time.perf_counter()
with store.write(opened.engine) as conn:
    conn.exec_driver_sql(sys.argv[2])
filled = time.perf_counter() - started
times = []
for _ in range(5):
    started = time.perf_counter()
    with store.read(opened.engine) as conn:
        figures = summarise(conn, opened.office_id, Period(2020))
    times.append(time.perf_counter() - started)
print(json.dumps({"fill": filled, "best": min(times), "worst": max(times), "total": figures.total,
                  "unique": figures.unique_items}))
"""


def bench_summary(rows: int) -> None:
    """N publications over ten years (2015-2024) on three channels, generated inside SQLite; time 2020's summary."""
    print(f"== summary: one year over {rows:,} stored publications (SQLite)")
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        work = Path(tmp)
        (work / "config").mkdir()
        config = INSTANCE_CONFIG.format(db=work / "cw.db")
        for key in ("website", "wechat"):
            config += f'\n[[channels]]\nid = "{key}"\nkind = "{key}"\nname = "{key}"\n'
        (work / "config" / "channelwatch.toml").write_text(config, encoding="utf-8")
        out = subprocess.run(
            [sys.executable, "-c", _SUMMARY_CHILD, str(work), _FILL_SQL.format(rows=rows)],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"  generated in {result['fill']:.0f} s; summary of 2020 ({result['total']:,} publications, "
            f"{result['unique']:,} unique): best {result['best']:.3f} s, worst {result['worst']:.3f} s (target < 1 s)"
        )


def bench_help() -> None:
    exe = Path(sys.executable).with_name("channelwatch")
    command = [str(exe), "--help"] if exe.exists() else [sys.executable, "-m", "channelwatch", "--help"]
    subprocess.run(command, check=True, capture_output=True)
    times = []
    for _ in range(10):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    times.sort()
    print(f"== channelwatch --help: median {times[5] * 1000:.0f} ms, worst {times[-1] * 1000:.0f} ms (target < 300 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["import", "summary", "poll", "help", "all"])
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--channels", type=int, default=1000)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "scripts"))
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if args.which in {"import", "all"}:
        bench_import(args.rows or 1_000_000)
    if args.which in {"summary", "all"}:
        bench_summary(args.rows or 10_000_000)
    if args.which in {"poll", "all"}:
        import bench_poll  # type: ignore[import-not-found]

        bench_poll.main(["--channels", str(args.channels)])
    if args.which in {"help", "all"}:
        bench_help()


if __name__ == "__main__":
    main()
