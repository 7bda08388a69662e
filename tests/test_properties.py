"""Property: re-importing any set of files, in any order, any number of times, changes no count."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channelwatch import store
from channelwatch.config import load_instance
from channelwatch.ingest import import_file, open_store
from channelwatch.stats import Period, summarise
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


def write_export(path: Path, members: list[int], with_ids: bool) -> Path:
    lines = [",".join(["微博ID", "微博内容", "发布时间", "是否转发"] if with_ids else NO_ID_HEADER)]
    for index in members:
        mid, title, when, repost = POOL[index]
        lines.append(",".join([mid, title, when, repost] if with_ids else [title, when, repost]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def figures(instance: Path) -> tuple[int, int, list[tuple[str, int]]]:
    opened = open_store(load_instance(instance))
    with store.read(opened.engine) as conn:
        summary = summarise(conn, opened.office_id, Period(2020), ["weibo"])
    opened.dispose()
    return summary.total, summary.reposts, [(m, t) for m, t, _ in summary.month_rows()]


files_strategy = st.lists(st.lists(st.integers(0, len(POOL) - 1), min_size=1, max_size=25), min_size=1, max_size=4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=files_strategy, order=st.randoms(use_true_random=False), with_ids=st.booleans())
def test_reimport_in_any_order_changes_no_count(files: list[list[int]], order, with_ids: bool) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        paths = [write_export(base / f"export{i}.csv", members, with_ids) for i, members in enumerate(files)]
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
