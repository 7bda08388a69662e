"""``channelwatch county …``: the county's roll-up of its offices, their sheets, and the county's delivery."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from channelwatch.cli.common import (
    FORMAT_BY_OUTPUT,
    Overwrite,
    TableOutput,
    app,
    county_of,
    echo,
    fail,
    output_file,
    output_format,
    period_notes,
)

if TYPE_CHECKING:
    from channelwatch.instance.config import Instance
    from channelwatch.stats.figures import Period
    from channelwatch.store import Store

county_app = typer.Typer(
    help="县级汇总：各单位发布数量汇总、导入单位报送的季度统计表、向县政务公开办发送汇总。",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(county_app, name="county")


class RollupFormat(StrEnum):
    text = "text"
    json = "json"
    csv = "csv"
    markdown = "markdown"
    xlsx = "xlsx"


YearOption = Annotated[int, typer.Option("--year", "-y", help="年份，如 2020", min=1990, max=2100)]
QuarterOption = Annotated[int | None, typer.Option("--quarter", "-q", help="季度 1–4", min=1, max=4)]
MonthOption = Annotated[int | None, typer.Option("--month", "-m", help="月份 1–12", min=1, max=12)]


def _open(ctx: typer.Context) -> tuple[Instance, Store, dict[str, Store]]:
    from channelwatch.store import open_offices

    county = county_of(ctx)
    own, stores = open_offices(county)
    ctx.call_on_close(own.dispose)
    return county, own, stores


_ROLLUP_SUFFIXES = {
    RollupFormat.xlsx: (".xlsx",),
    RollupFormat.csv: (".csv",),
    RollupFormat.json: (".json",),
    RollupFormat.markdown: (".md",),
    RollupFormat.text: (".txt",),
}


@county_app.command("summary")
def summary_command(
    ctx: typer.Context,
    year: YearOption,
    quarter: QuarterOption = None,
    month: MonthOption = None,
    format: Annotated[RollupFormat | None, typer.Option("--format", "-f", help=FORMAT_BY_OUTPUT)] = None,
    output: TableOutput = None,
    overwrite: Overwrite = False,
) -> None:
    """全县各单位的发布数量：按分组列出各单位、各类渠道、转发、跨渠道去重数、本年累计，以及小计和全县合计。"""
    from channelwatch.county import outputs
    from channelwatch.county.rollup import build_rollup
    from channelwatch.stats.figures import Period

    if quarter is not None and month is not None:
        raise typer.BadParameter("--quarter 与 --month 只能选一个")
    format = output_format(format, output, _ROLLUP_SUFFIXES, RollupFormat.text, overwrite=overwrite)
    county, own, stores = _open(ctx)
    period = Period(year, quarter, month)
    rollup = build_rollup(county, own, stores, period)
    if format is RollupFormat.xlsx:
        if output is None:
            fail("xlsx 格式需要用 --output 指定文件名，例如 --output 全县汇总.xlsx")
        assert output is not None
        outputs.rollup_xlsx(rollup, output)
        echo(f"已写入 {output}")
        _period_footnotes(period, county.timezone)
        return
    text = {
        RollupFormat.text: outputs.rollup_text,
        RollupFormat.json: outputs.rollup_json,
        RollupFormat.csv: outputs.rollup_csv,
        RollupFormat.markdown: outputs.rollup_markdown,
    }[format](rollup)
    if output is not None:
        output.write_text(text, encoding="utf-8-sig" if format is RollupFormat.csv else "utf-8")
        echo(f"已写入 {output}")
    else:
        typer.echo(text, nl=False)
    _period_footnotes(period, county.timezone)


def _period_footnotes(period: Period, zone: str) -> None:
    # After the figures, as an office's summary says them: a period not begun (a mistyped year) or not ended.
    for note in period_notes(period, zone, says_unfinished=False):
        echo(note, err=True)


@county_app.command("quarterly")
def quarterly_command(
    ctx: typer.Context,
    year: Annotated[int, typer.Option("--year", "-y", help="年份，如 2020", min=1990, max=2100)],
    quarter: Annotated[int, typer.Option("--quarter", "-q", help="季度 1–4", min=1, max=4)],
    send: Annotated[bool, typer.Option("--send", help="按县级实例的 [delivery] 发送（并存入发件箱）")] = False,
    resend: Annotated[bool, typer.Option("--resend", help="已发送过也再次发送（隐含 --send）")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="把 XLSX 汇总表写入此文件")] = None,
    overwrite: Overwrite = False,
) -> None:
    """一个季度的全县汇总；--send 发送给县级实例 [delivery] 中的收件人（每季度只发一次，失败下次重试）。"""
    from channelwatch.county.delivery import county_outgoing, deliver_county_quarterly
    from channelwatch.daemon.actions import _wait_for_lock

    if output is not None:
        output_file(output, suffixes=(".xlsx",), what="全县汇总表", overwrite=overwrite)
    county, own, stores = _open(ctx)
    if send or resend:
        lock = _wait_for_lock(own, f"deliver-{own.office_id}", timeout=120)
        try:
            outcome = deliver_county_quarterly(county, own, stores, year, quarter, resend=resend)
        finally:
            lock.release()
        for line in outcome.lines():
            echo(line)
        if outcome.failed:
            fail("部分发送失败（见上方），再次执行本命令或县级汇总任务时会重试")
    _rollup, outgoing = county_outgoing(county, own, stores, year, quarter)
    if output is not None:
        output.write_bytes(outgoing.attachments[0].content)
        echo(f"已写入 {output}", err=send or resend)
    if not (send or resend):
        typer.echo(f"主题：{outgoing.subject}\n")
        typer.echo(outgoing.text, nl=False)


@county_app.command("import-stats")
def import_stats_command(
    ctx: typer.Context,
    files: Annotated[
        list[Path], typer.Argument(metavar="统计表文件...", help="单位报送的季度统计表（XLSX）", dir_okay=False)
    ],
    year: Annotated[int | None, typer.Option("--year", "-y", help="只接受这一年的表", min=1990, max=2100)] = None,
    quarter: Annotated[int | None, typer.Option("--quarter", "-q", help="只接受这一季度的表", min=1, max=4)] = None,
) -> None:
    """导入不在本库统计的单位报送的季度统计表（channelwatch 生成的表或 county template 的表）。

    按“填报单位”（单位名称或单位 id）认单位；单位不明、期间不符、数字对不上的表不导入，并指明单元格。
    同一张表再导入不改变任何数字；同一单位同一季度的更正表替换先前的表，并予说明。
    """
    from channelwatch.county.sheets import import_sheet
    from channelwatch.errors import InputError

    county, _own, stores = _open(ctx)
    failures = 0
    for path in files:
        if not path.is_file():
            if len(files) == 1:
                fail(f"找不到文件 {path}")  # one file: its own line says it all, no summary under it
            failures += 1
            echo(f"错误：找不到文件 {path}", err=True)
            continue
        try:
            echo(import_sheet(county, stores, path, year=year, quarter=quarter).describe())
        except InputError as exc:
            if len(files) == 1:
                raise
            failures += 1
            echo(f"错误：{exc}", err=True)
    if failures:
        fail(
            f"{failures} 个文件未导入（原因见上方）"
            + (f"，其余 {len(files) - failures} 个已导入" if failures < len(files) else "")
        )


@county_app.command("template")
def template_command(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="写入的 XLSX 文件", dir_okay=False)],
    office: Annotated[str | None, typer.Option("--office", help="预先填好这个单位的名称（单位 id）")] = None,
    year: Annotated[int | None, typer.Option("--year", "-y", help="预先填好年份", min=1990, max=2100)] = None,
    quarter: Annotated[int | None, typer.Option("--quarter", "-q", help="预先填好季度", min=1, max=4)] = None,
    overwrite: Overwrite = False,
) -> None:
    """写出手工填报用的季度统计表（与 channelwatch 季度统计表同一格式，附填写说明）。"""
    from channelwatch.county.sheets import write_template

    name = ""
    if office is not None:
        name = county_of(ctx).office_view(office).config.office.name
    if (year is None) != (quarter is None):
        fail("--year 与 --quarter 要一起给出（或都不给，由单位自己填写统计期间）")
    output_file(output, suffixes=(".xlsx",), what="填报模板", overwrite=overwrite)
    write_template(output, office_name=name, year=year, quarter=quarter)
    echo(f"已写入 {output}")


@county_app.command("offices")
def offices_command(ctx: typer.Context) -> None:
    """列出县级实例中的单位：id、名称、分组、渠道数、来源（本库统计或报送报表）。"""
    from channelwatch.render import pad

    county = county_of(ctx)
    widths = [16, 32, 12, 8, 10]
    echo("".join(pad(h, w) for h, w in zip(["单位id", "名称", "分组", "渠道数", "来源"], widths, strict=True)))
    for key, office in county.offices.items():
        cells = [
            key,
            office.config.office.name,
            office.group or "未分组",
            str(len(office.config.channels)),
            "数据库" if office.config.channels else "报表",
        ]
        echo("".join(pad(c, w) for c, w in zip(cells, widths, strict=True)).rstrip())


@county_app.command("poll")
def poll_command(
    ctx: typer.Context,
    full: Annotated[bool, typer.Option("--full", help="一直翻到 max_pages 或列表末尾")] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", help="每个单位同时发出的请求数上限", min=1)] = 100,
) -> None:
    """同时抓取所有单位配置了 [channels.poll] 的渠道；某个单位失败不影响其他单位。任一渠道失败时退出码为 1。"""
    from channelwatch.cli.poll import interrupted_note, stop_on_signal
    from channelwatch.county.poll_all import poll_offices

    _county, _own, stores = _open(ctx)
    with stop_on_signal() as stop:
        results = poll_offices(stores, full=full, concurrency=concurrency, stop=stop)
    if not results:
        fail("没有可抓取的渠道：各单位文件中都没有 [channels.poll]")
    failed = interrupted = 0
    for key, office_results in results.items():
        for r in office_results:
            if r.status == "ok":
                echo(f"{key}/{r.channel}：成功，抓取 {r.pages} 页，看到 {r.seen} 条，新增 {r.new} 条")
            elif r.status == "interrupted":
                interrupted += 1
                echo(f"{key}/{r.channel}：{interrupted_note(r.run_id)}", err=True)
            else:
                failed += 1
                echo(f"{key}/{r.channel}：失败（运行记录 #{r.run_id}）：{r.message}", err=True)
    if interrupted:
        fail(f"收到停止信号，{interrupted} 个渠道的抓取已中断，未保存这些渠道的数据")
    if failed:
        fail(f"{failed} 个渠道抓取失败（原因见上方，也可用 channelwatch runs --office 单位id 查看）")


class InspectFormat(StrEnum):
    text = "text"
    json = "json"


@county_app.command("inspect")
def inspect_command(
    ctx: typer.Context,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="按该日期检查（YYYY-MM-DD，默认今天）：天数从该日算起")
    ] = None,
    format: Annotated[InspectFormat, typer.Option("--format", "-f", help="输出格式")] = InspectFormat.text,
) -> None:
    """全县各单位的检查结论（否决风险 / 预警 / 正常）和问题清单，最严重的单位在前。"""
    import json

    from channelwatch.checks.rules import LEVEL_LABELS, RULE_LABELS, inspect_offices, store_verdicts
    from channelwatch.cli.inspect import _as_of

    county, _own, stores = _open(ctx)
    day = _as_of(as_of)
    polled = {key: opened for key, opened in stores.items() if opened.instance.config.channels}
    results = inspect_offices(polled, day)
    for key, found in results:
        store_verdicts(polled[key], found)  # the web view shows them (docs/web.md)
    if format is InspectFormat.json:
        offices = []
        for key, found in results:
            data = found.as_json()
            offices.append({"id": key, "name": county.offices[key].config.office.name, **data})
        payload = {"county": county.config.office.name, "offices": offices}
        echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    for key, found in results:
        name = county.offices[key].config.office.name
        echo(f"{name}（{key}）：{LEVEL_LABELS[found.verdict]}")
        for finding in found.findings:
            echo(
                f"  【{LEVEL_LABELS[finding.level]}】{finding.channel} · {RULE_LABELS[finding.rule]}：{finding.detail}"
            )
    if not results:
        echo("县级实例中没有配置渠道的单位，无可检查的内容")


def import_county_tree(ctx: typer.Context, directory: Path, *, skip_invalid: bool) -> None:
    """``import-tree DIR`` in a county instance: ``DIR/<office id>/<channel id>/<files>``, office by office."""
    from channelwatch.errors import InputError
    from channelwatch.ingest.imports import import_file

    county, _own, stores = _open(ctx)
    pairs: list[tuple[str, str, Path]] = []
    for office_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
        office = county.office_view(office_dir.name)  # an unknown office id stops here, naming it
        for sub in sorted(p for p in office_dir.iterdir() if p.is_dir()):
            office.channel(sub.name)
            files = sorted(
                p
                for p in sub.iterdir()
                if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".rejected.csv")
            )
            pairs.extend((office_dir.name, sub.name, f) for f in files)
    if not pairs:
        fail(f"{directory} 下没有可导入的文件（县级实例应为 {directory}/<单位id>/<渠道id>/<文件>）")
    failures = 0
    for key, channel, path in pairs:
        try:
            result = import_file(stores[key], channel, path, skip_invalid=skip_invalid)
        except InputError as exc:
            failures += 1
            echo(f"错误：[{key}] {exc}", err=True)
            continue
        echo(f"[{key}] {result.path} → {result.channel}：{result.counts()}")
    if failures:
        fail(f"{failures} 个文件未导入（原因见上方），其余 {len(pairs) - failures} 个文件已导入")
