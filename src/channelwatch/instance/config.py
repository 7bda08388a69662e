"""Finding and validating the instance: ``config/channelwatch.toml``, ``jobs/*.toml``, ``templates/``.

The instance folder is ``--instance DIR``, else ``$CHANNELWATCH_INSTANCE``, else the current
directory (docs/configuration.md). Every problem becomes one ``ConfigError`` that names the file and the key.
Secrets are never read into the config: it only holds the *names* of environment variables, and
``secret()`` reads them when needed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from channelwatch.delivery.settings import DeliveryConfig
from channelwatch.errors import ChannelNotFound, ConfigError, UserError
from channelwatch.validation import format_validation_error, load_toml

__all__ = [
    "ChannelConfig",
    "ColumnConfig",
    "Config",
    "CountyConfig",
    "InspectionConfig",
    "Instance",
    "WebConfig",
    "find_instance",
    "load_instance",
]

CONFIG_FILE = Path("config") / "channelwatch.toml"
OFFICES_DIR = Path("config") / "offices"
# The county's own row in the store (its delivery log); refused as an office file name. It is an
# ``[office] id`` like any other, so the store never takes the county's row for an office's.
COUNTY_KEY = "__county__"
CHANNEL_KINDS = ("website", "weibo", "wechat", "other")
KIND_LABELS = {"website": "政府网站", "weibo": "微博", "wechat": "微信公众号", "other": "其他"}
_OFFICE_ID = re.compile(r"[A-Za-z0-9_-]+")


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


class CountyOfficeConfig(OfficeConfig):
    """``[office]`` of ``config/offices/<office id>.toml`` in a county instance."""

    group: str | None = Field(default=None, min_length=1)  # 县直部门, 乡镇 …: the roll-up's subtotals


class CountyConfig(_Strict):
    name: str = Field(min_length=1)
    short_name: str = ""


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
        return _unique_channel_ids(channels)


def _unique_channel_ids(channels: list[ChannelConfig]) -> list[ChannelConfig]:
    seen: set[str] = set()
    for channel in channels:
        if channel.id in seen:
            raise ValueError(f"渠道 id「{channel.id}」重复")
        seen.add(channel.id)
    return channels


class CountyFile(_Strict):
    """``config/channelwatch.toml`` of a county instance: offices live in ``config/offices/*.toml``."""

    county: CountyConfig
    database: DatabaseConfig = DatabaseConfig()
    freshness: FreshnessConfig = FreshnessConfig()
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    web: WebConfig = WebConfig()


class OfficeFile(_Strict):
    """``config/offices/<office id>.toml``: the office and its channels, exactly as in a one-office instance."""

    office: CountyOfficeConfig
    channels: list[ChannelConfig] = Field(default_factory=list)

    @field_validator("channels")
    @classmethod
    def _unique_ids(cls, channels: list[ChannelConfig]) -> list[ChannelConfig]:
        return _unique_channel_ids(channels)


@dataclass
class Instance:
    """A loaded, validated instance folder.

    A one-office instance is one ``Instance``. A county instance (``[county]`` in the config) is an
    ``Instance`` for the county itself (no channels; its office row carries the county's delivery log)
    whose ``offices`` are one ``Instance`` per ``config/offices/<id>.toml``, sharing the folder,
    database, freshness and delivery settings. Every one-office command works on such an office view.
    """

    root: Path
    config: Config
    config_path: Path
    office_key: str | None = None  # the office's stable id in the store; None: found by name
    county: CountyConfig | None = None
    offices: dict[str, Instance] = field(default_factory=dict, repr=False)
    group: str | None = None
    parent: Instance | None = field(default=None, repr=False)  # an office's county instance
    _channel_index: dict[str, ChannelConfig] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._channel_index = {c.id: c for c in self.config.channels}

    @property
    def is_county(self) -> bool:
        """The county itself (not one of its offices)."""
        return self.office_key == COUNTY_KEY

    def office_view(self, office: str | None) -> Instance:
        """The instance of one office: ``--office ID`` in a county, the instance itself otherwise."""
        if not self.is_county:
            if office is None or office == self.office_key:
                return self
            raise UserError(
                f"本实例只有一个单位（{self.config.office.name}），不是县级实例，不需要 --office（值：{office}）"
            )
        if office is None:
            if len(self.offices) == 1:
                return next(iter(self.offices.values()))
            raise UserError(
                f"本实例是{self.config.office.name}的县级实例，有 {len(self.offices)} 个单位，请用 --office 指定："
                + "、".join(self.offices)
            )
        try:
            return self.offices[office]
        except KeyError:
            known = "、".join(self.offices) or "（无）"
            raise UserError(
                f"没有单位「{office}」（{self.root / OFFICES_DIR}/{office}.toml 不存在）。已配置的单位：{known}"
            ) from None

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
    if "county" in data:
        return _load_county(root, path, data)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc, data)) from None
    _validate_polls(path, config)
    return Instance(root=root, config=config, config_path=path, office_key=config.office.id)


def _load_county(root: Path, path: Path, data: dict[str, Any]) -> Instance:
    """A county instance: ``[county]`` here, one ``config/offices/<office id>.toml`` per office."""
    misplaced = [key for key in ("office", "channels") if key in data]
    if misplaced:
        raise ConfigError(
            f"配置文件 {path} 有误：\n  {misplaced[0]}：县级实例（有 [county]）的单位和渠道写在 "
            f"{root / OFFICES_DIR}/<单位id>.toml 中，每个单位一个文件"
        )
    try:
        county_file = CountyFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc, data)) from None
    county = county_file.county
    shared = {
        "database": county_file.database,
        "freshness": county_file.freshness,
        "delivery": county_file.delivery,
        "web": county_file.web,
    }
    own = Config(
        office=OfficeConfig(id=COUNTY_KEY, name=county.name, short_name=county.short_name or county.name),
        **shared,
    )
    instance = Instance(root=root, config=own, config_path=path, office_key=COUNTY_KEY, county=county)
    folder = root / OFFICES_DIR
    files = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    if not files:
        raise ConfigError(f"县级实例 {root} 没有单位：请在 {folder}/ 下为每个单位写一个 <单位id>.toml")
    names: dict[str, Path] = {}
    for office_path in files:
        key = office_path.stem
        if not _OFFICE_ID.fullmatch(key) or key == COUNTY_KEY:
            raise ConfigError(
                f"单位文件名 {office_path} 有误：文件名即单位 id，只能包含字母、数字、下划线和连字符，"
                f"且不能是 {COUNTY_KEY}（留给县本身）（值：{key!r}）"
            )
        office_data = load_toml(office_path)
        try:
            office_file = OfficeFile.model_validate(office_data)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(office_path, exc, office_data)) from None
        if office_file.office.id not in (None, key):
            raise ConfigError(
                f"配置文件 {office_path} 有误：\n  office.id：县级实例中单位 id 即文件名「{key}」，"
                f"不必另写；写了就必须相同（值：{office_file.office.id!r}）"
            )
        office_config = office_file.office.model_copy(update={"id": key})
        config = Config(office=office_config, channels=office_file.channels, **shared)
        _validate_polls(office_path, config)
        name = office_file.office.name
        if name in names:
            raise ConfigError(
                f"配置文件 {office_path} 有误：\n  office.name：与 {names[name]} 的单位名称重复（值：{name!r}）"
            )
        names[name] = office_path
        instance.offices[key] = Instance(
            root=root,
            config=config,
            config_path=office_path,
            office_key=key,
            county=county,
            group=office_file.office.group,
            parent=instance,
        )
    return instance


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
