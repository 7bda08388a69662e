"""The inbox: staff drop exported logs into ``inbox/<channel id>/`` and the daemon imports them.

- an imported file is moved to ``inbox/<channel id>/done/``;
- a rejected file is moved to ``inbox/<channel id>/failed/`` beside ``<name>.error.txt`` with the reasons,
  written for the clerk who works in the inbox (fix the file, drop it in again), not for the command line;
- a file still being written (changed within ``settle`` seconds) is left for the next round, and so is
  a file that changed while it was imported (size, mtime or SHA-256 differ afterwards): that import is
  rolled back and the settled file is imported on a later round;
- nothing is ever deleted or overwritten: a name already taken in ``done/`` or ``failed/`` gets a suffix.

Anyone can drop anything into an inbox, so only regular files are read: symlinks (to
``/proc/self/environ``, to a file, to a folder), FIFOs and devices are reported and never opened nor
moved, and a channel folder that is a symlink is not followed. One bad thing stops nothing else: a
folder that cannot be read, a ``done`` that is not a folder, a name that is not UTF-8 is reported for
that channel or file while every other file is imported.

The import commits before the file is moved. A process killed between the two leaves the file in
the inbox; the next round sees that a finished import already holds the file's SHA-256 and only
moves it (a file is never imported twice because its move failed).

"Still being written" is judged by the newer of mtime and ctime: a copy from Windows (SMB) keeps the
original's mtime, but every write to the file moves its ctime, which no client can set back.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from channelwatch import store
from channelwatch.errors import InputError
from channelwatch.failures import describe
from channelwatch.ingest.imports import FileChanged, import_file
from channelwatch.sources.files import QUOTE_LIMIT, shown
from channelwatch.store import Store
from channelwatch.store.models import Run
from channelwatch.terminal import shown as printable

__all__ = ["InboxFile", "InboxResult", "import_inbox", "prepare_inbox"]

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
    warning: str | None = None  # an imported file's rows that were not imported (another worksheet)


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
        for imported in self.warned():
            text += f"；注意：{imported.warning}"
        return text

    def warned(self) -> list[InboxFile]:
        """Files imported with a warning worth a look (rows of the file that were not imported)."""
        return [f for f in self.files if f.warning]


def _skipped(name: str) -> bool:
    """Hidden files, Office lock files and our own by-products are not exports."""
    return name.startswith((".", "~$")) or name.lower().endswith(_SKIPPED_SUFFIXES)


def _free_name(folder: Path, name: str) -> Path:
    """``name`` in ``folder``, or ``stem.2.ext``, ``stem.3.ext``… when taken: nothing is overwritten."""
    target = folder / name
    number = 1
    stem, suffix = Path(name).stem, Path(name).suffix
    while os.path.lexists(target) or os.path.lexists(target.with_name(target.name + ".error.txt")):
        number += 1
        target = folder / f"{stem}.{number}{suffix}"
    return target


def _move(path: Path, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    target = _free_name(folder, path.name)
    os.replace(path, target)
    return target


@dataclass(frozen=True)
class _Fingerprint:
    size: int
    mtime_ns: int
    sha256: str


def _fingerprint(path: Path) -> _Fingerprint | None:
    """Size, mtime and SHA-256 of a regular file, read without following a symlink; None if it is not one.

    ``O_NOFOLLOW | O_NONBLOCK`` and the ``fstat`` of what was opened close the gap between looking
    at the name and opening it: a name swapped for a symlink or a FIFO meanwhile is never read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        digest = hashlib.sha256()
        with os.fdopen(os.dup(fd), "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return _Fingerprint(info.st_size, info.st_mtime_ns, digest.hexdigest())
    finally:
        os.close(fd)


def prepare_inbox(folder: Path, channel_ids: Iterable[str]) -> list[str]:
    """Create ``folder/<channel id>/`` for every channel; the problems met (Chinese), if any."""
    problems: list[str] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [f"无法创建收件箱目录 {shown(folder)}（{exc.strerror}）"]
    for channel in channel_ids:
        target = folder / channel
        if target.is_symlink():
            continue  # reported by the round that meets it
        try:
            target.mkdir(exist_ok=True)
        except FileExistsError:
            pass  # a file of that name: reported by the round
        except OSError as exc:
            problems.append(f"无法创建渠道目录 {shown(target)}（{exc.strerror}）")
    return problems


def import_inbox(opened: Store, folder: Path, *, settle: float = 10.0, job_id: str | None = None) -> InboxResult:
    """Import every settled file of ``folder/<channel id>/`` once; see the module docstring."""
    result = InboxResult()
    configured = [c.id for c in opened.instance.config.channels]
    result.problems.extend(prepare_inbox(folder, configured))
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        result.problems.append(f"收件箱目录 {shown(folder)} 无法读取（{exc.strerror}），未处理")
        return result
    now = time.time()
    for entry in entries:
        name = shown(entry.name)
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            result.problems.append(f"{name}：是符号链接，出于安全未跟随、未处理")
            continue
        if not entry.is_dir(follow_symlinks=False):
            result.problems.append(f"{name}：不在渠道子目录中，未处理（请放进 inbox/<渠道id>/）")
            continue
        if entry.name not in configured:
            result.problems.append(f"{name}/：配置中没有这个渠道 id，其中的文件未处理")
            continue
        _import_channel(opened, Path(entry.path), entry.name, result, settle=settle, now=now, job_id=job_id)
    return result


def _import_channel(
    opened: Store, sub: Path, channel: str, result: InboxResult, *, settle: float, now: float, job_id: str | None
) -> None:
    for special in (DONE, FAILED):
        target = sub / special
        if os.path.lexists(target) and (target.is_symlink() or not target.is_dir()):
            result.problems.append(
                f"{channel}/{special}：不是文件夹（{'符号链接' if target.is_symlink() else '同名文件'}），"
                f"渠道 {channel} 的文件无法移走，本轮未导入；请把它改名或移走"
            )
            return
    if not os.access(sub, os.R_OK | os.W_OK | os.X_OK):
        result.problems.append(f"{channel}/：守护进程没有读写这个目录的权限，渠道 {channel} 的文件未处理")
        return
    try:
        entries = sorted(os.scandir(sub), key=lambda e: e.name)
    except OSError as exc:
        result.problems.append(f"{channel}/：无法读取（{exc.strerror}），渠道 {channel} 的文件未处理")
        return
    for entry in entries:
        if entry.name in (DONE, FAILED) or _skipped(entry.name):
            continue
        where = f"{channel}/{shown(entry.name)}"
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError:
            continue  # taken away while we looked
        if stat.S_ISLNK(mode):
            result.problems.append(f"{where}：是符号链接，出于安全未读取、未移动")
            continue
        if stat.S_ISDIR(mode):
            result.problems.append(f"{where}/：渠道目录里的子文件夹不会被导入，未处理")
            continue
        if not stat.S_ISREG(mode):
            result.problems.append(f"{where}：不是普通文件（管道、设备或套接字），未读取、未移动")
            continue
        try:
            entry.name.encode("utf-8")
        except UnicodeEncodeError:
            result.problems.append(f"{where}：文件名不是 UTF-8 编码，无法可靠地记录，未导入；请改名后重新放入")
            continue
        result.files.append(_import_one(opened, channel, Path(entry.path), settle=settle, now=now, job_id=job_id))


def _office_time(opened: Store) -> str:
    """Now in the office's time zone: the server's own zone is often UTC."""
    from datetime import UTC, datetime

    from channelwatch.dates import to_office

    return to_office(datetime.now(UTC), opened.instance.timezone).strftime("%Y-%m-%d %H:%M:%S")


def _settled(path: Path, settle: float, now: float) -> bool:
    info = path.lstat()
    return now - max(info.st_mtime, info.st_ctime) >= settle


def _already_imported(opened: Store, channel: str, sha256: str) -> bool:
    """Whether a finished import of this channel holds a file with these exact bytes, every row of it.

    An import by hand with ``--skip-invalid`` left rows out: the same file in the inbox is judged as the inbox
    judges every file (whole or not at all), so it goes to ``failed/`` with the invalid rows listed, rather than
    to ``done/`` as if all its rows were stored.
    """
    run = Run.__table__  # type: ignore[attr-defined]
    query = (
        select(run.c.id)
        .where(
            run.c.channel_id == opened.channel_id(channel),
            run.c.kind == "import",
            run.c.status == "ok",
            run.c.sha256 == sha256,
            run.c.rows_rejected == 0,
        )
        .limit(1)
    )
    with store.read(opened.engine) as conn:
        return conn.execute(query).first() is not None


# Command-line advice (``--skip-invalid``, ``--encoding``, ``--force``) means nothing to a clerk who
# works in the inbox folder: the error file says what to do there instead.
_FLAG_CLAUSE = re.compile(r"[，；,]?[^，；。（）()\n]*--[a-z][a-z-]*[^，；。（）()\n]*")


def _for_the_inbox(exc: InputError) -> str:
    if exc.problems:
        lines = [f"有 {len({p.line for p in exc.problems})} 行无效，整个文件未导入，其中任何一行都没有保存："]
        lines += ["  " + p.describe() for p in exc.problems[:200]]
        if len(exc.problems) > 200:
            lines.append(f"  …… 另有 {len(exc.problems) - 200} 处有误")
        text = "\n".join(lines)
    else:
        text = _FLAG_CLAUSE.sub("", str(exc)).replace("（）", "")
    return "\n".join(
        line if len(line) <= 2 * QUOTE_LIMIT else line[: 2 * QUOTE_LIMIT] + "…" for line in text.splitlines()
    )


def _import_one(opened: Store, channel: str, path: Path, *, settle: float, now: float, job_id: str | None) -> InboxFile:
    try:
        if not _settled(path, settle, now):
            return InboxFile(channel, path, "waiting", message="still being written")
    except FileNotFoundError:  # taken away while we looked
        return InboxFile(channel, path, "waiting", message="disappeared")
    before = _fingerprint(path)
    if before is None:
        return InboxFile(channel, path, "waiting", message="not a regular file any more")

    def unchanged() -> bool:
        return _fingerprint(path) == before

    try:
        if _already_imported(opened, channel, before.sha256):
            # Imported by an earlier round whose move failed (or by hand): only the move is left to do.
            target = _move(path, path.parent / DONE)
            return InboxFile(channel, target, "imported", message="已导入过，未重复导入")
        imported = import_file(opened, channel, path, job_id=job_id, unchanged=unchanged)
    except FileChanged:
        return InboxFile(channel, path, "waiting", message="导入期间文件被改动，已撤回，下次再导入")
    except InputError as exc:
        if not unchanged():
            return InboxFile(channel, path, "waiting", message="导入期间文件被改动，下次再导入")
        try:
            target = _move(path, path.parent / FAILED)
            reasons = (
                f"文件：{shown(path.name)}\n渠道：{channel}\n时间：{_office_time(opened)}\n"
                f"结果：未导入（整个文件被拒收，未保存其中任何一行）\n\n{_for_the_inbox(exc)}\n\n"
                f"怎么办：在 Excel/WPS 中修正上面列出的问题（或重新从后台导出），保存为 CSV 或 XLSX，"
                f"再把文件放回收件箱的 {channel}/ 文件夹，下一轮会自动导入。"
                f"本文件已移到 {channel}/{FAILED}/，留作对照，可以删除。\n"
            )
            # A note for people, read with cat or a text editor: a title's escape sequences are shown, not obeyed.
            target.with_name(target.name + ".error.txt").write_text(printable(reasons), encoding="utf-8")
        except OSError as move_error:
            return InboxFile(channel, path, "error", message=f"拒收，但无法移到 {FAILED}/：{move_error.strerror}")
        return InboxFile(channel, target, "rejected", message=_for_the_inbox(exc).splitlines()[0])
    except Exception as exc:  # the database or the disk, not the file: keep it for the next round
        log.warning("inbox %s/%s left in place: %s", channel, shown(path.name), exc)
        return InboxFile(channel, path, "error", message=shown(describe(exc))[:QUOTE_LIMIT])
    if not unchanged():
        # Changed after the commit: the next round imports the new content (identities keep counts exact).
        return InboxFile(channel, path, "waiting", rows_new=imported.rows_new, message="导入后文件又被改动，下次再导入")
    try:
        target = _move(path, path.parent / DONE)
    except OSError as exc:
        # The next round finds the file's SHA-256 in a finished import and only moves it.
        return InboxFile(
            channel, path, "error", rows_new=imported.rows_new, message=f"已导入，但无法移到 {DONE}/：{exc.strerror}"
        )
    return InboxFile(
        channel,
        target,
        "imported",
        rows_new=imported.rows_new,
        rows_known=imported.rows_known,
        warning=imported.warning,
    )
