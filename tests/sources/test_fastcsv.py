"""The columnar CSV reader gives exactly the row-by-row reader's publications, or gives the file back to it.

Property: for any generated CSV file (odd dates, blank and invalid cells, quotes, commas and newlines inside
cells, unusual whitespace, several time zones), either the columnar reader finds a row it cannot decide
(``Undecided``), and then the row-by-row reader finds an invalid row or a row of another width, or it gives
the same store-ready records, in the same order, as ``record_of`` over the row-by-row reader.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from channelwatch.errors import InputError
from channelwatch.sources.fastcsv import _PY_SPACE
from channelwatch.sources.files import open_export
from tests.sources.readers import LATEST, ZONES, column_records, row_records


def test_whitespace_is_what_str_strip_removes() -> None:
    assert "".join(c for c in map(chr, range(0x110000)) if c.isspace()) == _PY_SPACE


FORMS = [
    "{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}",
    "{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}",
    "{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}",
    "{y:04d}-{mo:02d}-{d:02d}",
    " {y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d} ",
    "{y:04d}/{mo}/{d} {h}:{mi:02d}",
    "{y:04d}年{mo}月{d}日",
]
valid_dates = st.builds(
    lambda y, mo, d, h, mi, s, form: form.format(y=y, mo=mo, d=d, h=h, mi=mi, s=s),
    st.integers(2000, 2021),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
    st.sampled_from(FORMS),
)
any_dates = st.one_of(
    st.builds(
        lambda y, mo, d, h, mi, s, form: form.format(y=y, mo=mo, d=d, h=h, mi=mi, s=s),
        st.integers(1999, 2022),
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(0, 24),
        st.integers(0, 60),
        st.integers(0, 60),
        st.sampled_from(
            [
                *FORMS,
                "{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}+08:00",
                "{y:04d}{mo:02d}{d:02d}",
                "{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}.5",
            ]
        ),
    ),
    # Wall times around the 2020 and 2021 changes of daylight saving time in New York and Lord Howe Island.
    st.sampled_from(
        [
            "2020-03-08 02:30",
            "2020-11-01 01:30:00",
            "2021-04-04 01:45",
            "2020-10-04 02:15",
            "2021-06-02 11:00",
            "2021-06-03 00:00",
            "2000-01-01 00:00",
            "2000-01-01 08:00:01",
            "",
            "明天",
            "2020-02-29",
            "2021-02-29",
        ]
    ),
)
dates = st.one_of(valid_dates, valid_dates, valid_dates, valid_dates, any_dates)
text = st.text(alphabet=st.sampled_from([*list('ab 中文，,"\n\r\t:[]/\x1c\u3000\x85_-.'), "\x00"]), max_size=8)
cells = st.tuples(
    st.one_of(st.just(""), st.from_regex(r"\A[0-9]{1,17}\Z"), text),  # id
    st.one_of(st.sampled_from(["通知公告", " 政务 动态 ", "園區", "Ａｂｃ"]), text),  # title
    st.one_of(
        st.just(""),
        st.sampled_from(
            ["https://gov.cn/a.html?b=2&a=1", "http://[::1", "https://x.cn:99999/", "gov.cn/x#y", "https://Gov.CN:443/"]
        ),
        text,
    ),  # url
    dates,
    st.one_of(
        st.sampled_from(["转发", "原创", "", " 是 ", "TRUE", "0", "否"]),
        st.sampled_from(["转发", "", "2", "repost", "maybe", "转载"]),
    ),  # repost
)

valid_cells = st.tuples(
    st.one_of(st.just(""), st.from_regex(r"\A[0-9]{1,17}\Z"), text),
    st.one_of(st.sampled_from(["通知公告", " 政务 动态 ", "園區", "Ａｂｃ"]), text.map(lambda t: t + "x")),
    st.one_of(st.just(""), st.sampled_from(["https://gov.cn/a.html?b=2&a=1", "gov.cn/x#y", "https://Gov.CN:443/"])),
    valid_dates,
    st.sampled_from(["转发", "原创", "", " 是 ", "TRUE", "0", "否", "Repost "]),
)


def write_csv(path: Path, rows: list[tuple[str, ...]], header: list[str], bom: bool, blank_lines: bool) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if bom else "\n")
    writer.writerow(header)
    for n, row in enumerate(rows):
        writer.writerow(row)
        if blank_lines and n % 3 == 1:
            buffer.write("\n" if n % 2 else ",,,,\n")
    path.write_text(buffer.getvalue(), encoding="utf-8-sig" if bom else "utf-8", newline="")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.one_of(valid_cells, valid_cells, valid_cells, valid_cells, valid_cells, cells), min_size=1, max_size=12
    ),
    zone=st.sampled_from(ZONES),
    kind=st.sampled_from(["weibo", "website", "other"]),
    inverse=st.booleans(),
    bom=st.booleans(),
    blank_lines=st.booleans(),
)
@example(rows=[("1", "标题", "", "2020-06-01 08:00", "原创")], zone="Asia/Shanghai", kind="weibo", inverse=False,
         bom=False, blank_lines=False)  # fmt: skip
def test_columns_give_the_row_by_row_records(  # type: ignore[no-untyped-def]
    tmp_path: Path, rows, zone: str, kind: str, inverse: bool, bom: bool, blank_lines: bool
) -> None:
    path = tmp_path / "export.csv"
    header = ["微博ID", "标题", "链接", "发布时间", "是否原创" if inverse else "是否转发"]
    write_csv(path, rows, header, bom, blank_lines)
    expected, read, invalid = row_records(path, zone, kind)
    found = column_records(path, zone, kind)
    event("invalid row" if invalid else "read by columns")
    if invalid:
        assert found is None  # an invalid row: the row-by-row reader names it
        return
    if found is None:
        # csv.writer leaves a lone CR unquoted unless it ends lines with CRLF: Python's reader keeps it in
        # the cell, Arrow ends the line there. The columnar reader sees a row of another width and hands
        # the file back, which reads it right.
        assert not bom and any("\r" in cell for row in rows for cell in row), "valid rows are read by columns"
        return
    assert found == (expected, read)


def test_a_plain_export_is_decided_by_columns_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No row of a plain export goes through the row-by-row converter."""
    path = tmp_path / "export.csv"
    write_csv(path, [(str(n), f"第{n}条", "", f"2020-05-{n % 28 + 1:02d} 08:{n % 60:02d}", "原创") for n in range(500)],
              ["微博ID", "标题", "链接", "发布时间", "是否转发"], bom=True, blank_lines=False)  # fmt: skip
    from channelwatch.sources import files

    def refuse(*args: object) -> None:
        raise AssertionError("converted row by row")

    monkeypatch.setattr(files._RowConverter, "convert_text", refuse)
    found = column_records(path, "Asia/Shanghai", "weibo")
    assert found is not None and found[1] == 500
    assert found[0][0][:2] == ("id:0", "0") and found[0][0][7] == "2020-05-01 00:00:00.000000"


def test_a_cell_beyond_the_csv_field_limit_is_left_to_the_row_by_row_reader(tmp_path: Path) -> None:
    """Python's csv rejects such a file (one clear message): the columnar reader must not store it."""
    path = tmp_path / "export.csv"
    huge = "长" * (csv.field_size_limit() + 10)
    write_csv(path, [("1", huge, "", "2020-06-01 08:00", "原创")], ["微博ID", "标题", "链接", "发布时间", "是否转发"],
              bom=False, blank_lines=False)  # fmt: skip
    assert column_records(path, "Asia/Shanghai", "weibo") is None
    export = open_export(path, zone="Asia/Shanghai", kind="weibo", latest=LATEST)
    with pytest.raises(InputError, match="不是有效的 CSV"):
        list(export.rows())
    export.close()
