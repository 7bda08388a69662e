"""``channelwatch init DIR``: write a new instance to fill in, from the packaged template."""

from __future__ import annotations

import secrets
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from channelwatch.errors import UserError
from channelwatch.instance.config import CONFIG_FILE

__all__ = ["write_instance"]


def _walk(node: Traversable, prefix: Path) -> list[tuple[Path, Traversable]]:
    found: list[tuple[Path, Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name.startswith((".", "__")):
            continue
        if child.is_dir():
            found.extend(_walk(child, prefix / child.name))
        else:
            found.append((prefix / child.name, child))
    return found


def write_instance(directory: Path) -> list[Path]:
    """Copy the commented example instance into ``directory``; never overwrite an existing file."""
    template = files("channelwatch.instance") / "template"
    entries = _walk(template, Path())
    existing = [directory / rel for rel, _ in entries if (directory / rel).exists()]
    if existing:
        raise UserError(f"{directory} 中已有实例文件（如 {existing[0]}），为避免覆盖，未写出任何文件")
    written = []
    # A random office id: two offices that share a database never meet under the same key.
    office_id = f"office-{secrets.token_hex(4)}"
    for rel, source in entries:
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        content = source.read_bytes()
        if rel == CONFIG_FILE:
            content = content.replace(b"__OFFICE_ID__", office_id.encode("ascii"))
        target.write_bytes(content)
        written.append(target)
    _make_inbox(directory)
    return written


def _make_inbox(directory: Path) -> None:
    """``inbox/<channel id>/`` for each channel of the template, so staff see where exports go."""
    import tomllib

    config = tomllib.loads((directory / "config" / "channelwatch.toml").read_text(encoding="utf-8"))
    for channel in config.get("channels", []):
        if isinstance(channel, dict) and isinstance(channel.get("id"), str):
            (directory / "inbox" / channel["id"]).mkdir(parents=True, exist_ok=True)
