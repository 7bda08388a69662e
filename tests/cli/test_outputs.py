"""Output files: ``-o`` paths, ``report annual`` never overwrites, ``publications -o``, BOM, year-on-year."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner, Result

from channelwatch.cli import app
from tests.conftest import write_instance

BOM = "\ufeff".encode()


def cw(root: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--instance", str(root), *args])


def _import(root: Path, channel: str, rows: list[tuple[str, str]], name: str = "export.csv") -> None:
    export = root / name
    lines = ["标题,发布时间"] + [f'"{title}",{moment}' for title, moment in rows]
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cw(root, "import", channel, str(export))
    assert result.exit_code == 0, result.output


def _small(root: Path) -> Path:
    """Weibo posts in every month of 2019 and 2020, the website only in March 2019 and 2020."""
    weibo = [
        (f"微博{year}年{month}月", f"{year}-{month:02d}-10 09:00") for year in (2019, 2020) for month in range(1, 13)
    ]
    weibo.append(("2020年4月第二条", "2020-04-20 09:00"))
    _import(root, "weibo", weibo, "weibo.csv")
    _import(root, "website", [("网站2019", "2019-03-05 10:00"), ("网站2020", "2020-03-05 10:00")], "website.csv")
    return root


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return _small(write_instance(tmp_path / "instance"))


@pytest.fixture
def small_any(any_instance_dir: Path) -> Path:
    """The same posts, once on SQLite and once on PostgreSQL."""
    return _small(any_instance_dir)


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("错误："), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ["summary", "--year", "2020", "-f", "csv", "-o"],
        ["summary", "--year", "2020", "-f", "xlsx", "-o"],
        ["summary", "--year", "2020", "--chart"],
        ["publications", "weibo", "--year", "2020", "-f", "csv", "-o"],
        ["quarterly", "--year", "2020", "--quarter", "1", "-o"],
        ["report", "annual", "--year", "2020", "-o"],
    ],
)
def test_output_into_a_missing_folder_or_onto_a_folder(small: Path, tmp_path: Path, command: list[str]) -> None:
    suffix = {"csv": ".csv", "xlsx": ".xlsx"}.get(command[-2], ".docx" if "annual" in command else ".xlsx")
    if command[-1] == "--chart":
        suffix = ".png"
    missing = tmp_path / "no-such-folder" / f"out{suffix}"
    line = _one_error_line(cw(small, *command, str(missing)))
    assert line == f"错误：输出文件夹 {missing.parent} 不存在，请先创建它或换一个路径"
    assert not missing.parent.exists()
    folder = tmp_path / "a-folder"
    folder.mkdir()
    line = _one_error_line(cw(small, *command, str(folder)))
    assert line.startswith(f"错误：输出路径 {folder} 是一个文件夹，请给出文件名")
    assert list(folder.iterdir()) == []


def test_annual_default_name_gets_the_next_free_suffix(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    first = cw(small, "report", "annual", "--year", "2020", "--force")
    assert first.exit_code == 0, first.output
    drafts = sorted(work.glob("*.docx"))
    assert len(drafts) == 1
    original = drafts[0]
    original.write_bytes(b"edited by the clerk")
    second = cw(small, "report", "annual", "--year", "2020", "--force")
    assert second.exit_code == 0, second.output
    renamed = original.with_name(f"{original.stem}（2）.docx")
    assert renamed.is_file()
    assert f"提示：{original.name} 已存在（未覆盖），本次写入 {renamed.name}" in second.output
    assert original.read_bytes() == b"edited by the clerk"
    third = cw(small, "report", "annual", "--year", "2020", "--force")
    assert third.exit_code == 0
    assert original.with_name(f"{original.stem}（3）.docx").is_file()


def test_annual_output_onto_an_existing_file_needs_overwrite(small: Path, tmp_path: Path) -> None:
    target = tmp_path / "年报.docx"
    target.write_bytes(b"kept")
    line = _one_error_line(cw(small, "report", "annual", "--year", "2020", "--force", "-o", str(target)))
    assert line == f"错误：文件 {target} 已存在，未覆盖；要覆盖请加 --overwrite，或换一个文件名"
    assert target.read_bytes() == b"kept"
    result = cw(small, "report", "annual", "--year", "2020", "--force", "-o", str(target), "--overwrite")
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:2] == b"PK"  # a real .docx now


@pytest.mark.parametrize(
    ("format", "name", "expected"),
    [
        ("docx", "年报.xlsx", "错误：Word 草稿文件的扩展名应为 .docx，而 年报.xlsx 不是；请改用 年报.docx"),
        (
            "markdown",
            "年报.docx",
            "错误：Markdown 草稿文件的扩展名应为 .md、.markdown，而 年报.docx 不是；请改用 年报.md",
        ),
        ("html", "年报.md", "错误：HTML 草稿文件的扩展名应为 .html、.htm，而 年报.md 不是；请改用 年报.html"),
    ],
)
def test_annual_extension_must_match_the_format(
    small: Path, tmp_path: Path, format: str, name: str, expected: str
) -> None:
    line = _one_error_line(cw(small, "report", "annual", "--year", "2020", "-f", format, "-o", str(tmp_path / name)))
    assert line == expected
    assert not (tmp_path / name).exists()


def test_publications_writes_csv_with_bom_xlsx_and_json(small: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "明细.csv"
    result = cw(small, "publications", "weibo", "--year", "2020", "-o", str(csv_file))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"已写入 {csv_file}（13 条）"
    raw = csv_file.read_bytes()
    assert raw.startswith(BOM)
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0] == "发布时间,是否转发,标题,链接,栏目,编号,识别键"
    assert len(text.splitlines()) == 14

    xlsx_file = tmp_path / "明细.xlsx"
    assert cw(small, "publications", "weibo", "--year", "2020", "-f", "xlsx", "-o", str(xlsx_file)).exit_code == 0
    sheet = load_workbook(xlsx_file).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "微博 2020年发布明细（共 13 条）"
    assert rows[1][:3] == ("发布时间", "是否转发", "标题")
    assert [r[2] for r in rows[2:]][:2] == ["微博2020年1月", "微博2020年2月"]

    json_file = tmp_path / "明细.json"
    assert cw(small, "publications", "weibo", "--year", "2020", "--month", "4", "-o", str(json_file)).exit_code == 0
    data = json.loads(json_file.read_text(encoding="utf-8"))
    assert [entry["title"] for entry in data] == ["微博2020年4月", "2020年4月第二条"]


def test_publications_format_and_extension_must_agree(small: Path, tmp_path: Path) -> None:
    target = tmp_path / "明细.csv"
    line = _one_error_line(cw(small, "publications", "weibo", "--year", "2020", "-f", "xlsx", "-o", str(target)))
    assert line == "错误：xlsx 格式的文件的扩展名应为 .xlsx，而 明细.csv 不是；请改用 明细.xlsx"
    line = _one_error_line(cw(small, "publications", "weibo", "--year", "2020", "-f", "xlsx"))
    assert line.startswith("错误：xlsx 格式需要用 --output 指定文件名")


def test_summary_csv_file_has_a_bom(small: Path, tmp_path: Path) -> None:
    target = tmp_path / "统计.csv"
    assert cw(small, "summary", "--year", "2020", "-f", "csv", "-o", str(target)).exit_code == 0
    assert target.read_bytes().startswith(BOM)


def test_summary_writes_the_format_its_file_name_says_or_refuses(small: Path, tmp_path: Path) -> None:
    """``summary -o 统计.xlsx`` once wrote the text table under that name (Excel then refuses to open it)."""
    sheet = tmp_path / "统计.xlsx"
    assert cw(small, "summary", "--year", "2020", "-o", str(sheet)).exit_code == 0
    assert load_workbook(sheet).worksheets[0].max_row > 1
    as_json = tmp_path / "统计.json"
    assert cw(small, "summary", "--year", "2020", "-o", str(as_json)).exit_code == 0
    assert json.loads(as_json.read_text(encoding="utf-8"))["period"]["year"] == 2020
    as_markdown = tmp_path / "统计.md"
    assert cw(small, "summary", "--year", "2020", "-o", str(as_markdown)).exit_code == 0
    assert "|" in as_markdown.read_text(encoding="utf-8")
    mismatched = tmp_path / "统计2.xlsx"
    line = _one_error_line(cw(small, "summary", "--year", "2020", "-f", "csv", "-o", str(mismatched)))
    assert line == "错误：csv 格式的文件的扩展名应为 .csv，而 统计2.xlsx 不是；请改用 统计2.csv"
    line = _one_error_line(cw(small, "summary", "--year", "2020", "-o", str(tmp_path / "统计.doc")))
    assert line.startswith("错误：无法从文件名 统计.doc 看出要写的格式：")
    assert line.endswith("请用扩展名 .xlsx、.csv、.json、.md、.txt 之一")
    assert not mismatched.exists() and not (tmp_path / "统计.doc").exists()


def _sentence(root: Path, *period: str) -> str:
    result = cw(root, "summary", "--year", *period)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[0]


def test_year_on_year_only_like_with_like(small_any: Path) -> None:
    small = small_any
    # Weibo covers every month of both years; the website has March of both years only (1 of 12 months).
    assert "相比" not in _sentence(small, "2020")
    # March: both channels published in March of both years — a fair month-level comparison.
    assert "与2019年3月（2条）相比持平" in _sentence(small, "2020", "--month", "3")
    # April: Weibo only, in both years.
    assert "与2019年4月（1条）相比增加1条" in _sentence(small, "2020", "--month", "4")
    # Quarter 1: the website covers 1 of 3 months — not enough.
    assert "相比" not in _sentence(small, "2020", "--quarter", "1")
    assert "与2019年第二季度（3条）相比增加1条" in _sentence(small, "2020", "--quarter", "2")
    # 2021 holds nothing: no comparison is invented.
    assert "相比" not in _sentence(small, "2021")


def test_year_on_year_needs_the_same_month_in_both_years(small_any: Path) -> None:
    small = small_any
    _import(small, "wechat", [("公众号2020年5月", "2020-05-10 09:00")], "wechat.csv")
    # May 2020: WeChat has a post, May 2019 none — the channel is not in both periods.
    assert "相比" not in _sentence(small, "2020", "--month", "5")
    assert "相比" in _sentence(small, "2020", "--month", "6")


def test_year_on_year_in_the_annual_report(small: Path) -> None:
    for month in range(4, 13):
        _import(
            small, "website", [(f"网站{y}-{month}", f"{y}-{month:02d}-06 10:00") for y in (2019, 2020)], f"w{month}.csv"
        )
    result = cw(small, "report", "annual", "--year", "2020", "-f", "markdown", "--force")
    assert result.exit_code == 0, result.output
    assert re.search(r"与2019年（\d+条）相比", result.stdout)


def test_annual_markdown_chart_never_replaces_a_file(small: Path, tmp_path: Path) -> None:
    chart = tmp_path / "年报_每月发布数量.png"
    chart.write_bytes(b"someone's picture")
    draft = tmp_path / "年报.md"
    result = cw(small, "report", "annual", "--year", "2020", "-f", "markdown", "--force", "-o", str(draft))
    assert result.exit_code == 0, result.output
    assert chart.read_bytes() == b"someone's picture"
    assert "年报_每月发布数量（2）.png" in draft.read_text(encoding="utf-8")
    assert (tmp_path / "年报_每月发布数量（2）.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_one_chinese_line_without_traceback(small: Path) -> None:
    import subprocess
    import sys

    command = [sys.executable, "-m", "channelwatch", "--instance", str(small), "summary", "-y", "2020", "-f", "xlsx"]
    result = subprocess.run([*command, "-o", "/dev/full", "--overwrite"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["错误：读写文件失败：磁盘空间不足（No space left on device）"]


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc")
def test_a_file_the_system_refuses_is_one_chinese_line(small: Path) -> None:
    line = _one_error_line(cw(small, "summary", "-y", "2020", "-f", "csv", "-o", "/proc/x.csv"))
    assert line == "错误：无法读写 /proc/x.csv：文件或文件夹不存在（No such file or directory）"


@pytest.mark.parametrize(
    "command",
    [
        ["summary", "-y", "2020", "-f", "xlsx"],
        ["summary", "-y", "2020", "-f", "csv"],
        ["publications", "weibo", "-y", "2020"],
        ["quarterly", "-y", "2020", "-q", "4"],
    ],
    ids=["summary-xlsx", "summary-csv", "publications", "quarterly"],
)
def test_an_existing_file_is_kept_unless_overwrite_is_given(small: Path, tmp_path: Path, command: list[str]) -> None:
    """A clerk's own file of the same name is never replaced by a report without being asked (--overwrite)."""
    suffix = ".csv" if "csv" in command or "publications" in command else ".xlsx"
    target = tmp_path / f"我的重要文件{suffix}"
    target.write_bytes(b"my important work")
    line = _one_error_line(cw(small, *command, "-o", str(target)))
    assert line == f"错误：文件 {target} 已存在，未覆盖；要覆盖请加 --overwrite，或换一个文件名"
    assert target.read_bytes() == b"my important work"
    result = cw(small, *command, "-o", str(target), "--overwrite")
    assert result.exit_code == 0, result.output
    assert target.read_bytes() != b"my important work"
