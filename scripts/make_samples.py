"""Generate samples/2020/: the example office's exported publication logs for 2020.

Deterministic (seeded). Importing every file of each folder into its channel gives the figures of
the office's 2020 report: 1279 in all, website 6, Weibo 1225 (400 reposts), WeChat 48 (12 reposts).
The files are shaped like real exports, with the quirks the importer must handle:

- website/  a GBK-encoded CSV from the CMS; one article listed under two columns (same URL, once
            with a tracking parameter); one article of 2019 and one of 2021 around the year.
- weibo/    two overlapping exports: January–July as UTF-8-with-BOM CSV (text dates), July–December
            as XLSX (date cells); July is in both. A post at 2020-01-01 00:10 (2020) and one at
            2021-01-01 00:30 (2021, although still 2020 in UTC) sit on the year's edges.
- wechat/   the back end's 群发 export as XLSX (January–September, long article URLs with chksm and
            scene parameters) and a saved freepublish/batchget answer (August–December); August and
            September are in both. Several pushes carry two or three articles.

Nine items are posted on two channels with the same title, so the unique-items figure is 1270.

Usage: python scripts/make_samples.py [TARGET_DIR]   (default: samples/2020 beside this script)
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from openpyxl import Workbook

SHANGHAI = timezone(timedelta(hours=8))
YEAR = 2020
WEIBO_PER_MONTH = [99, 88, 105, 102, 110, 98, 104, 106, 100, 108, 97, 108]  # 1225
WEIBO_REPOSTS = 400
WECHAT_PER_MONTH = [4, 3, 4, 5, 4, 4, 4, 4, 4, 4, 4, 4]  # 48
WECHAT_REPOSTS = 12
WEBSITE_MONTHS = [1, 3, 5, 7, 9, 12]  # 6 articles
BIZ = "MzA5NjE0NDY2Mg=="
UID = "5678901234"

TOPICS = [
    "安全生产",
    "疫情防控",
    "复工复产",
    "项目建设",
    "招商引资",
    "环境保护",
    "营商环境",
    "扶贫攻坚",
    "党建工作",
    "消防演练",
    "防汛工作",
    "企业服务",
    "节能减排",
    "园区规划",
    "人才招聘",
    "政策宣讲",
]
ACTIONS = [
    "王洼产业园区召开{t}工作会议",
    "园区管委会部署{t}重点任务",
    "园区开展{t}专项检查",
    "{t}工作推进会在王洼产业园区举行",
    "园区企业积极落实{t}要求",
    "王洼产业园区{t}工作取得新进展",
    "管委会领导带队调研{t}",
    "园区组织学习{t}相关政策",
    "关于做好{t}工作的通知",
    "{t}宣传进企业活动启动",
]
REPOST_SOURCES = ["@彭阳发布", "@固原发布", "@宁夏发布", "@宁夏应急管理", "@人民日报", "@新华社"]


def title_for(rng: random.Random, serial: int) -> str:
    return rng.choice(ACTIONS).format(t=rng.choice(TOPICS)) + f"（{serial}）"


def moment_in(rng: random.Random, month: int, index: int, count: int) -> datetime:
    """The index-th of count posts spread over a month, in office hours, office time."""
    first = datetime(YEAR, month, 1, tzinfo=SHANGHAI)
    days = ((datetime(YEAR + (month == 12), month % 12 + 1, 1, tzinfo=SHANGHAI)) - first).days
    day = min(days - 1, index * days // count)
    return first + timedelta(days=day, hours=rng.randint(8, 18), minutes=rng.randint(0, 59))


def shared_titles(rng: random.Random) -> list[str]:
    """Nine items posted on two channels (website+WeChat ×6, WeChat+Weibo ×3)."""
    return [title_for(rng, 9000 + i) for i in range(9)]


def website(target: Path, rng: random.Random, shared: list[str]) -> None:
    columns = ["园区动态", "通知公告", "政策文件", "工作动态"]
    rows = []
    for number, month in enumerate(WEBSITE_MONTHS):
        when = datetime(YEAR, month, 10 + number)
        url = f"http://www.pengyang.gov.cn/wwcyyq/xxgk/{when:%Y%m}/t{when:%Y%m%d}_{2700000 + number}.html"
        rows.append([shared[number], rng.choice(columns), f"{when.year}年{when.month}月{when.day}日", url])
    # The July article is also listed under 工作动态, its link carrying a tracking parameter.
    again = rows[3]
    rows.append([again[0], "工作动态", again[2], again[3] + "?from=gzdt"])
    rows.append(
        [
            "王洼产业园区2019年度工作总结",
            "园区动态",
            "2019年12月31日",
            "http://www.pengyang.gov.cn/wwcyyq/xxgk/201912/t20191231_2690000.html",
        ]
    )
    rows.append(
        [
            "王洼产业园区2021年元旦安全生产提示",
            "通知公告",
            "2021年1月1日",
            "http://www.pengyang.gov.cn/wwcyyq/xxgk/202101/t20210101_2800000.html",
        ]
    )
    folder = target / "website"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "网站信息发布统计_2020.csv").open("w", encoding="gbk", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["标题", "所属栏目", "发布时间", "网址"])
        writer.writerows(rows)


def weibo_posts(rng: random.Random, shared: list[str]) -> list[dict[str, object]]:
    posts: list[dict[str, object]] = []
    total = sum(WEIBO_PER_MONTH)
    repost_slots = set(rng.sample(range(total), WEIBO_REPOSTS))
    serial = 0
    for month, count in enumerate(WEIBO_PER_MONTH, 1):
        for index in range(count):
            when = moment_in(rng, month, index, count)
            if month == 1 and index == 0:
                when = datetime(YEAR, 1, 1, 0, 10, tzinfo=SHANGHAI)  # the year's first minutes
            repost = serial in repost_slots
            text = (f"//{rng.choice(REPOST_SOURCES)}：" if repost else "") + title_for(rng, serial)
            posts.append({"mid": str(4455000000000000 + serial * 7919), "text": text, "when": when, "repost": repost})
            serial += 1
    # Three original posts carry the titles that WeChat also published.
    originals = [p for p in posts if not p["repost"]]
    for title, post in zip(shared[6:], rng.sample(originals, 3), strict=True):
        post["text"] = title
    posts.sort(key=lambda p: p["when"])  # type: ignore[arg-type, return-value]
    return posts


def weibo(target: Path, rng: random.Random, shared: list[str]) -> None:
    posts = weibo_posts(rng, shared)
    folder = target / "weibo"
    folder.mkdir(parents=True, exist_ok=True)
    early = [p for p in posts if p["when"].month <= 7]  # type: ignore[attr-defined]
    late = [p for p in posts if p["when"].month >= 7]  # type: ignore[attr-defined]
    edge_before = {
        "mid": "4454999999999001",
        "text": "新年前夜，园区值班人员坚守岗位",
        "when": datetime(2019, 12, 31, 23, 50, tzinfo=SHANGHAI),
        "repost": False,
    }
    edge_after = {
        "mid": "4599999999999001",
        "text": "2021年第一条：园区祝大家元旦快乐",
        "when": datetime(2021, 1, 1, 0, 30, tzinfo=SHANGHAI),
        "repost": False,
    }
    with (folder / "微博发布记录_2020年1-7月.csv").open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["微博ID", "微博内容", "发布时间", "是否转发", "链接"])
        for post in [edge_before, *early]:
            when: datetime = post["when"]  # type: ignore[assignment]
            writer.writerow(
                [
                    post["mid"],
                    post["text"],
                    f"{when.year}/{when.month}/{when.day} {when:%H:%M}",
                    "转发" if post["repost"] else "原创",
                    f"https://weibo.com/{UID}/{post['mid']}",
                ]
            )
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "微博列表"
    sheet.append(["微博id", "微博内容", "发布时间", "原创/转发"])
    for post in [*late, edge_after]:
        when = post["when"]  # type: ignore[assignment]
        sheet.append([post["mid"], post["text"], when.replace(tzinfo=None), "转发" if post["repost"] else "原创"])
        sheet.cell(row=sheet.max_row, column=3).number_format = "yyyy-mm-dd hh:mm:ss"
    book.save(folder / "微博发布记录_2020年7-12月.xlsx")


def wechat_articles(rng: random.Random, shared: list[str]) -> list[dict[str, object]]:
    """48 articles grouped into pushes of one to three articles."""
    articles: list[dict[str, object]] = []
    serial = 0
    push_number = 0
    repost_slots = set(rng.sample(range(sum(WECHAT_PER_MONTH)), WECHAT_REPOSTS))
    for month, count in enumerate(WECHAT_PER_MONTH, 1):
        left = count
        push_index = 0
        while left:
            size = min(left, rng.choice([1, 1, 2, 3]))
            when = moment_in(rng, month, push_index, 4)
            mid = 2650000000 + push_number * 37
            for idx in range(1, size + 1):
                sn = hashlib.md5(f"{mid}-{idx}".encode()).hexdigest()
                articles.append(
                    {
                        "title": title_for(rng, 5000 + serial),
                        "when": when,
                        "mid": mid,
                        "idx": idx,
                        "sn": sn,
                        "push": f"2247483{600 + push_number}_{push_number}",
                        "repost": serial in repost_slots,
                    }
                )
                serial += 1
            left -= size
            push_index += 1
            push_number += 1
    originals = [a for a in articles if not a["repost"]]
    for title, article in zip(shared, rng.sample(originals, 9), strict=True):
        article["title"] = title
    return articles


def wechat(target: Path, rng: random.Random, shared: list[str]) -> None:
    articles = wechat_articles(rng, shared)
    folder = target / "wechat"
    folder.mkdir(parents=True, exist_ok=True)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "群发记录"
    sheet.append(["群发时间", "文章标题", "文章链接", "是否转载"])
    for article in articles:
        when: datetime = article["when"]  # type: ignore[assignment]
        if when.month > 9:
            continue
        url = (
            f"https://mp.weixin.qq.com/s?__biz={BIZ}&mid={article['mid']}&idx={article['idx']}"
            f"&sn={article['sn']}&chksm=8b{article['sn'][:14]}&scene=21#wechat_redirect"
        )
        sheet.append([when.strftime("%Y-%m-%d %H:%M"), article["title"], url, "是" if article["repost"] else "否"])
    book.save(folder / "公众号群发记录_2020年1-9月.xlsx")

    pushes: dict[str, dict[str, object]] = {}
    for article in articles:
        when = article["when"]  # type: ignore[assignment]
        if when.month < 8:
            continue
        push = pushes.setdefault(
            str(article["push"]),
            {
                "article_id": f"OgU{article['push']}",
                "update_time": int(when.timestamp()),
                "content": {"news_item": []},
            },
        )
        push["content"]["news_item"].append(
            {  # type: ignore[index]
                "title": article["title"],
                "author": "转载" if article["repost"] else "王洼产业园区管委会",
                "digest": "",
                "content_source_url": "",
                "url": f"http://mp.weixin.qq.com/s?__biz={BIZ}&mid={article['mid']}&idx={article['idx']}"
                f"&sn={article['sn']}#rd",
                "is_deleted": False,
            }
        )
    items = sorted(pushes.values(), key=lambda p: -int(p["update_time"]))  # type: ignore[call-overload]
    answer = {"total_count": len(items), "item_count": len(items), "item": items}
    (folder / "freepublish_batchget_2020年8-12月.json").write_text(
        json.dumps(answer, ensure_ascii=False, indent=1), encoding="utf-8"
    )


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "samples" / "2020"
    rng = random.Random(2020)
    shared = shared_titles(rng)
    website(target, random.Random(1), shared)
    weibo(target, random.Random(2), shared)
    wechat(target, random.Random(3), shared)
    print(f"samples written to {target}")


if __name__ == "__main__":
    main()
