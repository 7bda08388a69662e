"""The ``[delivery]`` section of the config: where reports go.

::

    [delivery]
    outbox = "outbox"                 # a copy of everything sent, always
    webhook = "https://…"             # optional: JSON POST
      [delivery.email]
      host = "smtp.example.gov.cn"
      port = 465
      security = "ssl"                # starttls | ssl | none
      username = "tongji@example.gov.cn"
      password_env = "CHANNELWATCH_SMTP_PASSWORD"
      from = "tongji@example.gov.cn"
      to = ["gongkaiban@example.gov.cn"]

Only the *name* of the password's environment variable sits in the file; ``deliver.py`` reads the
variable when it sends. The sending itself lives in ``deliver.py`` so that loading a config never
imports smtplib or httpx.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["DEFAULT_PORTS", "OFFICE_REPORTS", "DeliveryConfig", "EmailConfig"]

DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
# Reports for the office itself (``warn_to``), never for the county office (``to``, the webhook).
OFFICE_REPORTS = frozenset({"freshness", "quarterly-empty", "inspection"})
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_address(value: str) -> str:
    if not _ADDRESS.match(value.strip()):
        raise ValueError(f"「{value}」不是有效的电子邮件地址")
    return value.strip()


class EmailConfig(_Strict):
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    sender: str = Field(alias="from")
    to: list[str]
    # Freshness warnings are for the office itself, not for the county office that receives the
    # quarterly statistics (and inspects the channels): they go only to these addresses.
    warn_to: list[str] = Field(default_factory=list)
    timeout: float = Field(default=30.0, gt=0)

    def recipients(self, report: str) -> list[str]:
        return self.warn_to if report in OFFICE_REPORTS else self.to

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return _check_address(value)

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("至少需要一个收件人")
        return [_check_address(v) for v in value]

    @field_validator("warn_to")
    @classmethod
    def _warn_recipients(cls, value: list[str]) -> list[str]:
        return [_check_address(v) for v in value]

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("应为环境变量名（如 CHANNELWATCH_SMTP_PASSWORD），不是密码本身")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> EmailConfig:
        if self.username and not self.password_env:
            raise ValueError("设置了 username 时必须用 password_env 指定保存密码的环境变量名")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]


class DeliveryConfig(_Strict):
    outbox: str = "outbox"
    email: EmailConfig | None = None
    webhook: str | None = None

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("应为 http:// 或 https:// 开头的地址")
        return value
