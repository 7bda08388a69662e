"""``channelwatch report annual``: the 政府信息公开工作年度报告 draft in the national format of its year."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from channelwatch.cli.common import (
    Overwrite,
    app,
    echo,
    echo_data,
    echo_footnotes,
    fail,
    figures_store_of,
    instance_of,
    output_file,
)

report_app = typer.Typer(
    help="生成报告：政府信息公开工作年度报告草稿。",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(report_app, name="report")


class AnnualOutput(StrEnum):
    docx = "docx"
    markdown = "markdown"
    html = "html"


@report_app.command("annual")
def annual_command(
    ctx: typer.Context,
    year: Annotated[int, typer.Option("--year", "-y", help="报告年度，如 2020", min=2019, max=2100)],
    format: Annotated[AnnualOutput, typer.Option("--format", "-f", help="输出格式")] = AnnualOutput.docx,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="写入文件（docx 默认写到当前目录；markdown/html 默认输出到屏幕）"),
    ] = None,
    init_inputs: Annotated[
        bool,
        typer.Option("--init-inputs", help="生成该年度的填报文件 config/annual/<年份>.toml（各项为 0，附中文说明）"),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="核对未通过也生成草稿，并在有问题处标注 ※")] = False,
    overwrite: Overwrite = False,
) -> None:
    """生成年度报告草稿：按该年度适用的国家统一格式（2019、2020年度用国办公开办函〔2019〕60号，
    2021年度起用国办公开办函〔2021〕30号），渠道发布数字取自统计库，其余取自 config/annual/<年份>.toml。"""
    if init_inputs:
        from channelwatch.reports.annual_inputs import write_initial_inputs

        path = write_initial_inputs(instance_of(ctx).root, year)
        echo(f"已写出 {path}：请填写各项数字和文字后运行 channelwatch report annual --year {year}")
        return

    from channelwatch.reports.annual import (
        ANNUAL_SUFFIXES,
        build_annual_report,
        default_output_name,
        next_free_path,
        write_annual_report,
    )

    if output is not None:
        what = {"docx": "Word 草稿", "markdown": "Markdown 草稿", "html": "HTML 草稿"}[format.value]
        output_file(output, suffixes=ANNUAL_SUFFIXES[format.value], what=what, overwrite=overwrite)
    from channelwatch.stats.figures import Period

    opened = figures_store_of(ctx, check_empty=True, period=Period(year))
    # Markdown on the screen has nowhere to put the chart: skip drawing it.
    chart = format is not AnnualOutput.markdown or output is not None
    report = build_annual_report(opened, year, with_chart=chart)
    for warning in report.warnings:
        echo(f"提示：{warning}", err=True)
    if report.mismatches:
        lines = [f"  - {m.describe()}" for m in report.mismatches]
        if not force:
            fail(
                f"{year}年度报告核对未通过，共 {len(report.mismatches)} 处，未生成草稿：\n"
                + "\n".join(lines)
                + f"\n请改正 {report.inputs.path} 后重试；如需先看草稿，加 --force（问题处标注 ※）。"
            )
        echo(f"警告：核对未通过，共 {len(report.mismatches)} 处，已按 --force 生成并标注 ※：", err=True)
        echo("\n".join(lines), err=True)
    target = output
    if target is None and format is AnnualOutput.docx:
        # The default name never replaces a draft someone may have edited: the next free （2）, （3）, … is used.
        wanted = Path(default_output_name(report, format.value))
        target = next_free_path(wanted)
        if target != wanted:
            echo(f"提示：{wanted} 已存在（未覆盖），本次写入 {target}", err=True)
    text = write_annual_report(report, format.value, target, opened.instance.templates_dir, overwrite=overwrite)
    if text is not None:
        echo_data(text)
    else:
        echo(f"已写入 {target}")
    echo_footnotes(ctx)
