"""A poll's ``concurrency`` counts requests on the wire (sources.http.RequestSlots), and the time a channel
queues for a place is not counted against its own ``timeout``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from channelwatch import store
from channelwatch.ingest.poll import poll_channels
from channelwatch.instance.config import load_instance
from tests.ingest.manysites import ManySites


class SlowSites(ManySites):
    """Loopback sites that answer after ``delays[n]`` seconds, counting the requests open at once."""

    def __init__(self, delays: list[float]) -> None:
        super().__init__(len(delays))
        self.delays = delays
        self.in_flight = 0
        self.most_in_flight = 0
        self.arrived: dict[int, float] = {}  # site → when its last request came (monotonic)
        self.arrivals: list[tuple[int, float]] = []  # every request: (site, when)

    async def _before_answer(self, site: int) -> None:
        self.arrived[site] = time.monotonic()
        self.arrivals.append((site, self.arrived[site]))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delays[site])
        finally:
            self.in_flight -= 1


def _office(root: Path, sites: SlowSites, timeouts: list[str], extra: str = "") -> store.Store:
    """An office with a channel for each site given a timeout, then ``extra`` channels."""
    (root / "config").mkdir(parents=True)
    channels = sites.channels(list(range(len(timeouts))))
    for number, timeout in enumerate(timeouts):
        mark = f'url = "http://{sites.sites[number]}/xxgk/index.html"\n'
        channels = channels.replace(mark, f'{mark}  timeout = "{timeout}"\n')
    channels += extra
    (root / "config" / "channelwatch.toml").write_text(
        '[office]\nname = "测试单位"\nshort_name = "本单位"\n\n[database]\nurl = "sqlite:///data/channelwatch.db"\n'
        + channels,
        encoding="utf-8",
    )
    return store.open_store(load_instance(root))


def test_concurrency_counts_the_requests_on_the_wire(tmp_path: Path) -> None:
    sites = SlowSites([0.2] * 8)
    with sites:
        opened = _office(tmp_path, sites, ["30s"] * 8)
        try:
            results = poll_channels(opened, concurrency=3)
        finally:
            opened.dispose()
    assert [r.status for r in results] == ["ok"] * 8
    assert sites.most_in_flight == 3  # never more than asked, and the places are used


def test_queueing_for_a_place_is_not_the_channels_own_time(tmp_path: Path) -> None:
    # One request at a time. Two slow sites take the place for 0.8 s each; the third channel (timeout
    # 0.3 s) queues about 0.8 s behind the second before it asks anything, then is answered at once. The
    # fourth is itself slower than its 0.3 s: it still fails as overdue.
    sites = SlowSites([0.8, 0.8, 0.0, 0.8])
    with sites:
        opened = _office(tmp_path, sites, ["30s", "30s", "300ms", "300ms"])
        try:
            results = poll_channels(opened, concurrency=1)
        finally:
            opened.dispose()
    assert [r.status for r in results] == ["ok", "ok", "ok", "failed"]
    assert sites.arrived[2] - min(sites.arrived[0], sites.arrived[1]) >= 0.75  # it did queue for its place
    assert "抓取超过时限 0.3 秒" in (results[3].message or "")
    assert sites.most_in_flight == 1


def _channel(key: str, site: str, path: str, timeout: str, interval: str = "0s") -> str:
    """A channel on ``site`` (another column of the same host when ``path`` differs)."""
    return (
        f'\n[[channels]]\nid = "{key}"\nkind = "website"\nname = "网站{key}"\n'
        f'  [channels.poll]\n  type = "html-list"\n  url = "http://{site}/{path}/index.html"\n'
        f'  item = "ul.list li"\n  max_pages = 1\n  min_interval = "{interval}"\n  timeout = "{timeout}"\n'
    )


def test_a_place_comes_before_the_hosts_turn_and_its_pacing(tmp_path: Path) -> None:
    # Two slow sites hold both places for 1 s. Two more channels share the third site's host, one request
    # at a time (per_host 1) and 0.5 s apart: waiting for a place they hold no turn of their host (else the
    # second would spend its 0.5 s timeout behind the first's queueing), and their interval runs from when
    # they really leave (else both would go out together once places are free).
    from channelwatch.sources.http import HttpSettings

    sites = SlowSites([1.0, 1.0, 0.0])
    with sites:
        same = sites.sites[2]
        extra = _channel("h1", same, "a", "1s", "500ms") + _channel("h2", same, "b", "1s", "500ms")
        opened = _office(tmp_path, sites, ["30s", "30s"], extra)
        try:
            results = poll_channels(opened, concurrency=2, settings=HttpSettings(per_host=1))
        finally:
            opened.dispose()
    assert [(r.channel, r.status) for r in results] == [(c, "ok") for c in ("s0", "s1", "h1", "h2")]
    first, second = sorted(t for site, t in sites.arrivals if site == 2)
    assert second - first >= 0.45
    assert sites.most_in_flight == 2
