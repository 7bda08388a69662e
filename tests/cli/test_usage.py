"""A clerk never meets English or a traceback: usage errors, help pages, --version, --debug, config syntax.

Usage errors and help pages run the real ``channelwatch`` console script in a subprocess, so what is
checked is exactly what a terminal shows (stdout and stderr apart, the real exit status).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from channelwatch import __version__
from channelwatch.cli import app
from channelwatch.cli.chinese import ChineseHelpFormatter
from channelwatch.render import display_width
from tests.conftest import write_instance

CHANNELWATCH = Path(sys.executable).with_name("channelwatch")
ENGLISH = re.compile(
    r"\b(Usage|Error|Options|Arguments|Commands|Missing|Invalid|required|default|No such|Try|Got unexpected)\b"
)


def cw(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHANNELWATCH), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "120", **(env or {})},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["summary"], "错误：缺少必填选项 --year / -y。运行 channelwatch summary -h 查看用法。"),
        (["summary", "--year", "3000"], "错误：选项 --year / -y 的值超出范围：应在 1990–2100 之间。"),
        (["summary", "--year", "abc"], "错误：选项 --year / -y 的值应为整数。"),
        (
            ["summary", "--year", "2020", "--format", "pdf"],
            "错误：选项 --format / -f 的值「pdf」无效，可选：text、json",
        ),
        (["summary", "--year", "2020", "--bogus"], "错误：没有选项 --bogus。运行 channelwatch summary -h 查看用法。"),
        (["summary", "--year"], "错误：选项 --year 后面需要一个值。"),
        (["summary", "--year", "2020", "extra"], "错误：多余的参数：extra。"),
        (["summary", "--year", "2020", "-q", "1", "-m", "2"], "错误：--quarter 与 --month 只能选一个。"),
        (["runs", "--limit", "0"], "错误：选项 --limit / -n 的值超出范围：不能小于 1。"),
        (["summar"], "错误：没有命令 summar（您要找的可能是：summary）。运行 channelwatch -h 查看用法。"),
        (["bogus"], "错误：没有命令 bogus。"),
        (["--bogus"], "错误：没有选项 --bogus"),
        (["publications"], "错误：缺少必填参数 渠道。运行 channelwatch publications -h 查看用法。"),
        (["import", "weibo"], "错误：缺少必填参数 文件。"),
        (["init"], "错误：缺少必填参数 目录。"),
        (["run-job"], "错误：缺少必填参数 任务。"),
        (["quarterly", "--year", "2020"], "错误：缺少必填选项 --quarter / -q。"),
        (
            ["report", "annual", "--year", "2020", "-f", "pdf"],
            "错误：选项 --format / -f 的值「pdf」无效，可选：docx、markdown、html",
        ),
        (["report", "annual", "--year", "2018"], "错误：选项 --year / -y 的值超出范围：应在 2019–2100 之间。"),
        (["report", "quarterly"], "错误：没有命令 quarterly。运行 channelwatch report -h 查看用法。"),
        (["poll", "--concurrency", "x"], "错误：选项 --concurrency 的值应为整数。"),
        (["import", "weibo", "."], "错误：参数 文件：. 是文件夹，这里应为文件。"),
        (["--instance", "/etc/passwd", "channels"], "错误：选项 --instance / -i：/etc/passwd 是文件，这里应为文件夹。"),
    ],
)
def test_usage_errors_are_one_chinese_line_with_exit_2(args: list[str], expected: str, tmp_path: Path) -> None:
    result = cw(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(expected), lines[0]
    assert not ENGLISH.search(lines[0]), lines[0]
    assert "Traceback" not in result.stderr


def _command_paths() -> list[list[str]]:
    """Every command and group of the real command tree, as the words that reach it."""
    from typer.main import get_command

    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        found.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(get_command(app), [])
    return found


def test_the_command_tree_is_what_the_help_test_walks() -> None:
    paths = [" ".join(p) for p in _command_paths()]
    for expected in ("", "summary", "publications", "report", "report annual", "quarterly", "daemon", "poll"):
        assert expected in paths


@pytest.mark.parametrize("words", _command_paths(), ids=lambda words: " ".join(words) or "channelwatch")
def test_every_help_page_is_chinese(words: list[str], tmp_path: Path) -> None:
    result = cw(*words, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = result.stdout
    assert page.startswith(f"用法：channelwatch {' '.join(words)}".rstrip() + " ["), page
    assert "选项：\n" in page
    assert "显示此帮助并退出" in page
    assert "[选项]" in page.splitlines()[0]
    assert not ENGLISH.search(page), page
    for line in page.splitlines():
        brackets = re.search(r"\[([^\[\]]*)\]$", line)
        if brackets and not line.lstrip().startswith("用法"):
            assert not re.search(r"[A-Za-z]+<=x|x>=|default|required", brackets.group(1)), line


def test_help_labels_for_arguments_required_and_defaults(tmp_path: Path) -> None:
    imported = cw("import", "--help", cwd=tmp_path).stdout
    assert "参数：\n" in imported
    assert re.search(r"^  渠道 <文本>\s+渠道 id（见 channelwatch channels）  \[必填\]$", imported, re.M), imported
    summary = cw("summary", "--help", cwd=tmp_path).stdout
    assert re.search(r"-y, --year <整数>\s+年份，如 2020  \[1990–2100；必填\]$", summary, re.M), summary
    assert "[默认值：text]" in cw("freshness", "--help", cwd=tmp_path).stdout
    root = cw("--help", cwd=tmp_path).stdout
    assert "命令：\n" in root and "用法：channelwatch [选项] 命令 [参数]..." in root


def test_help_columns_line_up_in_terminal_columns() -> None:
    formatter = ChineseHelpFormatter(width=100)
    formatter.write_dl([("-i, --instance <dir>", "实例目录"), ("--debug", "调试")])
    first, second = formatter.getvalue().splitlines()
    assert first.startswith("-i, --instance <目录>")  # the type shown in Chinese as well
    assert display_width(first[: first.index("实例目录")]) == display_width(second[: second.index("调试")])


def test_no_arguments_prints_the_chinese_help(tmp_path: Path) -> None:
    result = cw(cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("用法：channelwatch [选项] 命令 [参数]...")
    assert not ENGLISH.search(result.stderr)


def test_version(tmp_path: Path) -> None:
    for flag in ("--version", "-V"):
        result = cw(flag, cwd=tmp_path)
        assert result.returncode == 0
        assert result.stdout == f"channelwatch {__version__}\n"


def _corrupt_database(root: Path) -> None:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "channelwatch.db").write_bytes(b"this is not a database " * 50)


# A program fault: the real command line in a real process, with one library function broken on purpose.
_BROKEN = (
    "import sys; import channelwatch.reports.summary as s; "
    "s.summary_text = lambda *a, **k: {}['secret=pw-s3cret-value-42']; "
    "from channelwatch.cli import main; sys.argv[0] = 'channelwatch'; main()"
)


def faulty(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BROKEN, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    )


def test_unexpected_error_is_one_line_and_the_traceback_goes_to_the_log(tmp_path: Path) -> None:
    root = write_instance(tmp_path / "instance")
    state = tmp_path / "state"
    result = faulty("--instance", str(root), "summary", "--year", "2020", env={"XDG_STATE_HOME": str(state)})
    assert result.returncode == 1
    log = state / "channelwatch" / "error.log"
    # The empty instance's database also earns the "no publication of this office" warning first.
    assert [line for line in result.stderr.splitlines() if not line.startswith("警告：数据库")] == [
        f"错误：程序内部出错（KeyError: 'secret=***'）。详细信息已写入 {log}；加 --debug 可直接显示。"
    ]
    written = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in written
    assert "summary" in written  # the command line that failed
    assert "KeyError" in written and "pw-s3cret-value-42" not in written  # redacted like every log


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    root = write_instance(tmp_path / "instance")
    state = tmp_path / "state"
    result = faulty("--debug", "--instance", str(root), "summary", "--year", "2020", env={"XDG_STATE_HOME": str(state)})
    assert result.returncode == 1
    shown_lines = [line for line in result.stderr.splitlines() if not line.startswith("警告：数据库")]
    assert shown_lines[0] == "Traceback (most recent call last):"
    assert result.stderr.splitlines()[-1] == "错误：程序内部出错（KeyError: 'secret=***'），以上是详细信息。"
    assert not (state / "channelwatch" / "error.log").exists()


def test_a_database_that_cannot_be_read_is_one_line_not_a_fault(tmp_path: Path) -> None:
    root = write_instance(tmp_path / "instance")
    _corrupt_database(root)
    state = tmp_path / "state"
    result = cw("--instance", str(root), "summary", "--year", "2020", env={"XDG_STATE_HOME": str(state)})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "错误：数据库文件已损坏或不是 SQLite 数据库：请检查 [database] url 指向的文件（file is not a database）。"
        f"数据库：sqlite:///{root / 'data' / 'channelwatch.db'}"
        f"（由 {root / 'config' / 'channelwatch.toml'} 的 [database] url 指定）"
    ]
    assert not (state / "channelwatch" / "error.log").exists()


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path: Path) -> None:
    password = "pw-s3cret-value-42"
    url = f"postgresql+psycopg://clerk:{password}@127.0.0.1:1/nowhere"
    root = write_instance(tmp_path / "instance", url=url)
    state = tmp_path / "state"
    result = cw("--instance", str(root), "summary", "--year", "2020", env={"XDG_STATE_HOME": str(state)})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("错误：无法连接数据库：请检查 [database] url 或 CHANNELWATCH_DATABASE_URL")
    assert password not in result.stderr and "Traceback" not in result.stderr


def test_toml_syntax_error_names_line_and_column_in_chinese(tmp_path: Path) -> None:
    root = write_instance(tmp_path / "instance")
    config = root / "config" / "channelwatch.toml"
    lines = config.read_text(encoding="utf-8").splitlines()
    config.write_text("\n".join([*lines, 'short_name = = "x"']) + "\n", encoding="utf-8")
    result = cw("--instance", str(root), "channels")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"错误：配置文件 {config} 不是有效的 TOML：第 {len(lines) + 1} 行第 14 列，"
        "值无效：字符串要加英文双引号，true/false 要小写，数组用 [ ]（Invalid value）"
    ]


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("0 25 * * *", "第 2 个字段（时）的值「25」超过最大值 23"),
        ("61 8 * * *", "第 1 个字段（分）的值「61」超过最大值 59"),
        ("0 8 * 13 *", "第 4 个字段（月）的值「13」超过最大值 12"),
        ("x 8 * * *", "第 1 个字段（分）的值「x」无法识别"),
        ("0 8 * * mon-fri-x", "星期字段「mon-fri-x」无效"),
        ("0 8 * * 1/x", "星期字段「1/x」无效"),
        ("0 8 * *", "应有 5 个字段：分 时 日 月 星期"),
    ],
)
def test_cron_errors_in_job_files_are_chinese(tmp_path: Path, cron: str, expected: str) -> None:
    root = write_instance(tmp_path / "instance")
    job = root / "jobs" / "check.toml"
    job.write_text(f'action = "freshness-check"\ncron = "{cron}"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["--instance", str(root), "jobs"])
    assert result.exit_code == 1
    assert f"任务文件 {job} 有误" in result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_log_lines_on_the_terminal_show_control_characters_escaped() -> None:
    import logging

    from channelwatch.cli.common import _TerminalFormatter

    record = logging.LogRecord("channelwatch.test", logging.WARNING, __file__, 1, "poll of %s failed: %s", None, None)
    record.args = ("weibo", "服务器答复\x1b[2J\r伪造")
    line = _TerminalFormatter("%(levelname)s %(message)s").format(record)
    assert line == "WARNING poll of weibo failed: 服务器答复\\x1b[2J\\r伪造"
