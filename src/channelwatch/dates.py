"""Every accepted date form → an aware datetime in the office's time zone.

Accepted (docs/counting-rules.md): ISO 8601 with or without offset, ``2020-06-01 08:00[:00]``, ``2020/6/1 8:00``,
``2021.3.5``, ``20210305``, ``2020-06-01``, ``2020年6月1日[ 08:00]`` (also followed by a weekday,
``2021年3月5日 星期五``), a time of day written ``上午9:30`` / ``下午3:05``, Excel date cells
(``datetime``/``date``) and serial numbers, Weibo's ``Sat Nov 28 10:00:00 +0800 2020``, Unix timestamps
(WeChat ``update_time``), and Weibo's relative forms (``刚刚``, ``5分钟前``, ``3小时前``, ``昨天 12:30``,
``11-27``) resolved against a given "now". A time without an offset is office time.

Every failure is a ``DateParseError`` with a Chinese message, never an ``OverflowError`` or a bare
``ValueError``: exports hold ``0001-01-01``, ``9999-12-31T23:00-05:00``, ``1e400`` and offsets such
as ``+24:00``, and one of them must make one invalid row, not a traceback. ``check_plausible``
refuses what parses but cannot be a publication date of an office's channel (before 2000, or
later than the day after the import).

These functions are pure; ``parse_datetime`` caches by (text, zone) because exports repeat the same
timestamps many times and parsing dominates import time.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = [
    "EARLIEST",
    "DateParseError",
    "check_plausible",
    "from_excel_serial",
    "from_timestamp",
    "local_period",
    "parse_datetime",
    "parse_relative",
    "to_office",
    "weibo_id_time",
]

_EXCEL_EPOCH = datetime(1899, 12, 30)
# No office channel this tool counts published before 2000; earlier dates are typing or export errors
# (a bare year read as an Excel serial number, ``0001-01-01`` placeholders).
EARLIEST = datetime(2000, 1, 1)
# Real UTC offsets run from -12:00 to +14:00.
_MAX_OFFSET = timedelta(hours=14)

_DATE_SEP = re.compile(
    r"^\s*(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:\s*[(（]?\s*(?:星期|周|礼拜)[一二三四五六日天][)）]?)?"
    r"(?:[\sT]*(上午|下午|中午|晚上|凌晨|早上)?\s*(\d{1,2})\s*[:：时点]\s*(\d{1,2})"
    r"(?:\s*[:：分]\s*(\d{1,2})(?:[.,](\d{1,6}))?)?\s*[秒分]?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:[\sT]*(\d{2}):?(\d{2})(?::?(\d{2}))?)?$")
_BARE_YEAR = re.compile(r"^\d{4}\s*年?$")
_ISO_OFFSET = re.compile(r"(?:[+-](\d{2}):?(\d{2})(?::?\d{2}(?:\.\d+)?)?|Z)$")
_WEIBO = re.compile(r"^[A-Z][a-z]{2} ([A-Z][a-z]{2}) (\d{1,2}) (\d{2}):(\d{2}):(\d{2}) ([+-]\d{4}) (\d{4})$")
_MONTHS = {
    m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)
}
_SERIAL = re.compile(r"^-?\d{4,5}(\.\d+)?$")
_AFTERNOON = {"下午", "晚上"}


class DateParseError(ValueError):
    """The text is not a date in any accepted form; the message is user-facing Chinese."""


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _offset(text: str) -> tzinfo:
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if minutes >= 60 or timedelta(hours=hours, minutes=minutes) > _MAX_OFFSET:
        raise DateParseError(f"时区偏移超出范围：{text}（应在 -12:00 到 +14:00 之间）")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _check_iso_offset(text: str, moment: datetime) -> None:
    """``fromisoformat`` takes ``+08:60`` as +09:00 and ``+23:59`` as real: refuse both."""
    offset = moment.utcoffset()
    if offset is None:
        return
    match = _ISO_OFFSET.search(text)
    if match and match.group(1) is not None and int(match.group(2)) >= 60:
        raise DateParseError(f"时区偏移超出范围：{text}（分钟应小于 60）")
    if abs(offset) > _MAX_OFFSET:
        raise DateParseError(f"时区偏移超出范围：{text}（应在 -12:00 到 +14:00 之间）")


def check_plausible(moment: datetime, latest: datetime) -> datetime:
    """``moment`` if it can be a publication date: not before 2000, at most a day after ``latest`` (the import).

    Both are aware. Raises ``DateParseError`` naming the date otherwise.
    """
    if moment.replace(tzinfo=None) < EARLIEST:
        raise DateParseError(f"日期早于 2000-01-01，不可能是发布时间：{moment:%Y-%m-%d}")
    if moment > latest + timedelta(days=1):
        raise DateParseError(f"日期晚于导入时间一天以上，不可能是发布时间：{moment:%Y-%m-%d %H:%M}")
    return moment


def to_office(moment: datetime, zone: str) -> datetime:
    """An aware datetime in office time; a naive one is taken to be office time already."""
    tz = _zone(zone)
    if moment.tzinfo is tz:
        return moment
    if moment.tzinfo is None:
        return moment.replace(tzinfo=tz)
    return moment.astimezone(tz)


def from_excel_serial(serial: float, zone: str) -> datetime:
    """Excel's day count (1900 system, as every export we have seen uses) → office time."""
    if serial != serial:  # NaN
        raise DateParseError("Excel 日期序号不是数字")
    if serial < 0:
        raise DateParseError(f"Excel 日期序号不能为负数：{serial:g}")
    if not 1 <= serial < 2958466:
        raise DateParseError(f"Excel 日期序号超出范围：{serial:g}")
    moment = _EXCEL_EPOCH + timedelta(days=serial)
    # Excel stores seconds as fractions of a day; round away float noise.
    moment = (moment + timedelta(microseconds=500_000)).replace(microsecond=0)
    return moment.replace(tzinfo=_zone(zone))


def from_timestamp(seconds: float, zone: str) -> datetime:
    """A Unix timestamp (WeChat ``update_time``) → office time."""
    try:
        return datetime.fromtimestamp(seconds, _zone(zone))
    except (OverflowError, ValueError, OSError):
        raise DateParseError(f"时间戳超出范围：{seconds:g}") from None


def _compact(value: int) -> datetime | None:
    """``20210305`` typed as a number (Excel keeps it as one): a date, or None if it is not one."""
    if not 19000101 <= value <= 29991231:
        return None
    try:
        return datetime(value // 10000, value // 100 % 100, value % 100)
    except ValueError:
        return None


def _clock(half: str | None, hour: int) -> int:
    """The 24-hour hour of ``下午3``, ``上午12`` (midnight is rare, noon is 中午12) and so on."""
    if half in _AFTERNOON and hour < 12:
        return hour + 12
    if half == "中午" and hour < 6:
        return hour + 12
    if half in {"上午", "凌晨", "早上"} and hour == 12:
        return 0
    return hour


@lru_cache(maxsize=4096)
def _parse_text(text: str, zone: str) -> datetime:
    try:
        return _parse_text_unchecked(text, zone)
    except DateParseError:
        raise
    except (ValueError, OverflowError) as exc:
        # Out-of-range years, days or offsets (0001-01-01 moved to UTC, 9999-12-31T23:00-05:00).
        raise DateParseError(f"日期超出范围：{text}") from exc


def _parse_text_unchecked(text: str, zone: str) -> datetime:
    # Python 3.11's ISO parser takes any character after the date for the separator: "2020-09-09002" is 02:00 to it.
    iso_date = len(text) >= 10 and text[4] == "-" and text[7] == "-"
    odd_separator = iso_date and len(text) > 10 and text[10] not in " T"
    if iso_date and not odd_separator:
        # The common export form (2020-06-01[ 08:00[:00]][+08:00]) through the C parser first.
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            _check_iso_offset(text, moment)
            return to_office(moment, zone)
    match = _DATE_SEP.match(text)
    if match:
        year, month, day, half, hour, minute, second, fraction, offset = match.groups()
        try:
            micro = int((fraction or "0").ljust(6, "0")) if fraction else 0
            moment = datetime(
                int(year),
                int(month),
                int(day),
                _clock(half, int(hour or 0)),
                int(minute or 0),
                int(second or 0),
                micro,
            )
        except ValueError as exc:
            raise DateParseError(f"不存在的日期：{text}") from exc
        tz = _offset(offset) if offset else _zone(zone)
        return moment.replace(tzinfo=tz).astimezone(_zone(zone))
    match = _COMPACT.match(text)
    if match:
        year, month, day, hour, minute, second = match.groups()
        try:
            moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
        except ValueError as exc:
            raise DateParseError(f"不存在的日期：{text}") from exc
        return moment.replace(tzinfo=_zone(zone))
    if _BARE_YEAR.match(text):
        raise DateParseError(f"只有年份，缺少月和日：{text}")
    match = _WEIBO.match(text)
    if match:
        mon, day, hour, minute, second, offset, year = match.groups()
        try:
            moment = datetime(int(year), _MONTHS[mon], int(day), int(hour), int(minute), int(second))
        except (KeyError, ValueError) as exc:
            raise DateParseError(f"不存在的日期：{text}") from exc
        return moment.replace(tzinfo=_offset(offset)).astimezone(_zone(zone))
    if _SERIAL.match(text):
        return from_excel_serial(float(text), zone)
    if odd_separator:  # none of the forms above: not an ISO date and time either
        raise DateParseError(f"无法识别的日期格式：{text[:60]}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DateParseError(f"无法识别的日期格式：{text[:60]}") from None
    _check_iso_offset(text, moment)
    return to_office(moment, zone)


def parse_datetime(value: object, zone: str) -> datetime:
    """Any accepted form → aware datetime in ``zone``. Raises ``DateParseError`` and nothing else."""
    if value.__class__ is str:
        # Text is what almost every row of a CSV export holds: checked first, cached by value.
        text = value.strip()
        if text:
            return _parse_text(text, zone)
        raise DateParseError("缺少日期")
    try:
        return _parse_value(value, zone)
    except DateParseError:
        raise
    except (ValueError, OverflowError, TypeError) as exc:
        raise DateParseError(f"日期超出范围：{str(value)[:60]}") from exc


def _parse_value(value: object, zone: str) -> datetime:
    if isinstance(value, datetime):
        if value.utcoffset() is not None and abs(value.utcoffset()) > _MAX_OFFSET:  # type: ignore[arg-type]
            raise DateParseError(f"时区偏移超出范围：{value.isoformat()}")
        return to_office(value, zone)
    if isinstance(value, date):
        return datetime.combine(value, time()).replace(tzinfo=_zone(zone))
    if isinstance(value, bool):
        raise DateParseError(f"无法识别的日期格式：{value}")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise DateParseError(f"不是有效的日期数值：{value}")
        if isinstance(value, int) or value.is_integer():
            number = int(value)
            if 1000 <= number <= 2999:
                raise DateParseError(f"只有年份，缺少月和日：{number}")
            compact = _compact(number)
            if compact is not None:
                return compact.replace(tzinfo=_zone(zone))
        # Large numbers are Unix timestamps (seconds or milliseconds), small ones Excel serials.
        if value > 1e11:
            return from_timestamp(value / 1000, zone)
        if value > 1e8:
            return from_timestamp(value, zone)
        return from_excel_serial(float(value), zone)
    if value is None:
        raise DateParseError("缺少日期")
    text = str(value).strip()
    if not text:
        raise DateParseError("缺少日期")
    return _parse_text(text, zone)


_RELATIVE_MIN = re.compile(r"^(\d+)\s*分钟前$")
_RELATIVE_HOUR = re.compile(r"^(\d+)\s*小时前$")
_RELATIVE_SEC = re.compile(r"^(\d+)\s*秒前$")
_YESTERDAY = re.compile(r"^昨天\s*(\d{1,2}):(\d{2})$")
_TODAY = re.compile(r"^今天\s*(\d{1,2}):(\d{2})$")
_MONTH_DAY = re.compile(r"^(\d{1,2})-(\d{1,2})(?:\s+(\d{1,2}):(\d{2}))?$")


def parse_relative(text: str, now: datetime, zone: str) -> datetime:
    """Weibo list dates, relative ones resolved against ``now`` (the fetch time) in office time."""
    try:
        return _parse_relative(text.strip(), now, zone)
    except DateParseError:
        raise
    except (ValueError, OverflowError) as exc:  # 99999999999小时前
        raise DateParseError(f"日期超出范围：{text.strip()[:60]}") from exc


def _parse_relative(text: str, now: datetime, zone: str) -> datetime:
    local_now = to_office(now, zone)
    if text in {"刚刚", "刚才"}:
        return local_now.replace(microsecond=0)
    for pattern, unit in ((_RELATIVE_SEC, "seconds"), (_RELATIVE_MIN, "minutes"), (_RELATIVE_HOUR, "hours")):
        match = pattern.match(text)
        if match:
            return (local_now - timedelta(**{unit: int(match.group(1))})).replace(microsecond=0)
    for pattern, days in ((_TODAY, 0), (_YESTERDAY, 1)):
        match = pattern.match(text)
        if match:
            on = local_now.date() - timedelta(days=days)
            return datetime.combine(on, time(int(match.group(1)), int(match.group(2))), local_now.tzinfo)
    match = _MONTH_DAY.match(text)
    if match:
        month, day, hour, minute = match.groups()
        year = local_now.year
        try:
            moment = datetime(year, int(month), int(day), int(hour or 0), int(minute or 0))
        except ValueError as exc:
            raise DateParseError(f"不存在的日期：{text}") from exc
        moment = moment.replace(tzinfo=local_now.tzinfo)
        if moment > local_now + timedelta(days=1):
            # A month-day later than today can only be last year's (lists omit the year).
            moment = moment.replace(year=year - 1)
        return moment
    return parse_datetime(text, zone)


# A Weibo post id (``mid``/``id``) is a clock: its bits above the 22nd count seconds since this
# offset, so ``(mid >> 22) + 515483463`` is the post's Unix time, to the second, for every id the
# platform has issued since 2012 (checked against the full ``created_at`` of real answers).
WEIBO_ID_EPOCH = 515483463
_WEIBO_ID = re.compile(r"^\s*(\d{15,19})\s*$")


def weibo_id_time(post_id: object, zone: str) -> datetime | None:
    """The publication time a Weibo id encodes, in office time; None when it is no such id."""
    match = _WEIBO_ID.match(str(post_id or ""))
    if not match:
        return None
    seconds = (int(match.group(1)) >> 22) + WEIBO_ID_EPOCH
    try:
        return from_timestamp(seconds, zone)
    except (OverflowError, OSError, ValueError):
        return None


def local_period(moment: datetime, zone: str) -> tuple[int, int, int]:
    """(year, quarter, month) of a moment in office time (docs/counting-rules.md, rule 4)."""
    local = to_office(moment, zone)
    return local.year, (local.month - 1) // 3 + 1, local.month
