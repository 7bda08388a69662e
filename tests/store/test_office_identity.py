"""The office is found by its stable id, not by its name; old databases upgrade by themselves."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select, text

from channelwatch import store
from channelwatch.errors import ConfigError
from channelwatch.ingest.imports import import_file
from channelwatch.instance.config import load_instance
from channelwatch.stats.figures import Period, summarise
from channelwatch.store import open_store, schema
from channelwatch.store.models import Office, SchemaVersion
from tests.conftest import REPO, SAMPLES, write_instance

WEBSITE = SAMPLES / "website" / "网站信息发布统计_2020.csv"
OFFICE = "彭阳县王洼产业园区管理委员会"


def edit_config(root: Path, old: str, new: str) -> None:
    path = root / "config" / "channelwatch.toml"
    content = path.read_text(encoding="utf-8")
    assert old in content
    path.write_text(content.replace(old, new, 1), encoding="utf-8")


def figures(root: Path) -> tuple[str, int, int]:
    opened = open_store(load_instance(root))
    try:
        with store.read(opened.engine) as conn:
            summary = summarise(conn, opened.office_id, Period(2020), ["website", "weibo", "wechat"])
        return summary.office, summary.total, opened.office_id
    finally:
        opened.dispose()


def offices(root: Path) -> list[tuple[int, str | None, str]]:
    opened = open_store(load_instance(root))
    table = Office.__table__  # type: ignore[attr-defined]
    try:
        with store.read(opened.engine) as conn:
            return [tuple(r) for r in conn.execute(select(table.c.id, table.c.key, table.c.name).order_by(table.c.id))]
    finally:
        opened.dispose()


def loaded(root: Path) -> int:
    opened = open_store(load_instance(root))
    try:
        return import_file(opened, "website", WEBSITE).rows_new
    finally:
        opened.dispose()


def test_renaming_the_office_keeps_its_publications(any_instance_dir: Path) -> None:
    edit_config(any_instance_dir, "[office]\n", '[office]\nid = "wangwa"\n')
    assert loaded(any_instance_dir) == 8
    name, total, office_id = figures(any_instance_dir)
    assert (name, total) == (OFFICE, 6)
    edit_config(any_instance_dir, f'name = "{OFFICE}"', 'name = "彭阳县王洼产业园区管委会"')
    renamed = figures(any_instance_dir)
    assert renamed == ("彭阳县王洼产业园区管委会", 6, office_id)  # same office, new label, same figures
    assert offices(any_instance_dir) == [(office_id, "wangwa", "彭阳县王洼产业园区管委会")]


def test_without_id_the_only_office_of_the_database_is_used(any_instance_dir: Path) -> None:
    assert loaded(any_instance_dir) == 8
    # The init placeholder replaced after the first import: no id, the name changed.
    edit_config(any_instance_dir, f'name = "{OFFICE}"', 'name = "某某县某某局"')
    assert figures(any_instance_dir)[:2] == ("某某县某某局", 6)
    assert [o[1:] for o in offices(any_instance_dir)] == [(None, "某某县某某局")]
    # The id added later (and the name changed again at the same time): still the same office.
    edit_config(any_instance_dir, 'name = "某某县某某局"', 'id = "wangwa"\nname = "王洼产业园区管委会"')
    assert figures(any_instance_dir)[:2] == ("王洼产业园区管委会", 6)
    assert [o[1:] for o in offices(any_instance_dir)] == [("wangwa", "王洼产业园区管委会")]


def test_two_offices_share_a_database_by_id(tmp_path: Path, database_url: str) -> None:
    first = write_instance(tmp_path / "first", url=database_url)
    edit_config(first, "[office]\n", '[office]\nid = "wangwa"\n')
    second = write_instance(tmp_path / "second", url=database_url)
    edit_config(second, f'[office]\nname = "{OFFICE}"', '[office]\nid = "other"\nname = "彭阳县另一个局"')
    assert loaded(first) == 8
    assert figures(second)[1] == 0  # its own office: never the first office's figures
    assert loaded(second) == 8  # the same file counts again for another office
    assert figures(first)[1] == 6 and figures(second)[1] == 6
    assert [o[1] for o in offices(first)] == ["wangwa", "other"]
    # Two offices and a config without id whose name matches neither: one clear message.
    third = write_instance(tmp_path / "third", url=database_url)
    edit_config(third, f'name = "{OFFICE}"', 'name = "写错的单位名称"')
    with pytest.raises(ConfigError, match=r"数据库中有 2 个单位.*请在配置文件 \[office\] 中用 id"):
        open_store(load_instance(third))


def test_office_id_must_be_letters_digits_underscore_dash(tmp_path: Path) -> None:
    root = write_instance(tmp_path / "bad")
    edit_config(root, "[office]\n", '[office]\nid = "王洼 园区"\n')
    with pytest.raises(ConfigError, match=r"office\.id"):
        load_instance(root)


def _make_version_1(url: str) -> None:
    """A database as the first schema made it: the office table without its key column."""
    engine = store.open_engine(url)
    store.ensure_schema(engine)
    with store.write(engine) as conn:
        conn.execute(text("DROP INDEX ix_office_key"))
        conn.execute(text("ALTER TABLE office DROP COLUMN key"))
        conn.execute(text("UPDATE schema_version SET version = 1"))
        conn.execute(
            text(f"INSERT INTO office (name, short_name, timezone) VALUES ('{OFFICE}', '我委', 'Asia/Shanghai')")
        )
    engine.dispose()


def test_a_version_1_database_upgrades_by_itself(tmp_path: Path, database_url: str) -> None:
    _make_version_1(database_url)
    root = write_instance(tmp_path / "inst", url=database_url)
    assert loaded(root) == 8  # opened, upgraded, used
    edit_config(root, f'[office]\nname = "{OFFICE}"', '[office]\nid = "wangwa"\nname = "王洼产业园区管委会"')
    assert figures(root)[:2] == ("王洼产业园区管委会", 6)
    engine = store.open_engine(database_url)
    with store.read(engine) as conn:
        assert conn.execute(select(SchemaVersion.version)).scalar() == schema.SCHEMA_VERSION  # type: ignore[call-overload]
    engine.dispose()


def test_a_sqlite_file_written_by_the_previous_release_upgrades(tmp_path: Path) -> None:
    """``tests/data/schema_v1.db`` was written by channelwatch before office ids (8 website, 48 WeChat posts)."""
    root = tmp_path / "inst"
    (root / "data").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "data" / "schema_v1.db", root / "data" / "old.db")
    write_instance(root, url="sqlite:///data/old.db")
    # The placeholder name it was created with is replaced, and an id is added, in one edit.
    edit_config(root, f'[office]\nname = "{OFFICE}"', '[office]\nid = "wangwa"\nname = "王洼产业园区管委会"')
    opened = open_store(load_instance(root))
    try:
        assert any("某某县某某局" in n for n in opened.notices)  # the adoption is said, not silent
        with store.read(opened.engine) as conn:
            summary = summarise(conn, opened.office_id, Period(2020), ["website", "weibo", "wechat"])
            version = conn.execute(select(SchemaVersion.version)).scalar()  # type: ignore[call-overload]
        assert version == schema.SCHEMA_VERSION  # every step applied, the inspection tables too
        with store.read(opened.engine) as conn:
            assert all(conn.dialect.has_table(conn, t) for t in ("page_observation", "probe_result", "link_check"))
        assert (summary.office, summary.total) == ("王洼产业园区管委会", 6 + 48)
        assert [(c.key, c.total) for c in summary.channels] == [("website", 6), ("weibo", 0), ("wechat", 48)]
    finally:
        opened.dispose()
