"""The core commands through Typer's CliRunner: init, channels, import, import-tree, summary, publications, runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from channelwatch.cli import app
from tests.conftest import REPO, SAMPLES, write_instance

runner = CliRunner()
SENTENCE = (
    "2020年我委通过政府网站、微博、微信公众号等形式公开政府信息（含转发）共1279条，其中政府网站公开信息6条、"
    "微博（含转发）1225条、微信公众号（含转发）48条。"
)


def cw(instance: Path | None, *args: str) -> object:
    prefix = ["--instance", str(instance)] if instance else []
    return runner.invoke(app, [*prefix, *args], catch_exceptions=False)


@pytest.fixture
def loaded(instance_dir: Path) -> Path:
    result = cw(instance_dir, "import-tree", str(SAMPLES))
    assert result.exit_code == 0, result.output
    return instance_dir


def test_import_tree_and_summary_text(loaded: Path) -> None:
    result = cw(loaded, "summary", "--year", "2020")
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == SENTENCE
    assert re.search(r"^2020-01\s+1\s+99\s+4\s+104$", result.output, re.M)
    assert re.search(r"^合计\s+6\s+1225\s+48\s+1279$", result.output, re.M)
    assert re.search(r"^其中转发\s+0\s+400\s+12\s+412$", result.output, re.M)
    assert "1270 条不同信息" in result.output


def test_summary_json_contract(loaded: Path) -> None:
    result = cw(loaded, "summary", "--year", "2020", "--format", "json")
    data = json.loads(result.output)
    assert set(data) == {"office", "period", "total", "reposts", "unique_items", "channels", "months", "quarters"}
    assert data["office"] == "彭阳县王洼产业园区管理委员会"
    assert data["period"] == {"year": 2020, "quarter": None, "month": None, "start": "2020-01-01", "end": "2020-12-31"}
    assert (data["total"], data["reposts"], data["unique_items"]) == (1279, 412, 1270)
    assert [c["id"] for c in data["channels"]] == ["website", "weibo", "wechat"]
    assert data["channels"][1] == {
        "id": "weibo",
        "kind": "weibo",
        "name": "微博",
        "total": 1225,
        "reposts": 400,
        "original": 825,
    }
    assert len(data["months"]) == 12 and len(data["quarters"]) == 4
    assert sum(m["total"] for m in data["months"]) == sum(q["total"] for q in data["quarters"]) == 1279
    assert all(m["total"] == sum(m["channels"].values()) for m in data["months"])


def test_summary_of_a_quarter_and_a_month(loaded: Path) -> None:
    quarter = json.loads(cw(loaded, "summary", "-y", "2020", "-q", "1", "-f", "json").output)
    assert quarter["period"]["start"] == "2020-01-01" and quarter["period"]["end"] == "2020-03-31"
    assert [m["month"] for m in quarter["months"]] == ["2020-01", "2020-02", "2020-03"]
    assert quarter["total"] == 104 + 91 + 110
    month = json.loads(cw(loaded, "summary", "-y", "2020", "-m", "2", "-f", "json").output)
    assert month["period"]["end"] == "2020-02-29" and month["total"] == 91
    text = cw(loaded, "summary", "-y", "2020", "-q", "4").output
    assert text.startswith("2020年第四季度我委通过")
    both = runner.invoke(app, ["--instance", str(loaded), "summary", "-y", "2020", "-q", "1", "-m", "2"])
    assert both.exit_code == 2


def test_summary_csv_markdown_xlsx(loaded: Path, tmp_path: Path) -> None:
    csv_text = cw(loaded, "summary", "-y", "2020", "-f", "csv").output.splitlines()
    assert csv_text[0] == "月份,政府网站,微博,微信公众号,合计"
    assert csv_text[13] == "合计,6,1225,48,1279"
    markdown = cw(loaded, "summary", "-y", "2020", "-f", "markdown").output
    assert "| **合计** | **6** | **1225** | **48** | **1279** |" in markdown and SENTENCE in markdown
    missing = runner.invoke(app, ["--instance", str(loaded), "summary", "-y", "2020", "-f", "xlsx"])
    assert missing.exit_code == 1 and "--output" in missing.output
    target = tmp_path / "2020.xlsx"
    assert cw(loaded, "summary", "-y", "2020", "-f", "xlsx", "-o", str(target)).exit_code == 0
    from openpyxl import load_workbook

    sheet = load_workbook(target).worksheets[0]
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert ["合计", 6, 1225, 48, 1279] in rows
    assert rows[0][0] == "彭阳县王洼产业园区管理委员会2020年信息发布统计"


def test_instance_templates_override_packaged_ones(loaded: Path) -> None:
    (loaded / "templates").mkdir()
    (loaded / "templates" / "summary_sentence.txt.j2").write_text(
        "{{ summary.period.label }}共发布{{ summary.total }}条。", encoding="utf-8"
    )
    assert cw(loaded, "summary", "-y", "2020").output.splitlines()[0] == "2020年共发布1279条。"


def test_import_command_output_and_reimport(instance_dir: Path) -> None:
    path = SAMPLES / "weibo" / "微博发布记录_2020年1-7月.csv"
    first = cw(instance_dir, "import", "weibo", str(path))
    assert first.exit_code == 0
    assert "读取 707 行，新增 707，已有 0，拒收 0" in first.output
    again = cw(instance_dir, "import", "weibo", str(path))
    assert "读取 707 行，新增 0，已有 707，拒收 0" in again.output


def test_import_rejects_bad_file_with_exit_1(instance_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("标题,发布时间\n好的,2020-01-01\n坏的,不是日期\n", encoding="utf-8")
    result = runner.invoke(app, ["--instance", str(instance_dir), "import", "website", str(bad)])
    assert result.exit_code == 1
    assert "第3行，字段「发布时间」，值「不是日期」" in result.output
    assert "Traceback" not in result.output
    summary = json.loads(cw(instance_dir, "summary", "-y", "2020", "-f", "json").stdout)
    assert summary["total"] == 0
    skipped = cw(instance_dir, "import", "website", str(bad), "--skip-invalid")
    assert skipped.exit_code == 0 and "拒收 1" in skipped.output
    assert (tmp_path / "bad.rejected.csv").exists()


def test_a_file_with_only_a_header_says_so_and_stores_nothing(instance_dir: Path, tmp_path: Path) -> None:
    from openpyxl import Workbook

    csv_file = tmp_path / "只有表头.csv"
    csv_file.write_text("标题,发布时间\n", encoding="utf-8")
    book = Workbook()
    book.active.append(["标题", "发布时间"])  # type: ignore[union-attr]
    book.save(tmp_path / "只有表头.xlsx")
    for path in (csv_file, tmp_path / "只有表头.xlsx"):
        for dry_run, then in (([], "没有导入任何记录"), (["--dry-run"], "导入时不会新增任何记录")):
            result = cw(instance_dir, "import", "weibo", str(path), *dry_run)
            assert result.exit_code == 0, result.output
            assert f"weibo：文件中没有数据行（只有表头），{then}" in result.output
            assert "读取 0 行" not in result.output
    assert json.loads(cw(instance_dir, "summary", "-y", "2020", "-f", "json").stdout)["total"] == 0


def test_unknown_channel(instance_dir: Path) -> None:
    result = runner.invoke(app, ["--instance", str(instance_dir), "import", "toutiao", str(SAMPLES / "weibo")])
    assert result.exit_code in (1, 2)
    result = runner.invoke(app, ["--instance", str(instance_dir), "publications", "toutiao", "--year", "2020"])
    assert result.exit_code == 1 and "没有渠道「toutiao」" in result.output and "website" in result.output


def test_publications_and_runs(loaded: Path) -> None:
    listing = cw(loaded, "publications", "website", "--year", "2020")
    assert listing.exit_code == 0 and "共 6 条，其中转发 0 条" in listing.output
    as_json = json.loads(cw(loaded, "publications", "weibo", "-y", "2020", "-m", "1", "-f", "json").output)
    assert len(as_json) == 99 and as_json[0]["published_at"] == "2020-01-01 00:10"
    as_csv = cw(loaded, "publications", "wechat", "-y", "2020", "-f", "csv").output.splitlines()
    assert len(as_csv) == 49 and as_csv[0].startswith("发布时间,是否转发,标题,链接")
    runs = cw(loaded, "runs").output
    assert "微博发布记录_2020年7-12月.xlsx" in runs and "成功" in runs
    runs_json = json.loads(cw(loaded, "runs", "--format", "json").output)
    assert len(runs_json) == 5 and {r["status"] for r in runs_json} == {"ok"}
    # Stored: 2020 plus the year-edge posts of 2019 and 2021 (two on the website, two on Weibo).
    assert sum(r["rows_new"] for r in runs_json) == 6 + 2 + 1225 + 2 + 48


def test_import_tree_names_the_files_it_does_not_import(instance_dir: Path, tmp_path: Path) -> None:
    """A file put beside the channel folders was passed over without a word."""
    import shutil

    tree = tmp_path / "tree"
    shutil.copytree(SAMPLES / "website", tree / "website")
    shutil.copy(SAMPLES / "website" / "网站信息发布统计_2020.csv", tree / "loose.csv")
    result = cw(instance_dir, "import-tree", str(tree))
    assert result.exit_code == 0, result.output
    assert f"注意：{tree} 下直接放着 1 个文件，未导入：loose.csv；import-tree 只读取 {tree}/<渠道id>/ 中的文件" in (
        result.stderr
    )


def test_runs_as_csv_is_csv(loaded: Path) -> None:
    """``runs -f csv`` printed the text table (the help offers csv)."""
    import csv
    import io

    rows = list(csv.reader(io.StringIO(cw(loaded, "runs", "-f", "csv").stdout)))
    assert rows[0][:7] == ["编号", "开始时间", "结束时间", "渠道", "类型", "来源", "状态"]
    assert len(rows) == 6 and {row[6] for row in rows[1:]} == {"成功"}
    assert sum(int(row[8]) for row in rows[1:]) == 6 + 2 + 1225 + 2 + 48


def test_a_title_with_a_line_break_is_one_line_of_the_listing(instance_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "weibo.csv"
    export.write_text('标题,发布时间\n"第一行\n第二行",2020-06-01 09:00\n正常,2020-06-02 09:00\n', encoding="utf-8")
    assert cw(instance_dir, "import", "weibo", str(export)).exit_code == 0
    lines = cw(instance_dir, "publications", "weibo", "-y", "2020").stdout.splitlines()
    assert len(lines) == 4 and lines[1].endswith("第一行\\n第二行") and lines[2].endswith("正常")


def test_channels_lists_totals_and_freshness(loaded: Path) -> None:
    result = cw(loaded, "channels")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["渠道", "名称", "类型", "总数"]
    weibo = next(line for line in lines if line.startswith("weibo"))
    assert "1227" in weibo and "2021-01-01 00:30" in weibo and "已超期" in weibo


def test_channels_and_the_summary_sheet_name_channel_kinds_in_chinese(loaded: Path, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    lines = cw(loaded, "channels").output.splitlines()[1:]
    # The example's channel ids are the kinds' ids: the third column is the kind.
    assert [line.split()[2] for line in lines] == ["政府网站", "微博", "微信公众号"]
    target = tmp_path / "2020.xlsx"
    assert cw(loaded, "summary", "-y", "2020", "-f", "xlsx", "-o", str(target)).exit_code == 0
    sheet = load_workbook(target)["分渠道"]
    assert [row[1] for row in sheet.iter_rows(min_row=2, max_row=4, values_only=True)] == [
        "政府网站",
        "微博",
        "微信公众号",
    ]
    # The JSON contract keeps the kinds' ids.
    data = json.loads(cw(loaded, "summary", "-y", "2020", "-f", "json").output)
    assert [c["kind"] for c in data["channels"]] == ["website", "weibo", "wechat"]


def test_init_writes_a_working_instance(tmp_path: Path) -> None:
    target = tmp_path / "office"
    result = cw(None, "init", str(target))
    assert result.exit_code == 0
    assert (target / "config" / "channelwatch.toml").is_file()
    channels = cw(target, "channels")
    assert channels.exit_code == 0 and "website" in channels.output
    again = runner.invoke(app, ["init", str(target)])
    assert again.exit_code == 1 and "已有实例文件" in again.output


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda t: t.replace('short_name = "我委"', 'short_name = "我委"\nshortname = "x"'),
            "office.shortname：未知的配置项",
        ),
        (lambda t: t.replace('id = "weibo"', 'id = "website"'), "渠道 id「website」重复"),
        (lambda t: t.replace('kind = "weibo"', 'kind = "douyin"'), "channels[2](id=weibo).kind：取值无效"),
        (lambda t: t.replace("Asia/Shanghai", "Asia/Beijing"), "未知的时区「Asia/Beijing」"),
        (lambda t: t.replace('name = "微博"', ""), "channels[2](id=weibo).name：缺少必填项"),
        (lambda t: t + "\n[[channels]\n", "不是有效的 TOML"),
    ],
)
def test_bad_config_is_one_clear_message(tmp_path: Path, edit, expected: str) -> None:  # type: ignore[no-untyped-def]
    instance = write_instance(tmp_path / "bad")
    config = instance / "config" / "channelwatch.toml"
    config.write_text(edit(config.read_text(encoding="utf-8")), encoding="utf-8")
    result = runner.invoke(app, ["--instance", str(instance), "channels"])
    assert result.exit_code == 1
    assert str(config) in result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_a_config_saved_by_notepad_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    instance = write_instance(tmp_path / "notepad")
    config = instance / "config" / "channelwatch.toml"
    config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())
    result = runner.invoke(app, ["--instance", str(instance), "channels"])
    assert result.exit_code == 0 and "weibo" in result.output, result.output


def test_a_config_saved_in_gbk_names_the_line_and_what_to_do(tmp_path: Path) -> None:
    instance = write_instance(tmp_path / "gbk")
    config = instance / "config" / "channelwatch.toml"
    text = config.read_text(encoding="utf-8")
    config.write_bytes(text.encode("gbk"))
    line = next(n for n, row in enumerate(text.splitlines(), 1) if any(ord(c) > 127 for c in row))
    result = runner.invoke(app, ["--instance", str(instance), "channels"])
    assert result.exit_code == 1
    assert f"错误：配置文件 {config} 不是 UTF-8 编码（第 {line} 行）：请用 UTF-8 保存" in result.output


def test_missing_instance(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--instance", str(tmp_path), "channels"])
    assert result.exit_code == 1 and "找不到实例配置" in result.output


def test_instance_from_environment(loaded: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHANNELWATCH_INSTANCE", str(loaded))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["summary", "--year", "2020", "--format", "json"])
    assert json.loads(result.output)["total"] == 1279


def test_database_url_from_environment(loaded: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHANNELWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    result = cw(loaded, "summary", "--year", "2020", "--format", "json")
    assert json.loads(result.stdout)["total"] == 0  # a different, empty database
    assert f"警告：数据库 sqlite:///{tmp_path / 'other.db'} 中没有本单位的任何发布记录" in result.stderr
    assert (tmp_path / "other.db").exists()


def _commands() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    names = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(command, "commands", None)
        names.extend(f"{name} {s}" for s in sub) if sub else names.append(name)
    return names


def test_every_command_has_help_and_is_documented() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in _commands():
        result = runner.invoke(app, [*name.split(), "--help"])
        assert result.exit_code == 0, name
        assert re.search(r"[\u4e00-\u9fff]", result.output), f"{name} has no Chinese help"
        assert f"channelwatch {name}" in readme or f"`{name}`" in readme, f"{name} missing from README.md"
