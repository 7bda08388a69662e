"""Web view benchmark: server time of each page over a SQLite store of N publications.

    python scripts/bench_web.py                          # 10,000,000 publications (filling takes minutes)
    python scripts/bench_web.py --publications 1000000   # a smaller store
    python scripts/bench_web.py --keep DIR               # fill DIR once, measure again later with --reuse

The store is a county of ``--offices`` offices (the first holds half the publications) filled by a bulk
insert straight into SQLite (sorted by channel and time, so every index grows at its end; the counts
table is filled set-based at the end, as a bulk import fills it), each office with 3 channels (微博 70 %,
微信公众号 25 %, 网站 5 %); ``--heavy`` of every channel's rows fall in last year, the rest spread over
``--years`` years ending this year; 10 % reposts, and 20,000 runs of which one in twenty failed.
Then the view runs on uvicorn on a loopback port, first for the heavy office alone (``single/``, an
instance of one office over the same database), then for the county, and each page is asked for
``--repeat`` times after one warm-up; the figure printed is the server's own time (the ``Server-Timing``
header), median and worst. The target is 300 ms per page (downloads are files built on demand, listed
apart).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

HEAVY_OFFICE = "基准测试单位"
COUNTY = """
[county]
name = "基准测试县"

[database]
url = "sqlite:///data/channelwatch.db"
"""
CHANNELS = """
[[channels]]
id = "website"
kind = "website"
name = "政府网站"

[[channels]]
id = "weibo"
kind = "weibo"
name = "微博"

[[channels]]
id = "wechat"
kind = "wechat"
name = "微信公众号"
"""
SHARES = {"weibo": 0.70, "wechat": 0.25, "website": 0.05}
OFFSET = timedelta(hours=8)  # Asia/Shanghai has no daylight saving time


def _office_file(name: str) -> str:
    return f'[office]\nname = "{name}"\nshort_name = "我单位"\n' + CHANNELS


def fill(root: Path, publications: int, years: int, offices: int, heavy: float, url: str | None = None) -> None:
    """A county instance of ``offices`` offices in one store, and ``single/``: the first office alone.

    The first office holds half of the publications (all of them with one office), the others share the
    rest. ``heavy`` of every channel's publications fall in last year (the year the pages are asked
    for), the rest spread over the other years: the worst case for every year-scoped query.
    """
    from channelwatch import store
    from channelwatch.instance.config import load_instance
    from channelwatch.store import open_offices
    from channelwatch.store.counts import count_deferred, defer_counts, rebuild_counts

    (root / "config" / "offices").mkdir(parents=True, exist_ok=True)
    county_config = COUNTY if url is None else COUNTY.replace("sqlite:///data/channelwatch.db", url)
    (root / "config" / "channelwatch.toml").write_text(county_config, encoding="utf-8")
    names = [HEAVY_OFFICE] + [f"基准测试第{n}单位" for n in range(1, offices)]
    for n, name in enumerate(names):
        (root / "config" / "offices" / f"o{n:03d}.toml").write_text(_office_file(name), encoding="utf-8")
    single = root / "single" / "config"
    single.mkdir(parents=True, exist_ok=True)
    database = root / "data" / "channelwatch.db"
    (single / "channelwatch.toml").write_text(
        f'[office]\nname = "{HEAVY_OFFICE}"\nshort_name = "我单位"\ntimezone = "Asia/Shanghai"\n\n'
        f'[database]\nurl = "{url or f"sqlite:///{database}"}"\n' + CHANNELS,
        encoding="utf-8",
    )
    own, stores = open_offices(load_instance(root))  # schema, offices and channels, as the CLI makes them
    channel_ids = [dict(s.channel_ids) for s in stores.values()]
    now = datetime.now(UTC) + OFFSET
    heavy_year = now.year - 1
    first_year = now.year - years + 1
    segments = [  # (start, end) in office time, and the share of a channel's rows in it
        (datetime(first_year, 1, 1), datetime(heavy_year, 1, 1)),
        (datetime(heavy_year, 1, 1), datetime(heavy_year + 1, 1, 1)),
        (datetime(now.year, 1, 1), now.replace(tzinfo=None) - timedelta(days=2)),
    ]
    other = [(b - a).total_seconds() for a, b in (segments[0], segments[2])]
    shares = [(1 - heavy) * other[0] / sum(other), heavy, (1 - heavy) * other[1] / sum(other)]
    seen = (now - OFFSET).strftime("%Y-%m-%d %H:%M:%S.000000")
    sql = (
        "INSERT INTO publication (channel_id, identity, platform_id, title, url, column_name, push_id, is_repost,"
        " published_at, local_year, local_month, local_date, title_key, first_seen, last_seen, first_run_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)"
    )

    def rows(channel_id: int, key: str, count: int) -> Iterator[tuple[object, ...]]:
        n = 0
        for (low, high), share in zip(segments, shares, strict=True):
            part = int(count * share)
            step = (high - low).total_seconds() / max(part, 1)
            for i in range(part):
                local = low + timedelta(seconds=i * step)
                utc = local - OFFSET
                title = f"{key}第{n}条：园区工作动态"
                yield (
                    channel_id,
                    f"id:{n:010d}",
                    str(n),
                    title,
                    f"https://example.gov.cn/{key}/{n}.html",
                    "园区动态" if key == "website" else None,
                    f"push{n // 4}" if key == "wechat" else None,
                    n % 10 == 0,
                    utc.strftime("%Y-%m-%d %H:%M:%S.000000"),
                    local.year,
                    local.month,
                    local.strftime("%Y-%m-%d"),
                    hashlib.blake2b(title.encode(), digest_size=8).hexdigest(),
                    seen,
                    seen,
                )
                n += 1

    started = time.perf_counter()
    done = 0
    postgres = own.engine.dialect.name == "postgresql"
    columns = sql.split("(", 1)[1].split(")", 1)[0]
    with store.write(own.engine) as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        if postgres:
            # COPY without the counting triggers, then the counts rebuilt once from the rows (store/counts.py).
            conn.exec_driver_sql("ALTER TABLE publication DISABLE TRIGGER USER")
            cursor = raw.cursor()

            def insert(batch: Iterator[tuple[object, ...]]) -> None:
                copy_sql = f"COPY publication ({columns.replace(', first_run_id', '')}) FROM STDIN"
                with cursor.copy(copy_sql) as copy:
                    for row in batch:
                        copy.write_row([f"{v}+00" if i in (8, 13, 14) else v for i, v in enumerate(row)])

        else:
            conn.exec_driver_sql("PRAGMA cache_size=-1048576")
            after = defer_counts(conn)  # counted set-based at the end, as a bulk import is

            def insert(batch: Iterator[tuple[object, ...]]) -> None:
                raw.executemany(sql, batch)

        for number, ids in enumerate(channel_ids):
            office_total = publications // 2 if offices > 1 else publications
            if number:
                office_total = (publications - publications // 2) // (offices - 1)
            for key, share in SHARES.items():
                insert(rows(ids[key], key, int(office_total * share)))
            done += office_total
            if number == 0 or number % 10 == 0 or number == offices - 1:
                print(f"  第 {number + 1} 个单位：累计 {done:,} 条，{time.perf_counter() - started:.0f} 秒", flush=True)
        print(f"  计数表（触发器维护的 publication_count）……{time.perf_counter() - started:.0f} 秒", flush=True)
        if postgres:
            rebuild_counts(conn)
            conn.exec_driver_sql("ALTER TABLE publication ENABLE TRIGGER USER")
        else:
            count_deferred(conn, after)
        marker = "%s" if postgres else "?"
        run_sql = (
            "INSERT INTO run (channel_id, kind, source, started_at, finished_at, status, rows_read, rows_new,"
            f" rows_known, rows_rejected, pages_fetched, message) VALUES ({', '.join([marker] * 6)}, 20, 2, 18, 0, 1,"
            f" {marker})"
        )
        channel_list = [cid for ids in channel_ids for cid in ids.values()]
        stamp = seen + ("+00" if postgres else "")
        (raw.cursor() if postgres else raw).executemany(
            run_sql,
            [
                (
                    channel_list[n % len(channel_list)],
                    "poll",
                    "weibo",
                    stamp,
                    stamp,
                    "failed" if n % 20 == 0 else "ok",
                    "HTTP 432：微博拒绝了没有 Cookie 的请求" if n % 20 == 0 else None,
                )
                for n in range(20_000)
            ],
        )
    with store.write(own.engine) as conn:
        conn.exec_driver_sql("ANALYZE")
    own.dispose()
    print(f"已写入 {done:,} 条发布记录，用时 {time.perf_counter() - started:.0f} 秒", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(instance_root: Path) -> tuple[object, threading.Thread, str]:
    import uvicorn

    from channelwatch import store
    from channelwatch.instance.config import load_instance
    from channelwatch.web import create_app, gate_for

    instance = load_instance(instance_root)
    # As `serve` does at start: the schema brought up to date (a store filled by an older version).
    store.ensure_schema(store.open_engine(instance.database_url, base_dir=instance.root))
    application = create_app(instance, gate_for(instance, "127.0.0.1"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def _time(client: httpx.Client, group: str, path: str, times: int) -> list[float]:
    client.get(path)  # warm-up: the first read of a cold page cache is the disk's, not the view's
    durations = []
    for _ in range(times):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        durations.append(float(response.headers["server-timing"].split("dur=")[1]))
    label = f"{group} {path}"
    print(f"{label:<66}{statistics.median(durations):>8.1f}ms{max(durations):>8.1f}ms", flush=True)
    return durations


def _last_page(client: httpx.Client, path: str) -> int:
    page = client.get(path).text
    return int(page.split("页</span>")[0].rsplit("/ ", 1)[-1]) if "页</span>" in page else 1


def measure(root: Path, repeat: int) -> None:
    """The pages of the heavy office alone (``single/``), then the county's pages over the same store."""
    year = datetime.now(UTC).year
    print(f"\n{'页面（服务器用时，Server-Timing）':<60}{'中位数':>10}{'最慢':>10}")
    worst = 0.0
    for instance_root, prefix, county in ((root / "single", "", False), (root, "/offices/o000", True)):
        server, thread, base = _serve(instance_root)
        with httpx.Client(base_url=base, timeout=600) as client:
            last = _last_page(client, f"{prefix}/channels/weibo?year={year - 1}")
            paths = [
                prefix or "/",
                f"{prefix or '/'}?year={year - 1}",
                f"{prefix}/channels/weibo?year={year - 1}",
                f"{prefix}/channels/weibo?year={year - 1}&month=6&type=repost",
                f"{prefix}/channels/weibo?year={year - 1}&page={last // 24}",  # the middle of December
                f"{prefix}/channels/weibo?year={year - 1}&page={last // 2}",
                f"{prefix}/channels/weibo?year={year - 1}&page={last}",
                f"{prefix}/channels/wechat?year={year - 1}&month=12",
                "/runs",
                "/runs?failed=1",
                "/reports",
                "/healthz",
            ]
            office = "office=o000&" if county else ""
            downloads = [
                f"/reports/summary.xlsx?{office}year={year - 1}",
                f"/reports/quarterly.xlsx?{office}year={year - 1}&quarter=4",
                f"/reports/annual.docx?{office}year={year - 1}",
            ]
            if county:
                paths = ["/", f"/?year={year - 1}", *paths, "/runs?office=o001"]
                downloads.append(f"/reports/county.xlsx?year={year - 1}&quarter=4")
            print(f"-- {'县级实例' if county else '单个单位的实例'}（{instance_root}）")
            for path in dict.fromkeys(paths):
                worst = max(worst, max(_time(client, "页面", path, repeat)))
            for path in downloads:
                _time(client, "下载", path, 1)
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=10)
    verdict = "达到" if worst < 300 else "未达到"
    print(f"\n最慢的页面 {worst:.1f} ms：{verdict}每页 300 ms 的目标")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--publications", "-n", type=int, default=10_000_000, help="发布记录条数")
    parser.add_argument("--years", type=int, default=10, help="分布在截至今年的多少年中")
    parser.add_argument("--offices", type=int, default=20, help="县级实例的单位数（第一个单位占一半发布记录）")
    parser.add_argument("--heavy", type=float, default=0.5, help="每个渠道的发布记录落在去年的比例")
    parser.add_argument("--database-url", help="写入这个空的 PostgreSQL 库（postgresql+psycopg://…），默认 SQLite")
    parser.add_argument("--fill-only", action="store_true", help="只写入（配合 --keep），不测量")
    parser.add_argument("--repeat", type=int, default=5, help="每个页面测几次")
    parser.add_argument("--keep", type=Path, help="把实例留在这个目录（以后可用 --reuse 再测）")
    parser.add_argument("--reuse", type=Path, help="直接测量此前 --keep 留下的实例")
    args = parser.parse_args()
    if args.reuse:
        measure(args.reuse, args.repeat)
        return
    root = args.keep or Path(tempfile.mkdtemp(prefix="cw-bench-web-"))
    try:
        print(f"写入 {args.publications:,} 条发布记录到 {root} …", flush=True)
        fill(root, args.publications, args.years, args.offices, args.heavy, args.database_url)
        if not args.fill_only:
            measure(root, args.repeat)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
