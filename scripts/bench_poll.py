"""Benchmark: 1,000 website channels polled by one ``poll`` against a loopback server.

The server runs in its own process (so it does not share the GIL with the poller), listens on one
loopback address per channel (127.1.0.1, 127.1.0.2, …: each channel is its own host, as real channels
are), and answers every list page after 50 ms. The poll goes through the same library call as
``channelwatch poll``, into a SQLite store in a temporary instance. Printed: wall time, the ideal
(channels × 50 ms ÷ concurrency), their ratio, the poller's CPU per channel page, and the counts.
Target: ≤ 1.5 × the ideal.

``--offices N`` polls the channels as a county instance of N offices instead (``--channels`` in all,
spread evenly), through the library call of ``channelwatch county poll`` (``poll_offices``: one event
loop, one HTTP client, one store thread for every office). ``--concurrency`` is then per office, as
``county poll --concurrency`` is, so the ideal counts every office's channels at once.
``--database-url`` stores into that database (PostgreSQL) instead of a new SQLite file.

    .venv/bin/python scripts/bench_poll.py [--channels 1000] [--concurrency 100] [--delay 0.05]
    .venv/bin/python scripts/bench_poll.py --channels 300 --offices 100
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import math
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

ENTRIES_PER_PAGE = 10


def _page(site: int) -> bytes:
    items = "".join(
        f'<li><a href="./202006/t202006{day:02d}_{site}{day}.html">第{site}号渠道第{day}条通知</a>'
        f"<span>2020-06-{day:02d}</span></li>"
        for day in range(1, ENTRIES_PER_PAGE + 1)
    )
    head = '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
    return f'{head}<body><ul class="list">{items}</ul></body></html>'.encode()


def site_address(number: int) -> str:
    """The loopback address of the ``number``-th site: 127.1.0.1, 127.1.0.2, …"""
    return f"127.1.{number // 250}.{number % 250 + 1}"


def _serve(count: int, delay: float, conn: Connection) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address, port = writer.get_extra_info("sockname")[:2]
        body = _page(sites[f"{address}:{port}"])
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                if not request:
                    break
                await asyncio.sleep(delay)
                writer.write(head + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    sites: dict[str, int] = {}

    async def main() -> None:
        # Each site on an address of its own (Linux answers on all of 127.0.0.0/8): its own host, as real
        # channels are, so that a large poll splits them over processes by host (ingest/shares.py).
        servers = [await asyncio.start_server(handle, site_address(n), 0, backlog=64) for n in range(count)]
        for number, server in enumerate(servers):
            address, port = server.sockets[0].getsockname()[:2]
            sites[f"{address}:{port}"] = number
        conn.send(list(sites))
        while await asyncio.get_running_loop().run_in_executor(None, conn.recv) == "cpu":  # until told to stop
            conn.send(time.process_time())

    # The server stands in for a thousand remote sites, whose work is not this machine's: on uvloop it takes
    # the least of the two cores the poll itself runs on. Its CPU is printed beside the poll's.
    from channelwatch import eventloop

    eventloop.run(main())


def _cpu() -> float:
    """CPU of this process and of its ended children: a large poll's shares are forked processes
    (ingest/shares.py), joined before the poll returns. The loopback server is still running, so not counted."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _config(sites: list[str], db: Path) -> str:
    parts = [
        '[office]\nname = "基准测试单位"\nshort_name = "本单位"\ntimezone = "Asia/Shanghai"\n\n'
        f'[database]\nurl = "sqlite:///{db}"\n'
    ]
    for index, site in enumerate(sites):
        parts.append(
            f'\n[[channels]]\nid = "site{index:04d}"\nkind = "website"\nname = "网站{index}"\n'
            f'  [channels.poll]\n  type = "html-list"\n  url = "http://{site}/xxgk/index.html"\n'
            '  item = "ul.list li"\n  max_pages = 1\n  min_interval = "10ms"\n'
        )
    return "".join(parts)


def _county(root: Path, sites: list[str], offices: int, url: str) -> None:
    """A county instance: ``offices`` office files sharing the sites (channels) evenly."""
    (root / "config" / "offices").mkdir(parents=True)
    (root / "config" / "channelwatch.toml").write_text(
        f'[county]\nname = "基准县"\n\n[database]\nurl = "{url}"\n', encoding="utf-8"
    )
    for office in range(offices):
        mine = sites[office::offices]
        body = [f'[office]\nname = "基准县第{office:03d}单位"\n']
        for index, site in enumerate(mine):
            body.append(
                f'\n[[channels]]\nid = "site{index}"\nkind = "website"\nname = "网站{index}"\n'
                f'  [channels.poll]\n  type = "html-list"\n  url = "http://{site}/xxgk/index.html"\n'
                '  item = "ul.list li"\n  max_pages = 1\n  min_interval = "10ms"\n'
            )
        (root / "config" / "offices" / f"o{office:03d}.toml").write_text("".join(body), encoding="utf-8")


def main(argv: list[str] | None = None, figures: dict[str, float] | None = None) -> int:
    """Run the benchmark and print it; ``figures`` (when given) receives wall, ideal, cpu_per_page and repeat."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--delay", type=float, default=0.05, help="server answer time per page, seconds")
    parser.add_argument("--offices", type=int, default=0, help="poll as a county of this many offices")
    parser.add_argument("--database-url", default=None, help="store here instead of a new SQLite file")
    parser.add_argument(
        "--processes", type=int, default=None, help="at most this many poll processes (default: one per core, up to 4)"
    )
    args = parser.parse_args(argv)
    if args.processes is not None:
        os.environ["CHANNELWATCH_POLL_PROCESSES"] = str(args.processes)

    from channelwatch import store
    from channelwatch.county.poll_all import poll_offices
    from channelwatch.ingest.poll import PollResult, poll_channels
    from channelwatch.instance.config import load_instance

    # Imported before the clock starts: a process's first poll imports httpx, h11 and the HTML parser
    # (about 0.3 s), which is start-up (``benchmark.py help``), not a cost of each page.
    importlib.import_module("channelwatch.sources.website")
    importlib.import_module("channelwatch.sources.wire")
    importlib.import_module("selectolax.lexbor")

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(args.channels, args.delay, child), daemon=True)
    server.start()
    ports: list[str] = parent.recv()  # "address:port" of each site
    try:
        with tempfile.TemporaryDirectory(prefix="cw-bench-poll-") as folder:
            root = Path(folder)
            (root / "config").mkdir()
            url = args.database_url or f"sqlite:///{root / 'bench.db'}"
            if args.offices:
                _county(root, ports, args.offices, url)
                _own, stores = store.open_offices(load_instance(root))

                def poll() -> list[PollResult]:
                    found = poll_offices(stores, concurrency=args.concurrency)
                    return [r for results in found.values() for r in results]

                engine = _own.engine
            else:
                config = _config(ports, root / "bench.db").replace(f"sqlite:///{root / 'bench.db'}", url)
                (root / "config" / "channelwatch.toml").write_text(config, encoding="utf-8")
                opened = store.open_store(load_instance(root))

                def poll() -> list[PollResult]:
                    return poll_channels(opened, concurrency=args.concurrency)

                engine = opened.engine
            parent.send("cpu")
            server_cpu = parent.recv()
            started, cpu_started = time.perf_counter(), _cpu()
            results = poll()
            wall, cpu = time.perf_counter() - started, _cpu() - cpu_started
            parent.send("cpu")
            server_cpu = parent.recv() - server_cpu
            again_started = time.perf_counter()
            again = poll()
            again_wall = time.perf_counter() - again_started
            engine.dispose()
            # The same repeat poll as the command a county (or an office) runs: a whole process.
            command = [sys.executable, "-m", "channelwatch", *(["county", "poll"] if args.offices else ["poll"])]
            process_started = time.perf_counter()
            done = subprocess.run(
                [*command, "--concurrency", str(args.concurrency)],
                capture_output=True,
                text=True,
                env=dict(os.environ, CHANNELWATCH_INSTANCE=str(root)),
            )
            process_wall = time.perf_counter() - process_started
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
    finally:
        parent.send("stop")
        server.join(timeout=5)
        if server.is_alive():
            server.terminate()
    from channelwatch.ingest.shares import processes_for

    processes = processes_for(args.channels, args.concurrency)
    if args.offices:
        per_office = math.ceil(args.channels / args.offices)
        at_once = args.offices * min(per_office, args.concurrency)
        shape = f"{args.channels} channels of {args.offices} offices, concurrency {args.concurrency} per office"
    else:
        at_once = min(args.channels, args.concurrency)
        shape = f"{args.channels} channels of one office, concurrency {args.concurrency}"
    ideal = math.ceil(args.channels / at_once) * args.delay
    ok = sum(r.status == "ok" for r in results)
    new = sum(r.new for r in results)
    load = os.getloadavg()
    print(f"poll:         {shape} ({'SQLite' if args.database_url is None else 'given database'})")
    print(f"server:       one loopback port per channel, {args.delay * 1000:.0f} ms per page")
    print(f"machine:      {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"processes:    {processes} (ingest/shares.py: split by host; CHANNELWATCH_POLL_PROCESSES or --processes)")
    print(f"wall time:    {wall:.2f} s")
    print(f"ideal:        {ideal:.2f} s  ({args.channels} pages, {at_once} at a time, {args.delay * 1000:.0f} ms each)")
    print(f"ratio:        {wall / ideal:.2f} (target ≤ 1.5)")
    pages = sum(r.pages for r in results) or 1
    per_page = f"{cpu / pages * 1000:.2f} ms per channel page"
    print(f"CPU:          {cpu:.2f} s = {per_page} (fetch, parse, store; every process of the poll)")
    print(f"server CPU:   {server_cpu:.2f} s during the poll (the loopback sites, on the same two cores)")
    print(f"channels ok:  {ok}/{len(results)}; publications new: {new} (expected {args.channels * ENTRIES_PER_PAGE})")
    print(f"repeat poll:  {again_wall:.2f} s, new: {sum(r.new for r in again)}")
    print(f"as a process: {process_wall:.2f} s for `{' '.join(command[2:])}` (the repeat poll with start-up)")
    print(f"target:       ≤ 1.5 × ideal — {'met' if wall <= 1.5 * ideal else 'NOT met'}")
    if figures is not None:
        figures.update(wall=wall, ideal=ideal, cpu_per_page=cpu / pages, repeat=again_wall, processes=processes)
    failed = [r for r in results if r.status != "ok"]
    for result in failed[:5]:
        print(f"  failed {result.channel}: {result.message}", file=sys.stderr)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
