"""Reading TOML files and turning validation errors into one Chinese message naming file and key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from channelwatch.errors import ConfigError

_PYDANTIC_REASONS = {
    "extra_forbidden": "未知的配置项",
    "missing": "缺少必填项",
    "literal_error": "取值无效",
    "string_pattern_mismatch": "只能包含字母、数字、下划线和连字符",
    "string_too_short": "不能为空",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "string_type": "应为字符串",
    "bool_type": "应为 true 或 false",
    "bool_parsing": "应为 true 或 false",
    "list_type": "应为列表",
    "dict_type": "应为表（[section]）",
    "model_type": "应为表（[section]）",
    "greater_than_equal": "数值过小",
    "greater_than": "数值过小",
    "less_than_equal": "数值过大",
    "enum": "取值无效",
    "url_parsing": "不是有效的网址",
    "too_short": "不能为空",
    "string_too_long": "太长",
    "less_than": "数值过大",
    "float_type": "应为数字",
    "float_parsing": "应为数字",
}


def _key_path(loc: tuple[int | str, ...], data: Any) -> str:
    """``('channels', 1, 'kind')`` → ``channels[2].kind``, with the channel's id where known."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item + 1}]"
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                ident = node[item].get("id")
                if ident:
                    label = f"[{item + 1}](id={ident})"
            parts.append(label)
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(("." if parts else "") + item)
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def describe_problem(detail: Any) -> str:
    """One pydantic error as the Chinese reason and the offending value: ``reason（值：'x'）``."""
    kind = detail["type"]
    reason = _PYDANTIC_REASONS.get(kind)
    if kind in {"value_error", "assertion_error"}:
        reason = str(detail.get("ctx", {}).get("error", detail["msg"]))
    elif kind == "literal_error":
        expected = str(detail.get("ctx", {}).get("expected", ""))
        choices = [c.strip().strip("'\"") for c in expected.replace(" or ", ", ").split(",")]
        reason = f"取值无效，可选：{'、'.join(c for c in choices if c)}"
    elif reason is None:
        reason = f"取值无效（{detail['msg']}）"
    value = detail.get("input")
    shown = "" if kind == "missing" or isinstance(value, dict | list) else f"（值：{value!r}）"
    return reason + shown


def format_validation_error(path: Path, error: ValidationError, data: Any) -> str:
    lines = [f"配置文件 {path} 有误："]
    for detail in error.errors():
        lines.append(f"  {_key_path(tuple(detail['loc']), data)}：{describe_problem(detail)}")
    return "\n".join(lines)


_TOML_REASONS = (
    ("Invalid value", "值无效：字符串要加英文双引号，true/false 要小写，数组用 [ ]"),
    ("Cannot overwrite a value", "同一个键写了两次"),
    ("Cannot declare", "同一个表（[section]）声明了两次"),
    ("Unterminated string", "字符串缺少结尾的引号"),
    ("Expected '=' after a key", "键后面缺少等号 ="),
    ("Expected ']' at the end of a table declaration", "表名缺少结尾的 ]"),
    ("Expected newline or end of document after a statement", "一行只能写一个 键 = 值"),
    ("Invalid statement", "无法识别的一行"),
    ("Unclosed array", "数组缺少结尾的 ]"),
    ("Unclosed inline table", "内联表缺少结尾的 }"),
    ("Illegal character", "含有不允许的字符"),
)
_TOML_WHERE = re.compile(
    r"^(?P<reason>.*?) \((?:at line (?P<line>\d+), column (?P<column>\d+)|at end of document)\)$", re.S
)


def describe_toml_error(path: Path, exc: Exception) -> str:
    """``配置文件 X 不是有效的 TOML：第 3 行第 8 列，值无效（Invalid value）`` from tomllib's English text."""
    text = str(exc)
    found = _TOML_WHERE.match(text)
    english = found.group("reason") if found else text
    if found and found.group("line"):
        where = f"第 {found.group('line')} 行第 {found.group('column')} 列，"
    elif found:
        where = "文件末尾，"
    else:
        where = ""
    reason = next((chinese for prefix, chinese in _TOML_REASONS if english.startswith(prefix)), "语法错误")
    return f"配置文件 {path} 不是有效的 TOML：{where}{reason}（{english}）"


def load_toml(path: Path) -> dict[str, Any]:
    """A TOML file, UTF-8 with or without the byte order mark that Windows Notepad writes (TOML itself refuses it)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"找不到配置文件 {path}") from None
    try:
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"配置文件 {path} 不是 UTF-8 编码（第 {line} 行）：请用 UTF-8 保存（记事本、WPS 的“另存为”中选择 UTF-8）"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(describe_toml_error(path, exc)) from None
