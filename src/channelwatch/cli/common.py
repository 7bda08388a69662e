"""The Typer application, the ``--instance`` option and the mapping of errors to exit codes."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from typer._click import exceptions as click_errors
from typer.core import TyperCommand, TyperGroup

from channelwatch.cli.chinese import install as install_chinese_help
from channelwatch.cli.chinese import usage_message
from channelwatch.errors import UserError
from channelwatch.failures import database_problem, file_problem
from channelwatch.terminal import shown

E = TypeVar("E", bound=Enum)

if TYPE_CHECKING:
    from channelwatch.instance.config import Instance
    from channelwatch.stats.figures import Period
    from channelwatch.store import Store

__all__ = [
    "FORMAT_BY_OUTPUT",
    "TableOutput",
    "app",
    "county_of",
    "echo",
    "echo_data",
    "echo_footnotes",
    "fail",
    "figures_store_of",
    "instance_of",
    "output_file",
    "output_format",
    "period_notes",
    "root_instance_of",
    "store_of",
]


# Commands that work on the whole instance, not on one office: they take no ``--office``.
_WHOLE_INSTANCE = {"init", "daemon", "county"}


def _remember_office(ctx: typer.Context, value: str | None) -> None:
    if value is not None:
        _state(ctx).office = value


def _office_option() -> Any:
    """A fresh ``--office ID`` parameter, built by Typer itself from a one-parameter command."""
    probe = typer.Typer()

    @probe.command()
    def _probe(
        office: Annotated[
            str | None,
            typer.Option(
                "--office",
                metavar="ID",
                expose_value=False,
                callback=_remember_office,
                help=(
                    "单位 id（县级实例中 config/offices/<单位id>.toml 的文件名；"
                    "实例有多个单位时，针对一个单位的命令必填）"
                ),
            ),
        ] = None,
    ) -> None:
        pass

    return typer.main.get_command(probe).params[0]


def _add_office_option(command: Any) -> None:
    """Every one-office command takes ``--office ID``, added here once instead of in each command."""
    subcommands = getattr(command, "commands", None)
    if isinstance(subcommands, dict):
        for sub in subcommands.values():
            _add_office_option(sub)
        if not getattr(command, "invoke_without_command", False):
            return  # a group that only dispatches: the option belongs to its subcommands
    if not any(p.name == "office" for p in command.params):
        command.params.append(_office_option())


class _Group(TyperGroup):
    """The root command: one Chinese message and a documented exit status for every way a command can fail.

    - a ``UserError``: its message, exit 1;
    - a usage error (missing or unknown option, bad value): one Chinese line, exit 2;
    - anything unexpected: one Chinese line naming where the traceback was written, exit 1
      (``--debug`` prints the traceback instead).
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        _plain_help(self)
        return super().main(*args, **kwargs)

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click_errors.UsageError as exc:
            _usage_failure(exc)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, command in self.commands.items():
            if name not in _WHOLE_INSTANCE:
                _add_office_option(command)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            echo(f"错误：{exc}", err=True)
            ctx.exit(1)
        except click_errors.UsageError as exc:
            _usage_failure(exc)
        except (click_errors.ClickException, typer.Exit, typer.Abort, KeyboardInterrupt, BrokenPipeError):
            raise
        except OSError as exc:
            if exc.errno is None:
                _unexpected(ctx, exc)
            echo(f"错误：{file_problem(exc)}", err=True)
            ctx.exit(1)
        except Exception as exc:
            problem = database_problem(exc)
            if problem is None:
                _unexpected(ctx, exc)
            echo(f"错误：{problem}{_which_database(ctx)}", err=True)
            ctx.exit(1)


def _which_database(ctx: Any) -> str:
    """Which database a database problem is about, and where that is set (the URL without its password)."""
    state = ctx.find_root().obj
    instance = state.instance or state.root if isinstance(state, CliState) else None
    if instance is None:
        return ""
    from channelwatch.store.db import resolved_url

    try:
        url = resolved_url(instance.database_url, instance.root)  # as the store opens it
    except Exception:  # an unreadable URL is reported where it is read
        return ""
    label = url.render_as_string(hide_password=True)
    source = (
        "环境变量 CHANNELWATCH_DATABASE_URL"
        if os.environ.get("CHANNELWATCH_DATABASE_URL")
        else f" {instance.config_path} 的 [database] url"
    )
    return f"。数据库：{label}（由{source} 指定）"


def _plain_help(command: Any) -> None:
    """Plain (not Rich) help on every command, so that every page gets the Chinese labels."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def _usage_failure(exc: click_errors.UsageError) -> NoReturn:
    if isinstance(exc, click_errors.NoArgsIsHelpError):
        typer.echo(exc.format_message(), err=True)
    else:
        typer.echo(usage_message(exc), err=True)
    raise typer.Exit(exc.exit_code)


def error_log_path() -> Path:
    """Where unexpected tracebacks go: ``$XDG_STATE_HOME/channelwatch/error.log`` (``~/.local/state/…``)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "channelwatch" / "error.log"


def _unexpected(ctx: Any, exc: Exception) -> NoReturn:
    import traceback
    from datetime import datetime

    from channelwatch.redaction import redact

    trace = redact("".join(traceback.format_exception(exc)))
    summary = redact(f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__)
    if len(summary) > 200:
        summary = summary[:199] + "…"
    if _state(ctx).debug:
        typer.echo(trace, err=True, nl=False)
        echo(f"错误：程序内部出错（{summary}），以上是详细信息。", err=True)
        raise typer.Exit(1)
    written: Path | None = None
    for target in (error_log_path(), Path(tempfile.gettempdir()) / "channelwatch-error.log"):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("a", encoding="utf-8") as log:
                log.write(f"--- {datetime.now().astimezone().isoformat(timespec='seconds')} {sys.argv!r}\n{trace}")
            written = target
            break
        except OSError:
            continue
    where = f"详细信息已写入 {written}" if written else "详细信息未能写入日志"
    echo(f"错误：程序内部出错（{summary}）。{where}；加 --debug 可直接显示。", err=True)
    raise typer.Exit(1)


def _chinese_help_option(cls: Any) -> None:
    """Every command's ``--help`` described in Chinese, like the rest of the help text."""
    original = cls.get_help_option

    def get_help_option(self: Any, ctx: Any) -> Any:
        option = original(self, ctx)
        if option is not None:
            option.help = "显示此帮助并退出"
        return option

    cls.get_help_option = get_help_option


for _command_class in (TyperGroup, TyperCommand):
    _chinese_help_option(_command_class)
install_chinese_help()


app = typer.Typer(
    cls=_Group,
    help="channelwatch：统计政府网站、微博、微信公众号的信息发布数量，生成年度报告和季度统计。",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class CliState:
    instance_dir: Path | None
    instance: Instance | None = None
    store: Store | None = None
    debug: bool = False
    office: str | None = None
    root: Instance | None = None
    verbose: bool = False
    footnotes: list[str] = field(default_factory=list)


def _version(value: bool) -> None:
    if value:
        from channelwatch import __version__

        typer.echo(f"channelwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    instance: Annotated[
        Path | None,
        typer.Option(
            "--instance",
            "-i",
            help="实例目录（默认：环境变量 CHANNELWATCH_INSTANCE，否则当前目录）",
            file_okay=False,
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="输出调试日志")] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="程序内部出错时在屏幕上显示完整的出错信息（默认写入日志文件）")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", "-V", help="显示版本号并退出", callback=_version, is_eager=True),
    ] = False,
    office: Annotated[
        str | None,
        typer.Option(
            "--office",
            envvar="CHANNELWATCH_OFFICE",
            metavar="ID",
            help="单位 id（县级实例有多个单位时必填；也可写在各命令之后，或设置环境变量 CHANNELWATCH_OFFICE）",
        ),
    ] = None,
) -> None:
    """channelwatch：统计政府网站、微博、微信公众号的信息发布数量，生成年度报告和季度统计。"""
    logging.basicConfig(
        # Without --verbose a command says what a clerk needs in Chinese itself; the libraries' warnings (a
        # failed delivery, a file left in the inbox) are English lines for the IT person, in the daemon's log.
        level=logging.DEBUG if verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        # Libraries' warnings (openpyxl's "no default style", matplotlib's missing glyphs) are English notes
        # for programmers; --verbose shows them.
        import warnings

        warnings.simplefilter("ignore")
    from channelwatch.redaction import FILTER

    for handler in logging.getLogger().handlers:
        handler.addFilter(FILTER)  # whatever logger a record comes from, no secret reaches stderr
        if type(handler) is logging.StreamHandler and not isinstance(handler.formatter, _TerminalFormatter):
            # Log lines quote titles and server answers: their control characters are shown, not obeyed.
            handler.setFormatter(_TerminalFormatter(handler.formatter._fmt if handler.formatter else None))
    ctx.obj = CliState(instance_dir=instance, debug=debug, office=office, verbose=verbose)
    ctx.call_on_close(lambda: _close(ctx.obj))


class _TerminalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return shown(super().format(record))


def _close(state: CliState) -> None:
    if state.store is not None:
        state.store.dispose()


def _state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState(instance_dir=None)
    return root.obj


def root_instance_of(ctx: typer.Context) -> Instance:
    """The instance as configured: a one-office instance, or a county with all its offices."""
    from channelwatch.instance.config import load_instance

    state = _state(ctx)
    if state.root is None:
        state.root = load_instance(state.instance_dir)
    return state.root


def instance_of(ctx: typer.Context) -> Instance:
    """The one office a command works on: ``--office ID`` in a county instance."""
    state = _state(ctx)
    if state.instance is None:
        state.instance = root_instance_of(ctx).office_view(state.office)
    return state.instance


def county_of(ctx: typer.Context) -> Instance:
    """The county instance, for the ``county`` commands."""
    root = root_instance_of(ctx)
    if not root.is_county:
        raise UserError(
            f"{root.config_path} 不是县级实例：县级汇总需要 config/channelwatch.toml 中的 [county] 一节"
            "和 config/offices/<单位id>.toml（见 README 的县级部署一节）"
        )
    return root


def store_of(ctx: typer.Context) -> Store:
    from channelwatch.store import open_store

    state = _state(ctx)
    if state.store is None:
        state.store = open_store(instance_of(ctx))
        for notice in state.store.notices:
            echo(f"提示：{notice}", err=True)
    return state.store


def figures_store_of(
    ctx: typer.Context, *, check_empty: bool = False, period: Period | None = None, says_unfinished: bool = False
) -> Store:
    """The store for a command that reads figures, with the warnings such a command owes its reader.

    Publications under a channel id the config no longer has are counted nowhere: each such id is
    named with its count and the command that moves them. With ``check_empty`` (summary, quarterly,
    report annual), a database without a single publication of the office is named too: an empty
    figure from a mistyped ``[database] url`` must not pass for a real zero. With ``period``, so is each
    channel without a publication recorded up to that period's end, whose 0 in it is no count either: the
    command says it with ``echo_footnotes`` once its figures are out, as it says a period that has not begun or
    not ended (unless its own output ``says_unfinished``, as the quarterly statistics do).
    """
    from channelwatch import store
    from channelwatch.store.schema import office_publication_count, orphan_notes, unrecorded_notes

    instance = instance_of(ctx)
    if check_empty and instance.parent is not None and not instance.config.channels:
        # A county office that only sends its quarterly sheet has no publication here: a report of zeros (and a
        # sentence listing no channel) would contradict the figures the county holds from its sheets.
        raise UserError(
            f"单位「{instance.office_key}」（{instance.config.office.name}）没有配置渠道，只通过季度统计表向县里报送，"
            "本库中没有它的发布记录：它报送的数字见 channelwatch county summary --year 年份 [--quarter 季度]"
        )
    opened = store_of(ctx)
    with store.read(opened.engine) as conn:
        orphans = orphan_notes(conn, opened.office_id, opened.instance)
        empty = check_empty and office_publication_count(conn, opened.office_id) == 0
        unrecorded = unrecorded_notes(conn, opened.office_id, opened.instance, period) if period and not empty else []
    for key, count, advice in orphans:
        echo(
            f"警告：数据库中渠道 id「{key}」有 {count} 条发布记录，但配置中已没有这个渠道，这些记录不计入任何数字；"
            + advice,
            err=True,
        )
    if empty:
        echo(
            f"警告：数据库 {opened.database_label()} 中没有本单位的任何发布记录，以下数字均为 0："
            "请确认 [database] url（或环境变量 CHANNELWATCH_DATABASE_URL）指向正确的数据库，或先导入、抓取数据",
            err=True,
        )
    footnotes = _state(ctx).footnotes
    if period is not None:
        footnotes.extend(period_notes(period, opened.instance.timezone, says_unfinished))
    footnotes.extend(f"注意：{note}" for note in unrecorded)
    return opened


def period_notes(period: Period, zone: str, says_unfinished: bool) -> list[str]:
    """A period that has not begun (a mistyped year) holds zeros only; one under way, figures that will grow."""
    from datetime import UTC, datetime

    from channelwatch.dates import to_office

    today = to_office(datetime.now(UTC), zone).date()
    if period.start > today:
        began = f"还没有开始（今天是 {today.isoformat()}）"
        return [f"注意：{period.label}{began}，以上数字都是 0，不是统计结果：请检查 --year 等参数"]
    if period.end >= today and not says_unfinished:
        return [f"注意：{period.label}尚未结束，数字统计至 {today.isoformat()}，还会变化，不宜作为正式报送"]
    return []


def echo_footnotes(ctx: typer.Context) -> None:
    """What the figures just written need said beside them (``figures_store_of``'s ``period``), on stderr.

    After the figures, once they are out: a command that then fails says only why it failed.
    """
    for note in _state(ctx).footnotes:
        echo(note, err=True)


def echo(text: str = "", err: bool = False, nl: bool = True) -> None:
    """Print a message or a table: control characters in titles, file names and upstream words are shown escaped."""
    typer.echo(shown(text), err=err, nl=nl)


def echo_data(text: str) -> None:
    """Print a data payload (CSV, JSON, Markdown, HTML) to stdout: unchanged when it goes to a file or a pipe,
    with control characters escaped when a person reads it on a terminal."""
    if sys.stdout.isatty():
        text = shown(text)
    # Not typer.echo: it strips ANSI sequences from what is not a terminal, changing the data.
    sys.stdout.write(text)
    sys.stdout.flush()


def fail(message: str) -> NoReturn:
    raise UserError(message)


# Every command that writes a file given with -o: a file that exists is someone's, kept unless asked.
Overwrite = Annotated[bool, typer.Option("--overwrite", help="--output 指定的文件已存在时覆盖它（默认不覆盖）")]


# The format and file options of the commands that print a table of figures (summary, county summary).
FORMAT_BY_OUTPUT = "输出格式（默认：按 --output 的扩展名，否则 text）"
TableOutput = Annotated[
    Path | None, typer.Option("--output", "-o", help="写入文件：.xlsx、.csv（带 BOM）、.json、.md 或 .txt")
]


def output_format(
    chosen: E | None, output: Path | None, suffixes: Mapping[E, tuple[str, ...]], default: E, *, overwrite: bool = False
) -> E:
    """The format an ``-o`` file is written in: ``--format``, else the one its extension names, else ``default``.

    A spreadsheet named ``.xlsx`` that holds text opens as garbage, or not at all: a format whose extensions
    ``suffixes`` lists must be written under one of them (a name without any extension, a device or a pipe,
    takes ``--format``). The target is checked as ``output_file`` checks it.
    """
    if output is None:
        return chosen or default
    suffix = output.suffix.lower()
    if chosen is None:
        named = [member for member, endings in suffixes.items() if suffix in endings]
        if not named:
            listed = "、".join(ending for endings in suffixes.values() for ending in endings)
            fail(f"无法从文件名 {output.name} 看出要写的格式：请用扩展名 {listed} 之一")
        chosen = named[0]
    expected = suffixes.get(chosen, ()) if suffix else ()
    output_file(output, suffixes=expected, what=f"{chosen.value} 格式的", overwrite=overwrite)
    return chosen


def output_file(path: Path, *, suffixes: tuple[str, ...] = (), what: str = "", overwrite: bool = False) -> Path:
    """Check an ``-o`` target before any work is done: a file name in a folder that exists.

    ``suffixes`` are the extensions that match the format (``.docx`` for a Word draft); a file that
    exists is refused unless ``overwrite``: writing over a clerk's own file with a report cannot be undone.
    """
    if path.is_dir():
        example = path / ("文件名" + (suffixes[0] if suffixes else ""))
        fail(f"输出路径 {path} 是一个文件夹，请给出文件名，例如 {example}")
    folder = path.parent
    if not folder.exists():
        fail(f"输出文件夹 {folder} 不存在，请先创建它或换一个路径")
    if not folder.is_dir():
        fail(f"输出路径 {path} 无效：{folder} 不是文件夹")
    if suffixes and path.suffix.lower() not in suffixes:
        fail(f"{what}文件的扩展名应为 {'、'.join(suffixes)}，而 {path.name} 不是；请改用 {path.stem}{suffixes[0]}")
    if not overwrite and path.exists():
        fail(f"文件 {path} 已存在，未覆盖；要覆盖请加 --overwrite，或换一个文件名")
    return path
