"""What the two readers of an export give, for the tests that compare the columnar readers with the row-by-row one.

Both return what the import's reading process would hand the store: ``storable`` tuples with the time as
SQLite's text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from channelwatch.ingest.runs import record_of, records_of_columns
from channelwatch.sources.base import Observed
from channelwatch.sources.fastcsv import Undecided
from channelwatch.sources.files import open_export
from channelwatch.store.upsert import storable

LATEST = datetime(2021, 6, 1, 12, 0, tzinfo=UTC)
ZONES = ["Asia/Shanghai", "America/New_York", "Australia/Lord_Howe", "UTC"]


def row_records(path: Path, zone: str, kind: str) -> tuple[list[tuple[Any, ...]], int, list[Any]]:
    """(records, rows read, invalid rows) of the row-by-row reader, as the import's reading process makes them."""
    export = open_export(path, zone=zone, kind=kind, latest=LATEST)
    records, read, invalid = [], 0, []
    for entry in export.rows():
        read += 1
        if entry.__class__ is Observed:
            record = record_of(entry, zone, kind)  # type: ignore[arg-type]
            records.append(storable((*record[:7], record[7].isoformat(" ", "microseconds")[:26], *record[8:])))
        else:
            invalid.append(entry)
    export.close()
    return records, read, invalid


def column_records(path: Path, zone: str, kind: str) -> tuple[list[tuple[Any, ...]], int] | None:
    """(records, rows read) of the file's columnar reader (Arrow for CSV, python-calamine for XLSX), or None
    when it gives the file back (``Undecided``)."""
    export = open_export(path, zone=zone, kind=kind, latest=LATEST)
    assert export.columnar is not None
    records: list[tuple[Any, ...]] = []
    read = 0
    try:
        for batch in export.columnar():
            read += batch.rows
            records += records_of_columns(batch, kind)
    except Undecided:
        return None
    finally:
        export.close()
    return records, read
