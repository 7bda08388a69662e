"""The calamine reader of XLSX exports gives exactly the row-by-row reader's publications, or gives the file back.

Property: for any generated workbook (date cells with seconds and fractional milliseconds, date-only cells, text
dates, numbers as ids, formulas without a saved result, booleans, blank and invalid rows, shared or inline
strings, rich text, the 1904 date system, a chart sheet before the data), either the calamine reader gives the
file back (``Undecided``) — always when the row-by-row reader finds an invalid row, so that every message
(file, line, field, value) is still that reader's — or it gives the same store-ready records, in the same order.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont
from openpyxl.chart import BarChart, Reference
from openpyxl.utils.datetime import CALENDAR_MAC_1904

from channelwatch.errors import InputError
from channelwatch.ingest.readahead import RejectedRows, parsed_in_child
from channelwatch.sources import fastxlsx
from channelwatch.sources.base import Observed
from channelwatch.sources.files import open_export
from tests.ingest.corpus import patch_xlsx, with_shared_strings
from tests.sources.readers import LATEST, ZONES, column_records, row_records

HEADER = ["微博ID", "标题", "链接", "发布时间", "是否转发", "栏目"]


def shared_strings(data: bytes, rich: bool) -> bytes:
    """The workbook with its inline strings moved to a shared strings part, as Excel and WPS write them."""
    items: list[bytes] = []

    def to_shared(match: re.Match[bytes]) -> bytes:
        items.append(match.group(2))
        return match.group(1) + b' t="s"><v>' + str(len(items) - 1).encode() + b"</v></c>"

    def sheet(content: bytes) -> bytes:
        return re.sub(rb'(<c r="[A-Z]+\d+"(?: s="\d+")?) t="inlineStr"><is>(.*?)</is></c>', to_shared, content)

    def strings() -> bytes:
        # Rich text as Excel writes it: a plain part, then runs (the row-by-row reader joins them).
        runs = [b"<t>" + b"\xe5\x89\x8d" + b"</t>" + item if rich and b"<r>" in item else item for item in items]
        return (
            b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            + b"".join(b"<si>" + item + b"</si>" for item in runs)
            + b"</sst>"
        )

    return with_shared_strings(data, sheet, strings)


def write_workbook(path: Path, rows: list[list[Any]], *, epoch_1904: bool, chart_first: bool, shared: bool) -> None:
    book = Workbook()
    if epoch_1904:
        book.epoch = CALENDAR_MAC_1904
    sheet = book.active
    assert sheet is not None
    sheet.title = "导出"
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    other = book.create_sheet("说明")
    other.append(["发布时间", "标题"])
    other.append(["2020-01-01", "不是第一张工作表"])
    if chart_first:  # a chart sheet before the data: the first worksheet is still the one read
        chart = BarChart()
        chart.add_data(Reference(other, min_col=1, min_row=1, max_row=2))
        book.create_chartsheet("图表", 0).add_chart(chart)
    buffer = io.BytesIO()
    book.save(buffer)
    data = buffer.getvalue()
    path.write_bytes(shared_strings(data, rich=True) if shared else data)


def moments(low: int = 2000, high: int = 2021) -> st.SearchStrategy[datetime]:
    return st.builds(
        lambda day, second, micro: datetime(low, 1, 1) + timedelta(days=day, seconds=second, microseconds=micro),
        st.integers(0, (high - low) * 365 + 100),
        st.integers(0, 86399),
        st.one_of(
            st.just(0),
            st.integers(0, 999).map(lambda ms: ms * 1000),
            st.integers(0, 999).map(lambda ms: ms * 1000 + 500),  # half a millisecond: rounding matters
            st.integers(0, 999_999),
        ),
    )


valid_dates = st.one_of(
    moments(),
    moments().map(lambda m: m.replace(microsecond=0)),
    moments().map(lambda m: m.date()),
    st.sampled_from(["2020-06-01 08:00", "2021-01-02 03:04:05", " 2020-06-01 ", "2020年6月1日", "2020/6/1 9:05"]),
)
any_dates = st.one_of(
    valid_dates,
    moments(1990, 1999),
    moments(2021, 2023),
    st.sampled_from(
        [
            None,
            "",
            "=NOW()",  # a formula openpyxl saves without a result
            "明天",
            43983.5,  # a serial number in a cell without a date format
            43983,
            20200601,
            1591000000,
            time(8, 30),
            timedelta(hours=5),
            True,
            "2020-03-08 02:30",
            "2020-10-04 02:15",
            float("inf"),
        ]
    ),
)
rich_title = st.builds(
    lambda a, b: CellRichText([TextBlock(InlineFont(b=True), a), b]),
    st.sampled_from(["通知", "公告 ", " 动态"]),
    st.sampled_from(["第一期", " 第二期", "三 "]),
)
ids = st.one_of(
    st.none(),
    st.from_regex(r"\A[0-9]{1,17}\Z"),
    st.integers(1, 10**18),
    st.sampled_from([4.4e15, 4400000000000001.0, 1.5, 12345678901234567891, 0, "  4400000000000002 "]),
)
titles = st.one_of(
    st.none(),
    st.sampled_from(
        ["通知公告", " 政务 动态 ", "園區", "Ａｂｃ", "a_x000D_b", "=1+2", "  ", "\u3000空白\u3000", "#REF!"]
    ),
    st.text(alphabet=st.sampled_from(list('ab 中文，,"\t:[]/_-.&<>')), max_size=8),
    st.integers(-5, 5),
    rich_title,
)
urls = st.one_of(
    st.none(), st.sampled_from(["https://gov.cn/a.html?b=2&a=1", "http://[::1", "https://x.cn:99999/", "gov.cn/x"])
)
marks = st.one_of(
    st.sampled_from(["转发", "原创", "", " 是 ", "TRUE", "否", None]),
    st.sampled_from([True, False, 1, 0, 2, "maybe"]),
)
columns = st.one_of(st.none(), st.sampled_from(["要闻", " 通知 ", 7]))
valid_row = st.tuples(ids, st.sampled_from(["通知公告", "第x期", " 政务 动态 "]), urls, valid_dates, marks, columns)
any_row = st.tuples(ids, titles, urls, any_dates, marks, columns)
blank_row = st.just((None, None, None, None, None, None))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.one_of(valid_row, valid_row, valid_row, any_row, blank_row), min_size=1, max_size=10),
    zone=st.sampled_from(ZONES),
    kind=st.sampled_from(["weibo", "website", "other"]),
    epoch_1904=st.booleans(),
    chart_first=st.booleans(),
    shared=st.booleans(),
)
@example(
    rows=[("1", "标题", None, datetime(2020, 6, 1, 8, 0, 0, 500), "原创", None)],
    zone="Asia/Shanghai",
    kind="weibo",
    epoch_1904=False,
    chart_first=False,
    shared=False,
)
def test_calamine_gives_the_row_by_row_records(  # type: ignore[no-untyped-def]
    tmp_path: Path, rows, zone: str, kind: str, epoch_1904: bool, chart_first: bool, shared: bool
) -> None:
    path = tmp_path / "export.xlsx"
    write_workbook(path, [list(row) for row in rows], epoch_1904=epoch_1904, chart_first=chart_first, shared=shared)
    try:
        expected, read, invalid = row_records(path, zone, kind)
    except InputError:
        with pytest.raises(InputError):  # the same file refused the same way before any row is read
            column_records(path, zone, kind)
        return
    found = column_records(path, zone, kind)
    event("invalid row" if invalid else "given back" if found is None else "read by calamine")
    if invalid:
        assert found is None  # an invalid row: the row-by-row reader names it
        return
    if found is not None:
        assert found == (expected, read)


def plain_rows(count: int) -> list[list[Any]]:
    start = datetime(2019, 1, 1, 8, 0)
    return [
        [
            4400000000000000.0 + n if n % 2 else str(4400000000000000 + n),
            f"园区动态第{n}条",
            f"https://www.example.gov.cn/{n}.html" if n % 3 else None,
            start + timedelta(minutes=n * 97, seconds=n % 60, microseconds=(n % 1000) * 1000 + 500 * (n % 2)),
            "转发" if n % 3 == 0 else "原创",
            "要闻" if n % 5 == 0 else None,
        ]
        for n in range(count)
    ]


@pytest.fixture(params=["checked here", "checked in a process"])
def checks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of checking a sheet's bytes: in the importing process, or in a process of its own (large sheets)."""
    if request.param == "checked in a process":
        monkeypatch.setattr(fastxlsx, "CHECK_IN_PROCESS_BYTES", 0)
    return str(request.param)


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("epoch_1904", [False, True])
def test_a_plain_export_is_read_by_calamine(tmp_path: Path, shared: bool, epoch_1904: bool, checks: str) -> None:
    """Date cells with half milliseconds, float and text ids, blank rows: read by calamine, every record the same."""
    path = tmp_path / "export.xlsx"
    rows = plain_rows(3000)
    rows[7:7] = [[None] * 6, [None] * 6]
    write_workbook(path, rows, epoch_1904=epoch_1904, chart_first=True, shared=shared)
    expected, read, invalid = row_records(path, "Asia/Shanghai", "weibo")
    assert not invalid and read == 3000
    assert column_records(path, "Asia/Shanghai", "weibo") == (expected, read)


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("=1+2", "a formula without its result"),
        ("a_x000D_b", "an escape calamine would unescape"),
    ],
)
def test_what_calamine_reads_otherwise_goes_back_to_the_row_by_row_reader(
    tmp_path: Path, cell: str, reason: str
) -> None:
    path = tmp_path / "export.xlsx"
    rows = plain_rows(20)
    rows[5][5] = cell
    write_workbook(path, rows, epoch_1904=False, chart_first=False, shared=False)
    assert column_records(path, "Asia/Shanghai", "weibo") is None, reason


def patch_sheet(path: Path, change: Any) -> None:
    part = "xl/worksheets/sheet1.xml"
    with zipfile.ZipFile(path) as archive:
        content = archive.read(part)
    changed = change(content)
    assert changed != content
    path.write_bytes(patch_xlsx(path.read_bytes(), part, changed))


@pytest.mark.parametrize(
    "change",
    [
        # An error cell: calamine reads it as empty, the row-by-row reader as its text (#REF!).
        lambda xml: re.sub(rb'<c r="B4"[^>]*>.*?</c>', b'<c r="B4" t="e"><v>#REF!</v></c>', xml, count=1),
        # A control character, which lxml refuses and calamine does not.
        lambda xml: xml.replace(b'<c r="B4" t="inlineStr"><is><t>', b'<c r="B4" t="inlineStr"><is><t>&#1;', 1),
        # Rows out of order: calamine sorts them, the row-by-row reader keeps the file's order.
        lambda xml: xml.replace(b'<row r="4">', b'<row r="40">', 1),
        # A row holding only spaces, in a <t> without xml:space: calamine trims it to an empty (skipped) row.
        lambda xml: re.sub(
            rb'<row r="5".*?</row>', b'<row r="5"><c r="B5" t="inlineStr"><is><t>  </t></is></c></row>', xml
        ),
        # Rich text whose runs meet at a space calamine trims.
        lambda xml: re.sub(
            rb'(<c r="B4" t="inlineStr">)<is>.*?</is>', rb"\1<is><r><t>a </t></r><r><t>b</t></r></is>", xml
        ),
        # A number written with spaces, which only Python reads as a number.
        lambda xml: re.sub(rb"(<c r=\"A3\"[^>]*><v>)([^<]*)(</v>)", rb"\1 \2 \3", xml, count=1),
    ],
)
def test_cells_calamine_reads_otherwise_are_found(tmp_path: Path, change: Any, checks: str) -> None:
    path = tmp_path / "export.xlsx"
    write_workbook(path, plain_rows(20), epoch_1904=False, chart_first=False, shared=False)
    patch_sheet(path, change)
    assert column_records(path, "Asia/Shanghai", "weibo") is None


def test_the_reading_process_gives_the_same_records_by_calamine_and_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "export.xlsx"
    write_workbook(path, plain_rows(2000), epoch_1904=False, chart_first=False, shared=True)

    def read(fast: bool) -> list[tuple[Any, ...]]:
        rejected = RejectedRows()
        records = list(
            parsed_in_child(path, zone="Asia/Shanghai", kind="weibo", format="xlsx", encoding=None, now=None,
                            sqlite=True, latest=LATEST, fast=fast, rejected=rejected, on_read=lambda n: None)
        )  # fmt: skip
        assert not rejected.count
        return records

    fast = read(True)
    assert len(fast) == 2000
    assert fast == read(False)


def test_date_only_and_whole_second_cells(tmp_path: Path) -> None:
    """calamine gives dates for whole-day serials and rounds others its own way; the records do not change."""
    path = tmp_path / "export.xlsx"
    rows = [["1", "a", None, date(2020, 6, 1), "原创", None], ["2", "b", None, datetime(2020, 6, 1, 9, 0, 1), "", None]]
    write_workbook(path, rows, epoch_1904=False, chart_first=False, shared=False)
    expected, read, _invalid = row_records(path, "UTC", "weibo")
    assert [r[7] for r in expected] == ["2020-06-01 00:00:00.000000", "2020-06-01 09:00:01.000000"]
    assert column_records(path, "UTC", "weibo") == (expected, read)


def test_a_sheet_starting_below_and_right_of_a1(tmp_path: Path) -> None:
    """Rows and columns before the data: calamine's rows start at its first used column, the lines stay the file's."""
    path = tmp_path / "export.xlsx"
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for number, row in enumerate([HEADER, *plain_rows(30)], 4):
        for column, value in enumerate(row, 3):
            sheet.cell(row=number, column=column, value=value)
    sheet.cell(row=40, column=4, value="最后一行")  # after a gap of blank rows
    sheet.cell(row=40, column=6, value=datetime(2020, 1, 2, 3, 4, 5))
    book.save(path)
    expected, read, invalid = row_records(path, "Asia/Shanghai", "website")
    assert not invalid and read == 31
    assert column_records(path, "Asia/Shanghai", "website") == (expected, read)


def test_a_sheet_larger_than_calamine_may_hold_is_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """calamine and the check of its bytes hold the whole sheet: past the limit the file is read row by row."""
    from channelwatch.sources import files

    path = tmp_path / "export.xlsx"
    write_workbook(path, [HEADER, *plain_rows(50)], epoch_1904=False, chart_first=False, shared=True)
    size = zipfile.ZipFile(path).getinfo("xl/worksheets/sheet1.xml").file_size
    monkeypatch.setattr(files, "_CALAMINE_MAX_SHEET", size)
    export = open_export(path, zone="UTC", kind="weibo", latest=LATEST)
    assert export.columnar is not None
    export.close()
    monkeypatch.setattr(files, "_CALAMINE_MAX_SHEET", size - 1)
    export = open_export(path, zone="UTC", kind="weibo", latest=LATEST)
    assert export.columnar is None
    assert len([e for e in export.rows() if e.__class__ is Observed]) == 50
    export.close()


@pytest.mark.parametrize(
    "change",
    [
        None,
        # Each read by calamine as a valid sheet whose rows the checks refuse only after they were handed on.
        lambda xml: xml.replace(b'<c r="B4" t="inlineStr"><is><t>', b'<c r="B4" t="inlineStr"><is><t>&#1;', 1),
        lambda xml: xml.replace(b'<row r="4">', b'<row r="40">', 1),
        lambda xml: re.sub(rb'<c r="F7"[^>]*>.*?</c>', b'<c r="F7" t="e"><v>#REF!</v></c>', xml, count=1),
    ],
    ids=["plain", "control character", "rows out of order", "error cell"],
)
def test_an_import_checked_in_a_process_stores_what_the_row_by_row_import_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Any
) -> None:
    """The rows go to the store before the checking process answers: its mismatch still gives the file back."""
    from channelwatch.ingest import imports as ingest_imports
    from channelwatch.sources import files
    from tests.conftest import write_instance
    from tests.ingest.test_fastpath import _import, _stored

    path = tmp_path / "export.xlsx"
    write_workbook(path, plain_rows(3000), epoch_1904=False, chart_first=False, shared=False)
    if change is not None:
        patch_sheet(path, change)
    monkeypatch.setattr(fastxlsx, "CHECK_IN_PROCESS_BYTES", 0)
    monkeypatch.setattr(ingest_imports, "READAHEAD_MIN_BYTES", 1 << 40)  # the columnar reader in this process
    given_back: list[str] = []
    verdict = fastxlsx._Checks.verdict

    def watched(self: Any) -> None:
        try:
            verdict(self)
        except fastxlsx.Undecided as exc:
            given_back.append(str(exc))
            raise

    monkeypatch.setattr(fastxlsx._Checks, "verdict", watched)
    outcomes = []
    for fast in (True, False):
        monkeypatch.setattr(files, "_CALAMINE_MAX_SHEET", 64 << 20 if fast else 0)
        root = write_instance(tmp_path / f"instance-{fast}")
        outcomes.append((_import(root, "weibo", path, True, False), _stored(root)))
    assert outcomes[0] == outcomes[1]
    assert bool(given_back) == (change is not None)  # by the checks' answer, after the rows were handed on
    if change is None:
        assert outcomes[0][0][:3] == (3000, 3000, 0)
