"""Items whose link is a placeholder (javascript:void(0);, #, 无, the site's home page) are different items.

Taken for links, such values made every item of a file "the same publication": only the first was stored.
They are known by their title and date now (docs/counting-rules.md, rule 1), on import, on a list page, and
for rows stored before (the v12 upgrade), so that importing the same file again adds the missing items only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text

from channelwatch import store
from channelwatch.identity import is_placeholder_link
from channelwatch.ingest.imports import import_file
from channelwatch.instance.config import load_instance
from channelwatch.sources.website import HtmlListOptions, read_list_page
from channelwatch.stats.figures import Period, summarise
from channelwatch.store import open_store
from channelwatch.store.models import Publication
from tests.conftest import write_instance

PLACEHOLDERS = ["javascript:void(0);", " JaVaScRiPt:alert(1)", "#", "无", "http://www.example.gov.cn/"]


def _total(opened: store.Store) -> int:
    with store.read(opened.engine) as conn:
        return summarise(conn, opened.office_id, Period(2020)).total


def _export(path: Path, link: str, titles: list[str]) -> Path:
    rows = [f'{title},"{link}",2020-10-0{day}' for day, title in enumerate(titles, 1)]
    path.write_text("\n".join(["标题,链接,发布时间", *rows]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("link", PLACEHOLDERS)
def test_items_sharing_a_placeholder_link_are_each_counted(tmp_path: Path, database_url: str, link: str) -> None:
    opened = open_store(load_instance(write_instance(tmp_path / "inst", url=database_url)))
    try:
        result = import_file(opened, "website", _export(tmp_path / "f.csv", link, ["十月甲", "十月乙", "十月丙"]))
        assert (result.rows_new, result.rows_known) == (3, 0)
        again = import_file(opened, "website", tmp_path / "f.csv")
        assert (again.rows_new, again.rows_known) == (0, 3)
        assert _total(opened) == 3
    finally:
        opened.dispose()


def test_real_links_are_still_links() -> None:
    for url in [
        "http://x.gov.cn/a.html",
        "/xxgk/a.html",
        "./202006/t1.html",
        "http://x.gov.cn/?p=12",
        "https://x.gov.cn/art/",
    ]:
        assert not is_placeholder_link(url), url
    for url in [*PLACEHOLDERS, "", "about:blank", "http://x.gov.cn/index.html", "http://x.gov.cn#top", "N/A"]:
        assert is_placeholder_link(url), url


def test_a_store_from_before_is_upgraded_so_that_the_file_imported_again_adds_only_what_was_lost(
    tmp_path: Path, database_url: str
) -> None:
    root = write_instance(tmp_path / "inst", url=database_url)
    opened = open_store(load_instance(root))
    export = _export(tmp_path / "f.csv", "javascript:void(0);", ["十月甲", "十月乙", "十月丙"])
    import_file(opened, "website", export)
    pub = Publication.__table__  # type: ignore[attr-defined]
    with store.write(opened.engine) as conn:  # as version 11 stored that file: its first row, under the link
        first = conn.execute(select(pub.c.id).order_by(pub.c.id)).scalars().first()
        conn.execute(pub.delete().where(pub.c.id != first))
        conn.execute(pub.update().values(identity="url:javascript:void(0);"))
        conn.execute(text("UPDATE schema_version SET version = 11"))
    opened.dispose()
    opened = open_store(load_instance(root))  # the upgrade
    try:
        with store.read(opened.engine) as conn:
            identities = conn.execute(select(pub.c.identity)).scalars().all()
        assert len(identities) == 1 and identities[0].startswith("fp:2020-10-01:")
        result = import_file(opened, "website", export)
        assert (result.rows_new, result.rows_known) == (2, 1)
        assert _total(opened) == 3
    finally:
        opened.dispose()


def test_a_list_item_linking_to_javascript_is_read_by_title_and_date() -> None:
    """One such item failed the whole channel's poll ("第2条有日期但没有链接")."""
    html = (
        '<ul class="list"><li><a href="./202010/t1.html">十月甲</a><span>2020-10-01</span></li>'
        '<li><a href="javascript:void(0);">十月乙</a><span>2020-10-02</span></li></ul>'
    )
    options = HtmlListOptions(type="html-list", url="http://www.example.gov.cn/xxgk/index.html", item="ul.list li")
    page = read_list_page(html, "http://www.example.gov.cn/xxgk/index.html", options, "Asia/Shanghai")
    assert [(o.title if o else None, link) for o, link, _ in page.entries] == [
        ("十月甲", "http://www.example.gov.cn/xxgk/202010/t1.html"),
        ("十月乙", None),
    ]
