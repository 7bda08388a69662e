"""Real answers and third-party exports, imported through ``channelwatch import CHANNEL FILE``.

The fixtures in ``tests/data/platforms/`` are written by the project, shaped like what real platforms
and tools produce: WeChat ``freepublish/batchget`` answers with the times inside ``content`` or on each
``news_item``, older Weibo ``getIndex`` pages with month-day dates, ``ok: 0`` answers, and the CSV and
JSON the weibo-crawler tool writes (``是否原创``, ``{"user": …, "weibo": […]}``).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from channelwatch.cli import app
from tests.fakeplatforms import weibo_id_for

DATA = Path(__file__).resolve().parent.parent / "data" / "platforms"
CST = timezone(timedelta(hours=8))
runner = CliRunner()


def cw(instance: Path, *args: str) -> Any:
    return runner.invoke(app, ["--instance", str(instance), *args])


def summary(instance: Path, year: int) -> dict[str, Any]:
    result = cw(instance, "summary", "--year", str(year), "--format", "json")
    assert result.exit_code == 0, result.output
    # Only standard output is JSON: warnings (an empty database, a lost channel id) go to stderr.
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def channel(figures: dict[str, Any], key: str) -> dict[str, Any]:
    return next(c for c in figures["channels"] if c["id"] == key)


def listed(instance: Path, key: str, year: int) -> str:
    result = cw(instance, "publications", key, "--year", str(year))
    assert result.exit_code == 0, result.output
    return str(result.output)


def copy(name: str, target: Path, mtime: datetime | None = None) -> Path:
    path = target / name
    shutil.copyfile(DATA / name, path)
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return path


# --- WeChat freepublish/batchget as real answers carry the times ----------------------------------------------


def test_batchget_with_times_inside_content_and_news_items(instance_dir: Path, tmp_path: Path) -> None:
    path = copy("wechat_batchget_real_times.json", tmp_path)
    result = cw(instance_dir, "import", "wechat", str(path))
    assert result.exit_code == 0, result.output
    assert "读取 3 行，新增 3，已有 0，拒收 0" in result.output
    # The second push went out on 2020-12-31 23:50 and was edited in 2021: it counts in 2020.
    late = channel(summary(instance_dir, 2020), "wechat")
    assert (late["total"], late["reposts"], late["pushes"]) == (2, 1, 1)
    june = channel(summary(instance_dir, 2021), "wechat")
    assert (june["total"], june["pushes"]) == (1, 1)
    # The publication time (create_time), not the later update_time.
    assert "2021-06-01 09:30" in listed(instance_dir, "wechat", 2021)
    assert "2020-12-31 23:50" in listed(instance_dir, "wechat", 2020)


def test_batchget_without_any_time_is_refused_naming_the_places(instance_dir: Path, tmp_path: Path) -> None:
    payload = json.loads((DATA / "wechat_batchget_real_times.json").read_text(encoding="utf-8"))
    del payload["item"][0]["content"]["create_time"]
    del payload["item"][0]["content"]["update_time"]
    path = tmp_path / "batchget.json"
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    result = cw(instance_dir, "import", "wechat", str(path))
    assert result.exit_code == 1
    assert "没有发布时间" in result.output and "news_item" in result.output
    assert "Traceback" not in result.output
    assert channel(summary(instance_dir, 2020), "wechat")["total"] == 0


# --- Weibo ids as clocks ---------------------------------------------------------------------------------------


def test_month_day_page_saved_long_ago_counts_in_the_year_its_ids_say(instance_dir: Path, tmp_path: Path) -> None:
    # A page saved in 2019 and copied in 2026: the file's time would put every post in 2026.
    path = copy("weibo_getindex_month_day.json", tmp_path, mtime=datetime(2026, 3, 2, 10, 0, tzinfo=CST))
    result = cw(instance_dir, "import", "weibo", str(path))
    assert result.exit_code == 0, result.output
    assert "读取 4 行，新增 4" in result.output
    figures = channel(summary(instance_dir, 2019), "weibo")
    assert (figures["total"], figures["reposts"]) == (4, 1)
    assert channel(summary(instance_dir, 2026), "weibo")["total"] == 0
    # To the second, as the ids encode it.
    shown = listed(instance_dir, "weibo", 2019)
    assert "2019-06-14 20:38" in shown and "2019-06-03 16:45" in shown


def test_full_date_wins_over_a_disagreeing_id_and_is_logged(
    instance_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    payload = json.loads((DATA / "weibo_getindex_month_day.json").read_text(encoding="utf-8"))
    mblog = payload["data"]["cards"][0]["mblog"]
    mblog["created_at"] = "Mon Jan 06 08:00:00 +0800 2020"  # the id says 2019-06-14
    path = tmp_path / "page.json"
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    with caplog.at_level("WARNING", logger="channelwatch.sources.weibo"):
        result = cw(instance_dir, "import", "weibo", str(path))
    assert result.exit_code == 0, result.output
    assert channel(summary(instance_dir, 2020), "weibo")["total"] == 1
    assert channel(summary(instance_dir, 2019), "weibo")["total"] == 3
    assert any(mblog["id"] in r.getMessage() and "disagrees" in r.getMessage() for r in caplog.records)


# --- ok: 0 answers -----------------------------------------------------------------------------------------------


def test_empty_weibo_answer_is_a_warning_not_silence(instance_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "getIndex_end.json"
    path.write_text('{"ok":0,"msg":"这里还没有内容","data":{"cards":[]}}', encoding="utf-8")
    result = cw(instance_dir, "import", "weibo", str(path))
    assert result.exit_code == 0, result.output
    assert "文件中没有数据行，没有导入任何记录" in result.output
    assert "警告" in result.output and "该账号在这一页没有微博" in result.output
    (run,) = json.loads(cw(instance_dir, "runs", "--format", "json").output)
    assert run["status"] == "ok" and "该账号在这一页没有微博" in run["message"]


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ('{"ok":0,"msg":"请求过于频繁，请稍后再试"}', ["请求过于频繁，请稍后再试", "ok = 0"]),
        ('{"ok":-100,"url":"https://passport.weibo.cn/signin/welcome"}', ["ok = -100", "需要登录"]),
    ],
)
def test_refusing_weibo_answer_is_rejected_naming_its_message(
    instance_dir: Path, tmp_path: Path, answer: str, words: list[str]
) -> None:
    path = tmp_path / "getIndex_refused.json"
    path.write_text(answer, encoding="utf-8")
    result = cw(instance_dir, "import", "weibo", str(path))
    assert result.exit_code == 1
    assert all(word in result.output for word in words), result.output
    assert "Traceback" not in result.output
    (run,) = json.loads(cw(instance_dir, "runs", "--format", "json").output)
    assert run["status"] == "rejected" and words[0] in run["message"]


@pytest.mark.parametrize(
    ("channel_key", "answer", "words"),
    [
        ("weibo", '{"ok":1,"data":{"cardlistInfo":{"containerid":"1076035678901234"},"cards":[]}}', "没有微博"),
        ("wechat", '{"item":[],"total_count":0,"item_count":0}', "没有发布记录"),
    ],
)
def test_answers_without_posts_are_warnings(
    instance_dir: Path, tmp_path: Path, channel_key: str, answer: str, words: str
) -> None:
    path = tmp_path / "answer.json"
    path.write_text(answer, encoding="utf-8")
    result = cw(instance_dir, "import", channel_key, str(path))
    assert result.exit_code == 0, result.output
    assert "文件中没有数据行，没有导入任何记录" in result.output and "警告" in result.output and words in result.output


def test_wechat_error_answer_is_rejected_naming_it(instance_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "batchget.json"
    path.write_text('{"errcode":48001,"errmsg":"api unauthorized"}', encoding="utf-8")
    result = cw(instance_dir, "import", "wechat", str(path))
    assert result.exit_code == 1
    assert "errcode 48001" in result.output and "api unauthorized" in result.output


# --- weibo-crawler exports ------------------------------------------------------------------------------------


def test_crawler_csv_reads_the_inverse_repost_column(instance_dir: Path, tmp_path: Path) -> None:
    path = copy("weibocrawler_export.csv", tmp_path)
    result = cw(instance_dir, "import", "weibo", str(path))
    assert result.exit_code == 0, result.output
    assert "读取 5 行，新增 5，已有 0，拒收 0" in result.output
    y2024, y2023 = channel(summary(instance_dir, 2024), "weibo"), channel(summary(instance_dir, 2023), "weibo")
    assert (y2024["total"], y2024["reposts"], y2024["original"]) == (4, 1, 3)
    assert (y2023["total"], y2023["reposts"]) == (1, 1)


def test_crawler_json_is_accepted_and_matches_the_csv(instance_dir: Path, tmp_path: Path) -> None:
    path = copy("weibocrawler_export.json", tmp_path)
    result = cw(instance_dir, "import", "weibo", str(path))
    assert result.exit_code == 0, result.output
    assert "读取 5 行，新增 5" in result.output
    y2024 = channel(summary(instance_dir, 2024), "weibo")
    assert (y2024["total"], y2024["reposts"]) == (4, 1)
    # The same posts by id: the CSV adds nothing, whichever came first.
    again = cw(instance_dir, "import", "weibo", str(copy("weibocrawler_export.csv", tmp_path)))
    assert "新增 0，已有 5" in again.output, again.output


def test_weibospider_csv_and_json(instance_dir: Path, tmp_path: Path) -> None:
    # weiboSpider, weibo-crawler's sibling: 微博正文, 是否为原创微博 (True/False) and a 转发数 count column.
    csv_path = tmp_path / "5678901234.csv"
    csv_path.write_text(
        "\ufeff微博id,微博正文,头条文章url,原始图片url,被转发微博原始图片url,是否为原创微博,微博视频url,发布位置,发布时间,"
        "发布工具,点赞数,转发数,评论数\n"
        "Ka1b2C3d4,园区召开安全生产会议,,无,无,True,无,无,2020-05-17 10:00,微博 weibo.com,3,2,1\n"
        "Ka1b2C3d5,转发理由: 转发微博 原始用户: 宁夏发布 转发内容: 防汛提示,,无,无,False,无,无,2020-05-16 09:30,"
        "微博 weibo.com,0,0,0\n",
        encoding="utf-8",
    )
    result = cw(instance_dir, "import", "weibo", str(csv_path))
    assert result.exit_code == 0, result.output
    assert (channel(summary(instance_dir, 2020), "weibo")["reposts"]) == 1
    posts = [
        {"id": "Ka1b2C3d4", "content": "园区召开安全生产会议", "original": True, "publish_time": "2020-05-17 10:00"},
        {"id": "Ka1b2C3d6", "content": "转发微博", "original": False, "publish_time": "2020-05-18 08:00"},
    ]
    json_path = tmp_path / "5678901234.json"
    json_path.write_text(json.dumps({"user": {"id": "5678901234"}, "weibo": posts}, ensure_ascii=False), "utf-8")
    result = cw(instance_dir, "import", "weibo", str(json_path))
    assert result.exit_code == 0, result.output
    assert "读取 2 行，新增 1，已有 1" in result.output  # the same id as in the CSV
    figures = channel(summary(instance_dir, 2020), "weibo")
    assert (figures["total"], figures["reposts"]) == (3, 2)


@pytest.mark.parametrize(
    ("header", "values", "reposts"),
    [
        ("是否原创", ["True", "False", "true", "FALSE"], 2),
        ("原创", ["是", "否", "1", "0"], 2),
        ("是否原创", ["原创", "转发", "", "转载"], 2),  # the words keep their meaning, empty is original
    ],
)
def test_inverse_repost_columns(
    instance_dir: Path, tmp_path: Path, header: str, values: list[str], reposts: int
) -> None:
    lines = [f"标题,发布时间,{header}"] + [f"消息{i},2020-03-0{i + 1} 10:00,{v}" for i, v in enumerate(values)]
    path = tmp_path / "export.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cw(instance_dir, "import", "weibo", str(path))
    assert result.exit_code == 0, result.output
    figures = channel(summary(instance_dir, 2020), "weibo")
    assert (figures["total"], figures["reposts"]) == (4, reposts)


def test_inverse_column_bad_value_names_the_accepted_values(instance_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("标题,发布时间,是否原创\n消息,2020-03-01 10:00,也许\n", encoding="utf-8")
    result = cw(instance_dir, "import", "weibo", str(path))
    assert result.exit_code == 1
    assert "第2行，字段「是否原创」，值「也许」" in result.output and "否、false、0" in result.output


def test_direct_repost_column_wins_over_an_inverse_one(instance_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    rows = "标题,发布时间,是否转发,是否原创\n甲,2020-03-01 10:00,是,是\n乙,2020-03-02 10:00,否,否\n"
    path.write_text(rows, encoding="utf-8")
    result = cw(instance_dir, "import", "weibo", str(path))
    assert result.exit_code == 0, result.output
    assert channel(summary(instance_dir, 2020), "weibo")["reposts"] == 1


# --- WeChat pushes from short links ---------------------------------------------------------------------------


def test_short_links_grouped_into_pushes_by_publish_time(instance_dir: Path, tmp_path: Path) -> None:
    pushes = [datetime(2021, 6, 16, 15, 2, 11, tzinfo=CST), datetime(2021, 6, 17, 11, 51, 0, tzinfo=CST)]
    rows = ["标题,链接,发布时间"]
    for p, moment in enumerate(pushes):
        for n in range(3):
            rows.append(f"推送{p}文章{n},https://mp.weixin.qq.com/s/code{p}x{n}AbC,{moment:%Y-%m-%d %H:%M:%S}")
    rows.append("单独一篇,https://mp.weixin.qq.com/s/loneArticle1,2021-06-17 11:51:01")  # one second later
    rows.append("只有日期甲,https://mp.weixin.qq.com/s/dayOnlyA,2021-06-18")  # a bare date says nothing of pushes
    rows.append("只有日期乙,https://mp.weixin.qq.com/s/dayOnlyB,2021-06-18")
    path = tmp_path / "wechat.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = cw(instance_dir, "import", "wechat", str(path))
    assert result.exit_code == 0, result.output
    figures = channel(summary(instance_dir, 2021), "wechat")
    assert (figures["total"], figures["pushes"]) == (9, 5)
    # Re-importing changes nothing, pushes included.
    assert "新增 0，已有 9" in cw(instance_dir, "import", "wechat", str(path)).output
    assert channel(summary(instance_dir, 2021), "wechat")["pushes"] == 5


def test_weibo_id_helper_matches_the_platform_rule() -> None:
    moment = datetime(2021, 6, 8, 9, 35, 4, tzinfo=CST)
    post_id = weibo_id_for(moment, 12345)
    assert (int(post_id) >> 22) + 515483463 == int(moment.timestamp())
