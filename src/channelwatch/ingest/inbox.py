"""The inbox: staff drop exported logs into ``inbox/<channel id>/`` and the daemon imports them.

- an imported file is moved to ``inbox/<channel id>/done/``;
- a rejected file is moved to ``inbox/<channel id>/failed/`` beside ``<name>.error.txt`` with the reasons;
- a file still being written (changed within ``settle`` seconds) is left for the next round;
- nothing is ever deleted or overwritten: a name already taken in ``done/`` or ``failed/`` gets a suffix.

The import commits before the file is moved. A process killed between the two leaves the file in
the inbox, and the next round imports it again: identities make that a no-op on the counts, and
only then is the file moved.

"Still being written" is judged by the newer of mtime and ctime: a copy from Windows (SMB) keeps the
original's mtime, but every write to the file moves its ctime, which no client can set back.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from channelwatch.errors import InputError
from channelwatch.ingest.imports import import_file
from channelwatch.store import Store

__all__ = ["InboxFile", "InboxResult", "import_inbox"]

log = logging.getLogger(__name__)

DONE = "done"
FAILED = "failed"
_SKIPPED_SUFFIXES = (".error.txt", ".rejected.csv", ".part", ".tmp", ".crdownload", ".partial")


@dataclass
class InboxFile:
    channel: str
    path: Path  # where the file ended up
    status: str  # imported | rejected | waiting | error
    rows_new: int = 0
    rows_known: int = 0
    message: str | None = None


@dataclass
class InboxResult:
    files: list[InboxFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # folders that are not channels, loose files

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def rows_new(self) -> int:
        return sum(f.rows_new for f in self.files)

    def summary(self) -> str:
        """The outcome as the office reads it in ``jobs`` and ``run-job`` (Chinese, like all user text)."""
        text = (
            f"导入 {self.count('imported')} 个文件（新增 {self.rows_new} 条），拒收 {self.count('rejected')} 个，"
            f"未写完待下次 {self.count('waiting')} 个，出错 {self.count('error')} 个"
        )
        if self.problems:
            text += "；" + "；".join(self.problems)
        return text


def _candidate(path: Path) -> bool:
    name = path.name
    if name.startswith((".", "~$")):  # hidden files, Office lock files
        return False
    return path.is_file() and not name.lower().endswith(_SKIPPED_SUFFIXES)


def _settled(path: Path, settle: float, now: float) -> bool:
    info = path.stat()
    return now - max(info.st_mtime, info.st_ctime) >= settle


def _free_name(folder: Path, name: str) -> Path:
    """``name`` in ``folder``, or ``stem.2.ext``, ``stem.3.ext``… when taken: nothing is overwritten."""
    target = folder / name
    number = 1
    stem, suffix = Path(name).stem, Path(name).suffix
    while target.exists() or target.with_name(target.name + ".error.txt").exists():
        number += 1
        target = folder / f"{stem}.{number}{suffix}"
    return target


def _move(path: Path, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    target = _free_name(folder, path.name)
    os.replace(path, target)
    return target


def import_inbox(opened: Store, folder: Path, *, settle: float = 10.0, job_id: str | None = None) -> InboxResult:
    """Import every settled file of ``folder/<channel id>/`` once; see the module docstring."""
    result = InboxResult()
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        return result
    configured = {c.id for c in opened.instance.config.channels}
    now = time.time()
    for sub in sorted(folder.iterdir()):
        if sub.name.startswith("."):
            continue
        if not sub.is_dir():
            result.problems.append(f"{sub.name}：不在渠道子目录中，未处理")
            continue
        if sub.name not in configured:
            result.problems.append(f"{sub.name}/：配置中没有这个渠道 id，未处理")
            continue
        for path in sorted(p for p in sub.iterdir() if _candidate(p)):
            result.files.append(_import_one(opened, sub.name, path, settle=settle, now=now, job_id=job_id))
    return result


def _office_time(opened: Store) -> str:
    """Now in the office's time zone: the server's own zone is often UTC."""
    from datetime import UTC, datetime

    from channelwatch.dates import to_office

    return to_office(datetime.now(UTC), opened.instance.timezone).strftime("%Y-%m-%d %H:%M:%S")


def _import_one(opened: Store, channel: str, path: Path, *, settle: float, now: float, job_id: str | None) -> InboxFile:
    try:
        if not _settled(path, settle, now):
            return InboxFile(channel, path, "waiting", message="still being written")
    except FileNotFoundError:  # taken away while we looked
        return InboxFile(channel, path, "waiting", message="disappeared")
    try:
        imported = import_file(opened, channel, path, job_id=job_id)
    except InputError as exc:
        target = _move(path, path.parent / FAILED)
        reasons = (
            f"文件：{path.name}\n渠道：{channel}\n时间：{_office_time(opened)}\n"
            f"结果：未导入（整个文件被拒收，未保存其中任何一行）\n\n{exc}\n\n"
            "修正后把文件重新放回收件箱目录即可再次导入。\n"
        )
        target.with_name(target.name + ".error.txt").write_text(reasons, encoding="utf-8")
        return InboxFile(channel, target, "rejected", message=str(exc).splitlines()[0])
    except Exception as exc:  # the database or the disk, not the file: keep it for the next round
        log.warning("inbox %s/%s left in place: %s", channel, path.name, exc)
        return InboxFile(channel, path, "error", message=f"{type(exc).__name__}: {exc}")
    target = _move(path, path.parent / DONE)
    return InboxFile(channel, target, "imported", rows_new=imported.rows_new, rows_known=imported.rows_known)
