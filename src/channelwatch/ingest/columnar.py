"""The columns of a batch of the columnar CSV reader as the store's rows: ``record_of`` by columns.

Apart from ``runs`` so that the import's reading process, which only needs these, starts without loading
the store's modules (SQLAlchemy, SQLModel): about a third of a second of its CPU per import.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from itertools import repeat
from typing import Any

from channelwatch.identity import identity_key, title_key_list, title_keys
from channelwatch.sources.fastcsv import ColumnBatch

__all__ = ["IDENTITY_MAX", "columns_of_batch", "identity_of", "rows_of_columns"]

# store.IDENTITY_MAX, which this module must not import to stay light (tests/ingest/test_readahead.py checks it).
IDENTITY_MAX = 500


def columns_of_batch(batch: ColumnBatch, kind: str) -> list[Any]:
    """The columns of ``records_of_columns``'s tuples, in their order, ``storable`` not yet applied.

    Each column is a list, an Arrow array (null for None) when the batch holds Arrow arrays and the column
    could be computed by columns, or None for a column of None only (the push id).
    """
    if kind == "wechat":
        raise ValueError("WeChat exports are read row by row")
    if batch.arrow:
        import pyarrow.compute as pc

        ident = batch.platform_id
        longest = pc.max(pc.utf8_length(ident)).as_py() if len(ident) else 0
        if ident.null_count == 0 and (longest or 0) + 3 <= IDENTITY_MAX:
            identities: Any = pc.binary_join_element_wise("id:", ident, "")  # "id:" + platform_id on every row
        else:
            identities = _identities(ident.to_pylist(), batch.url.to_pylist(), batch.title.to_pylist(),
                                     batch.local_date.to_pylist(), kind)  # fmt: skip
        keys: Any = title_keys(batch.title)
    else:
        identities = _identities(batch.platform_id, batch.url, batch.title, batch.local_date, kind)
        keys = title_key_list(batch.title)
    return [
        identities,
        batch.platform_id,
        batch.title,
        batch.url,
        batch.column_name,
        None,
        batch.is_repost,
        batch.published_utc,
        batch.local_year,
        batch.local_month,
        batch.local_date,
        keys,
    ]


def rows_of_columns(columns: list[Any]) -> Iterator[tuple[Any, ...]]:
    """The tuples of ``columns_of_batch``'s columns: Arrow arrays made lists in C, a column of None as None."""
    lists = [repeat(None) if c is None else c if c.__class__ is list else c.to_pylist() for c in columns]
    return zip(*lists, strict=False)  # the None columns are endless; every other column has one entry per row


def _identities(
    platform_ids: list[str | None], urls: list[str | None], titles: list[str | None], days: list[str], kind: str
) -> list[str]:
    if kind != "wechat" and all(platform_ids):
        # Every row has its platform id (a Weibo export): identity_of's common case, by the column.
        identities = list(map("id:".__add__, map(str.strip, platform_ids)))  # type: ignore[arg-type]
        if max(map(len, identities), default=0) <= IDENTITY_MAX:
            return identities
    return [identity_of(*row, kind) for row in zip(platform_ids, urls, titles, days, strict=True)]


def identity_of(platform_id: str | None, url: str | None, title: str | None, day: date | str, kind: str) -> str:
    """A publication's identity as stored (docs/counting-rules.md, rule 1): a long one as its hash, the form
    polls look identities up by. ``day`` is the office-time date, or its ISO text (read only for a title
    fingerprint). The one rule for ``record_of`` and for batches of columns."""
    if platform_id and kind != "wechat":
        identity = "id:" + platform_id.strip()  # the common case, without the general function's checks
    else:
        local_day = day if isinstance(day, date) else date.fromisoformat(day)
        identity = identity_key(platform_id=platform_id, url=url, title=title, local_day=local_day, kind=kind)
    if len(identity) > IDENTITY_MAX:
        from channelwatch.store.upsert import long_identity

        identity = long_identity(identity)
    return identity
