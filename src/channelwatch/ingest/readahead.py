"""Parsing a large export in a second process while this one writes it to the store.

An import spends about half its time parsing (decoding, CSV, dates, identity keys) and half in the
database's B-trees, and SQLite admits one writer. A child process that reads and parses while the
parent writes puts both halves on their own core. Only the parent touches the database; the child
sends batches of ready rows, and the invalid rows, as pickles on its standard output (a batch the
columnar reader decided goes by columns, each in one piece: ``_packed``). Whatever
happens in the child ends the parent's import with an error, so its transaction is rolled back and
nothing is stored.

The child is a plain ``python -m channelwatch.readahead`` process rather than a multiprocessing
one: it neither forks a process that may hold locks on scheduler threads (the daemon), nor
re-imports the parent's ``__main__`` the way ``spawn`` does.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import tempfile
from array import array
from collections.abc import Callable, Iterator
from datetime import datetime
from itertools import repeat
from pathlib import Path
from typing import IO, Any

from channelwatch.errors import InputError, UserError
from channelwatch.sources.base import Observed
from channelwatch.sources.fastcsv import Undecided
from channelwatch.sources.files import shown
from channelwatch.sources.rows import Row

__all__ = ["READAHEAD_MIN_BYTES", "RejectedRows", "parsed_in_child"]

# Below this size the child's start-up (about 0.2 s to import the parser) costs more than it saves.
READAHEAD_MIN_BYTES = 4 << 20
_BATCH = 4096


class RejectedRows:
    """The invalid rows of an import: every one counted, the first ``kept`` kept for the message.

    A hostile file of millions of invalid rows must not hold them all in memory to say that the
    file is rejected. With ``--skip-invalid`` every row is kept, because each is written out to the
    ``.rejected.csv``: those beyond the first ``kept`` wait in a temporary file, not in memory.
    """

    def __init__(self, *, keep_all: bool = False, kept: int = 1000) -> None:
        self.count = 0
        self.rows: list[Row] = []
        self._kept = kept
        self._keep_all = keep_all
        self._spool: IO[bytes] | None = None

    def append(self, row: Row) -> None:
        self.count += 1
        if len(self.rows) < self._kept:
            self.rows.append(row)
        elif self._keep_all:
            if self._spool is None:
                self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close(), after the import
            pickle.dump(row, self._spool, protocol=pickle.HIGHEST_PROTOCOL)

    def extend(self, rows: list[Row]) -> None:
        for row in rows:
            self.append(row)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Row]:
        """The kept rows in the file's order (with ``keep_all``: every invalid row)."""
        yield from self.rows
        if self._spool is not None:
            self._spool.flush()
            self._spool.seek(0)
            while True:
                try:
                    yield pickle.load(self._spool)
                except EOFError:
                    break
            self._spool.seek(0, 2)  # further rows go after these

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


class ReaderFailed(UserError):
    """The reading process died or sent something unexpected; the import is rolled back."""


def _child(spec: dict[str, Any], out: IO[bytes]) -> None:
    # The store's modules only where a row needs them: the columnar path starts faster without them.
    from channelwatch.ingest.columnar import columns_of_batch
    from channelwatch.sources.fastcsv import BLOCK_BYTES
    from channelwatch.sources.files import open_export

    def send(message: tuple[Any, ...]) -> None:
        pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)

    zone, kind, sqlite = spec["zone"], spec["kind"], spec["sqlite"]
    now = datetime.fromisoformat(spec["now"]) if spec["now"] else None
    latest = datetime.fromisoformat(spec["latest"]) if spec.get("latest") else None
    try:
        export = open_export(
            Path(spec["path"]),
            zone=zone,
            kind=kind,
            format=spec["format"],
            encoding=spec["encoding"],
            now=now,
            latest=latest,
        )
        records: list[tuple[Any, ...]] = []
        rejected: list[Row] = []
        read = 0
        if spec.get("fast") and sqlite and kind != "wechat" and export.columnar is not None:
            try:
                for number, batch in enumerate(export.columnar(), 1):
                    position = min(export.size, number * BLOCK_BYTES)
                    if batch.plain_text:
                        # By columns, each packed in one piece (_packed): no Python object per cell on this side.
                        read += batch.rows
                        columns = [_packed(column) for column in columns_of_batch(batch, kind)]
                        send(("columns", columns, read, position, export.size))
                        continue
                    from channelwatch.ingest.runs import records_of_columns

                    ready = records_of_columns(batch, kind)
                    # In messages of the usual size: the parent holds one at a time, and starts on it sooner.
                    for start in range(0, len(ready), _BATCH):
                        chunk = ready[start : start + _BATCH]
                        read += batch.rows if start + _BATCH >= len(ready) else 0
                        send(("batch", chunk, [], read, position, export.size))
            except Undecided as exc:
                send(("undecided", str(exc)))
                return
            send(("end", read))
            export.close()
            return
        from channelwatch.ingest.runs import record_of
        from channelwatch.store.upsert import storable

        for entry in export.rows():
            read += 1
            if entry.__class__ is Observed:
                record = record_of(entry, zone, kind)
                # Ready for the driver as it is (storable applied): the parent only binds it.
                if sqlite:
                    # record_of's time is UTC already: format it without another conversion.
                    records.append(storable((*record[:7], record[7].isoformat(" ", "microseconds")[:26], *record[8:])))
                else:
                    records.append(storable(tuple(record)))
            else:
                rejected.append(entry)  # type: ignore[arg-type]
            # Counted in rows read, not rows kept: a file of millions of invalid rows (dates in the future, a
            # wrong column) must not pile them all up here and send them in one message.
            if len(records) + len(rejected) >= _BATCH:
                send(("batch", records, rejected, read, export.position(), export.size))
                records, rejected = [], []
        send(("batch", records, rejected, read, export.size, export.size))
        send(("end", read))
        export.close()
    except InputError as exc:
        send(("error", exc.args[0] if exc.args else str(exc), exc.problems))
    except BrokenPipeError:
        pass  # the parent is gone: nothing to report to
    except BaseException as exc:  # everything must reach the parent as a failed import
        send(("crash", f"{type(exc).__name__}: {str(exc)[:200]}"))
    finally:
        out.flush()


_BOOLS = (False, True)


def _packed(column: Any) -> tuple[Any, ...]:
    """A column of ``columns_of_batch`` as the child sends it, in as few Python objects as the type allows.

    Texts go as one UTF-8 string, each text ended by a NUL (texts that hold one go as a list), so that the
    parent makes them all with one ``split``; booleans and integers go as their bytes; a column of None only
    as ``none``. The parent (``_unpacked``) then needs neither pyarrow nor numpy, nor their memory.
    """
    if column is None:
        return ("none",)
    if column.__class__ is list:
        return ("list", column)
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    count = len(column)
    if count and column.null_count == count:
        return ("none",)  # a column absent from the file (links, 栏目): nothing to send or to make a list of
    if pa.types.is_string(column.type):
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[column.offset : column.offset + count + 1]
        widths = np.diff(offsets)
        if count and column.null_count == 0 and (widths == widths[0]).all():
            # Texts of one width (keys, times, dates, often ids): each row's bytes and a NUL, by numpy.
            width = int(widths[0])
            ended = np.zeros((count, width + 1), dtype=np.uint8)
            body = np.frombuffer(column.buffers()[2], dtype=np.uint8) if width else np.zeros(0, np.uint8)
            ended[:, :width] = body[offsets[0] : offsets[-1]].reshape(count, width)
            data = ended.tobytes()
        else:
            joined = pc.binary_join_element_wise(pc.fill_null(column, ""), "\x00", "")
            offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32)[joined.offset : joined.offset + count + 1]
            start, stop = (int(offsets[0]), int(offsets[-1])) if count else (0, 0)
            data = joined.buffers()[2].slice(start, stop - start).to_pybytes() if count else b""
        if data.count(b"\x00") == count:
            valid = None if column.null_count == 0 else np.asarray(column.is_valid(), dtype=np.uint8).tobytes()
            return ("text", data, valid)
    elif column.null_count == 0 and pa.types.is_boolean(column.type):
        return ("bool", np.asarray(column, dtype=np.uint8).tobytes())
    elif column.null_count == 0 and pa.types.is_int64(column.type):
        return ("int", np.asarray(column, dtype=np.int64).tobytes())
    return ("list", column.to_pylist())


def _unpacked(column: tuple[Any, ...]) -> Any:
    """The values of a column ``_packed`` sent: a list, or ``repeat(None)`` for a column of None only."""
    tag = column[0]
    if tag == "text":
        texts = column[1].decode("utf-8").split("\x00")
        texts.pop()  # after the last text's NUL
        valid = column[2]
        return texts if valid is None else [text if ok else None for text, ok in zip(texts, valid, strict=True)]
    if tag == "bool":
        return list(map(_BOOLS.__getitem__, column[1]))
    if tag == "int":
        return array("q", column[1]).tolist()
    if tag == "none":
        return repeat(None)
    return column[1]


def parsed_in_child(
    path: Path,
    *,
    zone: str,
    kind: str,
    format: str | None,
    encoding: str | None,
    now: datetime | None,
    sqlite: bool,
    latest: datetime | None = None,
    fast: bool = False,
    rejected: RejectedRows,
    on_read: Callable[[int], None],
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """The rows of an export as store-ready tuples, parsed in a child process; invalid rows go to ``rejected``.

    With ``fast`` the child reads a CSV with the columnar reader (sources/fastcsv.py); when that meets a row
    it cannot decide, ``Undecided`` is raised here, and the caller reads the file again without ``fast``.
    """
    spec = {
        "path": str(path),
        "zone": zone,
        "kind": kind,
        "format": format,
        "encoding": encoding,
        "now": now.isoformat() if now else None,
        "latest": latest.isoformat() if latest else None,
        "sqlite": sqlite,
        "fast": fast,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "channelwatch.ingest.readahead", json.dumps(spec)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        while True:
            try:
                message = pickle.load(process.stdout)
            except (EOFError, pickle.UnpicklingError):
                code = process.wait()
                raise ReaderFailed(f"读取 {shown(path)} 的进程意外结束（退出码 {code}），未导入任何内容") from None
            tag = message[0]
            if tag == "batch":
                _tag, records, bad, read, position, size = message
                rejected.extend(bad)
                on_read(read)
                if progress is not None:
                    progress(position, size)
                yield from records
            elif tag == "columns":
                _tag, columns, read, position, size = message
                on_read(read)
                if progress is not None:
                    progress(position, size)
                # Every column but the None ones has one entry per row; those repeat None endlessly.
                yield from zip(*map(_unpacked, columns), strict=False)
            elif tag == "end":
                on_read(message[1])
                return
            elif tag == "error":
                raise InputError(message[1], message[2])
            elif tag == "undecided":
                raise Undecided(message[1])
            else:
                raise ReaderFailed(f"读取 {shown(path)} 时出错：{message[1]}")
    finally:
        process.stdout.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    # Standard output carries the pickles; anything a library prints goes to standard error.
    _pipe = sys.stdout.buffer
    sys.stdout = sys.stderr
    _child(json.loads(sys.argv[1]), _pipe)
