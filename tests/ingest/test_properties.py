"""Property: re-importing any set of files (CSV, XLSX, JSON), in any order, any number of times, changes no count."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from channelwatch import store
from channelwatch.ingest.imports import import_file
from channelwatch.instance.config import load_instance
from channelwatch.stats.figures import Period, summarise
from channelwatch.store import open_store
from tests.conftest import write_instance

# A pool of publications; each has fixed facts, so every file that lists it agrees on them.
POOL = [
    (
        str(4400000000000000 + n),
        f"园区信息第{n}条",
        f"2020-{n % 12 + 1:02d}-{n % 27 + 1:02d} {n % 24:02d}:{n % 60:02d}",
        "转发" if n % 4 == 0 else "原创",
    )
    for n in range(60)
]
# Identity by title + day only (no id, no url) must hold just as well: the fingerprint rule.
NO_ID_HEADER = ["标题", "发布时间", "是否转发"]


def write_export(path: Path, members: list[int], with_ids: bool, fmt: str) -> Path:
    """One export of the pool's ``members`` as CSV, XLSX (date cells) or a JSON list."""
    header = ["微博ID", "微博内容", "发布时间", "是否转发"] if with_ids else NO_ID_HEADER
    rows = []
    for index in members:
        mid, title, when, repost = POOL[index]
        rows.append([mid, title, when, repost] if with_ids else [title, when, repost])
    target = path.with_suffix("." + fmt)
    if fmt == "csv":
        target.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    elif fmt == "json":
        target.write_text(json.dumps([dict(zip(header, r, strict=True)) for r in rows], ensure_ascii=False), "utf-8")
    else:
        book = Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.append(header)
        date_column = header.index("发布时间")
        for row in rows:
            cells: list[object] = list(row)
            cells[date_column] = datetime.strptime(row[date_column], "%Y-%m-%d %H:%M")  # a real date cell
            sheet.append(cells)
        book.save(target)
    return target


def figures(instance: Path) -> tuple[int, int, list[tuple[str, int]]]:
    opened = open_store(load_instance(instance))
    with store.read(opened.engine) as conn:
        summary = summarise(conn, opened.office_id, Period(2020), ["weibo"])
    opened.dispose()
    return summary.total, summary.reposts, [(m, t) for m, t, _ in summary.month_rows()]


files_strategy = st.lists(st.lists(st.integers(0, len(POOL) - 1), min_size=1, max_size=25), min_size=1, max_size=4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=files_strategy,
    formats=st.lists(st.sampled_from(["csv", "xlsx", "json"]), min_size=4, max_size=4),
    order=st.randoms(use_true_random=False),
    with_ids=st.booleans(),
)
def test_reimport_in_any_order_changes_no_count(files, formats, order, with_ids: bool) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        paths = [write_export(base / f"export{i}", members, with_ids, formats[i]) for i, members in enumerate(files)]
        expected_members = {m for members in files for m in members}
        expected_total = len(expected_members)
        expected_reposts = sum(1 for m in expected_members if POOL[m][3] == "转发")

        first = write_instance(base / "first")
        opened = open_store(load_instance(first))
        for path in paths:
            import_file(opened, "weibo", path)
        opened.dispose()
        baseline = figures(first)
        assert baseline[:2] == (expected_total, expected_reposts)

        # The same files again, shuffled, with repeats: nothing changes.
        replay = paths * 2
        order.shuffle(replay)
        opened = open_store(load_instance(first))
        for path in replay:
            result = import_file(opened, "weibo", path)
            assert result.rows_new == 0
        opened.dispose()
        assert figures(first) == baseline

        # A fresh store fed the files in another order ends with the same figures.
        second = write_instance(base / "second")
        opened = open_store(load_instance(second))
        for path in reversed(replay):
            import_file(opened, "weibo", path)
        opened.dispose()
        assert figures(second) == baseline
