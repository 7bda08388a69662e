"""The web view's queries agree with the library's: figures with ``summarise``, pages with ``list_publications``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from channelwatch import store
from channelwatch.instance.config import load_instance
from channelwatch.stats.figures import Period, summarise
from channelwatch.stats.listing import list_publications
from channelwatch.web.data import ReadOnlyStore, month_counts, open_readonly, publication_page, year_figures


@pytest.fixture(scope="module")
def readonly(sample_instance: Path) -> Iterator[ReadOnlyStore]:
    opened = open_readonly(load_instance(sample_instance))
    yield opened
    opened.dispose()


@pytest.mark.parametrize("year", [2019, 2020, 2021])
def test_year_figures_are_summarise_without_the_extra_passes(readonly: ReadOnlyStore, year: int) -> None:
    keys = [c.id for c in readonly.instance.config.channels]
    with store.read(readonly.engine) as conn:
        office_id = readonly.office_id(conn)
        assert office_id is not None
        fast = year_figures(conn, office_id, year, keys)
        full = summarise(conn, office_id, Period(year), keys)
    assert [(c.key, c.total, c.reposts, c.by_month, c.reposts_by_month) for c in fast.channels] == [
        (c.key, c.total, c.reposts, c.by_month, c.reposts_by_month) for c in full.channels
    ]
    assert (fast.office, fast.short_name, fast.period) == (full.office, full.short_name, full.period)


@pytest.mark.parametrize(
    ("month", "repost", "size"),
    [(None, None, 50), (None, None, 7), (3, None, 7), (None, True, 9), (12, False, 4)],
)
def test_pages_put_together_are_the_whole_list(
    readonly: ReadOnlyStore, month: int | None, repost: bool | None, size: int
) -> None:
    zone = readonly.instance.timezone
    with store.read(readonly.engine) as conn:
        office_id = readonly.office_id(conn)
        assert office_id is not None
        channel_id = readonly.channel_ids(conn, office_id)["weibo"]
        period = Period(2020, month=month)
        expected = [
            (p.published_at, p.title)
            for p in reversed(list_publications(conn, channel_id, period, zone))
            if repost is None or p.is_repost == repost
        ]
        counts = month_counts(conn, channel_id, 2020)
        first = publication_page(conn, channel_id, 2020, zone, counts=counts, month=month, repost=repost, size=size)
        shown = []
        for number in range(1, first.pages + 1):
            page = publication_page(
                conn, channel_id, 2020, zone, counts=counts, month=month, repost=repost, page=number, size=size
            )
            assert len(page.items) == (size if number < page.pages else len(expected) - size * (page.pages - 1))
            shown.extend((p.published_at, p.title) for p in page.items)
    assert first.total == len(expected) > 0
    # Within one minute the two orders may differ (list_publications shows minutes): compare as sets per minute.
    assert sorted(shown) == sorted(expected)
    assert [when for when, _ in shown] == sorted((when for when, _ in shown), reverse=True)


def test_many_channel_reads_agree_with_the_library(readonly: ReadOnlyStore) -> None:
    """The county page's one-statement reads give what the per-channel library functions give."""
    from sqlalchemy import func, select

    from channelwatch.stats.freshness import configured_freshness, freshness, newest_publications
    from channelwatch.store.counts import channel_totals
    from channelwatch.store.models import Publication
    from channelwatch.store.schema import orphan_channels
    from channelwatch.web.data import year_range

    pub = Publication.__table__  # type: ignore[attr-defined]
    zone = readonly.instance.timezone
    with store.read(readonly.engine) as conn:
        office_id = readonly.office_id(conn)
        assert office_id is not None
        ids = readonly.channel_ids(conn, office_id)
        expected = {f.key: f for f in freshness(conn, office_id, zone, warn_days=10, limit_days=14)}
        newest = newest_publications(conn, list(ids.values()))
        shown = configured_freshness(readonly.instance.config.channels, ids, newest, zone, warn_days=10, limit_days=14)
        plain = {
            cid: store.as_utc(
                conn.execute(select(func.max(pub.c.published_at)).where(pub.c.channel_id == cid)).scalar()
            )
            for cid in ids.values()
        }
        first, last = year_range(conn, list(ids.values()))
        low, high = conn.execute(select(func.min(pub.c.local_year), func.max(pub.c.local_year))).one()
        stored = channel_totals(conn, list(ids.values()))
        configured = [c.id for c in readonly.instance.config.channels]
        orphans = orphan_channels(conn, office_id, configured[:1])
    assert orphans == [(key, expected[key].total) for key in sorted(configured[1:]) if expected[key].total]
    assert len(newest) == 3 and newest == plain
    for key, found in shown.items():
        assert (found.last_published, found.days_since, found.status) == (
            expected[key].last_published,
            expected[key].days_since,
            expected[key].status,
        ), key
    assert (first, last) == (low, high) and first is not None and first < last
    assert stored == {ids[key]: expected[key].total for key in ids}
