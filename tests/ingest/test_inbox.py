"""The inbox: good files end in done/, bad ones in failed/ with their reasons, counts right."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from typer.testing import CliRunner

from channelwatch import store
from channelwatch.cli import app
from channelwatch.ingest.imports import import_file
from channelwatch.ingest.inbox import import_inbox
from channelwatch.instance.config import load_instance
from channelwatch.stats.figures import Period, summarise
from channelwatch.store import open_store
from channelwatch.store.jobstate import job_states
from tests.conftest import SAMPLES

WEBSITE_CSV = next((SAMPLES / "website").iterdir())
GOOD_CSV = "标题,发布时间,链接\n园区召开安全生产会议,2020-06-01 09:00,http://www.example.gov.cn/a/1.html\n"
BAD_CSV = (
    "标题,发布时间,链接\n"
    "园区召开安全生产会议,2020-06-01 09:00,http://www.example.gov.cn/a/1.html\n"
    "园区开展消防演练,2020-13-45,http://www.example.gov.cn/a/2.html\n"
)


def _setup(instance_dir: Path, settle: str = "0s") -> Path:
    (instance_dir / "jobs" / "inbox.toml").write_text(
        f'action = "import-inbox"\nevery = "5m"\npath = "inbox"\nsettle = "{settle}"\n', encoding="utf-8"
    )
    for channel in ("website", "weibo", "wechat"):
        (instance_dir / "inbox" / channel).mkdir(parents=True)
    return instance_dir / "inbox"


def _counts(instance_dir: Path) -> dict[str, int]:
    opened = open_store(load_instance(instance_dir))
    try:
        with store.read(opened.engine) as conn:
            summary = summarise(conn, opened.office_id, Period(2020))
        return {c.key: c.total for c in summary.channels}
    finally:
        opened.dispose()


def _run(instance_dir: Path) -> str:
    result = CliRunner().invoke(app, ["--instance", str(instance_dir), "run-job", "inbox"])
    assert result.exit_code == 0, result.output
    return result.output


def test_good_file_done_bad_file_failed_counts_right(instance_dir: Path) -> None:
    inbox = _setup(instance_dir)
    shutil.copy(WEBSITE_CSV, inbox / "website" / WEBSITE_CSV.name)
    (inbox / "weibo" / "bad.csv").write_text(BAD_CSV, encoding="utf-8")
    output = _run(instance_dir)
    assert "警告" in output  # a rejected file is worth a look, the job itself did its work

    assert (inbox / "website" / "done" / WEBSITE_CSV.name).read_bytes() == WEBSITE_CSV.read_bytes()
    assert not (inbox / "website" / WEBSITE_CSV.name).exists()
    assert (inbox / "weibo" / "failed" / "bad.csv").read_text(encoding="utf-8") == BAD_CSV
    reasons = (inbox / "weibo" / "failed" / "bad.csv.error.txt").read_text(encoding="utf-8")
    assert "第3行" in reasons and "2020-13-45" in reasons and "未导入" in reasons

    # The good file's publications, all of them; nothing of the bad file (rejected whole).
    opened = open_store(load_instance(instance_dir))
    reference = open_store(load_instance(_fresh_copy(instance_dir)))
    import_file(reference, "website", WEBSITE_CSV)
    with store.read(reference.engine) as conn:
        expected = summarise(conn, reference.office_id, Period(2020))
    reference.dispose()
    counts = _counts(instance_dir)
    assert counts["website"] == next(c.total for c in expected.channels if c.key == "website") > 0
    assert counts["weibo"] == 0
    state = job_states(opened.engine, opened.office_id)["inbox"]
    assert state.last_status == "warn" and "导入 1 个文件" in (state.last_message or "")
    assert "拒收 1 个" in (state.last_message or "")
    opened.dispose()

    # Fixed and dropped again: imported; the failed copy stays (nothing is ever deleted).
    (inbox / "weibo" / "bad.csv").write_text(GOOD_CSV, encoding="utf-8")
    _run(instance_dir)
    assert (inbox / "weibo" / "done" / "bad.csv").is_file()
    assert (inbox / "weibo" / "failed" / "bad.csv").is_file()
    assert _counts(instance_dir)["weibo"] == 1


def _fresh_copy(instance_dir: Path) -> Path:
    from tests.conftest import write_instance

    return write_instance(instance_dir.parent / "reference")


def test_file_still_being_written_is_left_for_the_next_round(instance_dir: Path) -> None:
    inbox = _setup(instance_dir, settle="30s")
    target = inbox / "website" / "export.csv"
    target.write_text(GOOD_CSV, encoding="utf-8")
    output = _run(instance_dir)
    assert "未写完待下次 1 个" in output
    assert target.is_file() and not (inbox / "website" / "done").exists()
    assert _counts(instance_dir)["website"] == 0

    # Once it has settled (here: an older mtime *and* a zero settle time), it is imported.
    opened = open_store(load_instance(instance_dir))
    result = import_inbox(opened, inbox, settle=0)
    opened.dispose()
    assert [f.status for f in result.files] == ["imported"]
    assert _counts(instance_dir)["website"] == 1


def test_mtime_in_the_past_does_not_hide_a_fresh_copy(instance_dir: Path) -> None:
    # A copy from Windows keeps the original's mtime; the ctime still shows the fresh write.
    inbox = _setup(instance_dir)
    target = inbox / "website" / "copied.csv"
    target.write_text(GOOD_CSV, encoding="utf-8")
    old = time.time() - 86400
    os.utime(target, (old, old))
    opened = open_store(load_instance(instance_dir))
    result = import_inbox(opened, inbox, settle=30)
    opened.dispose()
    assert [f.status for f in result.files] == ["waiting"]


def test_same_name_twice_and_a_crash_between_import_and_move(instance_dir: Path) -> None:
    inbox = _setup(instance_dir)
    (inbox / "website" / "export.csv").write_text(GOOD_CSV, encoding="utf-8")
    _run(instance_dir)
    # A process killed after the import committed but before the move: the file is still there.
    (inbox / "website" / "export.csv").write_text(GOOD_CSV, encoding="utf-8")
    opened = open_store(load_instance(instance_dir))
    import_file(opened, "website", inbox / "website" / "export.csv")
    opened.dispose()
    _run(instance_dir)
    assert _counts(instance_dir)["website"] == 1  # nothing doubled
    done = sorted(p.name for p in (inbox / "website" / "done").iterdir())
    assert done == ["export.2.csv", "export.csv"]  # nothing overwritten


def test_unknown_folder_and_loose_files_are_reported_and_left(instance_dir: Path) -> None:
    inbox = _setup(instance_dir)
    (inbox / "toutiao").mkdir()
    (inbox / "toutiao" / "x.csv").write_text(GOOD_CSV, encoding="utf-8")
    (inbox / "loose.csv").write_text(GOOD_CSV, encoding="utf-8")
    (inbox / "website" / "~$export.xlsx").write_bytes(b"lock")
    (inbox / "website" / ".hidden.csv").write_text(GOOD_CSV, encoding="utf-8")
    output = _run(instance_dir)
    assert "toutiao/：配置中没有这个渠道 id" in output and "loose.csv" in output
    assert (inbox / "toutiao" / "x.csv").is_file() and (inbox / "loose.csv").is_file()
    assert (inbox / "website" / "~$export.xlsx").is_file() and (inbox / "website" / ".hidden.csv").is_file()
    assert _counts(instance_dir)["website"] == 0


def test_a_weibo_log_dropped_in_the_website_folder_is_refused(instance_dir: Path) -> None:
    inbox = _setup(instance_dir)
    weibo_log = SAMPLES / "weibo" / "微博发布记录_2020年1-7月.csv"
    shutil.copy(weibo_log, inbox / "website" / weibo_log.name)
    output = _run(instance_dir)
    assert "警告" in output and "拒收 1 个" in output
    assert _counts(instance_dir)["website"] == 0
    reasons = (inbox / "website" / "failed" / f"{weibo_log.name}.error.txt").read_text(encoding="utf-8")
    assert "文件看起来是微博的导出" in reasons and "渠道「website」的类型是 website" in reasons
    assert "--force" not in reasons  # the inbox has no command-line flags


def test_a_file_imported_by_hand_with_rows_skipped_is_judged_whole_in_the_inbox(instance_dir: Path) -> None:
    """The same bytes imported before with --skip-invalid are not "already imported": rows of it were left out."""
    inbox = _setup(instance_dir)
    by_hand = instance_dir / "bad.csv"
    by_hand.write_text(BAD_CSV, encoding="utf-8")
    result = CliRunner().invoke(
        app, ["--instance", str(instance_dir), "import", "weibo", str(by_hand), "--skip-invalid"]
    )
    assert result.exit_code == 0, result.output
    (inbox / "weibo" / "again.csv").write_text(BAD_CSV, encoding="utf-8")
    output = _run(instance_dir)
    assert "拒收 1 个" in output, output
    assert not (inbox / "weibo" / "done" / "again.csv").exists()
    reasons = (inbox / "weibo" / "failed" / "again.csv.error.txt").read_text(encoding="utf-8")
    assert "第3行" in reasons and "2020-13-45" in reasons
    assert _counts(instance_dir)["weibo"] == 1  # the valid row the hand import kept, once


def test_a_file_imported_whole_before_is_moved_to_done_without_importing_again(instance_dir: Path) -> None:
    inbox = _setup(instance_dir)
    by_hand = instance_dir / "good.csv"
    by_hand.write_text(GOOD_CSV, encoding="utf-8")
    assert CliRunner().invoke(app, ["--instance", str(instance_dir), "import", "weibo", str(by_hand)]).exit_code == 0
    (inbox / "weibo" / "same.csv").write_text(GOOD_CSV, encoding="utf-8")
    _run(instance_dir)
    assert (inbox / "weibo" / "done" / "same.csv").is_file()
    assert _counts(instance_dir)["weibo"] == 1


def test_the_reasons_file_shows_a_titles_escape_sequences_instead_of_obeying_them(instance_dir: Path) -> None:
    """``cat bad.csv.error.txt`` must not let a title clear the screen or retitle the terminal."""
    inbox = _setup(instance_dir)
    hostile = "标题,发布时间\n正常,2020-06-01 09:00\n\x1b]0;pwned\x07\x1b[31m坏日期,\x1b[2J2020-13-45\n"
    (inbox / "weibo" / "hostile.csv").write_text(hostile, encoding="utf-8")
    _run(instance_dir)
    reasons = (inbox / "weibo" / "failed" / "hostile.csv.error.txt").read_text(encoding="utf-8")
    assert "第3行" in reasons and "\\x1b[2J2020-13-45" in reasons
    assert not any(ch in reasons for ch in "\x1b\x07"), reasons
    # The file itself is kept exactly as it came, for comparison.
    assert (inbox / "weibo" / "failed" / "hostile.csv").read_text(encoding="utf-8") == hostile


def _two_sheets(path: Path, mark: str = "") -> Path:
    from openpyxl import Workbook

    book = Workbook()
    first = book.active
    assert first is not None
    first.title = "1-6月"
    first.append(["标题", "发布时间"])
    first.append([f"上半年的一条{mark}", "2020-03-01 09:00"])
    second = book.create_sheet("7-12月")
    second.append(["标题", "发布时间"])
    second.append(["下半年的一条", "2020-08-01 09:00"])
    book.create_sheet("空表")
    book.save(path)
    return path


def test_a_workbook_whose_other_sheets_hold_rows_is_imported_with_a_warning(instance_dir: Path, tmp_path: Path) -> None:
    """Only the first worksheet is read: an export split over two sheets lost its second half without a word."""
    warning = "只导入了第一个工作表「1-6月」，另有 1 个工作表有内容，未导入：「7-12月」"
    by_hand = CliRunner().invoke(
        app, ["--instance", str(instance_dir), "import", "website", str(_two_sheets(tmp_path / "两个表.xlsx"))]
    )
    assert by_hand.exit_code == 0 and warning in by_hand.stderr
    inbox = _setup(instance_dir)
    _two_sheets(inbox / "website" / "又两个表.xlsx", "（又）")
    result = CliRunner().invoke(app, ["--instance", str(instance_dir), "run-job", "inbox"])
    assert warning in result.output and "警告" in result.output
    jobs = CliRunner().invoke(app, ["--instance", str(instance_dir), "jobs"]).output
    assert "警告" in next(line for line in jobs.splitlines() if line.startswith("inbox"))
