"""The year-on-year rule: ``comparison_base`` only when both periods compare like with like."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from channelwatch.stats.figures import ChannelFigures, Period, Summary, comparison_base


def summary(period: Period, **channels: dict[int, int]) -> Summary:
    figures = [
        ChannelFigures(key=key, kind=key, name=key, total=sum(months.values()), by_month=dict(months))
        for key, months in channels.items()
    ]
    return Summary("某局", "我局", period, figures, 0)


YEAR, LAST = Period(2020), Period(2019)
EVERY_MONTH = {m: 3 for m in range(1, 13)}
HALF = {m: 1 for m in range(1, 7)}


def test_every_channel_in_both_years_covering_half_the_months() -> None:
    now = summary(YEAR, weibo=EVERY_MONTH, website=HALF)
    before = summary(LAST, weibo=HALF, website=EVERY_MONTH)
    assert comparison_base(now, before) is before


def test_a_channel_with_data_in_only_one_year_prevents_the_comparison() -> None:
    now = summary(YEAR, weibo=EVERY_MONTH, wechat=EVERY_MONTH)
    before = summary(LAST, weibo=EVERY_MONTH, wechat={})
    assert comparison_base(now, before) is None
    assert comparison_base(before, now) is None


def test_a_channel_covering_less_than_half_the_months_prevents_the_comparison() -> None:
    now = summary(YEAR, weibo=EVERY_MONTH, website={3: 40})
    before = summary(LAST, weibo=EVERY_MONTH, website=EVERY_MONTH)
    assert comparison_base(now, before) is None


def test_channels_without_data_in_either_period_do_not_matter() -> None:
    now = summary(YEAR, weibo=EVERY_MONTH, wechat={})
    before = summary(LAST, weibo=EVERY_MONTH, wechat={})
    assert comparison_base(now, before) is before


def test_nothing_in_either_period_is_no_comparison() -> None:
    assert comparison_base(summary(YEAR, weibo={}), summary(LAST, weibo={})) is None


def test_a_month_needs_the_same_month_in_both_years() -> None:
    march, march_before = Period(2020, month=3), Period(2019, month=3)
    assert comparison_base(summary(march, weibo={3: 5}), summary(march_before, weibo={3: 2})) is not None
    assert comparison_base(summary(march, weibo={3: 5}), summary(march_before, weibo={})) is None


def test_a_quarter_needs_two_of_its_three_months() -> None:
    q1, q1_before = Period(2020, quarter=1), Period(2019, quarter=1)
    assert comparison_base(summary(q1, weibo={1: 1, 3: 1}), summary(q1_before, weibo={2: 1, 3: 9})) is not None
    assert comparison_base(summary(q1, weibo={1: 1, 3: 1}), summary(q1_before, weibo={2: 9})) is None


months = st.dictionaries(st.integers(1, 12), st.integers(0, 5))


@given(st.dictionaries(st.sampled_from(["website", "weibo", "wechat"]), st.tuples(months, months)))
def test_the_rule_is_symmetric_and_never_compares_a_channel_missing_a_year(
    channels: dict[str, tuple[dict[int, int], dict[int, int]]],
) -> None:
    now = summary(YEAR, **{key: pair[0] for key, pair in channels.items()})
    before = summary(LAST, **{key: pair[1] for key, pair in channels.items()})
    forward, backward = comparison_base(now, before), comparison_base(before, now)
    assert (forward is None) == (backward is None)
    if forward is not None:
        for key, (a, b) in channels.items():
            assert (sum(a.values()) > 0) == (sum(b.values()) > 0), key
            for half in (a, b):
                if sum(half.values()):
                    assert sum(1 for n in half.values() if n) >= 6, key
