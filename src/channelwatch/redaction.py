"""Keeping secrets out of messages and logs.

WeChat's token request carries the app secret in its query string, and a Weibo cookie or an access
token may end up in an exception's text. Every message that may hold a URL goes through
``redact()``; the ``RedactingFilter`` does the same to every log record, traceback included, on
the loggers and handlers it is attached to. This module imports nothing heavy, so the command line
can attach the filter at start-up without slowing ``--help``.
"""

from __future__ import annotations

import logging
import os
import re

from channelwatch.errors import ConfigError

__all__ = ["FILTER", "RedactingFilter", "redact", "register_secret", "secret"]

_SECRET_PARAMS = re.compile(
    r"((?<![A-Za-z0-9_])(?:secret|appsecret|access_token|token|password|passwd|cookie)=)[^&#\s\"']*", re.IGNORECASE
)
_SECRETS: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a secret value so that ``redact()`` masks it wherever it appears."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """``text`` with credential query values and every registered secret replaced by ``***``."""
    text = _SECRET_PARAMS.sub(r"\1***", text)
    for value in _SECRETS:
        if value in text:
            text = text.replace(value, "***")
    return text


class RedactingFilter(logging.Filter):
    """Redacts a record's message and its formatted traceback before any handler writes them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set: format the traceback once, redacted.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


FILTER = RedactingFilter()


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def secret(env_name: str | None, *, what: str, where: str) -> str:
    """Read a secret from the environment variable the config names; never from the config itself."""
    if not env_name or not _ENV_NAME.match(env_name):
        raise ConfigError(f"{where}：未配置保存{what}的环境变量名")
    value = os.environ.get(env_name)
    if not value:
        raise ConfigError(f"{where}：环境变量 {env_name} 未设置，无法取得{what}。请在运行 channelwatch 的环境中设置它")
    return value
