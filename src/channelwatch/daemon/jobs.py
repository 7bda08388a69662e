"""Job files: each ``jobs/*.toml`` is one job the daemon runs.

::

    id = "poll"                  # optional: defaults to the file name without .toml
    action = "poll"              # poll | import-inbox | quarterly-report | freshness-check
                                 # | probe | link-check | inspect (docs/inspection.md)
    every = "30m"                # s, m, h, d — or:
    cron = "0 9 3 1,4,7,10 *"    # minute hour day month weekday, in the office's time zone
    jitter = "30s"               # optional: random delay added to each run
    grace = "1h"                 # optional: how late a missed run may still be caught up

Schedules are evaluated in the office's time zone. Cron weekdays follow crontab (0 and 7 = Sunday);
APScheduler 3 numbers them from Monday, so numeric weekdays are translated into names here.

A missed run is caught up once when the daemon starts again if it is not older than the job's grace
time: one interval for interval jobs (for cron jobs, the gap between two runs), seven days for the
quarterly report. APScheduler is imported inside the functions that need it (``--help`` stays fast).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from channelwatch.errors import ConfigError, UserError
from channelwatch.instance.config import Instance, format_validation_error, load_toml

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

__all__ = [
    "ACTIONS",
    "ACTION_LABELS",
    "Job",
    "find_job",
    "load_jobs",
    "make_trigger",
    "missed_fire",
    "next_fire",
    "parse_duration",
]

ACTIONS = (
    "poll",
    "import-inbox",
    "quarterly-report",
    "freshness-check",
    "probe",
    "link-check",
    "inspect",
    "county-quarterly",
)
# What ``jobs`` shows for each action (the job files and JSON keep the ids the IT person writes).
ACTION_LABELS = {
    "poll": "抓取",
    "import-inbox": "收件箱导入",
    "quarterly-report": "季度统计",
    "freshness-check": "两周更新检查",
    "probe": "首页探测",
    "link-check": "链接检查",
    "inspect": "检查预警",
    "county-quarterly": "全县季度汇总",
}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
REPORT_GRACE = 7 * 86400.0


def parse_duration(value: Any) -> float:
    """``"30m"`` → 1800.0. Units: s, m, h, d; a bare number is seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"无法识别的时长「{value}」（例如 30s、30m、2h、1d）")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"时长「{value}」无效")
    return seconds


_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def crontab_weekdays(field: str) -> str:
    """Translate crontab weekday numbers (0/7 = Sunday) into APScheduler's weekday names."""
    if field in {"*", "?"}:
        return "*"
    out: list[str] = []
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        if re.search(r"[A-Za-z]", base):
            # Names mean the same in both; APScheduler would accept trailing garbage ("mon-fri-x").
            if not _WEEKDAY_RANGE.fullmatch(base.lower()):
                raise ValueError(f"星期字段「{field}」无效（英文缩写 sun–sat，或 0–7，0 和 7 都表示星期日）")
            out.append(part.lower())
            continue
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                first, last = 0, 6
            elif "-" in base:
                first_text, last_text = base.split("-", 1)
                first, last = int(first_text), int(last_text)
            else:
                first = int(base)
                last = 6 if step_text else first
        except ValueError:
            raise ValueError(f"星期字段「{field}」无效（0–7，0 和 7 都表示星期日；或英文缩写 sun–sat）") from None
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last and step >= 1):
            raise ValueError(f"星期字段「{field}」无效（0–7，0 和 7 都表示星期日）")
        out.extend(_WEEKDAY_NAMES[day] for day in range(first, last + 1, step))
    unique = list(dict.fromkeys(out))
    return ",".join(unique)


_WEEKDAY_RANGE = re.compile(r"(sun|mon|tue|wed|thu|fri|sat)(-(sun|mon|tue|wed|thu|fri|sat))?")
_CRON_LABELS = (("minute", "分"), ("hour", "时"), ("day", "日"), ("month", "月"), ("day_of_week", "星期"))


def _cron_problem(expression: str, exc: ValueError) -> str:
    """Which of the five fields APScheduler refused, in Chinese, its own words in brackets."""
    from apscheduler.triggers.cron import CronTrigger

    fields = _cron_fields(expression)
    english = str(exc)
    for number, (name, label) in enumerate(_CRON_LABELS, start=1):
        try:
            CronTrigger(**{name: fields[name]}, timezone="UTC")
        except ValueError as field_exc:
            english = str(field_exc)
            value = expression.split()[number - 1]
            high = re.search(r"higher than the maximum value \((\d+)\)", english)
            low = re.search(r"lower than the minimum value \((\d+)\)", english)
            reason = f"超过最大值 {high.group(1)}" if high else f"小于最小值 {low.group(1)}" if low else "无法识别"
            return f"第 {number} 个字段（{label}）的值「{value}」{reason}（{english}）"
    return f"各字段组合无效（{english}）"


_LONGEST_MONTHS = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}


def _never_why(fields: dict[str, str]) -> str:
    """Why a cron never fires, when its day and month are plain numbers; otherwise in general words."""
    day, month = fields["day"], fields["month"]
    if day.isdigit() and month.isdigit() and int(day) > _LONGEST_MONTHS.get(int(month), 31):
        return f"{int(month)} 月没有 {int(day)} 日"
    return "没有哪一天同时符合日、月、星期这几个字段"


def _cron_fields(expression: str) -> dict[str, str]:
    values = expression.split()
    if len(values) != 5:
        raise ValueError(f"cron 表达式「{expression}」应有 5 个字段：分 时 日 月 星期")
    minute, hour, day, month, weekday = values
    return {"minute": minute, "hour": hour, "day": day, "month": month, "day_of_week": crontab_weekdays(weekday)}


class _JobBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    action: str
    every: float | None = None
    cron: str | None = None
    jitter: float = 0.0
    grace: float | None = None

    @field_validator("every", "jitter", "grace", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("every")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("间隔必须大于 0")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from apscheduler.triggers.cron import CronTrigger

        fields = _cron_fields(value)  # its own ValueError is Chinese already
        try:
            trigger = CronTrigger(**fields, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"cron 表达式「{value}」无效：{_cron_problem(value, exc)}") from None
        # Valid field by field, yet no date matches them all (31 February): the job would wait for ever, and jobs
        # would only show "—" as its next run.
        if trigger.get_next_fire_time(None, datetime.now(ZoneInfo("UTC"))) is None:
            raise ValueError(f"cron 表达式「{value}」永远不会触发（{_never_why(fields)}）")
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> _JobBase:
        if (self.every is None) == (self.cron is None):
            raise ValueError('every 和 cron 必须且只能设置一个（例如 every = "30m" 或 cron = "0 9 * * *"）')
        return self


class _OfficeJob(_JobBase):
    # County instances: the offices (config/offices/<id>.toml) this job runs for; default every office.
    offices: list[str] | None = Field(default=None, min_length=1)


class PollJob(_OfficeJob):
    action: Literal["poll"]
    channels: list[str] | None = None  # default: every channel with a [channels.poll] table
    full: bool = False


class InboxJob(_OfficeJob):
    action: Literal["import-inbox"]
    path: str = "inbox"
    # A file whose content changed (mtime or ctime) within this time may still be being written.
    settle: float = 10.0

    @field_validator("settle", mode="before")
    @classmethod
    def _settle(cls, value: Any) -> float:
        return parse_duration(value)


class QuarterlyJob(_OfficeJob):
    action: Literal["quarterly-report"]
    channels: list[str] | None = None


class FreshnessJob(_OfficeJob):
    action: Literal["freshness-check"]
    warn_days: int | None = Field(default=None, ge=1)  # default: [freshness] in the config (10)
    limit_days: int | None = Field(default=None, ge=1)  # default: [freshness] in the config (14)
    notify: bool = True  # also deliver the warning (outbox, e-mail, webhook) once a day


class CountyQuarterlyJob(_JobBase):
    """County instances: the county's quarterly roll-up to the county's own ``[delivery]``."""

    action: Literal["county-quarterly"]


class ProbeJob(_OfficeJob):
    """Request each website's homepage once (docs/inspection.md); 15 minutes apart gives 96 probes a day."""

    action: Literal["probe"]
    channels: list[str] | None = None  # default: every website channel with [channels.poll] homepage


class LinkCheckJob(_OfficeJob):
    action: Literal["link-check"]
    channels: list[str] | None = None  # default: every website channel


class InspectJob(_OfficeJob):
    action: Literal["inspect"]
    notify: bool = True  # mail warn_to about findings that appeared or got worse (once a day each)


JobSpec = PollJob | InboxJob | QuarterlyJob | FreshnessJob | ProbeJob | LinkCheckJob | InspectJob | CountyQuarterlyJob
_MODELS: dict[str, type[_JobBase]] = {
    "poll": PollJob,
    "import-inbox": InboxJob,
    "quarterly-report": QuarterlyJob,
    "freshness-check": FreshnessJob,
    "county-quarterly": CountyQuarterlyJob,
    "probe": ProbeJob,
    "link-check": LinkCheckJob,
    "inspect": InspectJob,
}


@dataclass(frozen=True)
class Job:
    """A validated job file."""

    spec: Any  # one of JobSpec
    path: Path

    @property
    def id(self) -> str:
        return str(self.spec.id)

    @property
    def action(self) -> str:
        return str(self.spec.action)

    @property
    def schedule_text(self) -> str:
        text = f"every {_duration_text(self.spec.every)}" if self.spec.every else f"cron {self.spec.cron}"
        if self.spec.jitter:
            text += f" ±{_duration_text(self.spec.jitter)}"
        return text

    @property
    def schedule_label(self) -> str:
        """The schedule as ``jobs`` shows it (每 30 分钟, cron：0 9 * * *); the log keeps ``schedule_text``."""
        text = f"每 {_duration_label(self.spec.every)}" if self.spec.every else f"cron：{self.spec.cron}"
        if self.spec.jitter:
            text += f"（随机推迟 0–{_duration_label(self.spec.jitter)}）"
        return text

    def grace_seconds(self, zone: str) -> float:
        if self.spec.grace is not None:
            return float(self.spec.grace)
        if self.action == "quarterly-report":
            return REPORT_GRACE
        if self.spec.every:
            return float(self.spec.every)
        return _cron_gap(self, zone)


def _duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _duration_label(seconds: float) -> str:
    for unit, size in (("天", 86400), ("小时", 3600), ("分钟", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} 秒"


def _cron_gap(job: Job, zone: str) -> float:
    """The gap between two consecutive runs of a cron job, measured after now."""
    from datetime import UTC

    now = datetime.now(UTC)
    first = next_fire(job, zone, now)
    second = next_fire(job, zone, first + timedelta(seconds=1)) if first else None
    if first is None or second is None:
        return 3600.0
    return max(60.0, (second - first).total_seconds())


def _check_channels(job: Any, instance: Instance, path: Path, data: dict[str, Any]) -> None:
    channels = getattr(job, "channels", None)
    if not channels:
        return
    for channel_id in channels:
        try:
            channel = instance.channel(channel_id)
        except UserError:
            known = "、".join(c.id for c in instance.config.channels) or "（无）"
            raise ConfigError(
                f"任务文件 {path} 有误：\n  channels：配置中没有渠道「{channel_id}」（已配置：{known}）"
            ) from None
        if job.action == "poll" and channel.poll is None:
            raise ConfigError(
                f"任务文件 {path} 有误：\n  channels：渠道「{channel_id}」没有 [channels.poll] 配置，无法抓取"
            )


def load_job(path: Path, instance: Instance) -> Job:
    data = load_toml(path)
    data.setdefault("id", path.stem)
    action = data.get("action")
    if action not in _MODELS:
        shown = "缺少必填项" if action is None else f"取值无效（值：{action!r}）"
        raise ConfigError(f"任务文件 {path} 有误：\n  action：{shown}，可选：{'、'.join(ACTIONS)}")
    try:
        spec = _MODELS[action].model_validate(data)
    except ValidationError as exc:
        message = format_validation_error(path, exc, data).replace("配置文件", "任务文件", 1)
        # The only whole-file rule is the schedule's: name its keys instead of an empty key path.
        message = message.replace("\n  ：", "\n  every/cron：")
        raise ConfigError(message) from None
    _check_offices(spec, instance, path, data)
    return Job(spec=spec, path=path)


def job_offices(job: Job, county: Instance) -> list[str]:
    """The offices of a county instance that ``job`` runs for (none for the county's own jobs).

    Without ``offices`` a job runs for every office with channels: an office that only sends its quarterly
    sheet has nothing to poll or import, and its own figures must not go out as a sheet of zeros.
    """
    if job.action == "county-quarterly":
        return []
    if job.spec.offices:
        return list(job.spec.offices)
    return [key for key, office in county.offices.items() if office.config.channels]


def _check_offices(spec: Any, instance: Instance, path: Path, data: dict[str, Any]) -> None:
    offices = getattr(spec, "offices", None)
    if not instance.is_county:
        if offices is not None or spec.action == "county-quarterly":
            key = "offices" if offices is not None else "action"
            raise ConfigError(
                f"任务文件 {path} 有误：\n  {key}：只能用于县级实例（config/channelwatch.toml 中有 [county]）"
            )
        _check_channels(spec, instance, path, data)
        return
    for key in offices or []:
        if key not in instance.offices:
            known = "、".join(instance.offices)
            raise ConfigError(f"任务文件 {path} 有误：\n  offices：没有单位「{key}」（已配置：{known}）")
    for key in offices or list(instance.offices):
        _check_channels(spec, instance.offices[key], path, data)


def load_jobs(instance: Instance) -> list[Job]:
    """Every ``jobs/*.toml`` of the instance, validated; the first bad file stops with its message.

    For one office of a county instance: the jobs that run for that office.
    """
    if instance.parent is not None:
        key = instance.office_key
        return [j for j in load_jobs(instance.parent) if key in job_offices(j, instance.parent)]
    folder = instance.jobs_dir
    if not folder.is_dir():
        return []
    jobs: list[Job] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.toml")):
        job = load_job(path, instance)
        if job.id in seen:
            raise ConfigError(f"任务文件 {path} 有误：\n  id：任务 id「{job.id}」与 {seen[job.id]} 重复")
        seen[job.id] = path
        jobs.append(job)
    return jobs


def find_job(jobs: list[Job], job_id: str) -> Job:
    for job in jobs:
        if job.id == job_id:
            return job
    known = "、".join(j.id for j in jobs) or "（无）"
    raise UserError(f"没有任务「{job_id}」。已有的任务：{known}")


# --- schedules -----------------------------------------------------------------------------------------


def make_trigger(job: Job, zone: str, *, start: datetime | None = None, jitter: bool = True) -> BaseTrigger:
    """The APScheduler trigger of ``job`` in the office's time zone.

    Interval jobs are anchored at ``start`` (the job's last run), so that a daemon restarted ten
    minutes after a 30-minute poll polls again twenty minutes later, not thirty.
    """
    tz = ZoneInfo(zone)
    spread = int(job.spec.jitter) if jitter and job.spec.jitter else None
    if job.spec.every:
        from apscheduler.triggers.interval import IntervalTrigger

        return IntervalTrigger(seconds=job.spec.every, start_date=start, timezone=tz, jitter=spread)
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger(**_cron_fields(job.spec.cron), timezone=tz, jitter=spread)


def next_fire(job: Job, zone: str, after: datetime, *, start: datetime | None = None) -> datetime | None:
    """The first scheduled time at or after ``after`` (no jitter)."""
    trigger = make_trigger(job, zone, start=start, jitter=False)
    found: datetime | None = trigger.get_next_fire_time(None, after)
    return found


def _cron_fires(job: Job, zone: str, begin: datetime, end: datetime) -> Iterator[datetime]:
    trigger = make_trigger(job, zone, jitter=False)
    moment: datetime | None = trigger.get_next_fire_time(None, begin)
    count = 0
    while moment is not None and moment <= end and count < 100_000:
        yield moment
        count += 1
        moment = trigger.get_next_fire_time(None, moment + timedelta(microseconds=1))


def missed_fire(job: Job, zone: str, reference: datetime, now: datetime) -> datetime | None:
    """The latest scheduled time after ``reference`` and not after ``now`` that is within the grace time.

    ``reference`` is when the job last ran (or when a daemon first saw it). ``None`` means nothing
    to catch up.
    """
    grace = timedelta(seconds=job.grace_seconds(zone))
    if job.spec.every:
        interval = timedelta(seconds=job.spec.every)
        if now - reference < interval:
            return None
        steps = (now - reference) // interval
        latest = reference + steps * interval
    else:
        begin = max(reference + timedelta(microseconds=1), now - grace)
        found = None
        for found in _cron_fires(job, zone, begin, now):  # noqa: B007 — we want the last one
            pass
        if found is None:
            return None
        latest = found
    if latest <= reference or now - latest > grace:
        return None
    return latest
