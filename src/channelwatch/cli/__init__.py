"""The ``channelwatch`` command line: each command parses options, makes one library call, prints.

Command families live in their own modules and register on ``app`` when imported below. Heavy
libraries are imported inside the commands so that ``channelwatch --help`` stays fast.
"""

from __future__ import annotations

from channelwatch.cli.common import app

# Each module adds its commands to ``app`` (import order = order in --help).
from channelwatch.cli import core  # noqa: F401  isort: skip
from channelwatch.cli import daemon  # noqa: F401  isort: skip
from channelwatch.cli import poll  # noqa: F401  isort: skip
from channelwatch.cli import report  # noqa: F401  isort: skip
from channelwatch.cli import web  # noqa: F401  isort: skip
from channelwatch.cli import county  # noqa: F401  isort: skip
from channelwatch.cli import inspect  # noqa: F401  isort: skip

__all__ = ["app", "main"]


def main() -> None:
    app()
