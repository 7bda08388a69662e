"""The Jinja2 environment: the instance's ``templates/`` first, then the packaged defaults.

An office changes a sentence of its report by copying one packaged template into its instance's
``templates/`` folder and editing it; nothing else has to change.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
)

__all__ = ["display_width", "environment", "pad", "render"]


def display_width(text: str) -> int:
    """Terminal columns of ``text``: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in str(text))


def pad(text: Any, width: int, align: str = "left") -> str:
    """Pad to ``width`` terminal columns; a longer text keeps one space so columns never run together."""
    shown = str(text)
    gap = max(1, width - display_width(shown))
    return shown + " " * gap if align == "left" else " " * gap + shown


def chinese_number(value: int) -> str:
    """Thousands separators are not used in Chinese report text: 1279, not 1,279."""
    return str(value)


_HTML_SUFFIXES = (".html", ".htm", ".xml")


def _autoescape(name: str | None) -> bool:
    """HTML templates escape every value: ``report.html.j2`` is HTML although its last suffix is ``.j2``.

    An office name, a channel name or an annual input text such as ``<script>`` is shown, never run.
    """
    if name is None:
        return False
    base = name.removesuffix(".j2").removesuffix(".jinja").removesuffix(".jinja2")
    return base.lower().endswith(_HTML_SUFFIXES)


def environment(templates_dir: Path | None = None) -> Environment:
    loaders: list[Any] = []
    if templates_dir is not None and templates_dir.is_dir():
        loaders.append(FileSystemLoader(str(templates_dir)))
    loaders.append(PackageLoader("channelwatch", "templates"))
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pad"] = pad
    env.filters["width"] = display_width
    env.filters["num"] = chinese_number
    return env


def render(templates_dir: Path | None, name: str, **context: Any) -> str:
    return environment(templates_dir).get_template(name).render(**context)
