"""Finding and validating the instance: ``config/channelwatch.toml``, ``jobs/*.toml``, ``templates/``.

The instance folder is ``--instance DIR``, else ``$CHANNELWATCH_INSTANCE``, else the current
directory (docs/configuration.md). Every problem becomes one ``ConfigError`` that names the file and the key.
Secrets are never read into the config: it only holds the *names* of environment variables, and
``secret()`` reads them when needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from channelwatch.delivery.settings import DeliveryConfig
from channelwatch.errors import ChannelNotFound, ConfigError
from channelwatch.validation import format_validation_error, load_toml

__all__ = [
    "ChannelConfig",
    "ColumnConfig",
    "Config",
    "InspectionConfig",
    "Instance",
    "WebConfig",
    "find_instance",
    "load_instance",
]

CONFIG_FILE = Path("config") / "channelwatch.toml"
CHANNEL_KINDS = ("website", "weibo", "wechat", "other")
KIND_LABELS = {"website": "政府网站", "weibo": "微博", "wechat": "微信公众号", "other": "其他"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OfficeConfig(_Strict):
    # The stable key of the office in the database; the name is a label that may change.
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$", max_length=64)
    name: str = Field(min_length=1)
    short_name: str = "我单位"
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"未知的时区「{value}」（例如 Asia/Shanghai）") from None
        return value


class DatabaseConfig(_Strict):
    url: str = "sqlite:///data/channelwatch.db"


COLUMN_CLASSES = ("dynamic", "notice", "plan", "static")


def _days(value: Any) -> int | None:
    """``"30d"``/``"2w"``-style ages as whole days; a bare number is a number of days."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        days = value
    else:
        text = str(value).strip().lower()
        if text.endswith("w") and text[:-1].isdigit():
            days = int(text[:-1]) * 7
        elif text.endswith("d") and text[:-1].isdigit():
            days = int(text[:-1])
        elif text.isdigit():
            days = int(text)
        else:
            raise ValueError(f"无法识别的天数「{value}」（例如 30d、2w 或 30）")
    if days < 1:
        raise ValueError(f"天数「{value}」必须至少为 1 天")
    return days


class ColumnConfig(_Strict):
    """One column (栏目) of a website channel: ``[[channels.columns]]`` (docs/inspection.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://")
    column_class: Literal["dynamic", "notice", "plan", "static"] = Field(default="dynamic", alias="class")
    max_age: int | None = None  # days; overrides the class
    # Overrides of the channel's [channels.poll] selectors for this column's page.
    item: str | None = None
    title: str | None = None
    link: str | None = None
    date: str | None = None
    page_url: str | None = None

    @field_validator("max_age", mode="before")
    @classmethod
    def _max_age(cls, value: Any) -> int | None:
        return _days(value)


class ChannelConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    kind: Literal["website", "weibo", "wechat", "other"]
    name: str = Field(min_length=1)
    poll: dict[str, Any] | None = None
    columns: list[ColumnConfig] = Field(default_factory=list)

    @property
    def homepage(self) -> str | None:
        """``[channels.poll] homepage``: the site's home page, probed and watched for updates."""
        value = (self.poll or {}).get("homepage")
        return str(value) if value else None

    @model_validator(mode="before")
    @classmethod
    def _website_poll_type(cls, data: Any) -> Any:
        """A website's ``[channels.poll]`` that only names its homepage (and columns) reads HTML lists."""
        if isinstance(data, dict) and data.get("kind") == "website":
            poll = data.get("poll")
            if isinstance(poll, dict) and "type" not in poll and (poll.get("homepage") or data.get("columns")):
                data = {**data, "poll": {"type": "html-list", **poll}}
        return data

    @model_validator(mode="after")
    def _columns_of_websites(self) -> ChannelConfig:
        if self.columns and self.kind != "website":
            raise ValueError('只有 kind = "website" 的渠道可以配置 [[channels.columns]]')
        names = [c.name for c in self.columns]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"栏目名称「{name}」重复")
        return self


class FreshnessConfig(_Strict):
    warn_days: int = Field(default=10, ge=1)
    limit_days: int = Field(default=14, ge=1)


class WebConfig(_Strict):
    """``[web]``: the read-only web view (``channelwatch serve``).

    One shared password, read from the environment variable ``password_env`` names, like every
    other secret of the instance (docs/web.md explains why not a list of users with hashes).
    """

    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    secure_cookie: bool = False  # always mark the session cookie Secure (besides requests that arrive over HTTPS)


class InspectionConfig(_Strict):
    """``[inspection]``: thresholds of the inspection checks, national values as defaults (docs/inspection.md)."""

    homepage_warn_days: int = Field(default=10, ge=1)
    homepage_limit_days: int = Field(default=14, ge=1)
    dynamic_days: int = Field(default=14, ge=1)
    dynamic_warn_days: int = Field(default=10, ge=1)
    notice_days: int = Field(default=180, ge=1)
    notice_warn_days: int = Field(default=150, ge=1)
    plan_days: int = Field(default=365, ge=1)
    plan_warn_days: int = Field(default=330, ge=1)
    stale_veto_dynamic_notice: int = Field(default=5, ge=1)
    stale_veto_any: int = Field(default=10, ge=1)
    stale_warning: int = Field(default=3, ge=1)
    blank_veto: int = Field(default=5, ge=1)
    blank_warning: int = Field(default=2, ge=1)
    unreachable_veto: float = Field(default=0.05, gt=0, le=1)
    unreachable_warning: float = Field(default=0.03, gt=0, le=1)
    availability_days: int = Field(default=7, ge=1)
    min_probes: int = Field(default=20, ge=1)
    probe_timeout: float = 15.0
    link_timeout: float = 15.0
    link_concurrency: int = Field(default=4, ge=1, le=100)
    link_recheck_delay: float = 10.0
    link_window_days: int = Field(default=7, ge=1)
    max_links: int = Field(default=2000, ge=1)
    newmedia_warn_days: int = Field(default=10, ge=1)
    newmedia_limit_days: int = Field(default=14, ge=1)
    newmedia_period_days: int = Field(default=365, ge=1)

    @field_validator("probe_timeout", "link_timeout", "link_recheck_delay", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> float:
        from channelwatch.sources.base import parse_duration

        return parse_duration(value)

    @model_validator(mode="after")
    def _warnings_below_vetoes(self) -> InspectionConfig:
        pairs = [
            ("homepage_warn_days", "homepage_limit_days"),
            ("dynamic_warn_days", "dynamic_days"),
            ("notice_warn_days", "notice_days"),
            ("plan_warn_days", "plan_days"),
            ("blank_warning", "blank_veto"),
            ("unreachable_warning", "unreachable_veto"),
            ("newmedia_warn_days", "newmedia_limit_days"),
        ]
        for warning, veto in pairs:
            if getattr(self, warning) > getattr(self, veto):
                raise ValueError(f"{warning}（{getattr(self, warning)}）不能大于 {veto}（{getattr(self, veto)}）")
        return self

    def class_days(self, column_class: str) -> tuple[int, int] | None:
        """(warning, limit) days of a column class; None for ``static`` (no update rule)."""
        if column_class == "static":
            return None
        limit = int(getattr(self, f"{column_class}_days"))
        return int(getattr(self, f"{column_class}_warn_days")), limit


class Config(_Strict):
    office: OfficeConfig
    database: DatabaseConfig = DatabaseConfig()
    channels: list[ChannelConfig] = Field(default_factory=list)
    freshness: FreshnessConfig = FreshnessConfig()
    inspection: InspectionConfig = InspectionConfig()
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    web: WebConfig = WebConfig()

    @field_validator("channels")
    @classmethod
    def _unique_ids(cls, channels: list[ChannelConfig]) -> list[ChannelConfig]:
        seen: set[str] = set()
        for channel in channels:
            if channel.id in seen:
                raise ValueError(f"渠道 id「{channel.id}」重复")
            seen.add(channel.id)
        return channels


@dataclass
class Instance:
    """A loaded, validated instance folder."""

    root: Path
    config: Config
    config_path: Path
    _channel_index: dict[str, ChannelConfig] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._channel_index = {c.id: c for c in self.config.channels}

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def timezone(self) -> str:
        return self.config.office.timezone

    @property
    def database_url(self) -> str:
        return os.environ.get("CHANNELWATCH_DATABASE_URL") or self.config.database.url

    def path(self, relative: str | Path) -> Path:
        """A path from the config, relative to the instance folder."""
        candidate = Path(relative).expanduser()
        return candidate if candidate.is_absolute() else self.root / candidate

    def channel(self, channel_id: str) -> ChannelConfig:
        try:
            return self._channel_index[channel_id]
        except KeyError:
            known = "、".join(self._channel_index) or "（无）"
            raise ChannelNotFound(
                f"配置中没有渠道「{channel_id}」（{self.config_path}）。已配置的渠道：{known}"
            ) from None

    def channels(self, ids: list[str] | None = None) -> list[ChannelConfig]:
        return [self.channel(i) for i in ids] if ids else list(self.config.channels)


def find_instance(option: Path | None) -> Path:
    if option is not None:
        return option
    env = os.environ.get("CHANNELWATCH_INSTANCE")
    return Path(env) if env else Path.cwd()


def load_instance(option: Path | None = None) -> Instance:
    root = find_instance(option).resolve()
    path = root / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"在 {root} 找不到实例配置 {CONFIG_FILE}。"
            "请用 --instance 指定实例目录，或设置 CHANNELWATCH_INSTANCE，或运行 channelwatch init DIR 新建实例。"
        )
    data = load_toml(path)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc, data)) from None
    _validate_polls(path, config)
    return Instance(root=root, config=config, config_path=path)


def _column_problems(index: int, channel: ChannelConfig) -> list[str]:
    """Selector overrides of each column, checked as the poll will use them."""
    from channelwatch.sources.website import column_options
    from channelwatch.validation import describe_problem

    problems = []
    for number, column in enumerate(channel.columns, 1):
        try:
            column_options(channel.poll, column.name, column.url, column.model_dump())
        except ValidationError as exc:
            detail = exc.errors()[0]
            key = ".".join(str(p) for p in detail["loc"])
            problems.append(f"  channels[{index}](id={channel.id}).columns[{number}].{key}：{describe_problem(detail)}")
    return problems


def _validate_polls(path: Path, config: Config) -> None:
    """Each ``[channels.poll]`` table is checked by the source its ``type`` names."""
    problems: list[str] = []
    for index, channel in enumerate(config.channels, 1):
        if channel.poll is None:
            continue
        from channelwatch.sources.base import validate_poll_options

        problem = validate_poll_options(channel.poll)
        if problem:
            problems.append(f"  channels[{index}](id={channel.id}).poll{problem}")
        elif channel.poll.get("type") == "html-list" and not channel.poll.get("url") and not channel.columns:
            problems.append(f"  channels[{index}](id={channel.id}).poll.url：缺少必填项（或配置 [[channels.columns]]）")
        elif channel.columns:
            problems.extend(_column_problems(index, channel))
    if problems:
        raise ConfigError("\n".join([f"配置文件 {path} 有误：", *problems]))
