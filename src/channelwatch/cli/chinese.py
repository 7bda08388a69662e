"""Typer's help pages and usage errors in Chinese.

Typer (0.29) carries its own copy of click, whose help labels and usage-error texts are English
f-strings, not gettext calls: a translation catalogue would not reach them. Instead every command
gets a context whose help formatter writes the Chinese labels (用法 / 参数 / 选项 / 命令 / 必填 /
默认值), and ``usage_message()`` turns each kind of usage error into one Chinese sentence, built
from the exception's own fields (the parameter, the option name), not from its English text. Where
only a library's English detail is known, it follows in parentheses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import typer
from typer._click import exceptions as click_errors
from typer._click.formatting import HelpFormatter, wrap_text
from typer.core import TyperCommand, TyperGroup

from channelwatch.render import display_width
from channelwatch.terminal import shown

__all__ = ["install", "usage_message"]

_HEADINGS = {"Arguments": "参数", "Options": "选项", "Commands": "命令", "Usage": "用法"}
_METAVARS = (
    ("[OPTIONS]", "[选项]"),
    ("COMMAND [ARGS]...", "命令 [参数]..."),
)
_TYPES = {
    "int range": "整数",
    "int": "整数",
    "float range": "数",
    "float": "数",
    "str": "文本",
    "text": "文本",
    "path": "路径",
    "dir": "目录",
    "file": "文件",
    "list[Path]": "路径",
    "list[str]": "文本",
    "bool": "是/否",
}
_TYPE = re.compile(r"<([^<>]+)>")
_EXTRA = re.compile(r"\[([^\[\]]*)\]$")


def _type_label(match: re.Match[str]) -> str:
    name = match.group(1)
    return f"<{_TYPES.get(name, name)}>"


def _extra_piece(piece: str) -> str:
    piece = piece.strip()
    if piece == "required":
        return "必填"
    if piece.startswith("default: "):
        return "默认值：" + piece[len("default: ") :]
    if piece.startswith("env var: "):
        return "环境变量：" + piece[len("env var: ") :]
    if piece == "(dynamic)":
        return "（运行时决定）"
    bounds = re.fullmatch(r"(-?[\d.]+)<=x<=(-?[\d.]+)", piece)
    if bounds:
        return f"{bounds.group(1)}–{bounds.group(2)}"
    low = re.fullmatch(r"x>=(-?[\d.]+)", piece)
    if low:
        return f"不小于 {low.group(1)}"
    high = re.fullmatch(r"x<=(-?[\d.]+)", piece)
    if high:
        return f"不大于 {high.group(1)}"
    return piece


def _extras(text: str) -> str:
    """``help  [1990<=x<=2100; required]`` → ``help  [1990–2100；必填]``."""
    found = _EXTRA.search(text)
    if not found:
        return text
    pieces = [_extra_piece(p) for p in found.group(1).split(";")]
    return text[: found.start()] + "[" + "；".join(pieces) + "]"


class ChineseHelpFormatter(HelpFormatter):
    """Click's help layout with Chinese labels; the commands' own help texts are Chinese already."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        for english, chinese in _METAVARS:
            args = args.replace(english, chinese)
        super().write_usage(prog, args, prefix="用法：" if prefix is None else prefix)

    def write_heading(self, heading: str) -> None:
        self.write(f"{'':>{self.current_indent}}{_HEADINGS.get(heading, heading)}：\n")

    def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        """Click's two-column list, measured in terminal columns (a Chinese character takes two)."""
        translated = [(_TYPE.sub(_type_label, first), _extras(second)) for first, second in rows]
        widest = max((display_width(first) for first, _ in translated), default=0)
        first_col = min(widest, col_max) + col_spacing
        indent = " " * self.current_indent
        for first, second in translated:
            self.write(indent + first)
            if not second:
                self.write("\n")
                continue
            if display_width(first) <= first_col - col_spacing:
                self.write(" " * (first_col - display_width(first)))
            else:
                self.write("\n" + " " * (first_col + self.current_indent))
            text_width = max(self.width - first_col - 2, 10)
            lines = wrap_text(second, text_width, preserve_paragraphs=True).splitlines() or [""]
            self.write(lines[0] + "\n")
            for line in lines[1:]:
                self.write(" " * (first_col + self.current_indent) + line + "\n")


class ChineseContext(typer.Context):
    formatter_class = ChineseHelpFormatter


def install() -> None:
    """Every Typer command and group of this process formats its help with the Chinese formatter."""
    TyperCommand.context_class = ChineseContext
    TyperGroup.context_class = ChineseContext


def _names(param: Any) -> str:
    if param is None:
        return ""
    opts = [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]
    if getattr(param, "param_type_name", "") == "option" and opts:
        return " / ".join(opts)
    return str(getattr(param, "metavar", None) or getattr(param, "name", "") or "").upper()


def _what(param: Any) -> str:
    return "选项" if getattr(param, "param_type_name", "") == "option" else "参数"


def _quoted_values(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


def _bad_value(exc: Any) -> str:
    """One Chinese sentence for a value that failed its type, range or choice check."""
    param = exc.param
    detail = str(exc.message or "")
    subject = f"{_what(param)} {_names(param)}" if param is not None else "参数"
    if "is not one of" in detail:
        values = _quoted_values(detail)
        if values:
            given, allowed = values[0], values[1:]
            return f"{subject} 的值「{given}」无效，可选：{'、'.join(allowed)}"
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if "greater than" in detail or "less than" in detail:
        if low is not None and high is not None:
            return f"{subject} 的值超出范围：应在 {low}–{high} 之间"
        bound = re.search(r"(-?\d+(?:\.\d+)?)\s*$", detail)
        side = "不能小于" if "greater than" in detail else "不能大于"
        return f"{subject} 的值超出范围：{side} {bound.group(1) if bound else ''}".rstrip()
    if "valid integer" in detail:
        return f"{subject} 的值应为整数"
    if "valid number" in detail or "valid float" in detail:
        return f"{subject} 的值应为数字"
    if "does not exist" in detail:
        return f"{subject}：找不到 {'、'.join(_quoted_values(detail)) or '该路径'}"
    named = _quoted_values(detail)
    where = f"{named[0]} " if named else ""
    if detail.endswith("is a directory."):
        return f"{subject}：{where}是文件夹，这里应为文件"
    if detail.endswith("is a file."):
        return f"{subject}：{where}是文件，这里应为文件夹"
    if detail.endswith("is not readable."):
        return f"{subject}：{where}没有读取权限"
    if detail.endswith("is not writable."):
        return f"{subject}：{where}没有写入权限"
    if re.search(r"[\u4e00-\u9fff]", detail):  # our own BadParameter texts are Chinese already
        return f"{subject}：{detail}" if param is not None else detail
    return f"{subject} 的值无效（{detail}）"


def _detail(exc: Any) -> str:
    if isinstance(exc, click_errors.MissingParameter):
        return f"缺少必填{_what(exc.param)} {_names(exc.param)}"
    if isinstance(exc, click_errors.BadParameter):
        return _bad_value(exc)
    if isinstance(exc, click_errors.NoSuchOption):
        text = f"没有选项 {exc.option_name}"
        if exc.possibilities:
            text += f"（相近的选项：{'、'.join(sorted(exc.possibilities))}）"
        return text
    if isinstance(exc, click_errors.BadOptionUsage):
        if "requires" in exc.message:
            return f"选项 {exc.option_name} 后面需要一个值"
        if "does not take a value" in exc.message:
            return f"选项 {exc.option_name} 不接受值"
        return f"选项 {exc.option_name} 用法有误（{exc.message}）"
    message = str(exc.message)
    extra = re.match(r"Got unexpected extra argument(?:s|\(s\))? \((.*)\)$", message)
    if extra:
        return f"多余的参数：{extra.group(1)}"
    command = re.match(r"No such command '(.*?)'\.(?: Did you mean (.*)\?)?$", message)
    if command:
        text = f"没有命令 {command.group(1)}"
        if command.group(2):
            text += f"（您要找的可能是：{'、'.join(_quoted_values(command.group(2)))}）"
        return text
    if message.startswith("Missing command"):
        return "缺少命令"
    if re.search(r"[\u4e00-\u9fff]", message):
        return message
    return f"用法有误（{message}）"


def usage_message(exc: click_errors.UsageError) -> str:
    """``错误：<what is wrong>。运行 <command> -h 查看用法。`` on one line."""
    hint = ""
    if exc.ctx is not None:
        hint = f"运行 {exc.ctx.command_path} -h 查看用法。"
    return shown(f"错误：{_detail(exc)}。{hint}")
