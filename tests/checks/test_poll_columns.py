"""Polling a website's columns and homepage: counted once across columns, tolerant of what the checks judge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from channelwatch import store
from channelwatch.cli import app
from channelwatch.instance.config import load_instance
from channelwatch.store import open_store
from channelwatch.store.checkstate import PageObservation
from channelwatch.store.models import Publication
from tests.checks.site import Column, Entry, InspectionSite
from tests.conftest import write_instance

TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()


def cli(root: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--instance", str(root), *args])


@pytest.fixture
def site() -> Iterator[InspectionSite]:
    running = InspectionSite().start()
    yield running
    running.stop()


def _instance(tmp_path: Path, site: InspectionSite, *, main_list: bool) -> Path:
    # Without a main list, the poll table names no type either: a website's columns are HTML lists.
    main = f'  type = "html-list"\n  url = "{site.column_url("gzdt")}"\n' if main_list else ""
    extra = f"""
[[channels]]
id = "site"
kind = "website"
name = "县政府网站"
  [channels.poll]
{main}  homepage = "{site.homepage}"
  item = "ul.list li"
  date = "span"
  min_interval = "0s"
  [[channels.columns]]
  name = "工作动态"
  url = "{site.column_url("gzdt")}"
  [[channels.columns]]
  name = "要闻"
  url = "{site.column_url("yw")}"
  [[channels.columns]]
  name = "已下线栏目"
  url = "{site.base}/site/missing/index.html"
  class = "notice"
"""
    return write_instance(tmp_path / "inst", extra=extra)


def _count(root: Path) -> int:
    opened = open_store(load_instance(root))
    with store.read(opened.engine) as conn:
        found = conn.execute(
            select(func.count()).where(Publication.channel_id == opened.channel_id("site"))  # type: ignore[arg-type]
        ).scalar_one()
    opened.dispose()
    return int(found)


def test_an_article_in_the_main_list_and_two_columns_counts_once(tmp_path: Path, site: InspectionSite) -> None:
    shared = Entry("共同的文章", "art/shared.html", TODAY - timedelta(days=2))
    site.columns["gzdt"] = Column("gzdt", [shared, Entry("动态", "art/a.html", TODAY - timedelta(days=4))])
    site.columns["yw"] = Column("yw", [shared])
    root = _instance(tmp_path, site, main_list=True)
    result = cli(root, "poll")
    assert result.exit_code == 0, result.output
    assert _count(root) == 2
    assert cli(root, "poll").exit_code == 0
    assert _count(root) == 2
    opened = open_store(load_instance(root))
    with store.read(opened.engine) as conn:
        reads = conn.execute(select(func.count()).select_from(PageObservation)).scalar_one()
    opened.dispose()
    assert reads == 4  # homepage and three columns: a day keeps the latest read of each page only

    report = json.loads(cli(root, "inspect", "--format", "json").output)
    columns = {c["name"]: c for c in report["columns"]}
    assert (columns["工作动态"]["items"], columns["工作动态"]["age_days"], columns["工作动态"]["status"]) == (
        2,
        2,
        "ok",
    )
    assert (columns["要闻"]["items"], columns["要闻"]["age_days"]) == (1, 2)
    # A column page that no longer opens is what an inspector sees as an empty column.
    assert (columns["已下线栏目"]["items"], columns["已下线栏目"]["status"]) == (0, "blank")
    # A homepage of navigation only (no dates, no article links) is judged by its columns.
    assert report["homepages"][0]["age_days"] == 2
    assert "homepage_stale" not in {f["rule"] for f in report["findings"]}
    text = cli(root, "inspect").output
    assert "已下线栏目" in text and "HTTP 404" in text


def test_a_column_that_empties_is_blank_not_a_failed_poll(tmp_path: Path, site: InspectionSite) -> None:
    site.columns["gzdt"] = Column("gzdt", [Entry("动态", "art/a.html", TODAY - timedelta(days=1))])
    site.columns["yw"] = Column("yw", [Entry("要闻", "art/b.html", TODAY - timedelta(days=1))])
    root = _instance(tmp_path, site, main_list=False)
    assert cli(root, "poll").exit_code == 0
    site.columns["yw"].entries.clear()
    second = cli(root, "poll")
    assert second.exit_code == 0, second.output
    runs = json.loads(cli(root, "runs", "--format", "json").output)
    assert [r["status"] for r in runs][:2] == ["ok", "ok"]
    report = json.loads(cli(root, "inspect", "--format", "json").output)
    assert {c["name"]: c["status"] for c in report["columns"]} == {
        "工作动态": "ok",
        "要闻": "blank",
        "已下线栏目": "blank",
    }
    assert _count(root) == 2  # what was published stays counted

    # A column page that fails once (404 now) is still judged by the day's good read.
    del site.columns["gzdt"]
    assert cli(root, "poll").exit_code == 0
    report = json.loads(cli(root, "inspect", "--format", "json").output)
    assert {c["name"]: c["status"] for c in report["columns"]}["工作动态"] == "ok"


@pytest.mark.parametrize(("concurrency", "interval"), [(3, 0.0), (4, 0.15)])
def test_link_check_is_bounded_and_paced(
    tmp_path: Path, site: InspectionSite, concurrency: int, interval: float
) -> None:
    from channelwatch.checks.linkcheck import check_links

    site.columns["gzdt"] = Column(
        "gzdt", [Entry(f"文章{n}", f"art/{n}.html", TODAY - timedelta(days=1)) for n in range(12)]
    )
    site.columns["yw"] = Column("yw", [])
    root = _instance(tmp_path, site, main_list=False)
    config = root / "config" / "channelwatch.toml"
    text = config.read_text(encoding="utf-8").replace('min_interval = "0s"', f'min_interval = "{interval}s"')
    config.write_text(text + f"\n[inspection]\nlink_concurrency = {concurrency}\n", encoding="utf-8")
    assert cli(root, "poll").exit_code == 0
    site.article_delay = 0.2
    site.max_in_flight = 0
    mark = len(site.started)
    opened = open_store(load_instance(root))
    outcomes = check_links(opened)
    opened.dispose()
    assert [(o.channel, len(o.dead)) for o in outcomes] == [("site", 0)]
    articles = [t for t, path in site.started[mark:] if path.startswith("/site/art/")]
    assert len(articles) == 12  # HEAD answered: no GET
    assert 2 <= site.max_in_flight <= concurrency
    if interval:
        # Starts are reserved min_interval apart; arrival times jitter a little, the span cannot shrink.
        # Unpaced, twelve 0.2 s requests four at a time span about 0.6 s.
        assert articles[-1] - articles[0] >= (len(articles) - 1) * interval * 0.95


def test_many_column_entries_do_not_set_off_the_main_lists_layout_alarm(tmp_path: Path, site: InspectionSite) -> None:
    # The main list shows 2 entries a page; the columns 10 each. The alarm compares the main list's
    # first page with what the main list (not the columns) read last time.
    site.columns["gzdt"] = Column(
        "gzdt", [Entry(f"动态{n}", f"art/g{n}.html", TODAY - timedelta(days=n)) for n in range(2)]
    )
    site.columns["yw"] = Column(
        "yw", [Entry(f"要闻{n}", f"art/y{n}.html", TODAY - timedelta(days=n)) for n in range(10)]
    )
    root = _instance(tmp_path, site, main_list=True)
    assert cli(root, "poll").exit_code == 0
    again = cli(root, "poll")
    assert again.exit_code == 0, again.output
    runs = json.loads(cli(root, "runs", "--format", "json").output)
    assert [r["status"] for r in runs][:2] == ["ok", "ok"], runs[:2]
    assert _count(root) == 12
