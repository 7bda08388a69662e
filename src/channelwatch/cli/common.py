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

__all__ = ["app", "county_of", "echo", "fail", "instance_of", "root_instance_of", "store_of"]


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
                help="单位 id（县级实例中 config/offices/<单位id>.toml 的文件名；实例有多个单位时必填）",
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
    elif not any(p.name == "office" for p in command.params):
        command.params.append(_office_option())


class _Group(TyperGroup):
    """Turns a ``UserError`` into one message on stderr and exit status 1, without a traceback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, command in self.commands.items():
            if name not in _WHOLE_INSTANCE:
                _add_office_option(command)

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
    office: str | None = None
    root: Instance | None = None


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
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from channelwatch.redaction import FILTER

    for handler in logging.getLogger().handlers:
        handler.addFilter(FILTER)  # whatever logger a record comes from, no secret reaches stderr
    ctx.obj = CliState(instance_dir=instance, office=office)
    ctx.call_on_close(lambda: _close(ctx.obj))


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
    return state.store


def echo(text: str = "", err: bool = False) -> None:
    typer.echo(text, err=err)


def fail(message: str) -> None:
    raise UserError(message)
