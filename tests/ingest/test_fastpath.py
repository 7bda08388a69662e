"""Property: importing a file through the columnar reader (in the reading process) stores what the row-by-row
import stores, with the same counts, the same result and the same rejection (message and rejected file).

Each generated file is imported twice into two fresh stores: once as a large import (the reading process,
columnar reader first) and once in this process, row by row. Then a second file over the same
publications is imported on top (known rows, repost marks and titles filled in), the same both ways.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channelwatch import store
from channelwatch.errors import InputError
from channelwatch.ingest import imports as ingest_imports
from channelwatch.ingest.imports import import_file
from channelwatch.instance.config import load_instance
from channelwatch.store import open_store, upsert
from tests.conftest import write_instance
from tests.sources.test_fastcsv import cells, valid_cells, write_csv

HEADER = ["微博ID", "标题", "链接", "发布时间", "是否转发"]


def _import(root: Path, channel: str, path: Path, large: bool, skip_invalid: bool) -> tuple[object, ...]:
    opened = open_store(load_instance(root))
    try:
        result = import_file(opened, channel, path, skip_invalid=skip_invalid)
    except InputError as exc:
        return ("rejected", str(exc).replace(str(path), "<file>"))
    finally:
        opened.dispose()
    rejected = result.rejected_file.read_bytes() if result.rejected_file else None
    return (result.rows_read, result.rows_new, result.rows_known, result.rows_rejected, result.warning, rejected)


def _stored(root: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]]]:
    opened = open_store(load_instance(root))
    try:
        with store.read(opened.engine) as conn:
            publications = conn.exec_driver_sql(
                "SELECT channel_id, identity, platform_id, title, url, column_name, push_id, is_repost, "
                "published_at, local_year, local_month, local_date, title_key FROM publication ORDER BY id"
            ).all()
            counts = conn.exec_driver_sql("SELECT * FROM publication_count ORDER BY 1, 2, 3, 4").all()
            distinct = conn.exec_driver_sql("SELECT * FROM figure_distinct ORDER BY 1, 2, 3").all()
            assert store.rebuild_counts(conn) == 0  # the counts equal counting the publications
    finally:
        opened.dispose()
    return [tuple(p) for p in publications], [tuple(c) for c in counts], [tuple(d) for d in distinct]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=st.lists(st.one_of(valid_cells, valid_cells, valid_cells, cells), min_size=1, max_size=10),
    second=st.lists(valid_cells, min_size=0, max_size=6),
    channel=st.sampled_from(["weibo", "website"]),
    skip_invalid=st.booleans(),
)
def test_columnar_import_stores_what_the_row_by_row_import_stores(  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch, first, second, channel: str, skip_invalid: bool
) -> None:
    # Batches of three: the bulk upsert's ways (known rows found first, held rows, indexes built at the end).
    monkeypatch.setattr(upsert, "BATCH_SIZE", 3)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        outcomes = []
        for large in (True, False):
            # Every file of a large import goes through the reading process (columnar reader first).
            monkeypatch.setattr(ingest_imports, "READAHEAD_MIN_BYTES", 0 if large else 1 << 40)
            root = write_instance(base / f"instance-{large}")
            files = []
            for name, rows in (("first", first), ("second", first[:3] + second)):
                folder = base / f"{name}-{large}"
                folder.mkdir()
                path = folder / "export.csv"
                write_csv(path, rows, HEADER, bom=name == "second", blank_lines=name == "first")
                files.append(path)
            results = [_import(root, channel, path, large, skip_invalid) for path in files]
            outcomes.append((results, _stored(root)))
        assert outcomes[0] == outcomes[1]
