"""Core commands: init, channels, import, import-tree, summary, publications, runs."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from channelwatch.cli.common import (
    FORMAT_BY_OUTPUT,
    Overwrite,
    TableOutput,
    _state,
    app,
    echo,
    echo_data,
    echo_footnotes,
    fail,
    figures_store_of,
    instance_of,
    output_file,
    output_format,
    root_instance_of,
    store_of,
)
from channelwatch.terminal import shown

if TYPE_CHECKING:
    from channelwatch.ingest.imports import ImportResult
    from channelwatch.stats.figures import Period
    from channelwatch.store import Store


class SummaryFormat(StrEnum):
    text = "text"
    json = "json"
    csv = "csv"
    markdown = "markdown"
    xlsx = "xlsx"


class ListFormat(StrEnum):
    text = "text"
    csv = "csv"
    json = "json"


class PublicationsFormat(StrEnum):
    text = "text"
    csv = "csv"
    json = "json"
    xlsx = "xlsx"


_LIST_SUFFIXES = {"text": ".txt", "csv": ".csv", "json": ".json", "xlsx": ".xlsx"}


class ImportFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"
    json = "json"


@app.command("init")
def init_command(
    directory: Annotated[Path, typer.Argument(metavar="目录", help="新实例的目录（不存在则创建）", file_okay=False)],
) -> None:
    """新建一个实例：写出待填写的配置、任务和模板。"""
    from channelwatch.instance.scaffold import write_instance

    written = write_instance(directory)
    echo(f"已在 {directory} 新建实例，共写出 {len(written)} 个文件：")
    for path in written:
        echo(f"  {path}")
    echo(
        "下一步：编辑 config/channelwatch.toml 填写单位名称和渠道，然后运行 channelwatch --instance "
        f"{directory} channels 检查配置。"
    )


channels_app = typer.Typer(
    help="列出渠道：发布总数、最新发布时间、距今天数（超过预警天数时标注）；channels rename 改渠道 id。",
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(channels_app, name="channels")


@channels_app.callback()
def channels_command(ctx: typer.Context) -> None:
    """列出渠道：发布总数、最新发布时间、距今天数（超过预警天数时标注）。"""
    if ctx.invoked_subcommand is not None:
        return
    from channelwatch import store
    from channelwatch.instance.config import KIND_LABELS
    from channelwatch.render import pad
    from channelwatch.stats.freshness import freshness

    opened = figures_store_of(ctx)
    settings = opened.instance.config.freshness
    with store.read(opened.engine) as conn:
        rows = freshness(
            conn,
            opened.office_id,
            opened.instance.timezone,
            warn_days=settings.warn_days,
            limit_days=settings.limit_days,
        )
        last_polls = _last_successful_polls(conn, opened)
    configured = {c.id for c in opened.instance.config.channels}
    header = ["渠道", "名称", "类型", "总数", "最新发布", "距今", "状态", "最近成功抓取"]
    widths = [12, 16, 12, 8, 18, 8, 22, 18]
    echo("".join(pad(h, w) for h, w in zip(header, widths, strict=True)))
    labels = {"ok": "正常", "warn": "预警", "overdue": "已超期", "empty": "无数据"}
    for row in rows:
        if row.key not in configured:
            continue
        latest = row.last_published.strftime("%Y-%m-%d %H:%M") if row.last_published else "—"
        days = f"{row.days_since}天" if row.days_since is not None else "—"
        status = labels[row.status]
        if row.status == "warn":
            status += f"（{row.days_left}天后超期）"
        elif row.status == "overdue":
            status += f"（已{row.days_since}天未更新）"
        polled = last_polls.get(row.key, "—")
        kind = KIND_LABELS.get(row.kind, row.kind)
        cells = [row.key, row.name, kind, str(row.total), latest, days, status, polled]
        echo("".join(pad(c, w) for c, w in zip(cells, widths, strict=True)))


@channels_app.command("rename")
def channels_rename_command(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(metavar="原渠道id", help="数据库中原来的渠道 id")],
    new: Annotated[str, typer.Argument(metavar="新渠道id", help="新的渠道 id（配置文件中应改成的 id）")],
    force: Annotated[bool, typer.Option("--force", help="两个渠道类型不同也照样移动")] = False,
) -> None:
    """改渠道 id：把原 id 下的全部发布记录和运行记录移到新 id 下（配置文件需自行修改，命令会指出哪一行）。"""
    import re

    from channelwatch import store
    from channelwatch.store.maintenance import rename_channel

    if not re.fullmatch(r"[A-Za-z0-9_-]+", new):
        fail(f"渠道 id「{new}」无效：只能包含字母、数字、下划线和连字符")
    opened = store_of(ctx)
    instance = opened.instance
    configured = {c.id: c for c in instance.config.channels}
    new_kind = configured[new].kind if new in configured else None
    with store.write(opened.engine) as conn:
        done = rename_channel(conn, opened.office_id, old, new, new_kind=new_kind, force=force)
    merged = f"（其中 {done.merged} 条新 id 下已有，只保留一份）" if done.merged else ""
    echo(f"已把渠道「{old}」的 {done.moved + done.merged} 条发布记录{merged}和 {done.runs} 条运行记录移到「{new}」下。")
    line = _config_line(instance.config_path, old)
    if new in configured and old not in configured:
        echo(f'配置文件 {instance.config_path} 中已是 id = "{new}"，无需修改。')
    elif old in configured:
        where = f"第 {line} 行" if line else "中该渠道的"
        action = "删除这一段渠道" if new in configured else f'改为 id = "{new}"'
        echo(f'请修改配置文件 {instance.config_path} {where} id = "{old}"：{action}，否则以后的命令仍按「{old}」统计。')
    else:
        echo(f'请在配置文件 {instance.config_path} 中为该渠道写上 id = "{new}"，否则这些记录不计入任何数字。')


def _config_line(path: Path, channel_id: str) -> int | None:
    """The line of the config that says ``id = "<channel_id>"`` inside a ``[[channels]]`` table."""
    import re

    pattern = re.compile(r"^\s*id\s*=\s*[\"']" + re.escape(channel_id) + r"[\"']")
    in_channels = False
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = text.strip()
        if stripped.startswith("["):
            in_channels = stripped.startswith("[[channels]]")
        elif in_channels and pattern.match(text):
            return number
    return None


def _last_successful_polls(conn: Any, opened: Store) -> dict[str, str]:
    from sqlalchemy import select

    from channelwatch.dates import to_office
    from channelwatch.store import as_utc
    from channelwatch.store.models import Run
    from channelwatch.store.schema import latest_run_ids

    run = Run.__table__  # type: ignore[attr-defined]
    by_id = {v: k for k, v in opened.channel_ids.items()}
    found = conn.execute(select(run.c.channel_id, run.c.finished_at).where(run.c.id.in_(latest_run_ids(list(by_id)))))
    return {
        by_id[channel_id]: to_office(as_utc(moment), opened.instance.timezone).strftime("%Y-%m-%d %H:%M")
        for channel_id, moment in found
        if channel_id in by_id and moment is not None
    }


def _progress_for(path: Path) -> tuple[Any, Any]:
    """A progress bar on a terminal; nothing when output is piped or redirected."""
    if not sys.stderr.isatty():
        return None, None
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        # The name is data, not a template: "{" would break str.format and "[" would be read as Rich markup.
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        transient=True,
    )
    task = bar.add_task(shown(path.name), total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total or None)

    return bar, update


def _import_one(opened: Store, channel: str, path: Path, **options: Any) -> ImportResult:
    from channelwatch.errors import InputError
    from channelwatch.ingest.imports import KindMismatch, import_file

    bar, update = _progress_for(path)
    try:
        if bar is None:
            return import_file(opened, channel, path, **options)
        with bar:
            return import_file(opened, channel, path, progress=update, **options)
    except KindMismatch as exc:
        raise InputError(f"{exc}；确需导入到该渠道，请加 --force") from None


def _report_import(result: ImportResult) -> None:
    if result.dry_run:
        echo(
            f"（预演，未写入）{result.path}（{result.format}"
            + (f"，{result.encoding}" if result.encoding else "")
            + f"）→ {result.channel}：{result.counts()}"
        )
        if result.warning:
            echo(f"警告：{result.warning}", err=True)
        return
    line = (
        f"{result.path}（{result.format}"
        + (f"，{result.encoding}" if result.encoding else "")
        + f"）→ {result.channel}：{result.counts()}"
    )
    echo(line)
    if result.warning:
        echo(f"警告：{result.warning}", err=True)
    if result.rejected_file:
        echo(f"  拒收的行已写入 {result.rejected_file}")


def _import_files(ctx: typer.Context, pairs: list[tuple[str, Path]], **options: Any) -> None:
    from channelwatch.errors import InputError

    opened = store_of(ctx)
    for channel, _path in pairs:
        opened.instance.channel(channel)
    if len(pairs) == 1:
        _report_import(_import_one(opened, *pairs[0], **options))  # its error is the one message
        return
    failures = 0
    for channel, path in pairs:
        try:
            _report_import(_import_one(opened, channel, path, **options))
        except InputError as exc:
            failures += 1
            echo(f"错误：{exc}", err=True)
    if failures == len(pairs):
        fail(f"{failures} 个文件都未导入（原因见上方）")
    elif failures:
        fail(f"{failures} 个文件未导入（原因见上方），其余 {len(pairs) - failures} 个文件已导入")


@app.command("import")
def import_command(
    ctx: typer.Context,
    channel: Annotated[str, typer.Argument(metavar="渠道", help="渠道 id（见 channelwatch channels）")],
    files: Annotated[
        list[Path], typer.Argument(metavar="文件", help="导出的发布记录：CSV、XLSX 或 JSON", dir_okay=False)
    ],
    format: Annotated[ImportFormat | None, typer.Option("--format", help="强制指定格式")] = None,
    encoding: Annotated[str | None, typer.Option("--encoding", help="强制指定 CSV 编码，如 gbk、utf-8")] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="只导入有效行，无效行写入 *.rejected.csv")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="预演：照常读取和检查，列出将新增、已有、拒收的行数，不写入任何内容")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="文件中的链接多属另一类渠道（如微博链接导入网站渠道）时也照样导入")
    ] = False,
) -> None:
    """导入从后台或网站 CMS 导出的发布记录；重复导入不会重复计数。"""
    _import_files(
        ctx,
        [(channel, f) for f in files],
        format=format.value if format else None,
        encoding=encoding,
        skip_invalid=skip_invalid,
        dry_run=dry_run,
        force=force,
    )


@app.command("import-tree")
def import_tree_command(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Argument(metavar="目录", help="按渠道分子目录存放的导出文件，如 samples/2020", file_okay=False)
    ],
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="只导入有效行，无效行写入 *.rejected.csv")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="预演：照常读取和检查，列出将新增、已有、拒收的行数，不写入任何内容")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="文件中的链接多属另一类渠道时也照样导入")] = False,
) -> None:
    """导入目录下每个以渠道 id 命名的子目录中的全部文件（子目录名即渠道 id）。

    县级实例（不带 --office）读取 DIR/<单位id>/<渠道id>/ 下的文件。"""
    if not directory.is_dir():
        fail(f"找不到目录 {directory}")
    if root_instance_of(ctx).is_county and _state(ctx).office is None:
        from channelwatch.cli.county import import_county_tree

        import_county_tree(ctx, directory, skip_invalid=skip_invalid)
        return
    instance = instance_of(ctx)
    pairs: list[tuple[str, Path]] = []
    for sub in sorted(p for p in directory.iterdir() if p.is_dir()):
        instance.channel(sub.name)
        files = sorted(
            p
            for p in sub.iterdir()
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".rejected.csv")
        )
        pairs.extend((sub.name, f) for f in files)
    # A file beside the channel folders belongs to no channel: said, so that it is not taken for imported.
    loose = sorted(p.name for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    if loose:
        example = directory / instance.config.channels[0].id if instance.config.channels else directory / "<渠道id>"
        echo(
            f"注意：{directory} 下直接放着 {len(loose)} 个文件，未导入：{'、'.join(loose[:5])}"
            f"{' 等' if len(loose) > 5 else ''}；import-tree 只读取 {directory}/<渠道id>/ 中的文件，"
            f"请把它们移到对应渠道的子目录（如 {example}/）",
            err=True,
        )
    if not pairs:
        fail(f"{directory} 下没有可导入的文件（应为 {directory}/<渠道id>/<文件>）")
    _import_files(ctx, pairs, skip_invalid=skip_invalid, dry_run=dry_run, force=force)


def _period(year: int, quarter: int | None, month: int | None) -> Period:
    from channelwatch.stats.figures import Period

    if quarter is not None and month is not None:
        raise typer.BadParameter("--quarter 与 --month 只能选一个")
    return Period(year=year, quarter=quarter, month=month)


YearOption = Annotated[int, typer.Option("--year", "-y", help="年份，如 2020", min=1990, max=2100)]
QuarterOption = Annotated[int | None, typer.Option("--quarter", "-q", help="季度 1–4", min=1, max=4)]
MonthOption = Annotated[int | None, typer.Option("--month", "-m", help="月份 1–12", min=1, max=12)]


_SUMMARY_SUFFIXES = {
    SummaryFormat.xlsx: (".xlsx",),
    SummaryFormat.csv: (".csv",),
    SummaryFormat.json: (".json",),
    SummaryFormat.markdown: (".md",),
    SummaryFormat.text: (".txt",),
}


@app.command("summary")
def summary_command(
    ctx: typer.Context,
    year: YearOption,
    quarter: QuarterOption = None,
    month: MonthOption = None,
    format: Annotated[SummaryFormat | None, typer.Option("--format", "-f", help=FORMAT_BY_OUTPUT)] = None,
    output: TableOutput = None,
    chart: Annotated[Path | None, typer.Option("--chart", help="另存按月分渠道的发布数量图（PNG）")] = None,
    overwrite: Overwrite = False,
) -> None:
    """按年、季度或月统计各渠道发布数量：年报中的那段话和按月表格。"""
    from channelwatch import store
    from channelwatch.reports import summary as out
    from channelwatch.stats.figures import Period, comparison_base, summarise

    period = _period(year, quarter, month)
    format = output_format(format, output, _SUMMARY_SUFFIXES, SummaryFormat.text, overwrite=overwrite)
    if format is SummaryFormat.xlsx and output is None:
        fail("xlsx 格式需要用 --output 指定文件名，例如 --output 2020年统计.xlsx")
    if chart is not None:
        output_file(chart, suffixes=(".png",), what="图表", overwrite=overwrite)
    opened = figures_store_of(ctx, check_empty=True, period=period)
    keys = [c.id for c in opened.instance.config.channels]
    with store.read(opened.engine) as conn:
        figures = summarise(conn, opened.office_id, period, keys)
        previous = summarise(conn, opened.office_id, Period(year - 1, quarter, month), keys)
    templates = opened.instance.templates_dir
    last = comparison_base(figures, previous)
    if chart is not None:
        from channelwatch.reports.chart import monthly_chart

        monthly_chart(figures, chart)
    if format is SummaryFormat.xlsx:
        assert output is not None
        out.write_summary_xlsx(figures, output, out.summary_sentence(figures, templates, last))
        echo(f"已写入 {output}")
        echo_footnotes(ctx)
        return
    text = {
        SummaryFormat.text: lambda: out.summary_text(figures, templates, last),
        SummaryFormat.json: lambda: out.summary_json(figures),
        SummaryFormat.csv: lambda: out.summary_csv(figures),
        SummaryFormat.markdown: lambda: out.summary_markdown(figures, templates, last),
    }[format]()
    if output is not None:
        output.write_text(text, encoding="utf-8-sig" if format is SummaryFormat.csv else "utf-8")
        echo(f"已写入 {output}")
    elif format is SummaryFormat.text:
        echo(text, nl=False)
    else:
        echo_data(text)
    echo_footnotes(ctx)


@app.command("publications")
def publications_command(
    ctx: typer.Context,
    channel: Annotated[str, typer.Argument(metavar="渠道", help="渠道 id")],
    year: YearOption,
    quarter: QuarterOption = None,
    month: MonthOption = None,
    format: Annotated[
        PublicationsFormat | None,
        typer.Option("--format", "-f", help="输出格式（默认：按 --output 的扩展名，否则 text）"),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="写入文件：.csv（带 BOM，Excel 可直接打开）、.xlsx 或 .json"),
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """列出某渠道某期间的每一条发布：统计数字背后的明细。"""
    from channelwatch import store
    from channelwatch.stats import listing

    chosen = format or _format_of(output) or PublicationsFormat.text
    if output is not None:
        suffix = (_LIST_SUFFIXES[chosen.value],)
        output_file(output, suffixes=suffix, what=f"{chosen.value} 格式的", overwrite=overwrite)
    elif chosen is PublicationsFormat.xlsx:
        fail("xlsx 格式需要用 --output 指定文件名，例如 --output 发布明细.xlsx")
    period = _period(year, quarter, month)
    opened = figures_store_of(ctx)
    channel_id = opened.channel_id(channel)
    with store.read(opened.engine) as conn:
        rows = listing.list_publications(conn, channel_id, period, opened.instance.timezone)
    if output is None:
        if chosen is PublicationsFormat.text:
            echo(listing.publications_text(rows), nl=False)
        elif chosen is PublicationsFormat.csv:
            echo_data(listing.publications_csv(rows))
        else:
            echo_data(listing.publications_json(rows))
        return
    if chosen is PublicationsFormat.xlsx:
        name = opened.instance.channel(channel).name
        listing.write_publications_xlsx(rows, output, f"{name} {period.label}发布明细（共 {len(rows)} 条）")
    elif chosen is PublicationsFormat.csv:
        output.write_text(listing.publications_csv(rows), encoding="utf-8-sig")
    elif chosen is PublicationsFormat.json:
        output.write_text(listing.publications_json(rows), encoding="utf-8")
    else:
        output.write_text(listing.publications_text(rows), encoding="utf-8")
    echo(f"已写入 {output}（{len(rows)} 条）")


def _format_of(output: Path | None) -> PublicationsFormat | None:
    if output is None:
        return None
    for value, suffix in _LIST_SUFFIXES.items():
        if output.suffix.lower() == suffix:
            return PublicationsFormat(value)
    return None


runs_app = typer.Typer(
    help="导入和抓取的运行记录，最新的在前；runs undo 撤销一次导入或抓取。",
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(runs_app, name="runs")


@runs_app.callback()
def runs_command(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", help="显示条数", min=1)] = 30,
    channel: Annotated[str | None, typer.Option("--channel", "-c", help="只看某个渠道")] = None,
    format: Annotated[ListFormat, typer.Option("--format", "-f", help="输出格式")] = ListFormat.text,
) -> None:
    """导入和抓取的运行记录，最新的在前。"""
    if ctx.invoked_subcommand is not None:
        return
    from channelwatch import store
    from channelwatch.stats.listing import list_runs, runs_csv, runs_json, runs_text

    opened = store_of(ctx)
    channel_id = opened.channel_id(channel) if channel else None
    with store.read(opened.engine) as conn:
        rows = list_runs(conn, opened, limit=limit, channel_id=channel_id)
    if format is ListFormat.json:
        echo_data(runs_json(rows))
    elif format is ListFormat.csv:
        echo_data(runs_csv(rows))
    else:
        echo(runs_text(rows), nl=False)


@runs_app.command("undo")
def runs_undo_command(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(metavar="运行编号", help="运行编号（见 channelwatch runs 第一列）")],
    also_kept: Annotated[
        bool,
        typer.Option(
            "--also-kept",
            help="连同后来又被其他运行看到的发布一并删除（例如同一个错文件导入了多次）；之后请重新导入其他正确的文件",
        ),
    ] = False,
) -> None:
    """撤销一次已成功的导入或抓取：删除该次运行首次写入的发布记录，运行记录标为已撤销。"""
    from channelwatch import store
    from channelwatch.store.maintenance import undo_run

    opened = store_of(ctx)
    with store.write(opened.engine) as conn:
        done = undo_run(conn, opened.office_id, run_id, also_kept=also_kept)
    what = {"import": "导入", "poll": "抓取"}.get(done.kind, done.kind)
    said = f"已撤销运行 {done.run_id}（{done.channel} {what} {done.source}）："
    said += f"删除了 {done.removed} 条由该次运行首次写入的发布记录"
    if also_kept:
        said += "（含后来又被其他运行看到的）；请重新导入该渠道其他正确的文件，补回其中属于它们的发布"
    if done.kept:
        said += (
            f"；另有 {done.kept} 条后来又被其他运行看到，予以保留，改记在运行 {done.successor} 名下。"
            "如果它们本不该存在（例如同一个错文件导入了多次），可运行 "
            f"channelwatch runs undo {done.successor} --also-kept 一并删除"
            f"（也会删除运行 {done.successor} 首次写入的发布），"
            "再重新导入该渠道其他正确的文件"
        )
    echo(said + "。")


@app.command("recount")
def recount_command(ctx: typer.Context) -> None:
    """根据已存的发布记录重新计算计数表（统计数字读取的表）。

    每次导入、抓取、撤销都会在同一事务中自动更新计数表，平时无需运行；
    只在怀疑计数与发布记录不一致时（例如手工改过数据库）使用。县级实例中重算整个库（全县各单位），不需要 --office。
    """
    from channelwatch import store

    root = root_instance_of(ctx)
    # The counts table covers the whole database: a county recounts every office at once.
    opened = store.open_store(root) if root.is_county else store_of(ctx)
    with store.write(opened.engine) as conn:
        repaired = store.rebuild_counts(conn)
    if root.is_county:
        opened.dispose()
    if repaired:
        echo(f"计数表已按发布记录重建：修正了 {repaired} 行计数。")
    else:
        echo("计数表已按发布记录重建：与发布记录一致，没有需要修正的计数。")
