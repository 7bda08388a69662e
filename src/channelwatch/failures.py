"""What went wrong, in one line a clerk can read: for run records, job results, inbox reports and the terminal.

A failure the program foresaw is a ``ChannelwatchError`` whose text is the clerk's already. The others (the
disk, the database, the network, the operating system, a bug) used to reach ``runs``, the web view, ``jobs``
and the inbox's report in Python's own words, e.g. ``OperationalError: (sqlite3.OperationalError) database or
disk is full``. Here each gets a Chinese reason first; the system's words stay in brackets for whoever looks
into it. Nothing heavy is imported: the command line loads this module for every command.
"""

from __future__ import annotations

import errno

from channelwatch.errors import ChannelwatchError
from channelwatch.redaction import redact

__all__ = ["database_problem", "describe", "file_problem", "network_problem"]

OS_REASONS = {
    errno.ENOENT: "文件或文件夹不存在",
    errno.EACCES: "没有权限",
    errno.EPERM: "没有权限",
    errno.ENOSPC: "磁盘空间不足",
    errno.EROFS: "文件系统是只读的",
    errno.EISDIR: "这是一个文件夹",
    errno.ENOTDIR: "路径中有一段不是文件夹",
    errno.ENAMETOOLONG: "文件名太长",
    errno.EEXIST: "文件已存在",
    errno.EDQUOT: "超出磁盘配额",
    errno.EBUSY: "文件正被占用",
    errno.EIO: "磁盘读写出错",
    errno.ENOMEM: "内存不足",
    errno.EMFILE: "本程序同时打开的连接和文件已达系统允许的上限（ulimit -n），请调高该上限或减小 --concurrency",
    errno.ENFILE: "系统同时打开的文件已达上限",
}

# SQLite's and PostgreSQL's own words (lower case) → what the clerk or the IT person can do about them.
_DATABASE_REASONS = (
    ("database or disk is full", "数据库所在的磁盘空间不足（或数据库已达大小上限），本次写入已撤销"),
    ("no space left on device", "数据库所在的磁盘空间不足，本次写入已撤销"),
    ("database is locked", "数据库正被另一个程序长时间写入，等待超时，本次写入已撤销，可稍后再试"),
    ("readonly database", "数据库文件或它所在的文件夹不可写：请检查文件权限"),
    ("unable to open database file", "无法打开数据库文件：文件夹不存在或没有权限，请检查 [database] url"),
    ("disk i/o error", "读写数据库文件时磁盘出错"),
)


def database_problem(exc: BaseException) -> str | None:
    """A database that cannot be reached, read or written is the clerk's to fix, not a program fault: one line.
    None when ``exc`` is not a database error: SQLAlchemy's, which wrap the drivers' own, or a driver's own
    (the bulk writes use the driver's cursor, store/upsert.py)."""
    module = type(exc).__module__
    if module not in ("sqlalchemy.exc", "sqlite3") and not module.startswith("psycopg"):
        return None
    detail = redact(str(getattr(exc, "orig", None) or exc).strip().splitlines()[0])[:300]
    name = type(exc).__name__
    text = str(exc).lower()
    if name == "OperationalError" and ("connect" in text or "connection" in text):
        where = "[database] url 或 CHANNELWATCH_DATABASE_URL"
        return f"无法连接数据库：请检查 {where}，以及数据库服务是否在运行（{detail}）"
    if "file is not a database" in text or "malformed" in text:
        return f"数据库文件已损坏或不是 SQLite 数据库：请检查 [database] url 指向的文件（{detail}）"
    for words, reason in _DATABASE_REASONS:
        if words in text:
            return f"{reason}（{detail}）"
    if name in {"OperationalError", "DatabaseError", "InterfaceError"}:
        return f"数据库出错（{detail}）"
    return None


def network_problem(exc: OSError) -> str:
    """A failed connection, read or write as a clerk reads it: what happened in Chinese, the system's words
    (English, for whoever looks into it) in brackets."""
    import socket
    import ssl

    if isinstance(exc, ssl.SSLCertVerificationError):
        what = "网站的 HTTPS 证书无法验证：不受信任、已过期或与域名不符"
    elif isinstance(exc, ssl.SSLError):
        what = "加密连接（TLS）失败"
    elif isinstance(exc, socket.gaierror):
        what = "找不到网址中的主机名，域名无法解析"
    elif isinstance(exc, ConnectionRefusedError):
        what = "对方拒绝连接，该地址上没有网站服务在运行"
    elif isinstance(exc, ConnectionResetError | BrokenPipeError):
        what = "连接被对方中断"
    elif isinstance(exc, TimeoutError):
        what = "连接超时"
    elif exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        what = "网络或主机不可达"
    else:
        what = OS_REASONS.get(exc.errno or 0, "网络错误")
    return f"{what}（{str(exc) or type(exc).__name__}）"


def file_problem(exc: OSError) -> str:
    """A file that could not be read or written: which, why in Chinese, the system's words in brackets."""
    what = f"无法读写 {exc.filename}" if exc.filename else "读写文件失败"
    reason = OS_REASONS.get(exc.errno or 0, "")
    return f"{what}{'：' + reason if reason else ''}（{exc.strerror or exc}）"


def describe(exc: BaseException) -> str:
    """``exc`` in one line for a run record, a job's result or a report a clerk reads."""
    if isinstance(exc, ChannelwatchError):
        return str(exc)
    problem = database_problem(exc)
    if problem is not None:
        return problem
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return "被中断（Ctrl+C 或停止信号），本次未完成"
    if isinstance(exc, MemoryError):
        return "内存不足，本次未完成"
    if isinstance(exc, OSError) and exc.errno is not None:
        return network_problem(exc) if exc.filename is None else file_problem(exc)
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"程序内部错误（{redact(' '.join(detail.split()))[:500]}）"  # one line: run records are listed line by line
