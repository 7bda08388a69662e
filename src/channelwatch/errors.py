"""One exception tree for channelwatch.

::

    ChannelwatchError
    ├── UserError              shown to the user as one Chinese message, exit 1, no traceback
    │   ├── ConfigError        the instance (config file, job file, template) is wrong
    │   ├── InputError         a file handed in is unreadable or has invalid rows
    │   └── ChannelNotFound    a channel id on the command line is not configured
    └── SourceError            a poll or fetch failed; recorded on the run, never a wrong count
        ├── FetchError         network faults, 5xx, exhausted retries, oversize answers
        ├── BlockedError       the platform refuses us (Weibo 432/418, WeChat quota)
        └── LayoutError        the page no longer looks like it did (layout alarm)

Lower-level errors (httpx, sqlite3, json) are mapped into this tree at the boundary where they occur.
Messages are user-facing Simplified Chinese and must never contain a secret.
"""

from __future__ import annotations

from dataclasses import dataclass


class ChannelwatchError(Exception):
    """Base of every error channelwatch raises on purpose."""


class UserError(ChannelwatchError):
    """An error the user can fix; its message is shown without a traceback."""


class ConfigError(UserError):
    """The instance is invalid: the message names the file and the key."""


@dataclass(frozen=True)
class RowProblem:
    """One invalid row of an input file."""

    line: int
    column: str
    value: str
    reason: str

    def describe(self) -> str:
        shown = self.value if len(self.value) <= 60 else self.value[:57] + "…"
        return f"第{self.line}行，字段「{self.column}」，值「{shown}」：{self.reason}"


class InputError(UserError):
    """An input file is unreadable or holds invalid rows; nothing of it was stored."""

    def __init__(self, message: str, problems: list[RowProblem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []

    def __str__(self) -> str:
        base = super().__str__()
        if not self.problems:
            return base
        lines = [base] + ["  " + p.describe() for p in self.problems[:200]]
        if len(self.problems) > 200:
            lines.append(f"  …… 另有 {len(self.problems) - 200} 行有误")
        return "\n".join(lines)


class ChannelNotFound(UserError):
    """A channel id that the config does not define."""


class SourceError(ChannelwatchError):
    """A source could not deliver; the run is recorded as failed with this message."""


class FetchError(SourceError):
    """Network fault, server error or exhausted retries."""


class BlockedError(SourceError):
    """The platform refuses the client (expired cookie, rate limit, quota)."""


class LayoutError(SourceError):
    """A page no longer has the structure the configuration expects (layout alarm)."""


class ImplausibleDate(SourceError):
    """A source dates an item after tomorrow: a typo on the site, never a publication date to store."""
