"""Imports of exported logs: encodings, XLSX cells, JSON lists, saved Weibo/WeChat answers, bad rows."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from openpyxl import Workbook

from channelwatch import store
from channelwatch.errors import InputError
from channelwatch.ingest.imports import import_file
from channelwatch.instance.config import load_instance
from channelwatch.stats.figures import Period, summarise
from channelwatch.stats.listing import list_publications
from channelwatch.store import Store, open_store
from tests.conftest import REPO

DATA = REPO / "tests" / "data"
CST = timezone(timedelta(hours=8))

HEADER = ["微博ID", "微博内容", "发布时间", "是否转发"]
ROWS = [
    ["4400000000000001", "园区召开安全生产会议", "2020-06-01 08:00", "原创"],
    ["4400000000000002", "//@彭阳发布：防汛提示", "2020/6/2 9:30", "转发"],
    ["4400000000000003", "王洼产业园区复工复产情况", "2020年6月3日 10:00", "原创"],
]


@pytest.fixture
def opened(instance_dir: Path) -> Store:
    result = open_store(load_instance(instance_dir))
    yield result
    result.dispose()


def totals(opened: Store, year: int = 2020) -> dict[str, tuple[int, int]]:
    with store.read(opened.engine) as conn:
        figures = summarise(conn, opened.office_id, Period(year))
    return {c.key: (c.total, c.reposts) for c in figures.channels}


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8", header: list[str] = HEADER) -> Path:
    text = "\r\n".join(",".join(row) for row in [header, *rows]) + "\r\n"
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_encodings_are_detected(opened: Store, tmp_path: Path, encoding: str) -> None:
    rows = [*ROWS, ["4400000000000004", "𠀾镕堃喆：生僻字的人名也能读", "2020-06-04", "原创"]]
    if encoding == "gbk":
        rows = rows[:3]  # GBK cannot hold the rare characters; GB18030 can
    path = write_csv(tmp_path / "weibo.csv", rows, encoding)
    result = import_file(opened, "weibo", path)
    assert (result.rows_read, result.rows_new, result.rows_rejected) == (len(rows), len(rows), 0)
    assert result.encoding in {"utf-8", "utf-8-sig", "gb18030"}
    with store.read(opened.engine) as conn:
        titles = {p.title for p in list_publications(conn, opened.channel_id("weibo"), Period(2020), "Asia/Shanghai")}
    assert "园区召开安全生产会议" in titles
    assert totals(opened)["weibo"] == (len(rows), 1)


def test_forced_encoding(opened: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "weibo.csv", ROWS, "gbk")
    result = import_file(opened, "weibo", path, encoding="gbk")
    assert result.rows_new == 3
    with pytest.raises(InputError, match="utf-8"):
        import_file(opened, "weibo", write_csv(tmp_path / "again.csv", ROWS, "gbk"), encoding="utf-8")


def test_headers_are_matched_loosely(opened: Store, tmp_path: Path) -> None:
    path = tmp_path / "site.csv"
    path.write_text(
        " 标 题 ,所属栏目,发布时间,网址,备注\n"
        "通知一,通知公告,2020-03-01,http://www.example.gov.cn/a.html,x\n"
        "通知二,政策文件,2020-03-02,http://www.example.gov.cn/b.html,\n",
        encoding="utf-8",
    )
    assert import_file(opened, "website", path).rows_new == 2
    with store.read(opened.engine) as conn:
        rows = list_publications(conn, opened.channel_id("website"), Period(2020, month=3), "Asia/Shanghai")
    assert [(r.title, r.column) for r in rows] == [("通知一", "通知公告"), ("通知二", "政策文件")]


def test_tab_separated_export(opened: Store, tmp_path: Path) -> None:
    path = tmp_path / "weibo.tsv"
    path.write_text("\n".join("\t".join(r) for r in [HEADER, *ROWS]) + "\n", encoding="utf-8")
    assert import_file(opened, "weibo", path).rows_new == 3


def test_xlsx_date_cells_serials_and_text(opened: Store, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["标题", "发表时间", "链接", "类型"])
    sheet.append(["日期单元格", datetime(2020, 12, 31, 23, 30), "http://w.gov.cn/1.html", "原创"])
    sheet.append(["序号日期", 44196.5, "http://w.gov.cn/2.html", "转载"])  # 2020-12-31 12:00
    sheet.append(["文本日期", "2021-01-01 00:30", "http://w.gov.cn/3.html", "原创"])
    sheet.append([None, None, None, None])  # blank rows are not data
    sheet.append(["整数编号", 44197, "http://w.gov.cn/4.html", None])  # 2021-01-01
    sheet.cell(row=2, column=2).number_format = "yyyy-mm-dd hh:mm"
    path = tmp_path / "site.xlsx"
    book.save(path)
    result = import_file(opened, "website", path)
    assert (result.format, result.rows_read, result.rows_new) == ("xlsx", 4, 4)
    assert totals(opened, 2020)["website"] == (2, 1)
    assert totals(opened, 2021)["website"] == (2, 0)


def test_json_objects_or_lists_where_text_belongs_are_refused(opened: Store, tmp_path: Path) -> None:
    """A title of {"a": 1} was stored as the text "{'a': 1}"."""
    path = tmp_path / "odd.json"
    rows = [
        {"标题": {"a": 1}, "发布时间": "2020-06-01 09:00"},
        {"标题": "正常", "发布时间": "2020-06-02 09:00"},
        {"标题": "有链接", "链接": ["http://x.gov.cn/a.html"], "发布时间": "2020-06-03 09:00"},
    ]
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(InputError) as caught:
        import_file(opened, "website", path)
    assert [p.describe() for p in caught.value.problems] == [
        "第1行，字段「标题」，值「{'a': 1}」：这里应是文字，却是一个对象（{…}）",
        "第3行，字段「链接」，值「['http://x.gov.cn/a.html']」：这里应是文字，却是一个列表（[…]）",
    ]
    assert totals(opened)["website"] == (0, 0)


def test_json_list(opened: Store, tmp_path: Path) -> None:
    path = tmp_path / "wechat.json"
    path.write_text(
        json.dumps(
            [
                {
                    "title": "文章一",
                    "url": "https://mp.weixin.qq.com/s/AAA",
                    "published_at": "2020-05-01T09:00:00+08:00",
                },
                {
                    "title": "文章二",
                    "url": "https://mp.weixin.qq.com/s/BBB?scene=1",
                    "published_at": 1588381200,
                    "is_repost": True,
                },
            ],
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    result = import_file(opened, "wechat", path)
    assert (result.format, result.rows_new) == ("json", 2)
    assert totals(opened)["wechat"] == (2, 1)


def test_saved_weibo_page(opened: Store, tmp_path: Path) -> None:
    path = tmp_path / "getIndex.json"
    shutil.copy(DATA / "weibo_getindex_page1.json", path)
    result = import_file(opened, "weibo", path)
    # The pinned post (January), the post, the repost nested in a card_group, the repost of a deleted
    # original; the card_type 58 divider is no post; retweeted originals are not the office's posts.
    assert (result.format, result.rows_read, result.rows_new, result.rows_rejected) == ("weibo-json", 4, 4, 0)
    assert totals(opened)["weibo"] == (4, 2)
    with store.read(opened.engine) as conn:
        rows = list_publications(conn, opened.channel_id("weibo"), Period(2020), "Asia/Shanghai")
    assert [r.platform_id for r in rows] == [
        "4400000000000001",
        "4556000000000001",
        "4556000000000002",
        "4556000000000003",
    ]
    assert rows[3].url == "https://weibo.com/5678901234/Jx3Kb1"
    assert rows[3].published_at == "2020-11-28 10:00"
    assert "<a" not in rows[3].title
    assert [r.is_repost for r in rows] == [False, True, True, False]


def test_saved_weibo_page_with_relative_dates(opened: Store, tmp_path: Path) -> None:
    import os

    from tests.fakeplatforms import weibo_id_for

    payload = json.loads((DATA / "weibo_getindex_page1.json").read_text(encoding="utf-8"))
    mblog = payload["data"]["cards"][1]["mblog"]
    mblog["created_at"] = "3小时前"
    # A real id encodes its post's time: a relative date takes it, however old the saved copy is.
    mblog["id"] = mblog["mid"] = weibo_id_for(datetime(2020, 11, 28, 12, 0, tzinfo=CST), 7)
    path = tmp_path / "getIndex.json"
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    copied = datetime(2026, 3, 1, 9, 0, tzinfo=CST).timestamp()
    os.utime(path, (copied, copied))  # a page saved in 2020 and copied later
    import_file(opened, "weibo", path)
    with store.read(opened.engine) as conn:
        rows = list_publications(conn, opened.channel_id("weibo"), Period(2020, month=11), "Asia/Shanghai")
    assert [r.published_at for r in rows if r.platform_id == mblog["id"]] == ["2020-11-28 12:00"]


def batchget(pushes: list[tuple[str, int, list[tuple[str, str, str]]]]) -> dict[str, object]:
    return {
        "total_count": len(pushes),
        "item_count": len(pushes),
        "item": [
            {
                "article_id": article_id,
                "update_time": stamp,
                "content": {
                    "news_item": [
                        {
                            "title": title,
                            "author": author,
                            "digest": "",
                            "content_source_url": "",
                            "url": url,
                            "is_deleted": False,
                        }
                        for title, author, url in articles
                    ]
                },
            }
            for article_id, stamp, articles in pushes
        ],
    }


def wx(mid: int, idx: int) -> str:
    return f"https://mp.weixin.qq.com/s?__biz=MzA5NjE0NDY2Mg==&mid={mid}&idx={idx}&sn=s{mid}{idx}"


def test_saved_wechat_batchget_counts_articles_and_pushes(opened: Store, tmp_path: Path) -> None:
    stamp = int(datetime(2020, 8, 3, 18, 0, tzinfo=CST).timestamp())
    payload = batchget(
        [
            ("OgU_1", stamp, [("头条", "管委会", wx(1, 1)), ("次条", "转载", wx(1, 2)), ("三条", "管委会", wx(1, 3))]),
            ("OgU_2", stamp + 86400, [("单篇", "管委会", wx(2, 1))]),
        ]
    )
    path = tmp_path / "batchget.json"
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    result = import_file(opened, "wechat", path)
    assert (result.format, result.rows_new) == ("wechat-json", 4)
    with store.read(opened.engine) as conn:
        figures = summarise(conn, opened.office_id, Period(2020))
    wechat = next(c for c in figures.channels if c.key == "wechat")
    assert (wechat.total, wechat.reposts, wechat.pushes) == (4, 1, 2)

    # The back end's Excel export of the same pushes (long URLs with chksm/scene) adds nothing.
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["群发时间", "文章标题", "文章链接", "是否转载"])
    for mid, idx in [(1, 1), (1, 2), (1, 3), (2, 1)]:
        sheet.append(["2020-08-03 18:00", "x", wx(mid, idx) + "&chksm=ab12&scene=21#wechat_redirect", "否"])
    xlsx = tmp_path / "export.xlsx"
    book.save(xlsx)
    again = import_file(opened, "wechat", xlsx)
    assert (again.rows_new, again.rows_known) == (0, 4)
    assert totals(opened)["wechat"] == (4, 1)


def test_overlapping_exports_count_once(opened: Store, tmp_path: Path) -> None:
    first = write_csv(tmp_path / "h1.csv", ROWS[:2])
    second = write_csv(tmp_path / "h2.csv", ROWS[1:])
    assert import_file(opened, "weibo", first).rows_new == 2
    result = import_file(opened, "weibo", second)
    assert (result.rows_new, result.rows_known) == (1, 1)
    assert totals(opened)["weibo"] == (3, 1)
    # Re-importing both changes no count.
    import_file(opened, "weibo", first)
    import_file(opened, "weibo", second)
    assert totals(opened)["weibo"] == (3, 1)


def test_duplicate_rows_inside_one_file(opened: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "dup.csv", [ROWS[0], ROWS[0], ROWS[1]])
    result = import_file(opened, "weibo", path)
    assert (result.rows_read, result.rows_new, result.rows_known) == (3, 2, 1)


def test_website_article_in_two_columns_counts_once(opened: Store, tmp_path: Path) -> None:
    path = tmp_path / "site.csv"
    path.write_text(
        "标题,栏目,发布时间,链接\n"
        "通知,通知公告,2020-03-01,http://www.example.gov.cn/xxgk/t1.html\n"
        "通知,工作动态,2020-03-01,HTTP://WWW.EXAMPLE.GOV.CN:80/xxgk/t1.html?from=gzdt#top\n",
        encoding="utf-8",
    )
    assert import_file(opened, "website", path).rows_new == 1


def test_rejected_file_stores_nothing(opened: Store, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "bad.csv",
        [
            ROWS[0],
            ["4400000000000009", "没有日期", "", "原创"],
            ["4400000000000010", "日期错", "2020-02-30", "原创"],
            ["4400000000000011", "", "2020-06-05", "原创"],
            ["4400000000000012", "标记错", "2020-06-05", "也许"],
        ],
    )
    with pytest.raises(InputError) as caught:
        import_file(opened, "weibo", path)
    message = str(caught.value)
    assert "整个文件未导入" in message
    assert "第3行，字段「发布时间」，值「」：缺少发布时间" in message
    assert "第4行，字段「发布时间」，值「2020-02-30」：不存在的日期" in message
    assert "第5行" in message and "标题和链接都为空" in message
    assert "第6行，字段「是否转发」，值「也许」" in message
    assert len(caught.value.problems) == 4
    assert totals(opened)["weibo"] == (0, 0)
    with store.read(opened.engine) as conn:
        from channelwatch.stats.listing import list_runs

        runs = list_runs(conn, opened, limit=5)
    assert runs[0].status == "rejected" and runs[0].rows_rejected == 4 and runs[0].rows_new == 0


def test_skip_invalid_writes_rejected_rows(opened: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "mixed.csv", [ROWS[0], ["4400000000000009", "没有日期", "", "原创"], ROWS[2]])
    result = import_file(opened, "weibo", path, skip_invalid=True)
    assert (result.rows_read, result.rows_new, result.rows_rejected) == (3, 2, 1)
    assert result.rejected_file == tmp_path / "mixed.rejected.csv"
    rejected = result.rejected_file.read_text(encoding="utf-8-sig").splitlines()
    assert rejected[0] == ",".join([*HEADER, "拒收原因"])
    assert rejected[1].startswith("4400000000000009,没有日期,,原创,第3行")
    assert totals(opened)["weibo"] == (2, 0)


def test_a_rejected_rows_file_being_corrected_is_never_written_over(opened: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "mixed.csv", [ROWS[0], ["4400000000000009", "没有日期", "", "原创"], ROWS[2]])
    first = import_file(opened, "weibo", path, skip_invalid=True).rejected_file
    assert first == tmp_path / "mixed.rejected.csv"
    first.write_text("the clerk's corrections\n", encoding="utf-8")
    again = import_file(opened, "weibo", path, skip_invalid=True)
    assert again.rejected_file == tmp_path / "mixed（2）.rejected.csv" and again.rejected_file.exists()
    assert first.read_text(encoding="utf-8") == "the clerk's corrections\n"


def test_file_without_date_column(opened: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "nodate.csv", [["1", "标题"]], header=["编号", "标题"])
    with pytest.raises(InputError, match="找不到发布时间列"):
        import_file(opened, "weibo", path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "文件是空的"),
        ("broken.json", b'[{"title": "a", ', "不是有效的 JSON"),
        ("broken.xlsx", b"PK\x03\x04not really a zip", "不是有效的 XLSX"),
        ("odd.json", b'{"something": 1}', "无法识别的 JSON 结构"),
    ],
)
def test_unreadable_files(opened: Store, tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        import_file(opened, "weibo", path)
    assert totals(opened)["weibo"] == (0, 0)


def test_missing_file(opened: Store, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="找不到文件"):
        import_file(opened, "weibo", tmp_path / "nope.csv")


def test_wechat_export_keyed_by_message_id_counts_each_article(opened: Store, tmp_path: Path) -> None:
    """A back-end export without links: the articles of one push share its 消息ID (docs/counting-rules.md, rule 6)."""
    path = tmp_path / "wx.csv"
    path.write_text(
        "消息ID,文章标题,群发时间,是否转载\n"
        "1000001,第一篇,2020-05-01 18:00,否\n"
        "1000001,第二篇,2020-05-01 18:00,否\n"
        "1000001,第三篇,2020-05-01 18:00,是\n"
        "1000002,单独一篇,2020-05-02 18:00,否\n"
        "1000003_1,统计接口格式,2020-05-03 18:00,否\n",
        encoding="utf-8",
    )
    result = import_file(opened, "wechat", path)
    assert (result.rows_new, result.rows_known) == (5, 0)
    with store.read(opened.engine) as conn:
        figures = summarise(conn, opened.office_id, Period(2020))
        rows = list_publications(conn, opened.channel_id("wechat"), Period(2020), "Asia/Shanghai")
    wechat = next(c for c in figures.channels if c.key == "wechat")
    assert (wechat.total, wechat.reposts, wechat.pushes) == (5, 1, 3)
    assert [(r.title, r.is_repost) for r in rows][:3] == [("第一篇", False), ("第二篇", False), ("第三篇", True)]
    assert import_file(opened, "wechat", path).rows_new == 0  # and again: nothing new
