"""Parsing a large export in a second process while this one writes it to the store.

An import spends about half its time parsing (decoding, CSV, dates, identity keys) and half in the
database's B-trees, and SQLite admits one writer. A child process that reads and parses while the
parent writes puts both halves on their own core. Only the parent touches the database; the child
sends batches of ready rows, and the invalid rows, through a pipe. Whatever happens in the child
ends the parent's import with an error, so its transaction is rolled back and nothing is stored.

The child is started with ``spawn``, never ``fork``: the daemon runs imports on scheduler threads,
and forking a process with threads can copy a held lock into the child.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from channelwatch.errors import ChannelwatchError, InputError
from channelwatch.sources.base import Observed
from channelwatch.sources.files import Row

__all__ = ["READAHEAD_MIN_BYTES", "parsed_in_child"]

# Below this size the child's start-up (about 0.2 s to import the parser) costs more than it saves.
READAHEAD_MIN_BYTES = 4 << 20
_BATCH = 4096


class ReaderFailed(ChannelwatchError):
    """The reading process died or sent something unexpected; the import is rolled back."""


def _child(
    path: Path,
    zone: str,
    kind: str,
    format: str | None,
    encoding: str | None,
    now: datetime | None,
    sqlite: bool,
    sender: Any,
) -> None:
    from channelwatch.ingest import record_of
    from channelwatch.sources.files import open_export
    from channelwatch.store import sqlite_time

    try:
        export = open_export(path, zone=zone, kind=kind, format=format, encoding=encoding, now=now)
        records: list[tuple[Any, ...]] = []
        rejected: list[Row] = []
        read = 0
        for entry in export.rows():
            read += 1
            if entry.__class__ is Observed:
                record = record_of(entry, zone, kind)
                if sqlite:
                    # Ready for the driver as it is: the parent then does nothing per row but bind it.
                    records.append((*record[:7], sqlite_time(record[7]), *record[8:]))
                else:
                    records.append(tuple(record))
            else:
                rejected.append(entry)  # type: ignore[arg-type]
            if len(records) >= _BATCH:
                sender.send(("batch", records, rejected, read, export.position(), export.size))
                records, rejected = [], []
        sender.send(("batch", records, rejected, read, export.size, export.size))
        sender.send(("end", read))
        export.close()
    except InputError as exc:
        sender.send(("error", exc.args[0] if exc.args else str(exc), exc.problems))
    except BaseException as exc:  # everything must reach the parent as a failed import
        sender.send(("crash", f"{type(exc).__name__}: {exc}"))
    finally:
        sender.close()


def parsed_in_child(
    path: Path,
    *,
    zone: str,
    kind: str,
    format: str | None,
    encoding: str | None,
    now: datetime | None,
    sqlite: bool,
    rejected: list[Row],
    on_read: Callable[[int], None],
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """The rows of an export as store-ready tuples, parsed in a child process; invalid rows go to ``rejected``."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child,
        args=(path, zone, kind, format, encoding, now, sqlite, sender),
        daemon=True,
        name="channelwatch-reader",
    )
    process.start()
    sender.close()
    try:
        while True:
            try:
                message = receiver.recv()
            except EOFError:
                raise ReaderFailed(f"读取 {path} 的进程意外结束（退出码 {process.exitcode}），未导入任何内容") from None
            tag = message[0]
            if tag == "batch":
                _tag, records, bad, read, position, size = message
                rejected.extend(bad)
                on_read(read)
                if progress is not None:
                    progress(position, size)
                yield from records
            elif tag == "end":
                on_read(message[1])
                return
            elif tag == "error":
                raise InputError(message[1], message[2])
            else:
                raise ReaderFailed(f"读取 {path} 时出错：{message[1]}")
    finally:
        receiver.close()
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()
            process.join()
