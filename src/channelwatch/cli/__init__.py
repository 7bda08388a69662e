"""The ``channelwatch`` command line: each command parses options, makes one library call, prints.

Command families live in their own modules and register on ``app`` when imported below. Heavy
libraries are imported inside the commands so that ``channelwatch --help`` stays fast.
"""

from __future__ import annotations

import gc
import os
import sys

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
    _only_commands_named(sys.argv[1:])
    try:
        app()
    finally:
        # The interpreter's last garbage collection walks every object the libraries made at import, about
        # 0.1 s of a command whose budget is 0.5 s (a county office's summary). Every file, connection and
        # log handler is closed by now (``with`` blocks, logging's own atexit), so the walk finds nothing to
        # finalise: it is skipped. Reference counting still frees what the exit releases.
        gc.freeze()


def _only_commands_named(args: list[str]) -> None:
    """Build only the commands the command line names: Typer reads every command's signature to build it
    (about 20 ms of a county office's ``summary``, whose whole budget is 500 ms).

    Every command a word of ``args`` names is kept, whatever the word's place, so an option's value that
    happens to be a command's name only keeps one more. A line that names none (``--help``, a misspelt
    command) builds them all, for the list and for the suggestion.
    """
    if any(name.startswith("_CHANNELWATCH_COMPLETE") or name == "COMP_WORDS" for name in os.environ):
        return  # shell completion lists every command
    named = set(args)
    commands = [c for c in app.registered_commands if c.name in named]
    groups = [g for g in app.registered_groups if g.name in named]
    if commands or groups:
        app.registered_commands, app.registered_groups = commands, groups
