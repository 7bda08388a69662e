"""``channelwatch inspect``: would the office fail the national website and new-media checks today?"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from channelwatch.cli.common import Overwrite, app, echo, echo_data, fail, output_format, store_of


class InspectFormat(StrEnum):
    text = "text"
    json = "json"
    xlsx = "xlsx"
    html = "html"


_SUFFIXES = {
    InspectFormat.xlsx: (".xlsx",),
    InspectFormat.html: (".html", ".htm"),
    InspectFormat.json: (".json",),
    InspectFormat.text: (".txt",),
}


def _office(ctx: typer.Context, value: str | None) -> str | None:
    """``--office``: where the CLI knows several offices, it picks the one the store is opened for."""
    state = ctx.find_root().obj
    if value is not None and state is not None and hasattr(state, "office"):
        state.office = value
    return value


def _as_of(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        fail(f"--as-of 的值「{value}」不是有效日期，应为 YYYY-MM-DD（例如 2024-06-30）")
    raise AssertionError  # fail() raised


@app.command("inspect")
def inspect_command(
    ctx: typer.Context,
    office: Annotated[
        str | None, typer.Option("--office", help="单位（本实例的单位名称或编号）", callback=_office)
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="按该日期检查（YYYY-MM-DD，默认今天）：天数从该日算起")
    ] = None,
    format: Annotated[
        InspectFormat | None,
        typer.Option("--format", "-f", help="输出格式（默认：按 --output 的扩展名，否则 text）"),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="写入文件：.xlsx、.html、.json 或 .txt")] = None,
    overwrite: Overwrite = False,
) -> None:
    """检查预警：按政府网站与政务新媒体检查指标（首页、栏目更新，空白栏目，站点可访问性，链接，新媒体更新），
    给出每个渠道和单位的结论（否决风险 / 预警 / 正常）及需要处理的问题。阈值见配置的 [inspection]。"""
    from channelwatch.checks.outputs import as_html, as_json_text, as_text, as_xlsx
    from channelwatch.checks.rules import check_office, inspect, store_verdicts

    day = _as_of(as_of)
    format = output_format(format, output, _SUFFIXES, InspectFormat.text, overwrite=overwrite)
    if format is InspectFormat.xlsx and output is None:
        fail("xlsx 格式需要用 -o 指定输出文件，例如 -o 检查预警.xlsx")
    opened = store_of(ctx)
    check_office(opened, office)
    result = inspect(opened, day)
    store_verdicts(opened, result)  # the web view shows them (docs/web.md)
    templates = opened.instance.templates_dir
    min_probes = opened.instance.config.inspection.min_probes
    if format is InspectFormat.xlsx:
        content = as_xlsx(result)
    elif format is InspectFormat.json:
        content = as_json_text(result).encode("utf-8")
    elif format is InspectFormat.html:
        content = as_html(result, templates, min_probes).encode("utf-8")
    else:
        content = as_text(result, templates, min_probes).encode("utf-8")
    if output is None:
        echo_data(content.decode("utf-8"))
        return
    try:
        output.write_bytes(content)
    except OSError as exc:
        fail(f"无法写入 {output}：{exc.strerror or exc}")
    echo(f"已写入 {output}（结论：{result.verdict_label}）")
