"""Many government sites on loopback: one address per site (each its own host), each a list page of dated links.

A poll of hundreds of channels is split over processes by host (``ingest/shares.py``); these tests need
that many hosts. The server runs on an event loop in a thread of the test process, which serves the
polls' separate processes over real sockets. ``hold`` keeps every answer back until it is cleared.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import TracebackType

ENTRIES = 3


def page(site: int) -> bytes:
    items = "".join(
        f'<li><a href="./202006/t202006{day:02d}_{site}.html">第{site}号网站第{day}条通知</a>'
        f"<span>2020-06-{day:02d}</span></li>"
        for day in range(1, ENTRIES + 1)
    )
    head = '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
    return f'{head}<body><ul class="list">{items}</ul></body></html>'.encode()


class ManySites:
    def __init__(self, count: int) -> None:
        self.count = count
        self.sites: list[str] = []  # "address:port" of each site, on 127.1.0.1, 127.1.0.2, …
        self.hits = 0
        self.hold = threading.Event()  # set: answers wait until it is cleared
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="many-sites", daemon=True)

    async def _before_answer(self, site: int) -> None:
        """What happens between a request and its answer: here, ``hold``."""
        while self.hold.is_set():
            await asyncio.sleep(0.05)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address, port = writer.get_extra_info("sockname")[:2]
        site = self.sites.index(f"{address}:{port}")
        body = page(site)
        head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.hits += 1
                await self._before_answer(site)
                writer.write(head.encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _start(self) -> list[asyncio.Server]:
        # Linux answers on all of 127.0.0.0/8: an address per site makes each its own host.
        return [
            await asyncio.start_server(self._handle, f"127.1.{n // 250}.{n % 250 + 1}", 0, backlog=128)
            for n in range(self.count)
        ]

    def __enter__(self) -> ManySites:
        self._thread.start()
        self._servers = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        self.sites = ["{}:{}".format(*s.sockets[0].getsockname()[:2]) for s in self._servers]
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.hold.clear()

        async def close() -> None:
            for server in self._servers:
                server.close()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def channels(self, numbers: list[int] | None = None) -> str:
        """``[[channels]]`` tables for these sites (default: all), ids ``s<number>``."""
        return "".join(
            f'\n[[channels]]\nid = "s{n}"\nkind = "website"\nname = "网站{n}"\n'
            f'  [channels.poll]\n  type = "html-list"\n  url = "http://{self.sites[n]}/xxgk/index.html"\n'
            '  item = "ul.list li"\n  max_pages = 1\n  min_interval = "0s"\n'
            for n in (range(self.count) if numbers is None else numbers)
        )

    def office(self, root: Path) -> Path:
        """A single-office instance polling every site, on SQLite."""
        (root / "config").mkdir(parents=True)
        (root / "config" / "channelwatch.toml").write_text(
            '[office]\nname = "测试单位"\nshort_name = "本单位"\n\n[database]\nurl = "sqlite:///data/channelwatch.db"\n'
            + self.channels(),
            encoding="utf-8",
        )
        return root

    def county(self, root: Path, offices: int) -> Path:
        """A county instance of ``offices`` offices sharing the sites, on SQLite."""
        (root / "config" / "offices").mkdir(parents=True)
        (root / "config" / "channelwatch.toml").write_text(
            '[county]\nname = "测试县"\n\n[database]\nurl = "sqlite:///data/channelwatch.db"\n', encoding="utf-8"
        )
        for office in range(offices):
            (root / "config" / "offices" / f"o{office}.toml").write_text(
                f'[office]\nname = "测试县第{office}单位"\n' + self.channels(list(range(office, self.count, offices))),
                encoding="utf-8",
            )
        return root
