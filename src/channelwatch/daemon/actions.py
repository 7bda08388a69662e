"""What each job action does: poll, import-inbox, quarterly-report, freshness-check, probe, link-check, inspect."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from channelwatch import store
from channelwatch.daemon.jobs import Job
from channelwatch.daemon.locks import Lock, _job_lock_name, try_lock
from channelwatch.dates import to_office
from channelwatch.errors import UserError
from channelwatch.failures import describe
from channelwatch.redaction import redact
from channelwatch.store import Store, jobstate

log = logging.getLogger(__name__)
TRACEBACKS = logging.getLogger("channelwatch.tracebacks")


@dataclass
class JobOutcome:
    status: str  # ok | warn | failed | skipped
    message: str


def _office_now(opened: Store, moment: datetime | None = None) -> datetime:
    return to_office(moment or datetime.now(UTC), opened.instance.timezone)


def _poll(opened: Store, job: Job, scheduled_for: datetime, stop: threading.Event | None = None) -> JobOutcome:
    from channelwatch.ingest.poll import poll_channels  # imported here to keep the daemon light

    channels = list(job.spec.channels) if job.spec.channels else None
    results = poll_channels(opened, channels, full=job.spec.full, job_id=job.id, stop=stop)
    if not results:
        return JobOutcome("ok", "没有配置了 [channels.poll] 的渠道")
    failed = [r for r in results if r.status != "ok"]
    labels = {"failed": "失败", "interrupted": "中断"}
    parts = [
        f"{r.channel} 成功：{r.pages} 页，看到 {r.seen} 条，新增 {r.new} 条"
        if r.status == "ok"
        else f"{r.channel} {labels.get(r.status, r.status)}：{r.message}"
        for r in results
    ]
    if any(r.status == "interrupted" for r in results):
        return JobOutcome("interrupted", "; ".join(parts))
    return JobOutcome("failed" if failed else "ok", "; ".join(parts))


def _import_inbox(opened: Store, job: Job, scheduled_for: datetime, stop: threading.Event | None = None) -> JobOutcome:
    from channelwatch.ingest.inbox import import_inbox

    folder = opened.instance.path(job.spec.path)
    if opened.instance.parent is not None:
        # A county's offices share the instance folder: each office has its own inbox/<office id>/<channel id>/.
        folder = folder / str(opened.instance.office_key)
    result = import_inbox(opened, folder, settle=job.spec.settle, job_id=job.id)
    warned = result.count("rejected") or result.problems or result.warned()
    status = "failed" if result.count("error") else "warn" if warned else "ok"
    return JobOutcome(status, result.summary())


def quarterly_outgoing(opened: Store, year: int, quarter: int) -> tuple[Any, Any]:
    """The quarterly report of ``year``/``quarter`` and the ``Outgoing`` that delivers it."""
    from channelwatch.delivery.send import Attachment, Outgoing
    from channelwatch.reports.quarterly import build_quarterly

    keys = [c.id for c in opened.instance.config.channels]
    with store.read(opened.engine) as conn:
        report = build_quarterly(
            conn,
            opened.office_id,
            year,
            quarter,
            channel_keys=keys,
            templates_dir=opened.instance.templates_dir,
            today=_office_now(opened).date(),
        )
    outgoing = Outgoing(
        report="quarterly",
        period=report.key,
        subject=report.subject,
        text=report.text,
        html=report.html,
        attachments=[Attachment(report.attachment_name, report.xlsx_bytes())],
        data=report.as_json(),
    )
    return report, outgoing


class EmptyPeriod(UserError):
    """Every channel has 0 publications in the quarter: not sent to the county without ``--allow-empty``."""

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report


def check_sendable(opened: Store, year: int, quarter: int) -> None:
    """Refuse, before anything is written, a quarterly send that could only mislead.

    Without ``[delivery.email]`` or ``webhook`` nothing leaves the office (the outbox is a copy
    kept at home); a quarter that has not ended in office time has figures that will still grow.
    """
    from channelwatch.delivery.send import real_targets
    from channelwatch.stats.figures import Period

    if not real_targets(opened.instance.config.delivery, "quarterly"):
        raise UserError(
            f"没有配置发送目标，季度统计未发送：请在配置文件 {opened.instance.config_path} 的 [delivery] 中"
            "配置 [delivery.email]（host、from、to）或 webhook；只存入发件箱的副本不算发送"
        )
    period = Period(year=year, quarter=quarter)
    today = _office_now(opened).date()
    if today <= period.end:
        raise UserError(
            f"{period.label}尚未结束（按单位所在时区，{period.end.isoformat()} 结束，今天是 {today.isoformat()}），"
            "数字还会变化，不能发送；请在该季度结束后再发送"
        )


def deliver_quarterly(
    opened: Store,
    year: int,
    quarter: int,
    *,
    resend: bool = False,
    job_id: str | None = None,
    allow_empty: bool = False,
) -> Any:
    """Deliver one quarter under the database-wide delivery lock (job and CLI never send at once).

    Raises ``UserError`` when there is no real target or the quarter has not ended, and
    ``EmptyPeriod`` when every channel has 0 publications in it (unless ``allow_empty``).
    """
    from channelwatch.delivery.send import deliver

    check_sendable(opened, year, quarter)
    lock = _wait_for_lock(opened, f"deliver-{opened.office_id}", timeout=120)
    try:
        report, outgoing = quarterly_outgoing(opened, year, quarter)
        if report.total.quarter.total == 0 and not allow_empty:
            raise EmptyPeriod(
                f"{report.period.label}各渠道发布数均为 0，未发送：可能是该季度的数据还没有导入或抓取"
                f"（见 channelwatch runs）；确认确实为 0 时运行 {allow_empty_command(opened, year, quarter)}",
                report,
            )
        return deliver(opened, outgoing, resend=resend, job_id=job_id)
    finally:
        lock.release()


def allow_empty_command(opened: Store, year: int, quarter: int) -> str:
    """The whole command that sends an all-zero quarter: a job's result (run-job, jobs) has no --allow-empty."""
    office = f" --office {opened.instance.office_key}" if opened.instance.parent is not None else ""
    return f"channelwatch{office} quarterly --year {year} --quarter {quarter} --send --allow-empty"


def _warn_empty(opened: Store, job: Job, error: EmptyPeriod) -> str:
    """Tell the office itself (``warn_to``) that a quarter was not sent because it is all zeros."""
    from channelwatch.delivery.send import Outgoing, deliver

    report = error.report
    office = opened.instance.config.office
    outgoing = Outgoing(
        report="quarterly-empty",
        period=report.key,
        subject=f"{office.name}{report.period.label}政府信息公开统计未发送：各渠道发布数均为 0",
        text="\n".join(
            [
                f"{office.name}{report.period.label}各渠道发布数均为 0，季度统计没有发给政务公开办。",
                "",
                "请检查该季度的数据是否已导入或抓取（channelwatch runs）。确认确实为 0 时，可运行：",
                f"  {allow_empty_command(opened, report.period.year, report.period.quarter)}",
                "",
                "（本邮件由 channelwatch 自动生成发送。）",
                "",
            ]
        ),
        data=report.as_json(),
    )
    lock = _wait_for_lock(opened, f"deliver-{opened.office_id}", timeout=120)
    try:
        outcome = deliver(opened, outgoing, job_id=job.id)
    finally:
        lock.release()
    email = opened.instance.config.delivery.email
    note = "" if email is not None and email.warn_to else "（未配置 [delivery.email] warn_to，提醒只存入发件箱）"
    return f"{error}；{outcome.describe()}{note}"


def _wait_for_lock(opened: Store, name: str, timeout: float) -> Lock:
    deadline = time.monotonic() + timeout
    while True:
        lock = try_lock(opened, name)
        if lock is not None:
            return lock
        if time.monotonic() > deadline:
            raise UserError("另一个进程正在发送报告，请稍后再试")
        time.sleep(0.2)


def _quarterly(opened: Store, job: Job, scheduled_for: datetime, stop: threading.Event | None = None) -> JobOutcome:
    from channelwatch.delivery.send import undelivered_periods
    from channelwatch.reports.quarterly import previous_quarter

    year, quarter = previous_quarter(_office_now(opened, scheduled_for).date())
    periods = {f"{year}Q{quarter}"} | set(undelivered_periods(opened, "quarterly"))
    descriptions, failed, warned = [], False, False
    for period in sorted(periods):
        try:
            outcome = deliver_quarterly(opened, int(period[:4]), int(period[5:]), job_id=job.id)
        except EmptyPeriod as empty:
            # Nothing goes to the county office; the office's own staff hear about it (warn_to).
            warned = True
            descriptions.append(_warn_empty(opened, job, empty))
            continue
        failed = failed or bool(outcome.failed)
        descriptions.append(outcome.describe())
        unrecorded = _unrecorded_note(opened, int(period[:4]), int(period[5:]))
        if unrecorded:
            warned = True
            descriptions.append(unrecorded)
    orphans = _orphan_note(opened)
    if orphans:
        warned = True
        descriptions.append(orphans)
    status = "failed" if failed else "warn" if warned else "ok"
    return JobOutcome(status, "; ".join(descriptions))


def _unrecorded_note(opened: Store, year: int, quarter: int) -> str | None:
    """Channels whose 0 in a quarter sent is no count (nothing of theirs recorded by its end): worth a warning."""
    from channelwatch.stats.figures import Period
    from channelwatch.store.schema import unrecorded_notes

    with store.read(opened.engine) as conn:
        notes = unrecorded_notes(conn, opened.office_id, opened.instance, Period(year, quarter))
    return "；".join(notes) or None


def _orphan_note(opened: Store) -> str | None:
    """Publications under channel ids the config no longer has: counted nowhere, so worth a warning."""
    from channelwatch.store.schema import orphan_notes

    with store.read(opened.engine) as conn:
        orphans = orphan_notes(conn, opened.office_id, opened.instance)
    if not orphans:
        return None
    return "；".join(
        f"数据库中渠道 id「{key}」有 {count} 条发布记录，但配置中已没有这个渠道，未计入统计（{advice}）"
        for key, count, advice in orphans
    )


def freshness_rows(opened: Store, warn_days: int | None = None, limit_days: int | None = None) -> list[Any]:
    from channelwatch.stats.freshness import freshness

    settings = opened.instance.config.freshness
    configured = {c.id for c in opened.instance.config.channels}
    with store.read(opened.engine) as conn:
        rows = freshness(
            conn,
            opened.office_id,
            opened.instance.timezone,
            warn_days=warn_days or settings.warn_days,
            limit_days=limit_days or settings.limit_days,
        )
    return [r for r in rows if r.key in configured]


def freshness_sentence(row: Any) -> str:
    """One Chinese sentence about a channel that needs attention."""
    if row.status == "empty":
        return f"{row.name}（{row.key}）尚无任何发布记录，请确认渠道已接入（导入或抓取）。"
    latest = row.last_published.strftime("%Y-%m-%d")
    if row.status == "overdue":
        return (
            f"{row.name}（{row.key}）已 {row.days_since} 天未更新（最新发布 {latest}），"
            f"已超过 {row.limit_days} 天的期限。"
        )
    return (
        f"{row.name}（{row.key}）已 {row.days_since} 天未更新（最新发布 {latest}），"
        f"距 {row.limit_days} 天期限还剩 {row.days_left} 天。"
    )


def _freshness_brief(row: Any) -> str:
    if row.days_since is None:
        return f"{row.key} 无发布记录"
    if row.days_left is not None and row.days_left < 0:
        return f"{row.key} 已 {row.days_since} 天未更新，超期 {-row.days_left} 天"
    return f"{row.key} 已 {row.days_since} 天未更新，距期限还剩 {row.days_left} 天"


def _freshness(opened: Store, job: Job, scheduled_for: datetime, stop: threading.Event | None = None) -> JobOutcome:
    rows = freshness_rows(opened, job.spec.warn_days, job.spec.limit_days)
    late = [r for r in rows if r.status in {"warn", "overdue", "empty"}]
    if not late:
        return JobOutcome("ok", "各渠道更新正常：" + "，".join(f"{r.key} {r.days_since}天前" for r in rows))
    message = "；".join(_freshness_brief(r) for r in late)
    if job.spec.notify:
        from channelwatch.delivery.send import Outgoing, deliver, supersede

        office = opened.instance.config.office
        today = _office_now(opened, scheduled_for).date()
        body = "\n".join(
            [
                f"{office.name}信息更新预警（{today.isoformat()}）",
                "",
                *[freshness_sentence(r) for r in late],
                "",
                "政务新媒体和网站栏目两周未更新即为检查不合格（单项否决），请及时更新。",
                "（本邮件由 channelwatch 自动生成发送。）",
                "",
            ]
        )
        outgoing = Outgoing(
            report="freshness",
            period=today.isoformat(),
            subject=f"{office.name}信息更新预警：{len(late)}个渠道需要更新",
            text=body,
            data={
                "channels": [
                    {"id": r.key, "status": r.status, "days_since": r.days_since, "days_left": r.days_left}
                    for r in late
                ]
            },
        )
        lock = _wait_for_lock(opened, f"deliver-{opened.office_id}", timeout=120)
        try:
            supersede(opened, "freshness", outgoing.period)
            outcome = deliver(opened, outgoing, job_id=job.id)
        finally:
            lock.release()
        message += "；" + outcome.describe()
        if outcome.failed:
            return JobOutcome("failed", message)
    return JobOutcome("warn", message)


def _county_quarterly(
    opened: Store, job: Job, scheduled_for: datetime, stop: threading.Event | None = None
) -> JobOutcome:
    """The previous quarter's county roll-up, and any earlier one not yet delivered everywhere."""
    from channelwatch.county.delivery import deliver_county_quarterly
    from channelwatch.delivery.send import undelivered_periods
    from channelwatch.reports.quarterly import previous_quarter

    county = opened.instance
    stores = {key: store.open_store(office, opened.engine) for key, office in county.offices.items()}
    year, quarter = previous_quarter(_office_now(opened, scheduled_for).date())
    periods = {f"{year}Q{quarter}"} | set(undelivered_periods(opened, "quarterly"))
    descriptions, failed, warned = [], False, False
    for period in sorted(periods):
        lock = _wait_for_lock(opened, f"deliver-{opened.office_id}", timeout=120)
        try:
            outcome = deliver_county_quarterly(county, opened, stores, int(period[:4]), int(period[5:]), job_id=job.id)
        finally:
            lock.release()
        failed = failed or bool(outcome.failed)
        descriptions.append("全县汇总" + outcome.describe())
        gaps = _county_gaps(county, opened, stores, int(period[:4]), int(period[5:]))
        warned = warned or bool(gaps)
        descriptions.extend(gaps)
    return JobOutcome("failed" if failed else "warn" if warned else "ok", "; ".join(descriptions))


def _county_gaps(county: Any, opened: Store, stores: dict[str, Store], year: int, quarter: int) -> list[str]:
    """The offices whose figures in a county roll-up sent are no counts (无数据): worth a warning."""
    from channelwatch.county.rollup import NO_DATA, build_rollup
    from channelwatch.stats.figures import Period

    rollup = build_rollup(county, opened, stores, Period(year, quarter))
    return [
        f"注意：{row.name}{flag.removeprefix(NO_DATA)}"
        for group in rollup.groups
        for row in group.offices
        for flag in row.flags
        if flag.startswith(NO_DATA)
    ]


def _probe(opened: Store, job: Job, scheduled_for: datetime, stop: threading.Event | None = None) -> JobOutcome:
    from channelwatch.checks.probe import probe_homepages

    channels = list(job.spec.channels) if job.spec.channels else None
    outcomes = probe_homepages(opened, channels)
    if not outcomes:
        return JobOutcome("ok", "没有配置首页（[channels.poll] homepage）的网站渠道")
    parts = [
        f"{o.channel} 首页正常（{o.elapsed_ms} 毫秒）" if o.ok else f"{o.channel} 首页无法访问：{o.error}"
        for o in outcomes
    ]
    return JobOutcome("ok" if all(o.ok for o in outcomes) else "warn", "；".join(parts))


def _link_check(opened: Store, job: Job, scheduled_for: datetime, stop: threading.Event | None = None) -> JobOutcome:
    from channelwatch.checks.linkcheck import CERTAIN, check_links

    channels = list(job.spec.channels) if job.spec.channels else None
    outcomes = check_links(opened, channels)
    if not outcomes:
        return JobOutcome("ok", "没有可检查的链接（网站渠道的首页和栏目尚未抓取）")
    parts = []
    for o in outcomes:
        certain = sum(1 for d in o.dead if d.certainty == CERTAIN)
        parts.append(
            f"{o.channel} 检查 {o.checked} 个链接，不可用 {len(o.dead)} 个"
            f"（确定 {certain} 个，疑似 {len(o.dead) - certain} 个）"
            + (f"，{o.recovered} 个复查时已恢复" if o.recovered else "")
        )
    return JobOutcome("warn" if any(o.dead for o in outcomes) else "ok", "；".join(parts))


def _inspect(opened: Store, job: Job, scheduled_for: datetime, stop: threading.Event | None = None) -> JobOutcome:
    """The checks as of today; findings that appeared or got worse are mailed to ``warn_to`` only."""
    from channelwatch.checks.alerts import due_findings, remember
    from channelwatch.checks.outputs import as_html, as_text
    from channelwatch.checks.rules import LEVEL_LABELS, RULE_LABELS, inspect, store_verdicts

    today = _office_now(opened, scheduled_for).date()
    result = inspect(opened, today)
    store_verdicts(opened, result)  # the web view shows them (docs/web.md)
    counts = {level: sum(1 for f in result.findings if f.level == level) for level in ("veto", "warning")}
    message = f"结论：{result.verdict_label}（否决风险 {counts['veto']} 项，预警 {counts['warning']} 项）"
    if result.findings:
        message += "：" + "；".join(
            f"{f.channel} {RULE_LABELS[f.rule]}（{LEVEL_LABELS[f.level]}）" for f in result.findings
        )
    status = "ok" if result.verdict == "ok" else "warn"
    if not job.spec.notify:
        return JobOutcome(status, message)
    due = due_findings(opened, result, today)
    if not due:
        return JobOutcome(status, message + ("；无新增或加重的问题，未发送邮件" if result.findings else ""))
    from channelwatch.delivery.send import Outgoing, deliver

    office = opened.instance.config.office
    # One period per set of findings mailed: a finding that appears later the same day is mailed too.
    digest = hashlib.sha256(
        "|".join(sorted(f"{f.channel}:{f.rule}:{f.level}:{f.measure}" for f in due)).encode("utf-8")
    ).hexdigest()[:10]
    vetoes = sum(1 for f in due if f.level == "veto")
    outgoing = Outgoing(
        report="inspection",
        period=f"{today.isoformat()}-{digest}",
        subject=f"{office.name}检查预警：{len(due)}项新增或加重的问题" + (f"（{vetoes}项否决风险）" if vetoes else ""),
        text="新增或加重的问题：\n"
        + "\n".join(f"- 【{LEVEL_LABELS[f.level]}】{f.channel_name} · {RULE_LABELS[f.rule]}：{f.detail}" for f in due)
        + "\n\n"
        + as_text(result, opened.instance.templates_dir, opened.instance.config.inspection.min_probes)
        + "\n（本邮件由 channelwatch 自动生成发送。）\n",
        html=as_html(result, opened.instance.templates_dir, opened.instance.config.inspection.min_probes),
        data={"inspection": result.as_json(), "new_or_worse": [f.as_json() for f in due]},
    )
    lock = _wait_for_lock(opened, f"deliver-{opened.office_id}", timeout=120)
    try:
        outcome = deliver(opened, outgoing, job_id=job.id)
    finally:
        lock.release()
    message += "；" + outcome.describe()
    if outcome.failed:
        return JobOutcome("failed", message)  # not remembered: the next run tries again
    remember(opened, due, today)
    return JobOutcome(status, message)


# Each action gets the daemon's stop event; only a poll can be cut short (its writes are one transaction
# at the end), the others are short and finish.
ACTIONS: dict[str, Callable[[Store, Job, datetime, threading.Event | None], JobOutcome]] = {
    "poll": _poll,
    "import-inbox": _import_inbox,
    "quarterly-report": _quarterly,
    "freshness-check": _freshness,
    "county-quarterly": _county_quarterly,
    "probe": _probe,
    "link-check": _link_check,
    "inspect": _inspect,
}


def _label(opened: Store, job: Job) -> str:
    """The job as the log names it: with the office id in a county instance."""
    return f"{opened.instance.office_key}:{job.id}" if opened.instance.parent is not None else job.id


def execute(
    opened: Store,
    job: Job,
    *,
    trigger: str = "manual",
    scheduled_for: datetime | None = None,
    stop: threading.Event | None = None,
) -> JobOutcome:
    """Run ``job`` once now, recorded as a job run; never raises for the job's own failures.

    What a server or an SMTP relay answered may be in the outcome's message: it is redacted (every
    configured secret read so far) before it is stored, logged or returned.
    """
    lock = try_lock(opened, _job_lock_name(opened, job.id))
    if lock is None:
        outcome = JobOutcome("skipped", "上一次运行尚未结束，本次跳过")
        log.info("job %s (%s) skipped [%s]: %s", _label(opened, job), job.action, trigger, outcome.message)
        return outcome
    started = time.monotonic()
    fire = scheduled_for or datetime.now(UTC)
    try:
        run_id = jobstate.start_job_run(opened.engine, opened.office_id, job.id, job.action, trigger, fire)
        try:
            outcome = ACTIONS[job.action](opened, job, fire, stop)
        except UserError as exc:
            outcome = JobOutcome("failed", str(exc))
        except Exception as exc:
            TRACEBACKS.debug("job %s raised", job.id, exc_info=True)
            outcome = JobOutcome("failed", describe(exc)[:2000])
        outcome.message = redact(outcome.message)
        # An interrupted run did not happen: the next start catches it up (within its grace time).
        fired = None if outcome.status == "interrupted" else fire
        jobstate.finish_job_run(opened.engine, run_id, outcome.status, outcome.message, scheduled_for=fired)
    finally:
        lock.release()
    log.info(
        "job %s (%s) %s in %.2fs [%s]: %s",
        _label(opened, job),
        job.action,
        outcome.status,
        time.monotonic() - started,
        trigger,
        outcome.message,
    )
    return outcome


def close_interrupted(opened: Store, jobs: list[Job]) -> None:
    """Runs left ``running`` by a killed process, whose job lock is free now, are closed as interrupted."""
    from sqlalchemy import select

    runs = jobstate.JobRun.__table__  # type: ignore[attr-defined]
    states = jobstate.JobState.__table__  # type: ignore[attr-defined]
    for job in jobs:
        lock = try_lock(opened, _job_lock_name(opened, job.id))
        if lock is None:
            continue
        try:
            with store.write(opened.engine) as conn:
                stale = list(
                    conn.execute(
                        select(runs.c.id).where(
                            runs.c.office_id == opened.office_id, runs.c.job_id == job.id, runs.c.status == "running"
                        )
                    ).scalars()
                )
                if not stale:
                    continue
                conn.execute(
                    runs.update()
                    .where(runs.c.id.in_(stale))
                    .values(status="interrupted", message="进程在运行中被终止", finished_at=store.utc_now())
                )
                conn.execute(
                    states.update()
                    .where(
                        states.c.office_id == opened.office_id,
                        states.c.job_id == job.id,
                        states.c.last_status == "running",
                    )
                    .values(last_status="interrupted", last_message="进程在运行中被终止")
                )
            log.warning("job %s: %d run(s) interrupted by a previous crash", job.id, len(stale))
        finally:
            lock.release()
