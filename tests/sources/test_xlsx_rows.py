"""XLSX: every row of the sheet is read whatever its <dimension> says; formulas without a result are invalid rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channelwatch import store
from channelwatch.errors import InputError
from channelwatch.ingest.imports import import_file
from channelwatch.instance.config import load_instance
from channelwatch.sources.files import FORMULA_WITHOUT_VALUE, open_export
from channelwatch.stats.figures import Period, summarise
from channelwatch.store import Store, open_store
from tests.conftest import write_instance
from tests.ingest.corpus import patch_xlsx, with_dimension, xlsx_bytes


@pytest.fixture
def opened(tmp_path: Path) -> Store:
    result = open_store(load_instance(write_instance(tmp_path / "instance")))
    yield result
    result.dispose()


def _rows(count: int, repost_every: int = 3) -> list[list[object]]:
    return [
        [
            f"园区通知第{n}号",
            f"2020-06-{n % 28 + 1:02d} 09:00",
            f"http://www.example.gov.cn/{n}.html",
            "转发" if n % repost_every == 0 else "原创",
        ]
        for n in range(count)
    ]


def _weibo_totals(opened: Store) -> tuple[int, int]:
    with store.read(opened.engine) as conn:
        figures = summarise(conn, opened.office_id, Period(2020), ["weibo"])
    return figures.total, figures.reposts


@pytest.mark.parametrize("ref", ["A1:B3", "A1:C11", "A1", "A1:XFD1048576", "B2:C3", "Z99:A1", "not-a-range"])
def test_every_row_is_read_whatever_the_dimension(opened: Store, tmp_path: Path, ref: str) -> None:
    path = tmp_path / "weibo.xlsx"
    path.write_bytes(with_dimension(xlsx_bytes(_rows(10)), ref))
    result = import_file(opened, "weibo", path)
    assert (result.rows_read, result.rows_new, result.rows_rejected) == (10, 10, 0)
    # The repost column (D) is read even where the declared range ends at B or C.
    assert _weibo_totals(opened) == (10, 4)


def test_formula_without_saved_result_makes_its_row_invalid(opened: Store, tmp_path: Path) -> None:
    rows = _rows(4)
    rows[1][1] = "=TODAY()"  # openpyxl saves the formula without a computed value, as scripts do
    rows[2][3] = '=IF(1,"转发","原创")'
    path = tmp_path / "weibo.xlsx"
    path.write_bytes(xlsx_bytes(rows))
    with pytest.raises(InputError) as caught:
        import_file(opened, "weibo", path)
    reasons = {(p.line, p.reason) for p in caught.value.problems}
    assert reasons == {(3, FORMULA_WITHOUT_VALUE), (4, FORMULA_WITHOUT_VALUE)}
    assert _weibo_totals(opened) == (0, 0)

    result = import_file(opened, "weibo", path, skip_invalid=True)
    assert (result.rows_read, result.rows_new, result.rows_rejected) == (4, 2, 2)
    assert result.rows_read == 4  # read-count counts every data row; rejected ones among them


def test_formula_with_saved_result_is_read(opened: Store, tmp_path: Path) -> None:
    # A file saved by Excel keeps each formula's result in <v>: that value is what counts.
    data = xlsx_bytes(_rows(2))
    saved = patch_xlsx(
        data,
        "xl/worksheets/sheet1.xml",
        lambda xml: xml.replace(
            '<c r="B2" t="inlineStr"><is><t>2020-06-01 09:00</t></is></c>',
            '<c r="B2" t="str"><f>TEXT(43983,"yyyy-mm-dd")</f><v>2020-06-01</v></c>',
        ),
    )
    assert saved != data
    path = tmp_path / "weibo.xlsx"
    path.write_bytes(saved)
    assert import_file(opened, "weibo", path).rows_new == 2


def test_error_cells_and_out_of_range_serials_are_invalid_rows(tmp_path: Path) -> None:
    data = patch_xlsx(
        xlsx_bytes(_rows(2)),
        "xl/worksheets/sheet1.xml",
        lambda xml: xml.replace(
            '<c r="B3" t="inlineStr"><is><t>2020-06-02 09:00</t></is></c>', '<c r="B3" t="e"><v>#REF!</v></c>'
        ),
    )
    path = tmp_path / "weibo.xlsx"
    path.write_bytes(data)
    export = open_export(path, zone="Asia/Shanghai")
    entries = list(export.rows())
    export.close()
    assert len(entries) == 2
    assert [p.value for p in entries[1].problems] == ["#REF!"]  # type: ignore[union-attr]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    count=st.integers(min_value=1, max_value=40),
    bad=st.sets(st.integers(min_value=0, max_value=39)),
    last_row=st.integers(min_value=1, max_value=60),
    last_column=st.sampled_from("ABCDEZ"),
)
def test_read_plus_rejected_is_the_rows_of_the_sheet(
    tmp_path: Path, count: int, bad: set[int], last_row: int, last_column: str
) -> None:
    rows = _rows(count)
    for n in bad:
        if n < count:
            rows[n][1] = "=NOW()" if n % 2 else "2020"
    path = tmp_path / "export.xlsx"
    path.write_bytes(with_dimension(xlsx_bytes(rows), f"A1:{last_column}{last_row}"))
    export = open_export(path, zone="Asia/Shanghai")
    entries = list(export.rows())
    export.close()
    rejected = [e for e in entries if getattr(e, "problems", None)]
    assert len(entries) == count
    assert len(rejected) == len({n for n in bad if n < count})
