"""The Typer application, the ``--instance`` option and the mapping of errors to exit codes."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from channelwatch.errors import UserError

if TYPE_CHECKING:
    from channelwatch.instance.config import Instance
    from channelwatch.store import Store

__all__ = ["app", "echo", "fail", "figures_store_of", "instance_of", "store_of"]


class _Group(TyperGroup):
    """Turns a ``UserError`` into one message on stderr and exit status 1, without a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            typer.echo(f"错误：{exc}", err=True)
            ctx.exit(1)


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
) -> None:
    """channelwatch：统计政府网站、微博、微信公众号的信息发布数量，生成年度报告和季度统计。"""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from channelwatch.redaction import FILTER

    for handler in logging.getLogger().handlers:
        handler.addFilter(FILTER)  # whatever logger a record comes from, no secret reaches stderr
    ctx.obj = CliState(instance_dir=instance)
    ctx.call_on_close(lambda: _close(ctx.obj))


def _close(state: CliState) -> None:
    if state.store is not None:
        state.store.dispose()


def _state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState(instance_dir=None)
    return root.obj


def instance_of(ctx: typer.Context) -> Instance:
    from channelwatch.instance.config import load_instance

    state = _state(ctx)
    if state.instance is None:
        state.instance = load_instance(state.instance_dir)
    return state.instance


def store_of(ctx: typer.Context) -> Store:
    from channelwatch.store import open_store

    state = _state(ctx)
    if state.store is None:
        state.store = open_store(instance_of(ctx))
        for notice in state.store.notices:
            echo(f"提示：{notice}", err=True)
    return state.store


def figures_store_of(ctx: typer.Context, *, check_empty: bool = False) -> Store:
    """The store for a command that reads figures, with the warnings such a command owes its reader.

    Publications under a channel id the config no longer has are counted nowhere: each such id is
    named with its count and the command that moves them. With ``check_empty`` (summary, quarterly,
    report annual), a database without a single publication of the office is named too: an empty
    figure from a mistyped ``[database] url`` must not pass for a real zero.
    """
    from channelwatch import store
    from channelwatch.store.schema import office_publication_count, orphan_channels

    opened = store_of(ctx)
    configured = [c.id for c in opened.instance.config.channels]
    with store.read(opened.engine) as conn:
        orphans = orphan_channels(conn, opened.office_id, configured)
        empty = check_empty and office_publication_count(conn, opened.office_id) == 0
    for key, count in orphans:
        echo(
            f"警告：数据库中渠道 id「{key}」有 {count} 条发布记录，但配置中已没有这个渠道，这些记录不计入任何数字；"
            f"如果是改了渠道 id，请运行 channelwatch channels rename {key} <新渠道id>",
            err=True,
        )
    if empty:
        echo(
            f"警告：数据库 {opened.database_label()} 中没有本单位的任何发布记录，以下数字均为 0："
            "请确认 [database] url（或环境变量 CHANNELWATCH_DATABASE_URL）指向正确的数据库，或先导入、抓取数据",
            err=True,
        )
    return opened


def echo(text: str = "", err: bool = False) -> None:
    typer.echo(text, err=err)


def fail(message: str) -> None:
    raise UserError(message)
