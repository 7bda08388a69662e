"""dates.py: every accepted date form, office time, the year boundary, relative Weibo dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channelwatch.dates import DateParseError, local_period, parse_datetime, parse_relative

ZONE = "Asia/Shanghai"
CST = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-06-01T08:00:00+08:00", datetime(2020, 6, 1, 8, 0, tzinfo=CST)),
        ("2020-06-01T00:00:00Z", datetime(2020, 6, 1, 8, 0, tzinfo=CST)),
        ("2020-06-01T08:00:00", datetime(2020, 6, 1, 8, 0, tzinfo=CST)),
        ("2020-06-01 08:00:00", datetime(2020, 6, 1, 8, 0, tzinfo=CST)),
        ("2020-06-01 08:00", datetime(2020, 6, 1, 8, 0, tzinfo=CST)),
        ("2020/6/1 8:00", datetime(2020, 6, 1, 8, 0, tzinfo=CST)),
        ("2020/06/01 08:00:30", datetime(2020, 6, 1, 8, 0, 30, tzinfo=CST)),
        ("2020-06-01", datetime(2020, 6, 1, 0, 0, tzinfo=CST)),
        ("2020年6月1日", datetime(2020, 6, 1, 0, 0, tzinfo=CST)),
        ("2020年6月1日 08:00", datetime(2020, 6, 1, 8, 0, tzinfo=CST)),
        ("2020年06月01日 8:05:09", datetime(2020, 6, 1, 8, 5, 9, tzinfo=CST)),
        ("Sat Nov 28 10:00:00 +0800 2020", datetime(2020, 11, 28, 10, 0, tzinfo=CST)),
        ("Sat Nov 28 02:00:00 +0000 2020", datetime(2020, 11, 28, 10, 0, tzinfo=CST)),
        ("43983", datetime(2020, 6, 1, 0, 0, tzinfo=CST)),  # an Excel serial number as text
        ("43983.5", datetime(2020, 6, 1, 12, 0, tzinfo=CST)),
        ("  2020-06-01 08:00  ", datetime(2020, 6, 1, 8, 0, tzinfo=CST)),
    ],
)
def test_accepted_text_forms(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text, ZONE)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(hours=8)


def test_excel_cells_and_numbers() -> None:
    assert parse_datetime(datetime(2020, 6, 1, 8, 0), ZONE) == datetime(2020, 6, 1, 8, 0, tzinfo=CST)
    assert parse_datetime(date(2020, 6, 1), ZONE) == datetime(2020, 6, 1, tzinfo=CST)
    assert parse_datetime(43983, ZONE) == datetime(2020, 6, 1, tzinfo=CST)
    assert parse_datetime(43983.25, ZONE) == datetime(2020, 6, 1, 6, 0, tzinfo=CST)
    # Unix timestamps (WeChat update_time), in seconds and milliseconds.
    stamp = int(datetime(2020, 6, 1, 8, 0, tzinfo=CST).timestamp())
    assert parse_datetime(stamp, ZONE) == datetime(2020, 6, 1, 8, 0, tzinfo=CST)
    assert parse_datetime(stamp * 1000, ZONE) == datetime(2020, 6, 1, 8, 0, tzinfo=CST)


@pytest.mark.parametrize(
    "text", ["", "   ", "昨天下午", "2020-13-01", "2020-02-30", "2020年2月30日", "n/a", "32/1/2020"]
)
def test_rejected_forms(text: str) -> None:
    with pytest.raises(DateParseError):
        parse_datetime(text, ZONE)


def test_missing_value() -> None:
    with pytest.raises(DateParseError, match="缺少日期"):
        parse_datetime(None, ZONE)


def test_year_boundary_is_office_time() -> None:
    # 2021-01-01 00:30 in Shanghai is still 2020 in UTC, but belongs to 2021 (docs/counting-rules.md).
    early_2021 = parse_datetime("2021-01-01 00:30", ZONE)
    assert early_2021.astimezone(UTC).year == 2020
    assert local_period(early_2021, ZONE) == (2021, 1, 1)
    assert local_period(parse_datetime("2020-01-01 00:10", ZONE), ZONE) == (2020, 1, 1)
    # A UTC timestamp late on 31 December is already the new year in office time.
    assert local_period(parse_datetime("2020-12-31T16:30:00Z", ZONE), ZONE) == (2021, 1, 1)
    assert local_period(parse_datetime("2020-03-31 23:59", ZONE), ZONE) == (2020, 1, 3)
    assert local_period(parse_datetime("2020-04-01 00:00", ZONE), ZONE) == (2020, 2, 4)


def test_other_office_zone() -> None:
    moment = parse_datetime("2020-06-01 08:00", "Asia/Urumqi")
    assert moment.utcoffset() == timedelta(hours=6)


NOW = datetime(2020, 11, 28, 15, 0, tzinfo=CST)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("刚刚", datetime(2020, 11, 28, 15, 0, tzinfo=CST)),
        ("5分钟前", datetime(2020, 11, 28, 14, 55, tzinfo=CST)),
        ("3小时前", datetime(2020, 11, 28, 12, 0, tzinfo=CST)),
        ("今天 09:15", datetime(2020, 11, 28, 9, 15, tzinfo=CST)),
        ("昨天 12:30", datetime(2020, 11, 27, 12, 30, tzinfo=CST)),
        ("11-27", datetime(2020, 11, 27, 0, 0, tzinfo=CST)),
        ("12-30", datetime(2019, 12, 30, 0, 0, tzinfo=CST)),  # a month-day after today is last year's
        ("Sat Nov 28 10:00:00 +0800 2020", datetime(2020, 11, 28, 10, 0, tzinfo=CST)),
        ("2020-11-01", datetime(2020, 11, 1, tzinfo=CST)),
    ],
)
def test_weibo_relative_forms(text: str, expected: datetime) -> None:
    assert parse_relative(text, NOW, ZONE) == expected


def test_relative_resolves_in_office_time() -> None:
    # 00:20 in Shanghai is 16:20 the day before in UTC: "昨天" is the office's yesterday.
    now_utc = datetime(2021, 1, 1, 16, 20, tzinfo=UTC)
    assert parse_relative("昨天 10:00", now_utc, ZONE) == datetime(2021, 1, 1, 10, 0, tzinfo=CST)


moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC))


@given(moments)
def test_parse_of_isoformat_round_trips(moment: datetime) -> None:
    parsed = parse_datetime(moment.isoformat(), ZONE)
    assert parsed == moment
    assert parse_datetime(parsed.isoformat(), ZONE) == parsed  # idempotent


@given(moments)
def test_chinese_form_round_trips(moment: datetime) -> None:
    local = moment.astimezone(CST).replace(microsecond=0)
    text = f"{local.year}年{local.month}月{local.day}日 {local:%H:%M:%S}"
    assert parse_datetime(text, ZONE) == local
