"""Keeping secrets out of messages and logs.

WeChat's token request carries the app secret in its query string, and a Weibo cookie or an access
token may end up in an exception's text. Every message that may hold a URL goes through
``redact()``; the ``RedactingFilter`` does the same to every log record, traceback included, on
the loggers and handlers it is attached to. This module imports nothing heavy, so the command line
can attach the filter at start-up without slowing ``--help``.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from urllib.parse import quote, quote_plus

from channelwatch.errors import ConfigError

__all__ = ["FILTER", "RedactingFilter", "redact", "register_secret", "secret", "upstream"]

_SECRET_PARAMS = re.compile(
    r"((?<![A-Za-z0-9_])(?:secret|appsecret|access_token|token|password|passwd|cookie)=)[^&#\s\"']*", re.IGNORECASE
)
_SECRETS: set[str] = set()


def register_secret(value: str, *, username: str | None = None) -> None:
    """Remember a secret value so that ``redact()`` masks it wherever it appears.

    Also the forms in which it travels and in which a server may echo it back: percent-encoded (a
    query string), Base64 (SMTP ``AUTH LOGIN`` sends the password so, ``AUTH PLAIN`` sends
    ``\0username\0password``; a hostile relay can quote either in its error reply).
    """
    if not value or len(value) < 4:
        return
    forms = {value, quote(value, safe=""), quote_plus(value, safe="")}
    if ";" in value or "=" in value:
        # A cookie header: a server may quote one of its cookies alone.
        for piece in re.split(r";\s*", value):
            _name, _sep, part = piece.partition("=")
            if len(part.strip()) >= 8:
                forms.add(part.strip())
    encoded = value.encode("utf-8")
    forms.add(base64.b64encode(encoded).decode("ascii"))
    if username is not None:
        plain = b"\0" + username.encode("utf-8") + b"\0" + encoded
        forms.add(base64.b64encode(plain).decode("ascii"))
        forms.add(base64.b64encode(username.encode("utf-8") + b"\0" + encoded).decode("ascii"))
    # Longest first: masking a shorter form inside a longer one would leave the rest of the longer one.
    _SECRETS.update(f for f in forms if len(f) >= 4)


def redact(text: str) -> str:
    """``text`` with credential query values and every registered secret replaced by ``***``."""
    text = _SECRET_PARAMS.sub(r"\1***", text)
    for value in sorted(_SECRETS, key=len, reverse=True):
        if value in text:
            text = text.replace(value, "***")
    return text


def upstream(text: str, limit: int = 500) -> str:
    """What a server, relay or platform answered, fit to store and print: every registered secret
    masked, on one line (an answer may hold line breaks meant to look like our own output), cut."""
    return " ".join(redact(text).split())[:limit]


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
    register_secret(value)  # whatever a server answers is redacted of it from now on
    return value
