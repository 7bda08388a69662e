"""End to end: a loopback website whose columns, dates, dead links and outages are known.

poll → probe (a known share fails) → link-check → ``inspect --format json --as-of …`` must give exactly
the statuses, counts and verdicts the site was built for; the ``inspect`` job mails ``warn_to`` once
per new finding (loopback SMTP), never the county's recipients; ``jobs`` shows the last verdict.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from typer.testing import CliRunner

from channelwatch import store
from channelwatch.cli import app
from channelwatch.daemon.actions import execute
from channelwatch.daemon.jobs import load_jobs
from channelwatch.instance.config import load_instance
from channelwatch.store import open_store
from channelwatch.store.models import Publication
from tests.checks.site import Column, Entry, InspectionSite
from tests.conftest import _free_port
from tests.delivery.test_send import SmtpServer, start_smtp

ZONE = ZoneInfo("Asia/Shanghai")
TODAY = datetime.now(ZONE).date()

# slug, name, class, max_age, entries as (days ago or None for no date, article path)
COLUMNS: list[tuple[str, str, str, str | None, list[tuple[int | None, str]]]] = [
    ("gzdt", "工作动态", "dynamic", None, [(3, "art/gzdt1.html"), (8, "art/gzdt2.html")]),
    ("yw", "要闻", "dynamic", None, [(12, "art/yw1.html")]),
    ("bmdt", "部门动态", "dynamic", None, [(20, "art/bmdt1.html")]),
    ("xzdt", "乡镇动态", "dynamic", None, [(30, "art/xzdt1.html"), (45, "art/xzdt2.html")]),
    ("tzgg", "通知公告", "notice", None, [(200, "art/tzgg1.html"), (250, "secret.html"), (260, "removed.html")]),
    ("zcwj", "政策文件", "notice", None, [(60, "art/zcwj1.html")]),
    ("rsxx", "人事信息", "plan", None, [(400, "art/rsxx1.html"), (410, "error.html")]),
    ("ghjh", "规划计划", "plan", None, [(100, "art/ghjh1.html"), (60, "art/zcwj1.html")]),  # one article, 2 columns
    ("jgzn", "机构职能", "static", None, [(900, "art/jgzn1.html")]),
    ("kb1", "空白栏目一", "dynamic", None, []),
    ("kb2", "空白栏目二", "notice", None, []),
    ("wrq", "无日期栏目", "dynamic", None, [(None, "art/wrq1.html"), (None, "art/wrq2.html")]),
    ("yjzj", "意见征集", "notice", "30d", [(35, "art/yjzj1.html")]),
]
# name → (items, undated, days since the newest dated entry, limit days, status)
EXPECTED_COLUMNS = {
    "工作动态": (2, 0, 3, 14, "ok"),
    "要闻": (1, 0, 12, 14, "warning"),
    "部门动态": (1, 0, 20, 14, "stale"),
    "乡镇动态": (2, 0, 30, 14, "stale"),
    "通知公告": (3, 0, 200, 180, "stale"),
    "政策文件": (1, 0, 60, 180, "ok"),
    "人事信息": (2, 0, 400, 365, "stale"),
    "规划计划": (2, 0, 60, 365, "ok"),
    "机构职能": (1, 0, 900, None, "ok"),
    "空白栏目一": (0, 0, None, 14, "blank"),
    "空白栏目二": (0, 0, None, 180, "blank"),
    "无日期栏目": (2, 2, None, 14, "stale"),
    "意见征集": (1, 0, 35, 30, "stale"),
}
DISTINCT_DATED_ARTICLES = 15  # dated entries of all columns, the article listed in two columns once
WEIBO_POSTS = [(5, False), (25, True), (60, False), (61, True), (100, False)]
WECHAT_POSTS = [(12, False), (40, False)]
PROBES, FAILED_PROBES = 40, 2


def _build_site(site: InspectionSite, other: InspectionSite) -> None:
    for slug, _name, _cls, _max_age, entries in COLUMNS:
        site.columns[slug] = Column(
            slug,
            [
                Entry(f"{slug}条目{i}", path, None if d is None else TODAY - timedelta(days=d))
                for i, (d, path) in enumerate(entries)
            ],
        )
    site.homepage_entries = [
        Entry("首页要闻", "art/home1.html", TODAY - timedelta(days=11)),
        Entry("首页旧闻", "art/home2.html", TODAY - timedelta(days=30)),
    ]
    site.homepage_links = ["/site/gone.html", "/site/flaky.html", "/site/slow.html", f"{other.base}/site/moved.html"]


def _config(site: InspectionSite, database_url: str, smtp_port: int) -> str:
    columns = ""
    for slug, name, cls, max_age, _entries in COLUMNS:
        columns += (
            f'\n  [[channels.columns]]\n  name = "{name}"\n  url = "{site.column_url(slug)}"\n  class = "{cls}"\n'
        )
        if max_age:
            columns += f'  max_age = "{max_age}"\n'
    return textwrap.dedent(
        f"""
        [office]
        name = "某县人民政府办公室"
        short_name = "我办"
        timezone = "Asia/Shanghai"

        [database]
        url = "{database_url}"

        [inspection]
        probe_timeout = "0.5s"
        link_timeout = "0.5s"
        link_recheck_delay = "0.2s"

        [delivery]
        outbox = "outbox"
          [delivery.email]
          host = "127.0.0.1"
          port = {smtp_port}
          security = "none"
          from = "tongji@example.gov.cn"
          to = ["gongkaiban@example.gov.cn"]
          warn_to = ["bangongshi@example.gov.cn"]
          timeout = 10

        [[channels]]
        id = "weibo"
        kind = "weibo"
        name = "微博"

        [[channels]]
        id = "wechat"
        kind = "wechat"
        name = "微信公众号"

        [[channels]]
        id = "site"
        kind = "website"
        name = "县政府网站"
          [channels.poll]
          type = "html-list"
          homepage = "{site.homepage}"
          item = "ul.list li"
          title = "a"
          link = "a@href"
          date = "span"
          min_interval = "0s"
        """
    ) + textwrap.indent(columns, "")


def _import(root: Path, channel: str, posts: list[tuple[int, bool]]) -> None:
    lines = ["标题,发布时间,链接,是否转发"]
    for n, (days, repost) in enumerate(posts):
        moment = datetime.combine(TODAY - timedelta(days=days), datetime.min.time()).replace(hour=10)
        lines.append(
            f"{channel}{n},{moment:%Y-%m-%d %H:%M},http://m.example.cn/{channel}/{n},{'转发' if repost else '原创'}"
        )
    path = root / f"{channel}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert cli(root, "import", channel, str(path)).exit_code == 0


def cli(root: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--instance", str(root), *args])


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    controller, server = start_smtp(_free_port())
    yield server
    controller.stop()


@pytest.fixture
def sites() -> Iterator[tuple[InspectionSite, InspectionSite]]:
    site, other = InspectionSite().start(), InspectionSite().start()
    yield site, other
    site.stop()
    other.stop()


def _run_job(root: Path, job_id: str) -> Any:
    instance = load_instance(root)
    opened = open_store(instance)
    try:
        job = next(j for j in load_jobs(instance) if j.id == job_id)
        return execute(opened, job)
    finally:
        opened.dispose()


def test_inspection_of_a_known_site(
    tmp_path: Path, database_url: str, sites: tuple[InspectionSite, InspectionSite], smtp: SmtpServer
) -> None:
    site, other = sites
    _build_site(site, other)
    root = tmp_path / "inst"
    (root / "config").mkdir(parents=True)
    (root / "jobs").mkdir()
    (root / "config" / "channelwatch.toml").write_text(_config(site, database_url, smtp.port), encoding="utf-8")
    for name, text in {
        "probe.toml": 'action = "probe"\nevery = "15m"\n',
        "links.toml": 'action = "link-check"\ncron = "0 3 * * *"\n',
        "inspect.toml": 'action = "inspect"\ncron = "0 8 * * *"\n',
    }.items():
        (root / "jobs" / name).write_text(text, encoding="utf-8")
    _import(root, "weibo", WEIBO_POSTS)
    _import(root, "wechat", WECHAT_POSTS)

    polled = cli(root, "poll")
    assert polled.exit_code == 0, polled.output
    assert cli(root, "poll").exit_code == 0  # a second poll changes no count
    opened = open_store(load_instance(root))
    with store.read(opened.engine) as conn:
        stored = conn.execute(
            select(func.count()).where(Publication.channel_id == opened.channel_id("site"))  # type: ignore[arg-type]
        ).scalar_one()
    opened.dispose()
    assert stored == DISTINCT_DATED_ARTICLES

    # Probes: two of forty fail, one by a server error and one by answering too late (5 %: the veto line).
    for n in range(PROBES):
        if n == 10:
            site.fail_next_homepage(1, "500")
        if n == 20:
            site.fail_next_homepage(1, "slow")
        assert _run_job(root, "probe").status in {"ok", "warn"}

    # Before any link check: mailed once, whatever the number of runs.
    first = _run_job(root, "inspect")
    assert first.status == "warn" and first.message.startswith("结论：否决风险"), first.message
    assert _run_job(root, "inspect").status == "warn"
    assert len(smtp.messages) == 1
    assert [e.rcpt_tos for e in smtp.envelopes] == [["bangongshi@example.gov.cn"]]  # never the county's address
    body = smtp.messages[0].get_body(("plain",)).get_content()
    assert "站点无法访问" in body and "栏目不更新" in body and "链接不可用" not in body.split("\n\n")[0]

    homepage_hits = site.hits["/site/index.html"]
    checked = _run_job(root, "links")
    assert site.hits["/site/index.html"] == homepage_hits  # the probe alone measures the homepage
    assert checked.status == "warn", checked.message
    assert "1 个复查时已恢复" in checked.message  # the flaky link failed once, then answered
    # The dead links are a new finding: mailed once more, with that finding only.
    assert _run_job(root, "inspect").status == "warn"
    assert _run_job(root, "inspect").status == "warn"
    assert len(smtp.messages) == 2
    second = smtp.messages[1].get_body(("plain",)).get_content().split("\n\n")[0]
    assert "链接不可用" in second and "栏目不更新" not in second

    result = cli(root, "inspect", "--as-of", TODAY.isoformat(), "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["office"] == "某县人民政府办公室" and report["as_of"] == TODAY.isoformat()
    assert report["verdict"] == "veto"
    assert [(f["rule"], f["level"], f["channel"]) for f in report["findings"]] == [
        ("site_unreachable", "veto", "site"),
        ("columns_stale", "veto", "site"),
        ("homepage_stale", "warning", "site"),
        ("blank_columns", "warning", "site"),
        ("newmedia_stale", "warning", "wechat"),
        ("dead_links", "warning", "site"),
    ]
    assert all(f["detail"] and f["action"] for f in report["findings"])
    assert {c["channel"]: c["verdict"] for c in report["channels"]} == {
        "site": "veto",
        "wechat": "warning",
        "weibo": "ok",
    }
    columns = {c["name"]: c for c in report["columns"]}
    assert {n: (c["items"], c["undated"], c["age_days"], c["limit_days"], c["status"]) for n, c in columns.items()} == (
        EXPECTED_COLUMNS
    )
    assert columns["工作动态"]["last_published"] == (TODAY - timedelta(days=3)).isoformat()
    assert columns["意见征集"]["class"] == "notice" and columns["意见征集"]["url"] == site.column_url("yjzj")
    assert report["homepages"] == [
        {
            "channel": "site",
            "url": site.homepage,
            "last_updated": (TODAY - timedelta(days=11)).isoformat(),
            "age_days": 11,
        }
    ]
    assert report["availability"] == [
        {"channel": "site", "probes": PROBES, "failed": FAILED_PROBES, "rate": 0.05, "enough": True}
    ]
    base = site.base + "/site/"
    assert sorted((d["url"], d["status"], d["certainty"], d["found_on"]) for d in report["dead_links"]) == sorted(
        [
            (base + "gone.html", 404, "确定", site.homepage),
            (base + "secret.html", 403, "确定", site.column_url("tzgg")),
            (base + "removed.html", 410, "确定", site.column_url("tzgg")),
            (base + "error.html", 500, "疑似", site.column_url("rsxx")),
            (base + "slow.html", "timeout", "疑似", site.homepage),
            (f"{other.base}/site/moved.html", 404, "疑似", site.homepage),
        ]
    )
    assert site.hits["/site/flaky.html"] == 3  # HEAD 503, GET 503, re-check HEAD 200
    media = {n["channel"]: n for n in report["newmedia"]}
    assert media["weibo"] == {
        "channel": "weibo",
        "last_published": (TODAY - timedelta(days=5)).isoformat(),
        "days_since": 5,
        "longest_gap_days": 39,
        "days_over_limit": 25 + 21 + 6,
        "repost_share": 0.4,
        "posts": 5,
    }
    assert (media["wechat"]["days_since"], media["wechat"]["longest_gap_days"], media["wechat"]["days_over_limit"]) == (
        12,
        28,
        14,
    )
    assert media["wechat"]["repost_share"] == 0.0

    text = cli(root, "inspect")
    assert text.exit_code == 0 and "总体结论：否决风险" in text.output and "怎么办：" in text.output
    html_path = tmp_path / "inspect.html"
    assert cli(root, "inspect", "--format", "html", "-o", str(html_path)).exit_code == 0
    assert "否决风险" in html_path.read_text(encoding="utf-8")
    xlsx_path = tmp_path / "inspect.xlsx"
    assert cli(root, "inspect", "--format", "xlsx", "-o", str(xlsx_path)).exit_code == 0
    book = load_workbook(xlsx_path)
    assert book.sheetnames == ["结论", "问题", "栏目", "可访问性", "不可用链接", "政务新媒体"]
    assert book["问题"].max_row == 1 + len(report["findings"])

    listing = cli(root, "jobs")
    assert "结论：否决风险（否决风险 2 项，预警 4 项）" in listing.output

    # Twenty days earlier: ages from that date, and no probe or link check ran in the week before it.
    earlier = TODAY - timedelta(days=20)
    past = json.loads(cli(root, "inspect", "--as-of", earlier.isoformat(), "--format", "json").output)
    past_columns = {c["name"]: c for c in past["columns"]}
    assert (past_columns["部门动态"]["age_days"], past_columns["部门动态"]["status"]) == (0, "ok")
    assert (past_columns["要闻"]["last_published"], past_columns["要闻"]["status"]) == (None, "stale")
    assert past["availability"] == [{"channel": "site", "probes": 0, "failed": 0, "rate": None, "enough": False}]
    assert past["dead_links"] == [] and "site_unreachable" not in {f["rule"] for f in past["findings"]}


def test_bad_as_of_and_office(tmp_path: Path) -> None:
    from tests.conftest import write_instance

    root = write_instance(tmp_path / "inst")
    bad = cli(root, "inspect", "--as-of", "2024-13-01")
    assert bad.exit_code == 1 and "--as-of" in bad.output and "Traceback" not in bad.output
    other = cli(root, "inspect", "--office", "别的单位")
    assert other.exit_code == 1 and "别的单位" in other.output
    assert cli(root, "inspect", "-f", "json").exit_code == 0  # a single-office instance needs no --office
    needs_file = cli(root, "inspect", "--format", "xlsx")
    assert needs_file.exit_code == 1 and "-o" in needs_file.output
