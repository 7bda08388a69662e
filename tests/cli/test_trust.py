"""Figures an office can sign, through the command line: renames never hide data, a wrong database or
channel is named, every import can be previewed, refused when it belongs elsewhere, and undone."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from channelwatch.cli import app
from tests.conftest import REPO, SAMPLES, new_postgres_database, write_instance

runner = CliRunner()
OFFICE = "彭阳县王洼产业园区管理委员会"
WEIBO_1 = SAMPLES / "weibo" / "微博发布记录_2020年1-7月.csv"
WEBSITE = SAMPLES / "website" / "网站信息发布统计_2020.csv"
WECHAT_XLSX = SAMPLES / "wechat" / "公众号群发记录_2020年1-9月.xlsx"


def cw(root: Path, *args: str) -> Result:
    return runner.invoke(app, ["--instance", str(root), *args])


def edit(root: Path, old: str, new: str) -> None:
    path = root / "config" / "channelwatch.toml"
    content = path.read_text(encoding="utf-8")
    assert old in content, old
    path.write_text(content.replace(old, new, 1), encoding="utf-8")


def total(root: Path, *extra: str) -> tuple[int, str]:
    result = cw(root, "summary", "-y", "2020", "-f", "json", *extra)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    return data["total"], data["office"]


@pytest.fixture
def loaded(any_instance_dir: Path) -> Path:
    result = cw(any_instance_dir, "import-tree", str(SAMPLES))
    assert result.exit_code == 0, result.output
    return any_instance_dir


# --- 1. renames never hide data ------------------------------------------------------------------------------


def test_init_writes_an_office_id_and_a_commented_delivery_section(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "new")])
    assert result.exit_code == 0, result.output
    config = (tmp_path / "new" / "config" / "channelwatch.toml").read_text(encoding="utf-8")
    office_id = re.search(r'^id = "(office-[0-9a-f]{8})"$', config, re.M)
    assert office_id is not None, config
    assert re.search(r"^\[delivery\]$", config, re.M)
    for key in ("# webhook = ", "#   [delivery.email]", "#   host = ", "#   to = ", "#   warn_to = "):
        assert key in config, key
    other = runner.invoke(app, ["init", str(tmp_path / "other")])
    assert other.exit_code == 0
    assert office_id.group(1) not in (tmp_path / "other" / "config" / "channelwatch.toml").read_text(encoding="utf-8")


def test_office_name_changed_after_the_first_import_keeps_the_figures(tmp_path: Path) -> None:
    root = tmp_path / "office"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    assert cw(root, "import-tree", str(SAMPLES)).exit_code == 0
    assert total(root) == (1279, "某某县某某局")
    edit(root, 'name = "某某县某某局"', f'name = "{OFFICE}"')  # the init placeholder replaced
    result = cw(root, "summary", "-y", "2020", "-f", "json")
    assert json.loads(result.stdout)["total"] == 1279
    assert json.loads(result.stdout)["office"] == OFFICE
    assert "单位名称已由「某某县某某局」改为「彭阳县王洼产业园区管理委员会」" in result.stderr
    quarterly = cw(root, "quarterly", "-y", "2020", "-q", "4", "-f", "json")
    assert json.loads(quarterly.stdout)["office"] == OFFICE
    assert json.loads(quarterly.stdout)["total"]["quarter"]["total"] > 0


def test_without_id_an_old_instance_uses_the_only_office(loaded: Path) -> None:
    assert total(loaded) == (1279, OFFICE)
    edit(loaded, f'name = "{OFFICE}"', 'name = "王洼产业园区管委会"')  # no [office] id in this config
    assert total(loaded) == (1279, "王洼产业园区管委会")


def _orphan_warning(output: str) -> bool:
    return (
        "警告：数据库中渠道 id「weibo」有 1227 条发布记录，但配置中已没有这个渠道" in output
        and "channelwatch channels rename weibo <新渠道id>" in output
    )


def test_renamed_channel_id_is_warned_by_every_figure_command_and_moved_back(loaded: Path) -> None:
    (loaded / "config" / "annual").mkdir(parents=True)
    shutil.copy(REPO / "config" / "annual" / "2020.toml", loaded / "config" / "annual" / "2020.toml")
    edit(loaded, 'id = "weibo"', 'id = "sina"')
    commands = [
        ["summary", "-y", "2020"],
        ["quarterly", "-y", "2020", "-q", "4"],
        ["report", "annual", "-y", "2020", "-f", "markdown"],
        ["channels"],
        ["publications", "website", "-y", "2020"],
        ["freshness"],
    ]
    for command in commands:
        result = cw(loaded, *command)
        assert _orphan_warning(result.stderr), (command, result.output)
        assert not _orphan_warning(result.stdout), command
    assert total(loaded)[0] == 1279 - 1225

    moved = cw(loaded, "channels", "rename", "weibo", "sina")
    assert moved.exit_code == 0, moved.output
    assert "已把渠道「weibo」的 1227 条发布记录和 2 条运行记录移到「sina」下" in moved.output
    assert 'id = "sina"，无需修改' in moved.output
    assert total(loaded)[0] == 1279
    for command in commands:
        assert "警告" not in cw(loaded, *command).stderr, command


def test_a_channel_without_records_up_to_a_period_is_named_not_counted_as_zero(loaded: Path) -> None:
    """A channel added to the config, or one whose old exports were never imported, shows 0: every figure
    command says that this 0 counts nothing, on stderr (the figures on stdout stay as they were)."""
    (loaded / "config" / "annual").mkdir(parents=True)
    shutil.copy(REPO / "config" / "annual" / "2020.toml", loaded / "config" / "annual" / "2020.toml")
    before = {command: cw(loaded, *command) for command in (("summary", "-y", "2020", "-f", "json"),)}
    path = loaded / "config" / "channelwatch.toml"
    path.write_text(
        path.read_text(encoding="utf-8") + '\n[[channels]]\nid = "douyin"\nkind = "other"\nname = "抖音号"\n',
        encoding="utf-8",
    )
    new = "注意：渠道「抖音号」（douyin）还没有任何发布记录（没有导入或抓取到过它的数据），{}它的“0条”只表示没有数据"
    for command, label in (
        (["summary", "-y", "2020"], "2020年"),
        (["summary", "-y", "2020", "-m", "6", "-f", "json"], "2020年6月"),
        (["quarterly", "-y", "2020", "-q", "4"], "2020年第四季度"),
        (["report", "annual", "-y", "2020", "-f", "markdown"], "2020年"),
    ):
        result = cw(loaded, *command)
        assert result.exit_code == 0, result.output
        assert new.format(label) in result.stderr, command
        assert "douyin" not in result.stderr.replace("（douyin）", ""), command
        assert "注意：渠道" not in result.stdout, command
    # The figures themselves are unchanged (the new channel adds its 0).
    data = json.loads(cw(loaded, "summary", "-y", "2020", "-f", "json").stdout)
    assert data["total"] == json.loads(before[("summary", "-y", "2020", "-f", "json")].stdout)["total"] == 1279

    # The samples' WeChat records begin in January 2020: its 0 of 2019 is no count either; the others' are.
    earlier = cw(loaded, "summary", "-y", "2019")
    notes = [line for line in earlier.stderr.splitlines() if line.startswith("注意：渠道")]
    assert notes[0].startswith(
        "注意：渠道「微信公众号」（wechat）最早的发布记录在 2020年1月，2019年它的“0条”只表示没有数据"
    )
    assert [n.split("（")[0] for n in notes] == ["注意：渠道「微信公众号」", "注意：渠道「抖音号」"]
    # A channel with records up to the period's end is not named.
    assert "政府网站" not in earlier.stderr and "微博" not in earlier.stderr


def test_rename_before_the_config_says_which_line_to_change(loaded: Path) -> None:
    moved = cw(loaded, "channels", "rename", "wechat", "gzh")
    assert moved.exit_code == 0, moved.output
    config = loaded / "config" / "channelwatch.toml"
    line = next(n for n, t in enumerate(config.read_text(encoding="utf-8").splitlines(), 1) if t == 'id = "wechat"')
    assert f'请修改配置文件 {config} 第 {line} 行 id = "wechat"：改为 id = "gzh"' in moved.output
    assert total(loaded)[0] == 1279 - 48  # until the config says gzh
    warned = cw(loaded, "summary", "-y", "2020")
    assert "渠道 id「gzh」有 48 条发布记录" in warned.stderr
    edit(loaded, 'id = "wechat"', 'id = "gzh"')
    assert total(loaded)[0] == 1279
    refused = cw(loaded, "channels", "rename", "gzh", "website")
    assert refused.exit_code == 1 and "类型不同" in refused.output and "--force" in refused.output
    missing = cw(loaded, "channels", "rename", "douyin", "x")
    assert missing.exit_code == 1 and "没有本单位渠道 id「douyin」" in missing.output
    bad = cw(loaded, "channels", "rename", "gzh", "公众号")
    assert bad.exit_code == 1 and "只能包含字母、数字、下划线和连字符" in bad.output


def test_after_a_rename_before_the_config_is_edited_the_warning_points_both_ways(loaded: Path) -> None:
    assert cw(loaded, "channels", "rename", "wechat", "gzh").exit_code == 0
    warned = [line for line in cw(loaded, "summary", "-y", "2020").stderr.splitlines() if "「gzh」" in line]
    assert warned == [
        "警告：数据库中渠道 id「gzh」有 48 条发布记录，但配置中已没有这个渠道，这些记录不计入任何数字；"
        "如果刚用 channels rename 把渠道改成了「gzh」，请把配置文件中的渠道 id「wechat」也改为 gzh；"
        "如果是在配置中改了渠道 id，请运行 channelwatch channels rename gzh <新渠道id>"
    ]
    # Every configured channel holding publications: only the config can have lost the id.
    edit(loaded, 'id = "wechat"', 'id = "gzh"')
    edit(loaded, '[[channels]]\nid = "website"\nkind = "website"\nname = "政府网站"\n', "")
    warned = [line for line in cw(loaded, "summary", "-y", "2020").stderr.splitlines() if "警告" in line]
    assert len(warned) == 1 and "「website」有 8 条" in warned[0]  # all years: 6 of them in 2020
    assert warned[0].endswith("；如果是改了渠道 id，请运行 channelwatch channels rename website <新渠道id>")


# --- 2. a wrong database is named --------------------------------------------------------------------------


def test_an_empty_database_is_named_with_its_password_hidden(tmp_path: Path, postgres_server: str) -> None:
    url = new_postgres_database(postgres_server).replace("postgres@", "postgres:s3cret-pw@")
    root = write_instance(tmp_path / "pg", url=url)
    (root / "config" / "annual").mkdir(parents=True)
    shutil.copy(REPO / "config" / "annual" / "2020.toml", root / "config" / "annual" / "2020.toml")
    shown = url.replace("s3cret-pw", "***")
    for command in (
        ["summary", "-y", "2020"],
        ["quarterly", "-y", "2020", "-q", "4"],
        ["report", "annual", "-y", "2020", "-f", "markdown", "--force"],
    ):
        result = cw(root, *command)
        assert f"警告：数据库 {shown} 中没有本单位的任何发布记录" in result.stderr, (command, result.output)
        assert "s3cret-pw" not in result.output
    assert cw(root, "import", "website", str(WEBSITE)).exit_code == 0
    assert "没有本单位的任何发布记录" not in cw(root, "summary", "-y", "2020").stderr


def test_sqlite_url_in_a_missing_folder_is_an_error_the_default_folder_is_made(tmp_path: Path) -> None:
    root = write_instance(tmp_path / "typo", url="sqlite:///dta/channelwatch.db")
    result = cw(root, "summary", "-y", "2020")
    assert result.exit_code == 1
    assert f"所在的文件夹 {root / 'dta'} 不存在" in result.output and "Traceback" not in result.output
    assert not (root / "dta").exists()
    absolute = write_instance(tmp_path / "abs", url=f"sqlite:///{tmp_path / 'nowhere' / 'cw.db'}")
    assert cw(absolute, "channels").exit_code == 1 and not (tmp_path / "nowhere").exists()
    default = write_instance(tmp_path / "default")  # sqlite:///data/channelwatch.db
    assert not (default / "data").exists()
    assert cw(default, "channels").exit_code == 0
    assert (default / "data" / "channelwatch.db").is_file()


def test_a_database_that_cannot_be_read_is_named_with_where_it_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    root = write_instance(tmp_path / "inst", url=f"sqlite:///{broken}")
    result = cw(root, "summary", "-y", "2020")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "错误：数据库文件已损坏或不是 SQLite 数据库：请检查 [database] url 指向的文件（file is not a database）。"
        f"数据库：sqlite:///{broken}（由 {root / 'config' / 'channelwatch.toml'} 的 [database] url 指定）"
    ]
    monkeypatch.setenv("CHANNELWATCH_DATABASE_URL", f"sqlite:///{broken}")
    by_env = cw(write_instance(tmp_path / "other"), "summary", "-y", "2020")
    assert by_env.output.strip().endswith(f"数据库：sqlite:///{broken}（由环境变量 CHANNELWATCH_DATABASE_URL 指定）")


# --- 3. imports: preview, wrong channel, undo -----------------------------------------------------------------


def runs_json(root: Path) -> list[dict[str, object]]:
    result = cw(root, "runs", "-f", "json")
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


def test_dry_run_counts_against_the_store_and_stores_nothing(any_instance_dir: Path) -> None:
    root = any_instance_dir
    preview = cw(root, "import", "weibo", "--dry-run", str(WEIBO_1))
    assert preview.exit_code == 0, preview.output
    assert (
        f"（预演，未写入）{WEIBO_1}（csv，utf-8-sig）→ weibo：读取 707 行，将新增 707，已有 0，拒收 0" in preview.output
    )
    assert runs_json(root) == [] and total(root)[0] == 0
    assert cw(root, "import", "weibo", str(WEIBO_1)).exit_code == 0
    second = SAMPLES / "weibo" / "微博发布记录_2020年7-12月.xlsx"
    both = cw(root, "import", "weibo", "--dry-run", str(WEIBO_1), str(second))
    assert both.exit_code == 0, both.output
    assert "weibo：读取 707 行，将新增 0，已有 707，拒收 0" in both.output
    assert "weibo：读取 624 行，将新增 520，已有 104，拒收 0" in both.output  # as the real import then says
    assert len(runs_json(root)) == 1
    real = cw(root, "import", "weibo", str(second))
    assert "读取 624 行，新增 520，已有 104，拒收 0" in real.output


def test_dry_run_of_a_bad_file_fails_like_the_import_and_writes_nothing(instance_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("标题,发布时间\n好的,2020-01-01\n坏的,不是日期\n", encoding="utf-8")
    result = cw(instance_dir, "import", "website", "--dry-run", str(bad))
    assert result.exit_code == 1
    assert "（预演）有 1 行无效，实际导入时整个文件会被拒收" in result.output
    assert "第3行，字段「发布时间」，值「不是日期」" in result.output
    skipped = cw(instance_dir, "import", "website", "--dry-run", "--skip-invalid", str(bad))
    assert skipped.exit_code == 0 and "将新增 1，已有 0，拒收 1" in skipped.output
    assert not (tmp_path / "bad.rejected.csv").exists()
    assert runs_json(instance_dir) == []


def test_a_file_of_another_kind_of_channel_is_refused_unless_forced(any_instance_dir: Path) -> None:
    root = any_instance_dir
    refused = cw(root, "import", "website", str(WEIBO_1))
    assert refused.exit_code == 1
    assert "文件看起来是微博的导出（707 条链接中 707 条在 weibo.com/weibo.cn）" in refused.output
    assert "渠道「website」的类型是 website（政府网站）" in refused.output and "--force" in refused.output
    wechat = cw(root, "import", "weibo", str(WECHAT_XLSX))
    assert wechat.exit_code == 1 and "文件看起来是微信公众号的导出" in wechat.output
    assert "渠道「weibo」的类型是 weibo（微博）" in wechat.output
    preview = cw(root, "import", "website", "--dry-run", str(WEIBO_1))
    assert preview.exit_code == 1 and "文件看起来是微博的导出" in preview.output
    assert total(root)[0] == 0
    assert [r["status"] for r in runs_json(root)] == ["rejected", "rejected"]
    forced = cw(root, "import", "website", "--force", str(WEIBO_1))
    assert forced.exit_code == 0 and "新增 707" in forced.output
    assert cw(root, "import", "website", str(WEBSITE)).exit_code == 0  # its own links: accepted


def test_undo_a_wrong_import_then_the_right_file_counts_as_if_it_never_came(any_instance_dir: Path) -> None:
    root = any_instance_dir
    assert cw(root, "import", "website", "--force", str(WEIBO_1)).exit_code == 0
    wrong = runs_json(root)[0]
    undone = cw(root, "runs", "undo", str(wrong["id"]))
    assert undone.exit_code == 0, undone.output
    assert f"已撤销运行 {wrong['id']}（website 导入 {WEIBO_1.name}）：删除了 707 条由该次运行首次写入的发布记录" in (
        undone.output
    )
    listing = cw(root, "runs")
    assert re.search(rf"^{wrong['id']}\s.*已撤销", listing.output, re.M), listing.output
    assert runs_json(root)[0]["status"] == "undone"
    right = cw(root, "import", "website", str(WEBSITE))
    assert "读取 9 行，新增 8，已有 1，拒收 0" in right.output  # what an untouched store says
    assert total(root)[0] == 6
    again = cw(root, "runs", "undo", str(wrong["id"]))
    assert again.exit_code == 1 and "已撤销" in again.output and "不能撤销" in again.output


def test_undo_refuses_what_is_not_a_finished_import_or_poll(instance_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("标题,发布时间\n坏的,不是日期\n", encoding="utf-8")
    assert cw(instance_dir, "import", "website", str(bad)).exit_code == 1
    rejected = runs_json(instance_dir)[0]
    result = cw(instance_dir, "runs", "undo", str(rejected["id"]))
    assert result.exit_code == 1 and "拒收" in result.output and "不是已成功完成的导入或抓取" in result.output
    missing = cw(instance_dir, "runs", "undo", "4242")
    assert missing.exit_code == 1 and "没有编号为 4242 的运行记录" in missing.output


def test_the_web_view_warns_at_start_about_a_lost_channel_id(instance_dir: Path) -> None:
    from tests.web.conftest import start_server, stop_server

    assert cw(instance_dir, "import", "weibo", str(WEIBO_1)).exit_code == 0
    edit(instance_dir, 'id = "weibo"', 'id = "sina"')
    server = start_server(instance_dir)
    stop_server(server)
    assert server.process.stdout is not None
    output = server.process.stdout.read()
    assert "警告：数据库中渠道 id「weibo」有 707 条发布记录，但配置中已没有这个渠道" in output
    assert "channelwatch channels rename weibo <新渠道id>" in output


def test_a_period_not_begun_or_not_ended_is_said_beside_its_figures(loaded: Path) -> None:
    """``summary --year 2099`` (a mistyped 2009) printed a table of zeros and nothing else."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    future = cw(loaded, "summary", "-y", "2099")
    assert future.exit_code == 0
    assert f"注意：2099年还没有开始（今天是 {today.isoformat()}），以上数字都是 0，不是统计结果" in future.stderr
    quarter = cw(loaded, "quarterly", "-y", "2099", "-q", "1")
    assert "注意：2099年第一季度还没有开始" in quarter.stderr
    current = cw(loaded, "summary", "-y", str(today.year))
    assert f"注意：{today.year}年尚未结束，数字统计至 {today.isoformat()}，还会变化" in current.stderr
    # The quarterly statistics say it in their own text: not twice.
    this_quarter = cw(loaded, "quarterly", "-y", str(today.year), "-q", str((today.month - 1) // 3 + 1))
    assert "尚未结束" in this_quarter.stdout and "尚未结束" not in this_quarter.stderr
    finished = cw(loaded, "summary", "-y", "2020")
    assert "注意" not in finished.stderr


def test_an_id_column_that_numbers_the_rows_is_refused_not_taken_for_ids(instance_dir: Path, tmp_path: Path) -> None:
    """Monthly files whose 编号 numbers their rows: February's notices were "already known" and counted as 0."""
    from openpyxl import Workbook

    def export(name: str, month: int, numbers: list[int], header: str = "编号") -> Path:
        path = tmp_path / name
        rows = [
            f"{n},{month}月通知{n},http://x.gov.cn/{month}/{n}.html,2020-{month:02d}-{n % 27 + 1:02d}" for n in numbers
        ]
        path.write_text("\n".join([f"{header},标题,链接,发布时间", *rows]) + "\n", encoding="utf-8")
        return path

    refused = cw(instance_dir, "import", "website", str(export("一月.csv", 1, [1, 2])))
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines() == [
        f"错误：{tmp_path / '一月.csv'}：「编号」列的值都是不大于行数的整数（1–2，共 2 行），是行的序号，"
        "不是每条信息自己的编号；按它识别，其他文件中序号相同的不同信息会被当成同一条而漏计，整个文件未导入。"
        "请删除这一列，或把列名改为“序号”（不作为编号），再导入"
    ]
    # One row, a numbering counted down, one from 0 or from 2: numberings all the same.
    for name, numbers in (("一条.csv", [1]), ("倒序.csv", [3, 2, 1]), ("从0.csv", [0, 1, 2]), ("从2.csv", [2, 3])):
        result = cw(instance_dir, "import", "website", str(export(name, 3, numbers)))
        assert result.exit_code == 1 and "是行的序号" in result.output, (name, result.output)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["ID", "标题", "发布时间"])
    sheet.append([1.0, "四月通知1", "2020-04-01"])
    book.save(tmp_path / "四月.xlsx")
    assert (
        "「ID」列的值都是不大于行数的整数（1–1"
        in cw(instance_dir, "import", "website", str(tmp_path / "四月.xlsx")).output
    )
    assert total(instance_dir)[0] == 0  # nothing stored

    # The platform's own numbers pass (a website article 9001 alone in its file) …
    assert cw(instance_dir, "import", "website", str(export("九月.csv", 9, [9001]))).exit_code == 0
    # … and, as the message says, the column renamed: each notice counts.
    for month in (1, 2):
        done = cw(instance_dir, "import", "website", str(export(f"{month}月.csv", month, [1, 2], header="序号")))
        assert done.exit_code == 0 and "新增 2" in done.output, done.output
    assert total(instance_dir)[0] == 5


def test_a_repeated_header_is_said_and_the_first_column_read(instance_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "dup.csv"
    export.write_text(
        "标题,标题,链接,发布时间\n第一标题,第二标题,http://x.gov.cn/a.html,2020-07-06\n", encoding="utf-8"
    )
    result = cw(instance_dir, "import", "website", str(export))
    assert result.exit_code == 0
    assert f"警告：{export}：表头中第2列「标题」与第1列重名，只读取了第1列" in result.stderr
    listing = cw(instance_dir, "publications", "website", "-y", "2020", "-f", "json")
    assert [p["title"] for p in json.loads(listing.stdout)] == ["第一标题"]


def test_a_chosen_encoding_that_does_not_read_the_file_is_not_told_to_choose_one(
    instance_dir: Path, tmp_path: Path
) -> None:
    export = tmp_path / "u8.csv"
    export.write_text("标题,发布时间\n园区通知,2020-07-06\n", encoding="utf-8")
    result = cw(instance_dir, "import", "website", str(export), "--encoding", "gbk")
    assert result.exit_code == 1
    assert (
        "按指定的 --encoding gbk 读不通，可换一个编码（如 utf-8、gb18030），或去掉 --encoding 自动识别" in result.output
    )
    assert "可用 --encoding 指定编码" not in result.output
