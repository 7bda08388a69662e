"""An adversarial corpus of export files: every family of malformed input an inbox can receive.

Each ``Case`` is one file (its name, its bytes) plus how it is imported (``--encoding``) and what
must come of it: ``"ok"`` (exit 0, stored), ``"rejected"`` (exit 1, one Chinese message) or
``"either"`` (a file where both outcomes are right, as long as no traceback and no open run).
``big()`` puts a case's bad row at the end of a file of 4 MiB or more, so that it is read by the
read-ahead child process rather than in the importing process.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from openpyxl import Workbook

HEADER = "标题,发布时间,链接,是否转发"
GOOD_ROW = "园区召开安全生产会议,2020-06-01 09:00,http://www.example.gov.cn/a/1.html,原创"
BIG_BYTES = (4 << 20) + (64 << 10)


@dataclass(frozen=True)
class Case:
    name: str  # file name: its extension picks the format
    data: bytes
    expect: str  # ok | rejected | either
    family: str
    encoding: str | None = None
    says: str | None = None  # a fragment the message must hold when rejected


def _csv(rows: list[str], header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode("utf-8")


def _row(title: str = "通知", date: str = "2020-06-01 09:00", url: str = "", repost: str = "原创") -> str:
    def quote(cell: str) -> str:
        return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\n\r') else cell

    return ",".join(quote(c) for c in (title, date, url, repost))


# --- dates, offsets, timestamps ------------------------------------------------------------------------

BAD_DATES = [
    "0001-01-01",
    "0001-01-01T00:00+14:00",
    "9999-12-31T23:00-05:00",
    "9999-12-31 23:59:59",
    "1e400",
    "-1e400",
    "99999999999小时前",
    "99999999999999999999",
    "2020",
    "2020年",
    "1999-12-31",
    "1970-01-01 08:00",
    "2999-01-01",
    "2020-06-01T08:00+24:00",
    "2020-06-01T08:00+08:60",
    "2020-06-01 08:00 -25:00",
    "2020-06-01T08:00+99:99",
    "-1",
    "-43000",
    "-0.5",
    "NaN",
    "inf",
    "2020-02-30",
    "2020-13-01",
    "2020-06-01T24:00:01",
    "2020-06-01 08:61",
    "9" * 5000,
    "\u202e2020-06-01",
    "２０２０年１３月１日",
    "Sat Nov 31 10:00:00 +0800 2020",
    "Sat Nov 28 10:00:00 +2400 2020",
    "昨天 25:00",
    "00000000",
    "20201340",
]

GOOD_DATES = {
    "20210305": "2021-03-05",
    "2021.3.5": "2021-03-05",
    "2021年3月5日 星期五": "2021-03-05",
    "2021年3月5日 上午9:30": "2021-03-05",
    "2021-03-05 下午3:05": "2021-03-05",
    "2021/3/5 下午3:05": "2021-03-05",
}


def date_cases() -> Iterator[Case]:
    for number, text in enumerate(BAD_DATES):
        yield Case(f"date-{number}.csv", _csv([GOOD_ROW, _row(date=text)]), "rejected", "dates", says="第3行")
    for number, text in enumerate(GOOD_DATES):
        yield Case(f"gooddate-{number}.csv", _csv([_row(title=f"通知{number}", date=text)]), "ok", "dates")
    # JSON numbers reach the date parser as floats and ints, not as text.
    for number, value in enumerate(
        ["1e400", "-1e400", "NaN", "Infinity", "-5", "2020", "1e30", "-1e30", "1" + "0" * 5000]
    ):
        data = ('[{"标题": "通知", "发布时间": ' + value + "}]").encode()
        yield Case(f"jsondate-{number}.json", data, "rejected", "dates")


# --- repost markers and URLs ----------------------------------------------------------------------------


def marker_and_url_cases() -> Iterator[Case]:
    for number, marker in enumerate(["2", "NaN", "-1", "真的", "1.5", "是的"]):
        rows = [GOOD_ROW, _row(repost=marker)]
        yield Case(f"repost-{number}.csv", _csv(rows), "rejected", "repost", says="转发标记")
    for number, value in enumerate(["2", "NaN", "0.5", '"maybe"', "[]", "{}"]):
        data = ('[{"标题": "通知", "发布时间": "2020-06-01", "是否转发": ' + value + "}]").encode()
        yield Case(f"jsonrepost-{number}.json", data, "rejected", "repost")
    bad_urls = [
        "http://[::1",
        "http://[zz::1]/a.html",
        "http://www.example.gov.cn:99999/a.html",
        "http://www.example.gov.cn:-1/a.html",
        "http://www.example.gov.cn:8o/a.html",
        "https://a:b:c:d/",
    ]
    for number, url in enumerate(bad_urls):
        yield Case(f"url-{number}.csv", _csv([GOOD_ROW, _row(url=url)]), "rejected", "urls", says="链接")
    long_url = "http://www.example.gov.cn/" + "a" * 8000 + ".html"
    yield Case("url-long.csv", _csv([_row(url=long_url)]), "ok", "urls")
    yield Case("url-brackets.csv", _csv([_row(url="http://[::1]]/a")]), "either", "urls")
    yield Case("date-zeros.csv", _csv([_row(date="2020-06-01" + "0" * 300)]), "either", "dates")
    yield Case("url-ipv6.csv", _csv([_row(url="http://[2001:db8::1]:8080/a.html")]), "ok", "urls")


# --- text that databases treat differently ---------------------------------------------------------------


def text_cases() -> Iterator[Case]:
    yield Case("nul-title.csv", _csv([_row(title="通知\x00公告")]), "ok", "text")
    yield Case("nul-url.csv", _csv([_row(url="http://www.example.gov.cn/a\x00.html")]), "ok", "text")
    yield Case("controls.csv", _csv([_row(title="通知\x1b[31m红字\x07\x08")]), "ok", "text")
    yield Case("huge-field.csv", _csv([_row(title="长" * 200_000)]), "rejected", "text")
    yield Case("many-columns.csv", _csv([GOOD_ROW + ",x" * 50_000], header=HEADER + ",备注" * 50_000), "ok", "text")
    yield Case("no-header-match.csv", _csv(["a,b"], header="甲" * 5000 + ",乙"), "rejected", "text")
    lone = '[{"标题": "通知\\ud800", "发布时间": "2020-06-01"}, {"标题": "\\udfff\\ud800x", "发布时间": "2020-06-02"}]'
    yield Case("surrogates.json", lone.encode(), "ok", "text")
    yield Case("surrogate-key.json", '[{"标题\\ud800": "x", "发布时间": "2020-06-01"}]'.encode(), "rejected", "text")
    yield Case("nul-json.json", '[{"标题": "通知\\u0000", "发布时间": "2020-06-01"}]'.encode(), "ok", "text")


# --- encodings --------------------------------------------------------------------------------------------

_SIMPLE = HEADER + "\n" + GOOD_ROW + "\n" + _row(title="第二条", date="2020-06-02 10:00") + "\n"


def encoding_cases() -> Iterator[Case]:
    yield Case("utf16le-nobom.csv", _SIMPLE.encode("utf-16-le"), "ok", "encodings")
    yield Case("utf16be-nobom.csv", _SIMPLE.encode("utf-16-be"), "ok", "encodings")
    yield Case("utf16-bom.csv", _SIMPLE.encode("utf-16"), "ok", "encodings")
    yield Case("utf32.csv", _SIMPLE.encode("utf-32"), "either", "encodings")
    yield Case("gbk-as-utf8.csv", _SIMPLE.encode("gbk"), "rejected", "encodings", encoding="utf-8")
    for number, name in enumerate(
        ["foo", "rot13", "zip", "base64", "hex", "idna", "utf-7", "", "utf_8\x00", "x" * 500]
    ):
        yield Case(f"forced-{number}.csv", _SIMPLE.encode("utf-8"), "either", "encodings", encoding=name)
    yield Case("random.csv", bytes(range(256)) * 40, "rejected", "encodings")
    yield Case("odd-utf16.csv", _SIMPLE.encode("utf-16-le")[:-1], "either", "encodings")
    yield Case("empty.csv", b"", "rejected", "encodings")
    yield Case("bom-only.csv", b"\xef\xbb\xbf", "rejected", "encodings")
    yield Case(
        "mixed.csv", _SIMPLE.encode("utf-8") + "乱码行,2020-06-03,,原创\n".encode("gbk"), "rejected", "encodings"
    )


# --- JSON structures --------------------------------------------------------------------------------------


def json_cases() -> Iterator[Case]:
    yield Case("deep-list.json", b"[" * 100_000 + b"]" * 100_000, "rejected", "json")
    yield Case("deep-dict.json", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "rejected", "json")
    inner = (
        '{"items": [{"标题": "x", "发布时间": "2020-06-01", "其他": '.encode() + b"[" * 50_000 + b"]" * 50_000 + b"}]}"
    )
    yield Case("deep-inside.json", inner, "either", "json")
    yield Case("scalar.json", b"42", "rejected", "json")
    yield Case("null.json", b"null", "rejected", "json")
    yield Case("strings.json", b'["a", "b"]', "rejected", "json")
    yield Case("truncated.json", b'[{"\xe6\xa0\x87\xe9\xa2\x98": "x", ', "rejected", "json")
    yield Case("gbk.json", '[{"标题": "通知", "发布时间": "2020-06-01"}]'.encode("gbk"), "rejected", "json")
    yield Case(
        "bigint.json",
        b'[{"id": ' + b"9" * 10_000 + b', "title": "x", "published_at": "2020-06-01"}]',
        "rejected",
        "json",
    )
    wide = {f"k{n}": n for n in range(1000)}
    wide.update({"标题": "通知", "发布时间": "2020-06-01"})
    yield Case("wide.json", json.dumps([wide]).encode(), "ok", "json")
    yield Case("weibo-bad.json", json.dumps(_weibo_payload("1e400")).encode(), "either", "json")
    yield Case("weibo-bad-2.json", json.dumps(_weibo_payload("99999999999小时前")).encode(), "either", "json")
    yield Case(
        "weibo-year0.json", json.dumps(_weibo_payload("Sat Nov 28 10:00:00 +0800 0001")).encode(), "either", "json"
    )
    wechat = {
        "item": [
            {"article_id": "x", "content": {"news_item": [{"title": "t", "url": "http://[::1"}]}, "update_time": 1e300}
        ],
        "total_count": 1,
        "item_count": 1,
    }
    yield Case("wechat-bad.json", json.dumps(wechat).encode(), "either", "json")


def _weibo_payload(created_at: str) -> dict[str, object]:
    card = {
        "card_type": 9,
        "mblog": {"id": "4400000000000001", "mid": "4400000000000001", "text": "x", "created_at": created_at},
    }
    return {"ok": 1, "data": {"cards": [card], "cardlistInfo": {"page": None}}}


# --- XLSX -------------------------------------------------------------------------------------------------


def xlsx_bytes(rows: list[list[object]], header: list[str] | None = None) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(header or ["标题", "发布时间", "链接", "是否转发"])
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def patch_xlsx(data: bytes, part: str, change: object) -> bytes:
    """``data`` with one part replaced: by bytes, or by a function of its text."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == part:
                content = change if isinstance(change, bytes) else change(content.decode()).encode()  # type: ignore[operator]
            target.writestr(info.filename, content)
    return out.getvalue()


def with_shared_strings(data: bytes, sheet: Callable[[bytes], bytes], strings: Callable[[], bytes]) -> bytes:
    """``data`` with its sheet rewritten by ``sheet`` and a shared strings part holding ``strings()`` (the
    ``<sst>`` document, asked for once the sheet is rewritten), declared as Excel and WPS declare it."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                content = sheet(content)
            elif info.filename == "[Content_Types].xml":
                content = content.replace(
                    b"</Types>",
                    b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-'
                    b'officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
                )
            elif info.filename == "xl/_rels/workbook.xml.rels":
                content = content.replace(
                    b"</Relationships>",
                    b'<Relationship Id="rIdStrings" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                    b'relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
                )
            target.writestr(info.filename, content)
        target.writestr("xl/sharedStrings.xml", strings())
    return out.getvalue()


def with_dimension(data: bytes, ref: str) -> bytes:
    return patch_xlsx(
        data,
        "xl/worksheets/sheet1.xml",
        lambda xml: re.sub(r'<dimension ref="[^"]*"/>', f'<dimension ref="{ref}"/>', xml),
    )


def xlsx_cases() -> Iterator[Case]:
    good = xlsx_bytes(
        [[f"通知{n}", f"2020-06-{n + 1:02d} 09:00", f"http://www.example.gov.cn/{n}.html", "原创"] for n in range(10)]
    )
    yield Case("good.xlsx", good, "ok", "xlsx")
    for number, ref in enumerate(["A1:B3", "A1", "A1:D2", "A1:XFD1048576", "Z99:A1", "garbage"]):
        yield Case(f"dimension-{number}.xlsx", with_dimension(good, ref), "ok", "xlsx")
    formula = xlsx_bytes([["通知", "2020-06-01", "", "原创"], ["公式", "=TODAY()", "", "原创"]])
    yield Case("formula.xlsx", formula, "rejected", "xlsx", says="公式单元格没有保存的计算结果")
    sheet = "xl/worksheets/sheet1.xml"
    yield Case("truncated.xlsx", good[: len(good) // 2], "rejected", "xlsx")
    yield Case("not-zip.xlsx", b"PK\x03\x04" + b"\x00" * 100, "rejected", "xlsx")
    yield Case("sheet-garbage.xlsx", patch_xlsx(good, sheet, b"<worksheet><sheetData><row><c"), "rejected", "xlsx")
    yield Case("sheet-binary.xlsx", patch_xlsx(good, sheet, bytes(range(256))), "rejected", "xlsx")
    yield Case("workbook-garbage.xlsx", patch_xlsx(good, "xl/workbook.xml", b"<<<"), "rejected", "xlsx")
    yield Case(
        "styles-garbage.xlsx",
        patch_xlsx(good, "xl/styles.xml", b"<styleSheet><numFmts><numFmt numFmtId='x'/>"),
        "either",
        "xlsx",
    )
    yield Case("rels-garbage.xlsx", patch_xlsx(good, "xl/_rels/workbook.xml.rels", b"nope"), "rejected", "xlsx")
    yield Case("content-types-gone.xlsx", patch_xlsx(good, "[Content_Types].xml", b""), "either", "xlsx")
    shared = lambda xml: xml.replace('t="inlineStr"><is><t>通知1</t></is>', 't="s"><v>999999</v>')  # noqa: E731
    yield Case("shared-index.xlsx", patch_xlsx(good, sheet, shared), "either", "xlsx")
    bad_serial = lambda xml: xml.replace('<row r="3">', '<row r="3"><c r="Z3" t="n" s="0"><v>1e400</v></c>', 1)  # noqa: E731
    yield Case("serial-inf.xlsx", patch_xlsx(good, sheet, bad_serial), "either", "xlsx")
    entities = "".join(
        f'<!ENTITY {name} "{("&" + previous + ";") * 10 if previous else "a" * 10}">'
        for previous, name in zip(["", "a", "b", "c", "d", "e", "f"], "abcdefg", strict=True)
    )
    entity = (
        f'<?xml version="1.0"?><!DOCTYPE x [{entities}]>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        '<row r="1"><c r="A1" t="inlineStr"><is><t>&g;</t></is></c></row></sheetData></worksheet>'
    )
    yield Case("laughs.xlsx", patch_xlsx(good, sheet, entity.encode()), "rejected", "xlsx")
    yield Case("bomb.xlsx", xlsx_bomb(), "rejected", "xlsx", says="解压后过大")
    negative = xlsx_bytes([["通知", -5, "", "原创"]])
    yield Case("negative-serial.xlsx", negative, "rejected", "xlsx", says="负数")
    year_only = xlsx_bytes([["通知", 2020, "", "原创"]])
    yield Case("year-only.xlsx", year_only, "rejected", "xlsx", says="只有年份")
    compact = xlsx_bytes([["通知", 20210305, "", "原创"]])
    yield Case("compact-number.xlsx", compact, "ok", "xlsx")
    no_sheets = patch_xlsx(good, "xl/workbook.xml", lambda xml: re.sub(r"<sheets>.*</sheets>", "<sheets/>", xml))
    yield Case("no-sheets.xlsx", no_sheets, "rejected", "xlsx")


def xlsx_bomb(unpacked: int = 1 << 30) -> bytes:
    """A real XLSX whose sheet XML unpacks to ``unpacked`` bytes of whitespace: about 1 MB on disk."""
    good = xlsx_bytes([["通知", "2020-06-01", "", "原创"]])
    source = zipfile.ZipFile(io.BytesIO(good))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename != "xl/worksheets/sheet1.xml":
                target.writestr(info.filename, content)
                continue
            text = content.decode()
            head, tail = text.split("<sheetData>", 1)
            with target.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as part:
                part.write((head + "<sheetData>").encode())
                chunk = b" " * (1 << 20)
                for _ in range(unpacked >> 20):
                    part.write(chunk)
                part.write(tail.encode())
    return out.getvalue()


# --- the whole corpus ---------------------------------------------------------------------------------------


def corpus() -> list[Case]:
    return [
        *date_cases(),
        *marker_and_url_cases(),
        *text_cases(),
        *encoding_cases(),
        *json_cases(),
        *xlsx_cases(),
    ]


def big(case: Case) -> Case:
    """``case`` in a file of 4 MiB or more, so that the read-ahead child reads it.

    CSV: its rows come after enough valid rows. XLSX: an incompressible picture is added to the
    archive, which leaves the sheet as it was.
    """
    if case.name.endswith(".xlsx"):
        import os

        out = io.BytesIO()
        try:
            source = zipfile.ZipFile(io.BytesIO(case.data))
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
                for info in source.infolist():
                    target.writestr(info, source.read(info.filename))
                target.writestr("xl/media/image1.png", os.urandom(BIG_BYTES), compress_type=zipfile.ZIP_STORED)
        except (zipfile.BadZipFile, EOFError, OSError):
            return replace(case, name="big-" + case.name, data=case.data + os.urandom(BIG_BYTES))
        return replace(case, name="big-" + case.name, data=out.getvalue())
    if case.name.endswith(".csv"):
        header, _, rest = case.data.partition(b"\n")
        padding_row = _row(title="园区动态：安全生产检查与企业服务，" + "详" * 20, date="2020-05-01 08:00")
        count = BIG_BYTES // len(padding_row.encode()) + 1
        padding = "".join(
            padding_row.replace("2020-05-01", f"2020-05-{n % 28 + 1:02d}").replace("园区", f"园区{n}") + "\n"
            for n in range(count)
        )
        says = None if case.says and case.says.startswith("第") else case.says
        data = header + b"\n" + padding.encode() + rest
        return replace(case, name="big-" + case.name, data=data, says=says)
    raise ValueError(f"no big form of {case.name}")
