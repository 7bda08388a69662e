"""PostgreSQL takes what SQLite takes: NUL bytes, lone surrogates, 8,000-character URLs, stored identically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channelwatch import store
from channelwatch.ingest.imports import import_file
from channelwatch.instance.config import load_instance
from channelwatch.store import IDENTITY_MAX, open_store
from channelwatch.store.models import Publication

LONG_URL = "http://www.example.gov.cn/xxgk/" + "长" * 3000 + "/" + "a" * 5000 + ".html"


def _stored(instance_dir: Path) -> list[tuple[str, str | None, str | None]]:
    opened = open_store(load_instance(instance_dir))
    try:
        table = Publication.__table__  # type: ignore[attr-defined]
        with store.read(opened.engine) as conn:
            rows = conn.execute(table.select()).all()
        # Sorted here: the two databases order NULL titles differently.
        return sorted(((r.identity, r.title, r.url) for r in rows), key=lambda r: (r[0], r[1] or "", r[2] or ""))
    finally:
        opened.dispose()


def test_hostile_text_is_stored_the_same_on_both_databases(any_instance_dir: Path, tmp_path: Path) -> None:
    opened = open_store(load_instance(any_instance_dir))
    csv_path = tmp_path / "site.csv"
    csv_path.write_text(
        "标题,发布时间,链接\n"
        "通知\x00公告,2020-06-01,http://www.example.gov.cn/a\x00b.html\n"
        f"很长的链接,2020-06-02,{LONG_URL}\n"
        "控制字符\x1b[31m,2020-06-03,\n",
        encoding="utf-8",
    )
    json_path = tmp_path / "list.json"
    json_path.write_text(
        json.dumps([{"标题": "孤立代理\ud800项", "发布时间": "2020-06-04"}], ensure_ascii=True), encoding="utf-8"
    )
    first = [import_file(opened, "website", p).rows_new for p in (csv_path, json_path)]
    again = [import_file(opened, "website", p).rows_known for p in (csv_path, json_path)]
    opened.dispose()
    assert first == [3, 1] and again == [3, 1]  # the unique index holds: nothing doubled

    stored = {title: (identity, url) for identity, title, url in _stored(any_instance_dir)}
    assert stored["通知公告"][1] == "http://www.example.gov.cn/ab.html"  # NULs removed, on both
    identity, url = stored["很长的链接"]
    assert url == LONG_URL  # the link itself is kept whole
    assert identity.startswith("h:") and len(identity) <= IDENTITY_MAX
    assert "控制字符\x1b[31m" in stored
    assert "孤立代理\ufffd项" in stored


@pytest.mark.postgres
def test_identities_on_sqlite_and_postgresql_are_equal(tmp_path: Path, postgres_server: str) -> None:
    from tests.conftest import new_postgres_database, write_instance

    path = tmp_path / "site.csv"
    path.write_text(f"标题,发布时间,链接\n通知\x00,2020-06-01,{LONG_URL}\n", encoding="utf-8")
    found = []
    for name, url in (("lite", f"sqlite:///{tmp_path / 'a.db'}"), ("pg", new_postgres_database(postgres_server))):
        instance = write_instance(tmp_path / name, url=url)
        opened = open_store(load_instance(instance))
        import_file(opened, "website", path)
        opened.dispose()
        found.append(_stored(instance))
    assert found[0] == found[1]


@pytest.mark.postgres
def test_the_corpus_behaves_the_same_on_both_databases(tmp_path: Path, postgres_server: str) -> None:
    """Every text, URL, date and JSON case of the hostile corpus: same exit code, same stored rows."""
    from typer.testing import CliRunner

    from channelwatch.cli import app
    from tests.conftest import new_postgres_database, write_instance
    from tests.ingest.corpus import corpus

    cases = [c for c in corpus() if c.family in {"text", "urls", "dates", "json", "repost"}]
    outcomes = []
    for name, url in (("lite", f"sqlite:///{tmp_path / 'a.db'}"), ("pg", new_postgres_database(postgres_server))):
        instance = write_instance(tmp_path / name, url=url)
        codes = []
        for case in cases:
            path = tmp_path / case.name
            path.write_bytes(case.data)
            result = CliRunner().invoke(app, ["--instance", str(instance), "import", "website", str(path)])
            assert result.exception is None or isinstance(result.exception, SystemExit), (case.name, result.exception)
            codes.append((case.name, result.exit_code))
        outcomes.append((codes, _stored(instance)))
    assert outcomes[0] == outcomes[1]
    assert len(outcomes[0][1]) > 10  # the comparison covers stored rows, not only refusals
