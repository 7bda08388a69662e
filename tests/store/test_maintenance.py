"""Channel rename and run undo on SQLite and PostgreSQL: the figures are those of a store without the mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from channelwatch import store
from channelwatch.errors import UserError
from channelwatch.ingest.imports import import_file
from channelwatch.instance.config import load_instance
from channelwatch.stats.figures import Period, summarise
from channelwatch.store import Store, open_store
from channelwatch.store.maintenance import rename_channel, undo_run
from channelwatch.store.models import Publication, Run
from tests.conftest import SAMPLES, write_instance

KEYS = ["website", "weibo", "wechat"]
WEIBO_1 = SAMPLES / "weibo" / "微博发布记录_2020年1-7月.csv"  # 707 posts, January to July
WEIBO_2 = SAMPLES / "weibo" / "微博发布记录_2020年7-12月.xlsx"  # 624 posts, 104 of them also in WEIBO_1


def snapshot(opened: Store) -> tuple[object, ...]:
    """Everything a figure is made of: per channel totals, reposts and months, and the unique items."""
    with store.read(opened.engine) as conn:
        summary = summarise(conn, opened.office_id, Period(2020), KEYS)
    return (
        summary.total,
        summary.reposts,
        summary.unique_items,
        tuple((c.key, c.total, c.reposts, tuple(sorted(c.by_month.items()))) for c in summary.channels),
    )


def undo(opened: Store, run_id: int | None) -> object:
    assert run_id is not None
    with store.write(opened.engine) as conn:
        return undo_run(conn, opened.office_id, run_id)


@pytest.fixture
def opened(any_instance_dir: Path) -> Store:
    return open_store(load_instance(any_instance_dir))


def test_undo_then_the_right_file_counts_as_if_the_wrong_one_never_came(
    opened: Store, tmp_path: Path, database_url: str
) -> None:
    # The wrong file: the second half-year's Weibo log imported into the website channel (forced).
    wrong = import_file(opened, "website", WEIBO_2, force=True)
    assert wrong.rows_new == 624
    done = undo(opened, wrong.run_id)
    assert (done.removed, done.kept) == (624, 0)  # type: ignore[attr-defined]
    right = import_file(opened, "website", SAMPLES / "website" / "网站信息发布统计_2020.csv")

    clean = open_store(load_instance(write_instance(tmp_path / "clean", url=_other(database_url, tmp_path))))
    reference = import_file(clean, "website", SAMPLES / "website" / "网站信息发布统计_2020.csv")
    assert (right.rows_read, right.rows_new, right.rows_known) == (
        reference.rows_read,
        reference.rows_new,
        reference.rows_known,
    )
    assert snapshot(opened) == snapshot(clean)
    run = Run.__table__  # type: ignore[attr-defined]
    with store.read(opened.engine) as conn:
        status = conn.execute(select(run.c.status).where(run.c.id == wrong.run_id)).scalar_one()
    assert status == "undone"
    clean.dispose()
    opened.dispose()


def test_undo_keeps_what_a_later_run_saw_again(opened: Store, tmp_path: Path, database_url: str) -> None:
    """Publications first stored by the undone run and seen again later stay: the later run would have stored them."""
    first = import_file(opened, "weibo", WEIBO_1)
    second = import_file(opened, "weibo", WEIBO_2)
    assert (second.rows_new, second.rows_known) == (520, 104)
    done = undo(opened, first.run_id)
    assert (done.removed, done.kept) == (707 - 104, 104)  # type: ignore[attr-defined]

    clean = open_store(load_instance(write_instance(tmp_path / "clean", url=_other(database_url, tmp_path))))
    import_file(clean, "weibo", WEIBO_2)
    assert snapshot(opened) == snapshot(clean)  # as if WEIBO_1 had never been imported

    # The kept ones now belong to the later run: undoing it too leaves nothing.
    pub = Publication.__table__  # type: ignore[attr-defined]
    with store.read(opened.engine) as conn:
        owners = dict(conn.execute(select(pub.c.first_run_id, func.count()).group_by(pub.c.first_run_id)).all())
    assert owners == {second.run_id: 624}
    again = undo(opened, second.run_id)
    assert (again.removed, again.kept) == (624, 0)  # type: ignore[attr-defined]
    assert snapshot(opened)[0] == 0
    # And a re-import of the first file counts every row as new, as on an empty store.
    assert import_file(opened, "weibo", WEIBO_1).rows_new == 707
    clean.dispose()
    opened.dispose()


def test_only_a_finished_import_or_poll_of_this_office_is_undone(opened: Store, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("标题,发布时间\n好的,2020-01-01\n坏的,不是日期\n", encoding="utf-8")
    with pytest.raises(UserError):
        import_file(opened, "website", bad)
    run = Run.__table__  # type: ignore[attr-defined]
    with store.read(opened.engine) as conn:
        rejected = conn.execute(select(func.max(run.c.id))).scalar_one()
    with pytest.raises(UserError, match=r"拒收.*不能撤销"):
        undo(opened, rejected)
    good = import_file(opened, "website", SAMPLES / "website" / "网站信息发布统计_2020.csv")
    undo(opened, good.run_id)
    with pytest.raises(UserError, match=r"已撤销，不能撤销两次"):
        undo(opened, good.run_id)
    with pytest.raises(UserError, match="没有编号为 9999 的运行记录"):
        undo(opened, 9999)
    opened.dispose()


def test_rename_moves_publications_and_runs_and_merges_duplicates(opened: Store) -> None:
    import_file(opened, "weibo", WEIBO_1)
    before = snapshot(opened)[0]
    assert isinstance(before, int) and before > 0
    with store.write(opened.engine) as conn:
        # "sina" is not configured: made on the fly, then renamed back onto the configured "weibo".
        moved = rename_channel(conn, opened.office_id, "weibo", "sina")
    assert (moved.moved, moved.merged, moved.runs) == (707, 0, 1)
    assert snapshot(opened)[0] == 0  # "sina" is not in the config: nothing of it is counted
    import_file(opened, "weibo", WEIBO_2)  # 104 of these are also in the moved rows
    with store.write(opened.engine) as conn:
        back = rename_channel(conn, opened.office_id, "sina", "weibo", new_kind="weibo")
    assert (back.moved, back.merged) == (707 - 104, 104)
    assert stored(opened, "weibo") == 707 + 520  # each publication once
    with store.write(opened.engine) as conn, pytest.raises(UserError, match="类型不同"):
        rename_channel(conn, opened.office_id, "weibo", "website", new_kind="website")
    with store.write(opened.engine) as conn, pytest.raises(UserError, match="没有本单位渠道 id「nothing」"):
        rename_channel(conn, opened.office_id, "nothing", "weibo")
    assert stored(opened, "weibo") == 707 + 520 and stored(opened, "website") == 0
    assert snapshot(opened)[0] > before
    opened.dispose()


def stored(opened: Store, key: str) -> int:
    pub = Publication.__table__  # type: ignore[attr-defined]
    with store.read(opened.engine) as conn:
        count = conn.execute(select(func.count()).where(pub.c.channel_id == opened.channel_ids[key])).scalar_one()
    return int(count)


def _other(database_url: str, tmp_path: Path) -> str:
    """A second, empty database of the same kind as ``database_url``."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'clean.db'}"
    from tests.conftest import new_postgres_database

    return new_postgres_database(database_url.rsplit("/", 1)[0] + "/postgres")


def test_the_same_wrong_file_imported_several_times_can_be_undone_whole(
    opened: Store, tmp_path: Path, database_url: str
) -> None:
    """Each import of the same file "sees" its rows again: undoing them in turn keeps the rows for ever. Undoing
    the run they are credited to with ``also_kept`` deletes them; re-importing the right file restores its rows."""
    first = import_file(opened, "weibo", WEIBO_1)  # the wrong file, imported three times
    right = import_file(opened, "weibo", WEIBO_2)  # the right one, 104 rows shared with the wrong one
    import_file(opened, "weibo", WEIBO_1)
    again = import_file(opened, "weibo", WEIBO_1)
    done = undo(opened, first.run_id)
    assert (done.removed, done.kept, done.successor) == (0, 707, right.run_id)  # type: ignore[attr-defined]
    assert undo(opened, again.run_id).removed == 0  # type: ignore[attr-defined]
    with pytest.raises(UserError, match=f"运行 {again.run_id}（导入 .*）已撤销，不能撤销两次"):
        undo(opened, again.run_id)
    with store.write(opened.engine) as conn:
        whole = undo_run(conn, opened.office_id, right.run_id, also_kept=True)
    assert (whole.removed, whole.kept) == (707 + 520, 0)
    import_file(opened, "weibo", WEIBO_2)

    clean = open_store(load_instance(write_instance(tmp_path / "clean", url=_other(database_url, tmp_path))))
    import_file(clean, "weibo", WEIBO_2)
    assert snapshot(opened) == snapshot(clean)
    clean.dispose()
    opened.dispose()


def test_rows_only_undone_runs_saw_again_are_deleted(opened: Store) -> None:
    first = import_file(opened, "weibo", WEIBO_1)
    again = import_file(opened, "weibo", WEIBO_1)
    assert undo(opened, again.run_id).removed == 0  # type: ignore[attr-defined]
    done = undo(opened, first.run_id)  # the only later run that saw them is undone
    assert (done.removed, done.kept) == (707, 0)  # type: ignore[attr-defined]
    assert snapshot(opened)[0] == 0
    opened.dispose()


def test_the_undo_command_says_where_kept_rows_went_and_how_to_remove_them(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from channelwatch.cli import app

    root = write_instance(tmp_path / "office")

    def cw(*args: str) -> str:
        result = CliRunner().invoke(app, ["--instance", str(root), *args])
        assert result.exit_code == 0, result.output
        return result.output

    cw("import", "weibo", str(WEIBO_1))  # run 1
    cw("import", "weibo", str(WEIBO_1))  # run 2: the same file again
    said = cw("runs", "undo", "1")
    assert "删除了 0 条由该次运行首次写入的发布记录；另有 707 条后来又被其他运行看到" in said
    assert "予以保留，改记在运行 2 名下" in said
    assert "channelwatch runs undo 2 --also-kept" in said
    said = cw("runs", "undo", "2", "--also-kept")
    assert "删除了 707 条由该次运行首次写入的发布记录（含后来又被其他运行看到的）" in said
    assert '"total": 0' in cw("summary", "--year", "2020", "--format", "json")
