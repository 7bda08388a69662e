"""A government website on loopback for the inspection checks: a homepage, columns, dead and slow links.

``InspectionSite`` serves, on ``127.0.0.1`` and a free port, in a background thread:

* ``/site/index.html`` — the homepage: dated entries (``<li><a>…</a><span>YYYY-MM-DD</span></li>``),
  links to the columns and to the test links below;
* ``/site/<column>/index.html`` — one TRS-style list page per column (``ul.list li`` with a link and a
  ``<span>`` date, or no date at all), first page only;
* articles under ``/site/art/…`` (200, also to ``HEAD``);
* ``/site/gone.html`` 404, ``/site/secret.html`` 403, ``/site/removed.html`` 410, ``/site/error.html``
  500 — always; ``/site/slow.html`` answers after ``slow_seconds``; ``/site/flaky.html`` answers 503 to
  its first ``flaky_failures`` requests, then 200.

The homepage fails on demand: ``fail_next_homepage(n, mode)`` makes the next ``n`` homepage requests
answer 500 (``mode="500"``) or only after ``slow_seconds`` (``mode="slow"``). Every request is counted
in ``hits`` (path → number).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.conftest import _free_port


@dataclass
class Entry:
    title: str
    path: str  # under /site/
    shown: date | None  # None: the list shows no date


@dataclass
class Column:
    slug: str
    entries: list[Entry] = field(default_factory=list)


class InspectionSite:
    def __init__(self) -> None:
        self.port = _free_port()
        self.columns: dict[str, Column] = {}
        self.homepage_entries: list[Entry] = []
        self.homepage_links: list[str] = []  # further absolute or /site/-relative links on the homepage
        self.slow_seconds = 1.5
        self.flaky_failures = 2
        self.hits: Counter[str] = Counter()
        self.article_delay = 0.0  # seconds every article takes to answer
        self.in_flight = 0
        self.max_in_flight = 0
        self.started: list[tuple[float, str]] = []  # (monotonic time, path) of every request
        self._homepage_failures: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def homepage(self) -> str:
        return f"{self.base}/site/index.html"

    def column_url(self, slug: str) -> str:
        return f"{self.base}/site/{slug}/index.html"

    def fail_next_homepage(self, count: int, mode: str = "500") -> None:
        with self._lock:
            self._homepage_failures.extend([mode] * count)

    # --- pages ----------------------------------------------------------------------------------------

    def _homepage_html(self) -> str:
        items = "".join(
            f'<li><a href="/site/{e.path}">{e.title}</a><span>{e.shown.isoformat() if e.shown else ""}</span></li>'
            for e in self.homepage_entries
        )
        nav = "".join(f'<a href="/site/{slug}/index.html">{slug}</a>' for slug in self.columns)
        extra = "".join(f'<a href="{link}">链接</a>' for link in self.homepage_links)
        return (
            '<html><head><meta charset="utf-8"><title>首页</title></head><body>'
            f'<div class="nav">{nav}</div><ul class="news">{items}</ul><div class="links">{extra}</div>'
            '<div class="footer">版权所有 某县人民政府 网站标识码 6404000001</div></body></html>'
        )

    def _column_html(self, column: Column) -> str:
        items = "".join(
            f'<li><a href="/site/{e.path}">{e.title}</a>'
            + (f"<span>{e.shown.isoformat()}</span>" if e.shown else "")
            + "</li>"
            for e in column.entries
        )
        return (
            '<html><head><meta charset="utf-8"><title>栏目</title></head><body>'
            f'<a href="/site/index.html">首页</a><ul class="list">{items}</ul></body></html>'
        )

    def answer(self, path: str) -> tuple[int, str, float]:
        """(status, body, delay) for a path."""
        with self._lock:
            self.hits[path] += 1
            hits = self.hits[path]
            failure = self._homepage_failures.pop(0) if path == "/site/index.html" and self._homepage_failures else None
        if path == "/site/index.html":
            if failure == "500":
                return 500, "error", 0.0
            if failure == "slow":
                return 200, self._homepage_html(), self.slow_seconds
            return 200, self._homepage_html(), 0.0
        fixed = {"/site/gone.html": 404, "/site/secret.html": 403, "/site/removed.html": 410, "/site/error.html": 500}
        if path in fixed:
            return fixed[path], "no", 0.0
        if path == "/site/slow.html":
            return 200, "<html><body>slow</body></html>", self.slow_seconds
        if path == "/site/flaky.html":
            return (503, "busy", 0.0) if hits <= self.flaky_failures else (200, "<html><body>ok</body></html>", 0.0)
        for column in self.columns.values():
            if path == f"/site/{column.slug}/index.html":
                return 200, self._column_html(column), 0.0
        if path.startswith("/site/art/"):
            return 200, "<html><body>article</body></html>", self.article_delay
        return 404, "not found", 0.0

    # --- server ---------------------------------------------------------------------------------------

    def start(self) -> InspectionSite:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, body_wanted: bool) -> None:
                path = self.path.split("?")[0]
                with site._lock:
                    site.started.append((time.monotonic(), path))
                    site.in_flight += 1
                    site.max_in_flight = max(site.max_in_flight, site.in_flight)
                answered = [False]

                def answering() -> None:
                    # Out of flight before the answer leaves: a client that has it may ask again at once,
                    # before this thread would otherwise get to count it done.
                    if not answered[0]:
                        answered[0] = True
                        with site._lock:
                            site.in_flight -= 1

                try:
                    self._answer(path, body_wanted, answering)
                finally:
                    answering()

            def _answer(self, path: str, body_wanted: bool, answering: Any) -> None:
                status, body, delay = site.answer(path)
                if delay:
                    time.sleep(delay)
                content = body.encode("utf-8")
                answering()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    if body_wanted:
                        self.wfile.write(content)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its time limit): that is the point of a slow page

            def do_GET(self) -> None:
                self._reply(True)

            def do_HEAD(self) -> None:
                self._reply(False)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
