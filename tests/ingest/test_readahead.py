"""Large imports parsed in a child process: same results as in-process, errors roll back, rows rejected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from channelwatch import store
from channelwatch.errors import InputError
from channelwatch.ingest import imports as ingest_imports
from channelwatch.ingest.columnar import IDENTITY_MAX
from channelwatch.ingest.imports import import_file
from channelwatch.ingest.readahead import _packed, _unpacked
from channelwatch.instance.config import load_instance
from channelwatch.stats.figures import Period, summarise
from channelwatch.store import Store, open_store
from tests.conftest import SAMPLES


@pytest.fixture
def opened(any_instance_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    # Every CSV/XLSX file goes through the child process, whatever its size.
    monkeypatch.setattr(ingest_imports, "READAHEAD_MIN_BYTES", 0)
    result = open_store(load_instance(any_instance_dir))
    yield result
    result.dispose()


def figures(opened: Store) -> dict[str, tuple[int, int]]:
    with store.read(opened.engine) as conn:
        summary = summarise(conn, opened.office_id, Period(2020))
    return {c.key: (c.total, c.reposts) for c in summary.channels} | {"unique": (summary.unique_items, 0)}


def test_samples_through_the_child_give_the_report_figures(opened: Store) -> None:
    results = [
        import_file(opened, folder.name, path)
        for folder in sorted(SAMPLES.iterdir())
        for path in sorted(folder.iterdir())
    ]
    assert [r.rows_read for r in results] == [9, 20, 36, 707, 624]  # website, wechat (json, xlsx), weibo
    assert figures(opened) == {"website": (6, 0), "weibo": (1225, 400), "wechat": (48, 12), "unique": (1270, 0)}
    again = import_file(opened, "weibo", SAMPLES / "weibo" / "微博发布记录_2020年7-12月.xlsx")
    assert (again.rows_read, again.rows_new, again.rows_known) == (624, 0, 624)


def test_invalid_row_rejects_the_whole_file(opened: Store, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    lines = ["微博ID,微博内容,发布时间"] + [f"{n},第{n}条,2020-05-01 08:00" for n in range(10_000)]
    lines[7001] = "7000,坏日期,2020-13-45"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        import_file(opened, "weibo", path)
    assert "第7002行，字段「发布时间」，值「2020-13-45」" in str(caught.value)
    assert figures(opened)["weibo"] == (0, 0)
    result = import_file(opened, "weibo", path, skip_invalid=True)
    assert (result.rows_read, result.rows_new, result.rows_rejected) == (10_000, 9_999, 1)
    assert (tmp_path / "big.rejected.csv").read_text(encoding="utf-8-sig").splitlines()[1].startswith("7000,坏日期")


def test_invalid_rows_travel_in_batches_of_the_usual_size(tmp_path: Path) -> None:
    # A file of invalid rows only (here: dates far in the future) used to be held whole in the reading
    # process and sent as one message: a million such rows took 450 MiB in each process.
    import io
    import pickle

    from channelwatch.ingest.readahead import _BATCH, _child

    path = tmp_path / "future.csv"
    rows = 3 * _BATCH + 5
    path.write_text(
        "微博ID,微博内容,发布时间\n" + "".join(f"{n},第{n}条,2099-05-01 08:00\n" for n in range(rows)), encoding="utf-8"
    )
    spec = {"path": str(path), "zone": "Asia/Shanghai", "kind": "weibo", "format": None, "encoding": None,
            "now": "2026-01-01T00:00:00+00:00", "latest": None, "sqlite": True, "fast": False}  # fmt: skip
    out = io.BytesIO()
    _child(spec, out)
    out.seek(0)
    messages = []
    while out.tell() < len(out.getvalue()):
        messages.append(pickle.load(out))
    batches = [m for m in messages if m[0] == "batch"]
    assert all(len(m[1]) + len(m[2]) <= _BATCH for m in batches)
    assert sum(len(m[2]) for m in batches) == rows and not any(m[1] for m in batches)
    assert messages[-1] == ("end", rows)


def test_skip_invalid_keeps_every_rejected_row_in_order_beyond_those_held_in_memory(
    opened: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from channelwatch.ingest import readahead

    # Hold only 5 rows in memory: the other rejected rows wait in the temporary file, and all come back in order.
    monkeypatch.setitem(readahead.RejectedRows.__init__.__kwdefaults__, "kept", 5)
    spooled: list[int] = []
    real_append = readahead.RejectedRows.append

    def append(self: readahead.RejectedRows, row: object) -> None:
        real_append(self, row)  # type: ignore[arg-type]
        spooled.append(self._spool is not None)

    monkeypatch.setattr(readahead.RejectedRows, "append", append)
    path = tmp_path / "half.csv"
    lines = ["微博ID,微博内容,发布时间"]
    for n in range(3000):
        lines.append(f"{n},第{n}条,{'2099-05-01 08:00' if n % 2 else '2020-05-01 08:00'}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = import_file(opened, "weibo", path, skip_invalid=True)
    assert (result.rows_read, result.rows_new, result.rows_rejected) == (3000, 1500, 1500)
    written = (tmp_path / "half.rejected.csv").read_text(encoding="utf-8-sig").splitlines()
    assert [line.split(",")[0] for line in written[1:]] == [str(n) for n in range(1, 3000, 2)]
    assert all("2099-05-01 08:00" in line for line in written[1:])
    assert spooled.count(True) == 1500 - 5  # every row past the fifth went to the temporary file


def test_undecodable_file_fails_cleanly(opened: Store, tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    head = "微博ID,微博内容,发布时间\n" + "".join(f"{n},第{n}条,2020-05-01\n" for n in range(2000))
    path.write_bytes(head.encode("utf-8") + "2001,坏编码,2020-05-01\n".encode("gbk"))
    with pytest.raises(InputError, match="无法按 utf-8 编码解码"):
        import_file(opened, "weibo", path)
    assert figures(opened)["weibo"] == (0, 0)


texts = st.one_of(st.none(), st.just(""), st.text(), st.text(alphabet="a中\x00,\n", max_size=3))


@given(
    st.one_of(
        st.lists(texts, max_size=20).map(lambda v: pa.array(v, pa.string())),
        # Texts of one width in bytes (packed by numpy), some holding a NUL, some from a slice of an array.
        st.integers(0, 4)
        .flatmap(
            lambda width: st.lists(
                st.one_of(st.text(alphabet="ab\x00", min_size=width, max_size=width), st.just("中" * (width // 3))),
                max_size=20,
            )
        )
        .map(lambda v: pa.array(v, pa.string())),
        st.lists(st.from_regex(r"\A[0-9a-f]{16}\Z"), min_size=1, max_size=20).map(
            lambda v: pa.array(["x" * 16, *v], pa.string()).slice(1)
        ),
        st.lists(st.booleans(), max_size=20).map(lambda v: pa.array(v, pa.bool_())),
        st.lists(st.one_of(st.none(), st.booleans()), max_size=20).map(lambda v: pa.array(v, pa.bool_())),
        st.lists(st.integers(-(2**63), 2**63 - 1), max_size=20).map(lambda v: pa.array(v, pa.int64())),
        st.lists(st.one_of(st.none(), st.integers(0, 9999)), max_size=20).map(lambda v: pa.array(v, pa.int64())),
        st.lists(st.one_of(st.none(), texts, st.integers()), max_size=20),
    )
)
def test_a_column_reaches_the_parent_as_its_values(column: object) -> None:
    """What the reading process packs, the parent unpacks to the same Python values (texts with NUL too)."""
    expected = column if isinstance(column, list) else column.to_pylist()  # type: ignore[attr-defined]
    packed = _packed(column)
    if packed[0] == "none":  # None as often as the batch's other columns have values
        assert expected and all(v is None for v in expected) and not isinstance(column, list)
        return
    found = _unpacked(packed)
    assert list(found) == expected
    assert [type(v) for v in found] == [type(v) for v in expected]


def test_a_column_of_none_only_repeats_none() -> None:
    assert list(zip(range(3), _unpacked(_packed(None)), strict=False)) == [(0, None), (1, None), (2, None)]


def test_the_reading_process_reads_by_columns_without_the_store_modules() -> None:
    """Its start-up is paid on every large import: the columnar path loads neither SQLAlchemy nor the store."""
    code = (
        "import sys, channelwatch.ingest.readahead, channelwatch.ingest.columnar, channelwatch.sources.files, "
        "channelwatch.sources.fastcsv; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'sqlmodel') or m.startswith(('channelwatch.store', 'channelwatch.ingest.runs'))))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
    assert IDENTITY_MAX == store.IDENTITY_MAX


@pytest.mark.parametrize(
    "platform_ids",
    [
        ["4400000000000000", " 12 ", "x" * (IDENTITY_MAX - 3)],  # by the column
        ["4400000000000000", "x" * (IDENTITY_MAX - 2)],  # a long one: hashed, row by row
        ["4400000000000000", None, ""],  # rows without an id: their link or title decides
    ],
)
@pytest.mark.parametrize("kind", ["weibo", "wechat"])
def test_identities_of_a_batch_are_identity_of_each_row(platform_ids: list[str | None], kind: str) -> None:
    from channelwatch.ingest.columnar import _identities, identity_of

    count = len(platform_ids)
    urls = [f"https://mp.weixin.qq.com/s/{n}" for n in range(count)]
    titles = [f"标题{n}" for n in range(count)]
    days = ["2020-06-01"] * count
    expected = [identity_of(*row, kind) for row in zip(platform_ids, urls, titles, days, strict=True)]
    assert _identities(platform_ids, urls, titles, days, kind) == expected
