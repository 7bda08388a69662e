"""The checks' lines, one rule at a time: counts at and around each line, config errors, cells, alerts."""

from __future__ import annotations

import io
import re
import textwrap
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from channelwatch import store
from channelwatch.checks.alerts import due_findings, remember
from channelwatch.checks.linkcheck import CERTAIN, SUSPECTED, classify
from channelwatch.checks.outputs import as_xlsx, safe_cell
from channelwatch.checks.rules import ColumnStatus, Finding, Inspection, _columns_findings, inspect
from channelwatch.cli import app
from channelwatch.instance.config import InspectionConfig, load_instance
from channelwatch.store import open_store
from channelwatch.store.checkstate import ProbeResult
from tests.conftest import write_instance

SITE = """
[[channels]]
id = "site"
kind = "website"
name = "网站"
  [channels.poll]
  type = "html-list"
  homepage = "http://127.0.0.1:9/index.html"
  [[channels.columns]]
  name = "工作动态"
  url = "http://127.0.0.1:9/gzdt/index.html"
  class = "dynamic"
"""


def cli(root: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--instance", str(root), *args])


def _column(name: str, column_class: str, status: str) -> ColumnStatus:
    return ColumnStatus("site", name, column_class, f"http://x/{name}", 1, 0, None, None, 14, status)


def _channel() -> Any:
    from channelwatch.instance.config import ChannelConfig

    return ChannelConfig.model_validate({"id": "site", "kind": "website", "name": "网站"})


@pytest.mark.parametrize(
    ("stale", "blank", "expected"),
    [
        ({"dynamic": 2}, 0, []),
        ({"dynamic": 3}, 0, [("columns_stale", "warning", 3)]),
        ({"dynamic": 4}, 1, [("columns_stale", "warning", 4)]),
        ({"dynamic": 3, "notice": 2}, 0, [("columns_stale", "veto", 5)]),
        ({"plan": 9}, 0, [("columns_stale", "warning", 9)]),
        ({"plan": 10}, 0, [("columns_stale", "veto", 10)]),
        ({"dynamic": 4, "plan": 5}, 0, [("columns_stale", "warning", 9)]),
        ({}, 2, [("blank_columns", "warning", 2)]),
        ({}, 4, [("blank_columns", "warning", 4)]),
        ({}, 5, [("blank_columns", "veto", 5)]),
    ],
)
def test_column_lines(stale: dict[str, int], blank: int, expected: list[tuple[str, str, int]]) -> None:
    columns = [_column(f"{cls}{n}", cls, "stale") for cls, count in stale.items() for n in range(count)]
    columns += [_column(f"blank{n}", "dynamic", "blank") for n in range(blank)]
    columns += [_column("fresh", "dynamic", "ok"), _column("soon", "dynamic", "warning")]
    found = _columns_findings(_channel(), columns, InspectionConfig())
    assert [(f.rule, f.level, f.measure) for f in found] == expected


def test_stricter_local_lines_from_the_config() -> None:
    settings = InspectionConfig.model_validate(
        {"stale_warning": 1, "stale_veto_dynamic_notice": 2, "blank_veto": 1, "blank_warning": 1}
    )
    columns = [_column("a", "dynamic", "stale"), _column("b", "notice", "stale"), _column("c", "plan", "blank")]
    found = _columns_findings(_channel(), columns, settings)
    assert [(f.rule, f.level) for f in found] == [("columns_stale", "veto"), ("blank_columns", "veto")]


@pytest.mark.parametrize(
    ("url", "status", "certainty"),
    [
        ("http://a.gov.cn/x.html", "404", CERTAIN),
        ("http://A.gov.cn/y.html", "403", CERTAIN),
        ("http://a.gov.cn/z.html", "410", CERTAIN),
        ("http://a.gov.cn/z.html", "500", SUSPECTED),
        ("http://a.gov.cn/z.html", "timeout", SUSPECTED),
        ("http://b.gov.cn/z.html", "404", SUSPECTED),
        ("http://a.gov.cn:8080/z.html", "404", SUSPECTED),
    ],
)
def test_certain_only_for_the_sites_own_gone_pages(url: str, status: str, certainty: str) -> None:
    assert classify(url, "http://a.gov.cn/index.html", status) == certainty


def test_availability_lines_and_too_few_probes(tmp_path: Path) -> None:
    root = write_instance(tmp_path / "inst", extra=SITE)
    opened = open_store(load_instance(root))
    now = store.utc_now()

    def probes(total: int, failed: int) -> None:
        with store.write(opened.engine) as conn:
            conn.execute(ProbeResult.__table__.delete())  # type: ignore[attr-defined]
            conn.execute(
                ProbeResult.__table__.insert(),  # type: ignore[attr-defined]
                [
                    {
                        "channel_id": opened.channel_id("site"),
                        "url": "u",
                        "probed_at": now - timedelta(hours=n),
                        "ok": n >= failed,
                    }
                    for n in range(total)
                ],
            )

    def level() -> tuple[str | None, float | None]:
        result = inspect(opened)
        found = [f.level for f in result.findings if f.rule == "site_unreachable"]
        return (found[0] if found else None), result.availability[0].rate

    probes(100, 2)
    assert level() == (None, 0.02)
    probes(100, 3)
    assert level() == ("warning", 0.03)
    probes(100, 5)
    assert level() == ("veto", 0.05)
    probes(19, 5)  # fewer than min_probes: reported, not judged
    assert level() == (None, round(5 / 19, 4))
    probes(200, 10)  # the window is the 7 office-time days ending today: older probes do not count
    zone = ZoneInfo("Asia/Shanghai")
    start = datetime.combine(datetime.now(zone).date() - timedelta(days=6), time(0), tzinfo=zone)
    within = sum(1 for n in range(200) if now - timedelta(hours=n) >= start)
    assert 144 <= within <= 168
    result = inspect(opened)
    assert (result.availability[0].probes, result.availability[0].failed) == (within, 10)
    opened.dispose()


def test_config_mistakes_name_file_key_and_value(tmp_path: Path) -> None:
    bad_class = write_instance(tmp_path / "a", extra=SITE.replace('class = "dynamic"', 'class = "news"'))
    result = cli(bad_class, "inspect")
    assert result.exit_code == 1
    assert "channelwatch.toml" in result.output and "class" in result.output and "news" in result.output
    on_weibo = write_instance(
        tmp_path / "b",
        extra='[[channels]]\nid = "wb2"\nkind = "weibo"\nname = "微博2"\n'
        '  [[channels.columns]]\n  name = "x"\n  url = "http://a.gov.cn/"\n',
    )
    result = cli(on_weibo, "inspect")
    assert result.exit_code == 1 and "channels.columns" in result.output
    bad_age = write_instance(tmp_path / "c", extra=SITE + '  max_age = "soon"\n')
    result = cli(bad_age, "inspect")
    assert result.exit_code == 1 and "max_age" in result.output and "soon" in result.output
    upside_down = write_instance(tmp_path / "d", extra="[inspection]\nblank_warning = 6\n")
    result = cli(upside_down, "inspect")
    assert result.exit_code == 1 and "blank_warning" in result.output
    bad_selector = write_instance(tmp_path / "f", extra=SITE + '  page_url = "index.html"\n')
    result = cli(bad_selector, "inspect")
    assert result.exit_code == 1 and "columns[1].page_url" in result.output and "{n}" in result.output
    weeks = write_instance(tmp_path / "e", extra=SITE + '  max_age = "2w"\n')
    assert load_instance(weeks).channel("site").columns[0].max_age == 14
    assert "Traceback" not in result.output


def test_spreadsheet_cells_never_run_as_formulas() -> None:
    assert safe_cell("=1+1") == "'=1+1" and safe_cell("+86") == "'+86" and safe_cell("-x") == "'-x"
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)" and safe_cell("工作动态") == "工作动态" and safe_cell(3) == 3
    assert safe_cell("栏目\x1b[2J") == "栏目\\x1b[2J"  # XLSX cannot hold control characters
    inspection = Inspection(office='=HYPERLINK("http://evil")', as_of=date(2024, 6, 30))
    inspection.columns.append(
        ColumnStatus("site", "=cmd|' /C calc'!A0", "dynamic", "http://x", 0, 0, None, None, 14, "blank")
    )
    book = load_workbook(io.BytesIO(as_xlsx(inspection)))
    assert book["栏目"]["B2"].value == "'=cmd|' /C calc'!A0"
    assert book["栏目"]["B2"].data_type == "s"


def test_alerts_new_or_worse_once_a_day(tmp_path: Path) -> None:
    root = write_instance(tmp_path / "inst", extra=SITE)
    opened = open_store(load_instance(root))
    day = date(2024, 6, 3)

    def run(findings: list[Finding], today: date) -> list[tuple[str, str]]:
        inspection = Inspection(office="x", as_of=today, findings=findings)
        due = due_findings(opened, inspection, today)
        remember(opened, due, today)
        return [(f.rule, f.level) for f in due]

    stale = Finding("columns_stale", "warning", "site", "网站", "3 个", 3)
    blank = Finding("blank_columns", "warning", "site", "网站", "2 个", 2)
    assert run([stale], day) == [("columns_stale", "warning")]
    assert run([stale], day) == []
    worse = Finding("columns_stale", "veto", "site", "网站", "5 个", 5)
    assert run([worse, blank], day) == [("blank_columns", "warning")]  # worse, but already mailed today
    assert run([worse, blank], day + timedelta(days=1)) == [("columns_stale", "veto")]
    assert run([worse, blank], day + timedelta(days=2)) == []  # lasting, not worse: no daily repeat
    assert run([stale, blank], day + timedelta(days=3)) == []  # better: remembered, not mailed
    assert run([worse, blank], day + timedelta(days=4)) == [("columns_stale", "veto")]  # worse again
    assert run([blank], day + timedelta(days=5)) == []  # gone: forgotten
    assert run([stale, blank], day + timedelta(days=5)) == [("columns_stale", "warning")]  # back: mailed
    opened.dispose()


def test_text_of_an_instance_without_website_columns(tmp_path: Path) -> None:
    root = write_instance(tmp_path / "inst", extra=textwrap.dedent(""))
    result = cli(root, "inspect")
    assert result.exit_code == 0, result.output
    # The example office's new-media channels have no publication yet: that is a veto risk.
    assert "总体结论：否决风险" in result.output and "尚无任何发布记录" in result.output
    # Not checked is not "正常": a green verdict for what was never looked at would be a silent pass.
    assert "政府网站（website）：未检查（未配置首页和栏目，见 docs/inspection.md）" in result.output
    assert "政府网站（website）：正常" not in result.output
    sheet_file = tmp_path / "检查.xlsx"
    assert cli(root, "inspect", "-o", str(sheet_file)).exit_code == 0
    from openpyxl import load_workbook

    rows = list(load_workbook(sheet_file)["结论"].iter_rows(values_only=True))
    assert next(r for r in rows if r[3] == "政府网站")[4] == "未检查"  # the sheet says what the text says


def test_homepage_dates_are_those_of_its_entries() -> None:
    from selectolax.lexbor import LexborHTMLParser

    from channelwatch.sources.website import item_dates

    html = (
        "<html><body><div class='top'><span>今天是2024年7月3日</span></div>"
        "<ul><li><a href='/a.html'>要闻一</a><span>2024-06-20</span></li>"
        "<li><span>[06-28]</span><a href='/b.html'>要闻二</a></li>"
        "<li><a href='/c.html'>年底的旧闻</a> 12-30</li></ul>"
        "<table><tr><td><a href='/d.html'>通知</a></td><td>2024/6/1</td></tr></table>"
        "<p><a href='/e.html'>第1-2季度工作</a></p></body></html>"
    )
    found = item_dates(LexborHTMLParser(html), date(2024, 7, 3))
    assert found == [date(2023, 12, 30), date(2024, 6, 1), date(2024, 6, 20), date(2024, 6, 28)]


def test_html_escapes_what_the_site_and_config_say() -> None:
    from channelwatch.checks.outputs import as_html

    inspection = Inspection(office="某办<script>alert(1)</script>", as_of=date(2024, 6, 30))
    inspection.columns.append(
        ColumnStatus("site", "<img src=x onerror=alert(1)>", "dynamic", 'http://x/"><b>', 0, 0, None, None, 14, "blank")
    )
    html = as_html(inspection)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html and '"><b>' not in html


def test_offices_worst_first(tmp_path: Path) -> None:
    from channelwatch.checks.rules import inspect_offices

    two_columns = SITE + '  [[channels.columns]]\n  name = "要闻"\n  url = "http://127.0.0.1:9/yw/index.html"\n'
    quiet = write_instance(tmp_path / "quiet", extra="")
    site = write_instance(tmp_path / "site", extra=two_columns)
    stores = {"a-quiet": open_store(load_instance(quiet)), "z-site": open_store(load_instance(site))}
    try:
        ordered = inspect_offices(stores)
    finally:
        for opened in stores.values():
            opened.dispose()
    # Both are veto (new-media channels without posts); the site's two never-polled columns add a warning.
    assert [(key, found.verdict, len(found.findings)) for key, found in ordered] == [
        ("z-site", "veto", 3),
        ("a-quiet", "veto", 2),
    ]


def test_output_path_checked_before_any_work(tmp_path: Path) -> None:
    root = write_instance(tmp_path / "inst")
    missing = cli(root, "inspect", "-f", "json", "-o", str(tmp_path / "nowhere" / "x.json"))
    assert missing.exit_code == 1 and "不存在" in missing.output
    wrong = cli(root, "inspect", "-f", "xlsx", "-o", str(tmp_path / "x.csv"))
    assert wrong.exit_code == 1 and ".xlsx" in wrong.output and not (tmp_path / "x.csv").exists()


def test_a_channel_silent_for_the_whole_period_says_so(tmp_path: Path) -> None:
    root = write_instance(tmp_path / "inst")
    old = (date.today() - timedelta(days=400)).strftime("%Y/%m/%d 10:00")
    posts = tmp_path / "weibo.csv"
    rows = f"微博ID,微博内容,发布时间,是否转发\n4454999999999001,一年多以前的一条,{old},原创\n"
    posts.write_text(rows, encoding="utf-8")
    assert cli(root, "import", "weibo", str(posts)).exit_code == 0
    result = cli(root, "inspect")
    assert result.exit_code == 0, result.output
    assert re.search(r"已 (399|400|401) 天未发布", result.output)  # the office's day may differ from this machine's
    assert "近 365 天内没有发布" in result.output and "None" not in result.output
