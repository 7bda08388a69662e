"""Web view benchmark: server time of each page over a SQLite store of N publications.

    python scripts/bench_web.py                          # 10,000,000 publications (filling takes minutes)
    python scripts/bench_web.py --publications 1000000   # a smaller store
    python scripts/bench_web.py --keep DIR               # fill DIR once, measure again later with --reuse

The store is filled by a bulk insert straight into SQLite (sorted by channel and time, so every index
grows at its end), with 3 channels (微博 70 %, 微信公众号 25 %, 网站 5 %) spread over ``--years`` years
ending this year, 10 % reposts, and 20,000 runs of which one in twenty failed. Then the view runs on
uvicorn on a loopback port and each page is asked for ``--repeat`` times after one warm-up; the figure
printed is the server's own time (the ``Server-Timing`` header), median and worst. The target is
300 ms per page (downloads are files built on demand, listed apart).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

CONFIG = """
[office]
name = "基准测试单位"
short_name = "我单位"
timezone = "Asia/Shanghai"

[database]
url = "sqlite:///data/channelwatch.db"

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


def fill(root: Path, publications: int, years: int) -> None:
    from channelwatch.instance.config import load_instance
    from channelwatch.store import open_store

    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "channelwatch.toml").write_text(CONFIG, encoding="utf-8")
    opened = open_store(load_instance(root))  # schema, office and channels, as the CLI makes them
    ids = dict(opened.channel_ids)
    opened.dispose()
    database = root / "data" / "channelwatch.db"
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1048576")
    conn.execute("BEGIN")
    now = datetime.now(UTC) + OFFSET
    first_year = now.year - years + 1
    start = datetime(first_year, 1, 1)
    span = (now.replace(tzinfo=None) - timedelta(days=2) - start).total_seconds()
    seen = (now - OFFSET).strftime("%Y-%m-%d %H:%M:%S.000000")
    sql = (
        "INSERT INTO publication (channel_id, identity, platform_id, title, url, column_name, push_id, is_repost,"
        " published_at, local_year, local_month, local_date, title_key, first_seen, last_seen, first_run_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)"
    )
    started = time.perf_counter()
    done = 0
    for key, share in SHARES.items():
        count = int(publications * share) if key != "website" else publications - done
        channel_id = ids[key]
        step = span / max(count, 1)

        def rows(count: int = count, channel_id: int = channel_id, step: float = step, key: str = key) -> object:
            for n in range(count):
                local = start + timedelta(seconds=n * step)
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

        conn.executemany(sql, rows())
        done += count
        print(f"  {key}: {count:,} 条（累计 {done:,}，{time.perf_counter() - started:.0f} 秒）", flush=True)
    run_sql = (
        "INSERT INTO run (channel_id, kind, source, started_at, finished_at, status, rows_read, rows_new,"
        " rows_known, rows_rejected, pages_fetched, message) VALUES (?, ?, ?, ?, ?, ?, 20, 2, 18, 0, 1, ?)"
    )
    channel_list = list(ids.values())
    conn.executemany(
        run_sql,
        (
            (
                channel_list[n % len(channel_list)],
                "poll",
                "weibo",
                seen,
                seen,
                "failed" if n % 20 == 0 else "ok",
                "HTTP 432：微博拒绝了没有 Cookie 的请求" if n % 20 == 0 else None,
            )
            for n in range(20_000)
        ),
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("ANALYZE")
    conn.close()
    print(f"已写入 {publications:,} 条发布记录，用时 {time.perf_counter() - started:.0f} 秒", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(root: Path, repeat: int) -> None:
    import uvicorn

    from channelwatch.instance.config import load_instance
    from channelwatch.web import create_app, gate_for

    instance = load_instance(root)
    application = create_app(instance, gate_for(instance, "127.0.0.1"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    while not server.started:
        time.sleep(0.05)
    year = datetime.now(UTC).year
    with httpx.Client(base_url=base, timeout=600) as client:
        pages = client.get(f"/channels/weibo?year={year - 1}").text
        last = pages.count("</tr>")  # only to make sure the page rendered
        listing_pages = int(pages.split("页</span>")[0].rsplit("/ ", 1)[-1]) if "页</span>" in pages else 1
        paths = [
            "/",
            f"/?year={year - 1}",
            f"/channels/weibo?year={year - 1}",
            f"/channels/weibo?year={year - 1}&month=6&type=repost",
            f"/channels/weibo?year={year - 1}&page={listing_pages}",
            f"/channels/wechat?year={year - 1}&month=12",
            "/runs",
            "/runs?failed=1",
            "/reports",
            "/healthz",
        ]
        downloads = [
            f"/reports/summary.xlsx?year={year - 1}",
            f"/reports/quarterly.xlsx?year={year - 1}&quarter=4",
            f"/reports/annual.docx?year={year - 1}",
        ]
        print(f"\n{'页面':<58}{'中位数':>10}{'最慢':>10}")
        worst = 0.0
        for group, entries, times in (("页面", paths, repeat), ("下载", downloads, 1)):
            for path in entries:
                client.get(path)  # warm-up: the first read of a cold page cache is the disk's, not the view's
                durations = []
                for _ in range(times):
                    response = client.get(path)
                    assert response.status_code == 200, (path, response.status_code)
                    timing = response.headers["server-timing"]
                    durations.append(float(timing.split("dur=")[1]))
                if group == "页面":
                    worst = max(worst, max(durations))
                label = f"{group} {path}"
                print(f"{label:<58}{statistics.median(durations):>8.1f}ms{max(durations):>8.1f}ms", flush=True)
        assert last > 0
    server.should_exit = True
    thread.join(timeout=10)
    verdict = "达到" if worst < 300 else "未达到"
    print(f"\n最慢的页面 {worst:.1f} ms：{verdict}每页 300 ms 的目标")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--publications", "-n", type=int, default=10_000_000, help="发布记录条数")
    parser.add_argument("--years", type=int, default=10, help="分布在截至今年的多少年中")
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
        fill(root, args.publications, args.years)
        measure(root, args.repeat)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
