"""``channelwatch init DIR``: write a new instance to fill in, from the packaged template."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from channelwatch.errors import UserError

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
    for rel, source in entries:
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
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
