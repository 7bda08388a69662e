"""dates.py: every accepted date form, office time, the year boundary, relative Weibo dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channelwatch.dates import DateParseError, check_plausible, local_period, parse_datetime, parse_relative

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
    "text",
    # 2020-09-09002 (two cells run together): Python's ISO parser read it as 02:00, taking "0" for the separator.
    [
        "",
        "   ",
        "昨天下午",
        "2020-13-01",
        "2020-02-30",
        "2020年2月30日",
        "n/a",
        "32/1/2020",
        "2020-09-09002",
        "2020-09-09x12:00",
    ],
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


# --- forms of Chinese exports, and what can never be a publication date ----------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20210305", datetime(2021, 3, 5, tzinfo=CST)),
        ("20210305 09:30", datetime(2021, 3, 5, 9, 30, tzinfo=CST)),
        ("2021.3.5", datetime(2021, 3, 5, tzinfo=CST)),
        ("2021.03.05 14:00", datetime(2021, 3, 5, 14, 0, tzinfo=CST)),
        ("2021年3月5日 星期五", datetime(2021, 3, 5, tzinfo=CST)),
        ("2021年3月5日（周五）", datetime(2021, 3, 5, tzinfo=CST)),
        ("2021年3月5日 上午9:30", datetime(2021, 3, 5, 9, 30, tzinfo=CST)),
        ("2021年3月5日 星期五 下午3:05", datetime(2021, 3, 5, 15, 5, tzinfo=CST)),
        ("2021-03-05 下午3:05", datetime(2021, 3, 5, 15, 5, tzinfo=CST)),
        ("2021/3/5 下午12:30", datetime(2021, 3, 5, 12, 30, tzinfo=CST)),
        ("2021/3/5 上午12:30", datetime(2021, 3, 5, 0, 30, tzinfo=CST)),
        ("2021/3/5 晚上8:00", datetime(2021, 3, 5, 20, 0, tzinfo=CST)),
    ],
)
def test_chinese_export_forms(text: str, expected: datetime) -> None:
    assert parse_datetime(text, ZONE) == expected


def test_compact_date_typed_as_a_number() -> None:
    # Excel keeps 20210305 typed into a cell as the number 20210305, not as a serial date.
    assert parse_datetime(20210305, ZONE) == datetime(2021, 3, 5, tzinfo=CST)
    assert parse_datetime(20210305.0, ZONE) == datetime(2021, 3, 5, tzinfo=CST)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2020", "只有年份"),
        (2020, "只有年份"),
        ("2020年", "只有年份"),
        ("2020-06-01T08:00+24:00", "时区偏移超出范围"),
        ("2020-06-01T08:00+08:60", "时区偏移超出范围"),
        ("2020-06-01 08:00 +08:60", "时区偏移超出范围"),
        ("2020-06-01T08:00+23:59", "时区偏移超出范围"),
        ("Sat Nov 28 10:00:00 +2400 2020", "时区偏移超出范围"),
        (-5, "负数"),
        (-43000.5, "负数"),
        ("-43000", "负数"),
        (float("nan"), "不是有效的日期数值"),
        (float("inf"), "不是有效的日期数值"),
        (1e300, "超出范围"),
        ("9999-12-31T23:00-05:00", "超出范围"),
        ("1e400", "无法识别"),
        ("20211340", "不存在的日期"),
    ],
)
def test_refused_values_name_the_reason(value: object, reason: str) -> None:
    with pytest.raises(DateParseError, match=reason):
        parse_datetime(value, ZONE)


def test_relative_overflow_is_a_date_error() -> None:
    with pytest.raises(DateParseError, match="超出范围"):
        parse_relative("99999999999小时前", NOW, ZONE)


def test_plausible_dates_lie_between_2000_and_the_day_after_the_import() -> None:
    imported = datetime(2021, 3, 5, 12, 0, tzinfo=CST)
    assert check_plausible(datetime(2000, 1, 1, tzinfo=CST), imported)
    assert check_plausible(imported + timedelta(hours=23), imported)
    with pytest.raises(DateParseError, match="早于 2000-01-01"):
        check_plausible(parse_datetime("0001-01-01", ZONE), imported)
    with pytest.raises(DateParseError, match="早于 2000-01-01"):
        check_plausible(parse_datetime("1999-12-31 23:59", ZONE), imported)
    with pytest.raises(DateParseError, match="晚于导入时间一天以上"):
        check_plausible(imported + timedelta(days=1, minutes=1), imported)


@given(
    st.one_of(
        st.text(max_size=30),
        st.floats(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.from_regex(
            r"\d{1,5}[-/.年]\d{1,3}[-/.月]\d{1,3}日?( [上下]午)? ?\d{1,3}:\d{1,3}( ?[+-]\d{2}:?\d{2})?", fullmatch=True
        ),
    )
)
def test_only_date_errors_escape(value: object) -> None:
    """Whatever a cell holds, the parser answers with a date in office time or a DateParseError."""
    try:
        parsed = parse_datetime(value, ZONE)
    except DateParseError as exc:
        assert str(exc)
    else:
        assert parsed.tzinfo is not None
