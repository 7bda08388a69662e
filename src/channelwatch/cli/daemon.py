"""Daemon commands: daemon, jobs, run-job, quarterly, freshness."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from channelwatch.cli.common import (
    Overwrite,
    _state,
    app,
    echo,
    echo_data,
    echo_footnotes,
    fail,
    figures_store_of,
    instance_of,
    output_file,
    root_instance_of,
    store_of,
)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


class QuarterlyFormat(StrEnum):
    text = "text"
    html = "html"
    json = "json"


_STATUS = {
    "ok": "成功",
    "warn": "警告",
    "failed": "失败",
    "running": "运行中",
    "interrupted": "中断",
    "skipped": "跳过",
    None: "从未运行",
}

_DELIVERY_STATUS = {"pending": "待发送", "failed": "发送失败", "sending": "发送中断"}


def _daemon_logging() -> None:
    # One line per job run (scheduler.py) at INFO; channelwatch's warnings (a failed delivery, a file left in the
    # inbox) too: the daemon's log is where the IT person looks. Other libraries stay at the CLI's level.
    level = logging.getLogger().getEffectiveLevel()  # DEBUG with --verbose
    logging.getLogger("channelwatch").setLevel(min(level, logging.WARNING))
    logging.getLogger("channelwatch.daemon").setLevel(min(level, logging.INFO))
    # Tracebacks of unexpected failures go to the daemon's log; the job's line stays one line.
    logging.getLogger("channelwatch.tracebacks").setLevel(logging.DEBUG)


@app.command("daemon")
def daemon_command(ctx: typer.Context) -> None:
    """运行守护进程：按 jobs/*.toml 定时抓取、导入收件箱、发送季度统计、检查更新时效。

    收到 SIGTERM 或 SIGINT（Ctrl+C）后在 10 秒内退出：正在进行的抓取中止（运行记录为“中断”，不保存任何数据），
    其他正在运行的任务最多再等 7 秒。每个数据库只能运行一个守护进程。
    每次任务运行在标准错误输出写一行日志。
    """
    from channelwatch.daemon.scheduler import run_daemon

    _daemon_logging()
    run_daemon(root_instance_of(ctx))


def _local(moment: datetime | None, zone: str) -> str:
    from channelwatch.dates import to_office

    if moment is None:
        return "—"
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return to_office(aware, zone).strftime("%Y-%m-%d %H:%M:%S")


def _rows_of(opened: Any, jobs: list[Any], now: datetime) -> list[dict[str, Any]]:
    """One row per job of one store (an office, or the county itself for its own jobs)."""
    from channelwatch.daemon.jobs import next_fire
    from channelwatch.daemon.locks import _job_lock_name, try_lock
    from channelwatch.store.jobstate import job_states

    zone = opened.instance.timezone
    states = job_states(opened.engine, opened.office_id)
    rows: list[dict[str, Any]] = []
    for job in jobs:
        state = states.get(job.id)
        status = state.last_status if state else None
        if status == "running":
            # A run recorded as running whose job lock is free belongs to a process that died.
            lock = try_lock(opened, _job_lock_name(opened, job.id))
            if lock is not None:
                lock.release()
                status = "interrupted"
        reference = (state.last_fire or state.registered_at) if state else now
        # Strictly after now: a job not yet seen by a daemon first runs one interval after it starts.
        upcoming = next_fire(job, zone, now + timedelta(microseconds=1), start=reference if job.spec.every else None)
        rows.append(
            {
                "id": job.id,
                "action": job.action,
                "schedule": job.schedule_text,
                "schedule_label": job.schedule_label,
                "file": str(job.path),
                "last_status": status,
                "last_started": _local(state.last_started if state else None, zone),
                "last_finished": _local(state.last_finished if state else None, zone),
                "last_message": state.last_message if state else None,
                "next_run": _local(upcoming, zone),
            }
        )
    return rows


def _pending_of(opened: Any) -> list[dict[str, Any]]:
    from channelwatch.delivery.send import undelivered

    zone = opened.instance.timezone
    return [
        {
            "report": row.report,
            "period": row.period,
            "target": row.target,
            "status": row.status,
            "attempts": row.attempts,
            "last_attempt": _local(row.last_attempt_at, zone),
            "message": row.message,
        }
        for row in undelivered(opened)
    ]


def _job_rows(ctx: typer.Context) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from channelwatch.daemon.jobs import load_jobs

    opened = store_of(ctx)
    return _rows_of(opened, load_jobs(instance_of(ctx)), datetime.now(UTC)), _pending_of(opened)


_COUNTY_LABEL = "全县"


def _county_job_rows(ctx: typer.Context, county: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every (job, office) pair the daemon runs, as it runs them: one row each, with an ``office`` key.

    A job runs for each office it applies to, with its own state, lock and next run; the county's own
    jobs (``county-quarterly``) run for the county itself (``office`` null, shown as 全县).
    """
    from channelwatch.daemon.jobs import job_offices, load_jobs
    from channelwatch.store import open_offices

    jobs = load_jobs(county)
    own, stores = open_offices(county)
    ctx.call_on_close(own.dispose)
    now = datetime.now(UTC)
    pairs: list[tuple[str | None, Any, Any]] = []
    for job in jobs:
        pairs.extend((key, stores[key], job) for key in job_offices(job, county))
        if not job_offices(job, county):
            pairs.append((None, own, job))
    rows: list[dict[str, Any]] = []
    # Grouped by office (the county first, then offices in their files' order), jobs in file order.
    order = [None, *stores]
    for key in order:
        opened = own if key is None else stores[key]
        mine = [job for office, _opened, job in pairs if office == key]
        if mine:
            rows.extend({"office": key, **row} for row in _rows_of(opened, mine, now))
    pending = [{"office": None, **item} for item in _pending_of(own)]
    for key, opened in stores.items():
        pending.extend({"office": key, **item} for item in _pending_of(opened))
    return rows, pending


@app.command("jobs")
def jobs_command(
    ctx: typer.Context,
    format: Annotated[OutputFormat, typer.Option("--format", "-f", help="输出格式")] = OutputFormat.text,
) -> None:
    """列出任务：计划、上次运行结果、下次运行时间，以及尚未发送成功的报告。

    县级实例不加 --office 时列出每个单位的每个任务（“单位”一列，全县汇总任务记为“全县”）；加 --office 只列该单位的任务。
    """
    from channelwatch.daemon.jobs import ACTION_LABELS
    from channelwatch.render import pad

    root = root_instance_of(ctx)
    county = root.is_county and _state(ctx).office is None
    rows, pending = _county_job_rows(ctx, root) if county else _job_rows(ctx)
    if format is OutputFormat.json:
        echo_data(json.dumps({"jobs": rows, "undelivered": pending}, ensure_ascii=False, indent=2) + "\n")
        return
    if not rows:
        echo(f"{(root if county else instance_of(ctx)).jobs_dir} 下没有任务文件。")
    header = ["任务", "动作", "计划", "上次结果", "上次开始", "下次运行"]
    widths = [16, 18, 28, 10, 21, 20]
    if county:
        header.insert(1, "单位")
        widths[0] = max(16, *(len(row["id"]) + 2 for row in rows))
        widths.insert(1, max(10, *(len(row["office"] or "") + 2 for row in rows)))
    echo("".join(pad(h, w) for h, w in zip(header, widths, strict=True)).rstrip())
    for row in rows:
        cells = [
            row["id"],
            ACTION_LABELS.get(row["action"], row["action"]),
            row["schedule_label"],
            _STATUS.get(row["last_status"], row["last_status"]),
            row["last_started"],
            row["next_run"],
        ]
        if county:
            cells.insert(1, row["office"] or _COUNTY_LABEL)
        echo("".join(pad(c, w) for c, w in zip(cells, widths, strict=True)).rstrip())
        # An inspect job's message is its verdict: shown even when all is well.
        if row["last_message"] and (row["last_status"] not in {None, "ok"} or row["action"] == "inspect"):
            echo(f"    {row['last_message'][:300]}")
    if pending:
        from channelwatch.delivery.send import report_label, target_label

        echo("")
        echo("尚未发送成功的报告（下次运行报告任务时自动重试）：")
        for item in pending:
            state = _DELIVERY_STATUS.get(item["status"], item["status"])
            reason = f"：{item['message']}" if item["message"] else ""
            where = f"[{item['office'] or _COUNTY_LABEL}] " if county else ""
            echo(
                f"  {where}{report_label(item['report'])} {item['period']} → {target_label(item['target'])}  {state}，"
                f"已尝试 {item['attempts']} 次{reason}"
            )


@app.command("run-job")
def run_job_command(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="任务", help="任务 id（见 channelwatch jobs）")],
) -> None:
    """立即运行一个任务（用 cron 或 systemd 定时器代替守护进程时使用）。"""
    from channelwatch.daemon.actions import execute
    from channelwatch.daemon.jobs import find_job, load_jobs

    if _state(ctx).verbose:
        _daemon_logging()
    else:
        # A one-shot command: its Chinese result line says what the daemon's English log line would repeat. A job's
        # unexpected traceback is still shown, as before (the result line only names the error).
        logging.getLogger("channelwatch.tracebacks").setLevel(logging.DEBUG)
    root = root_instance_of(ctx)
    if root.is_county and _state(ctx).office is None:
        _run_county_job(root, job_id)
        return
    job = find_job(load_jobs(instance_of(ctx)), job_id)
    outcome = execute(store_of(ctx), job, trigger="manual")
    echo(f"任务 {job.id}（{job.action}）：{_STATUS.get(outcome.status, outcome.status)}：{outcome.message}")
    if outcome.status == "failed":
        raise typer.Exit(1)
    if outcome.status == "skipped":
        fail(f"任务 {job.id} 正在另一个进程中运行，本次未运行")


def _run_county_job(county: Any, job_id: str) -> None:
    """A job of a county instance, for every office it applies to; one office's failure stops no other."""
    from channelwatch.daemon.actions import execute
    from channelwatch.daemon.jobs import find_job, job_offices, load_jobs
    from channelwatch.store import open_offices

    job = find_job(load_jobs(county), job_id)
    own, stores = open_offices(county)
    try:
        targets = [(key, stores[key]) for key in job_offices(job, county)] or [("全县", own)]
        failed, skipped = [], []
        for key, opened in targets:
            outcome = execute(opened, job, trigger="manual")
            status = _STATUS.get(outcome.status, outcome.status)
            echo(f"任务 {job.id}（{job.action}）[{key}]：{status}：{outcome.message}")
            if outcome.status == "failed":
                failed.append(key)
            elif outcome.status == "skipped":
                skipped.append(key)
    finally:
        own.dispose()
    if failed:
        fail(f"任务 {job.id} 在 {len(failed)} 个单位失败：{'、'.join(failed)}（其余单位已运行）")
    if skipped:
        fail(f"任务 {job.id} 在 {'、'.join(skipped)} 正在另一个进程中运行，这些单位本次未运行")


@app.command("quarterly")
def quarterly_command(
    ctx: typer.Context,
    year: Annotated[int, typer.Option("--year", "-y", help="年份，如 2020", min=1990, max=2100)],
    quarter: Annotated[int, typer.Option("--quarter", "-q", help="季度 1–4", min=1, max=4)],
    send: Annotated[bool, typer.Option("--send", help="按 [delivery] 配置发送（并存入发件箱）")] = False,
    resend: Annotated[bool, typer.Option("--resend", help="已发送过也再次发送（隐含 --send）")] = False,
    format: Annotated[QuarterlyFormat, typer.Option("--format", "-f", help="打印的格式")] = QuarterlyFormat.text,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="把 XLSX 统计表写入此文件")] = None,
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="各渠道发布数均为 0 时也发送（确认该季度确实没有发布）")
    ] = False,
    overwrite: Overwrite = False,
) -> None:
    """季度统计：各渠道分月的发布总数、原创、转发和本年累计；可生成 XLSX 并发送给政务公开办。"""
    from channelwatch.daemon.actions import deliver_quarterly, quarterly_outgoing

    if output is not None:
        output_file(output, suffixes=(".xlsx",), what="季度统计表", overwrite=overwrite)
    from channelwatch.stats.figures import Period

    opened = figures_store_of(ctx, check_empty=True, period=Period(year, quarter), says_unfinished=True)
    if send or resend:
        outcome = deliver_quarterly(opened, year, quarter, resend=resend, allow_empty=allow_empty)
        for line in outcome.lines():
            echo(line)
        if output is not None:
            report, _ = quarterly_outgoing(opened, year, quarter)
            output.write_bytes(report.xlsx_bytes())
            echo(f"已写入 {output}")
        if outcome.failed:
            fail("部分发送失败（见上方），下次运行季度统计任务或再次执行本命令时会重试")
        echo_footnotes(ctx)
        return
    report, _ = quarterly_outgoing(opened, year, quarter)
    if output is not None:
        output.write_bytes(report.xlsx_bytes())
        echo(f"已写入 {output}", err=True)
    if format is QuarterlyFormat.json:
        echo_data(json.dumps(report.as_json(), ensure_ascii=False, indent=2) + "\n")
    elif format is QuarterlyFormat.html:
        echo_data(report.html)
    else:
        echo(f"主题：{report.subject}\n")
        echo(report.text, nl=False)
    echo_footnotes(ctx)


@app.command("freshness")
def freshness_command(
    ctx: typer.Context,
    warn_days: Annotated[int | None, typer.Option("--warn-days", help="超过多少天未更新即预警", min=1)] = None,
    limit_days: Annotated[int | None, typer.Option("--limit-days", help="期限天数（默认 14）", min=1)] = None,
    format: Annotated[OutputFormat, typer.Option("--format", "-f", help="输出格式")] = OutputFormat.text,
) -> None:
    """各渠道距最新一次发布的天数；超过预警天数的标出距期限还剩几天。"""
    from channelwatch.daemon.actions import freshness_rows, freshness_sentence
    from channelwatch.render import pad

    rows = freshness_rows(figures_store_of(ctx), warn_days, limit_days)
    if format is OutputFormat.json:
        data = [
            {
                "id": r.key,
                "name": r.name,
                "kind": r.kind,
                "total": r.total,
                "last_published": r.last_published.isoformat() if r.last_published else None,
                "days_since": r.days_since,
                "days_left": r.days_left,
                "warn_days": r.warn_days,
                "limit_days": r.limit_days,
                "status": r.status,
            }
            for r in rows
        ]
        echo_data(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    labels = {"ok": "正常", "warn": "预警", "overdue": "已超期", "empty": "无数据"}
    header = ["渠道", "名称", "最新发布", "距今", "剩余", "状态"]
    widths = [12, 16, 18, 8, 8, 8]
    echo("".join(pad(h, w) for h, w in zip(header, widths, strict=True)))
    for r in rows:
        cells = [
            r.key,
            r.name,
            r.last_published.strftime("%Y-%m-%d %H:%M") if r.last_published else "—",
            f"{r.days_since}天" if r.days_since is not None else "—",
            "—" if r.days_left is None else f"{r.days_left}天" if r.days_left >= 0 else f"超{-r.days_left}天",
            labels[r.status],
        ]
        echo("".join(pad(c, w) for c, w in zip(cells, widths, strict=True)))
    late = [r for r in rows if r.status != "ok"]
    if late:
        echo("")
        for r in late:
            echo(freshness_sentence(r))
