"""Hostile export files: each ends in exit 0 (stored) or exit 1 with one Chinese message, fast, run closed.

The corpus (tests/ingest/corpus.py) holds one file per malformed value the readers meet: dates and
offsets out of range, repost markers outside the documented set, broken URLs, NUL bytes and lone
surrogates, encodings without a BOM or unknown, JSON nested 100,000 deep, corrupt XLSX parts and a
decompression bomb; the CSV and XLSX cases again inside files of 4 MiB or more, which the read-ahead
child process reads. Generated property cases (hypothesis) add random date cells.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from channelwatch import store
from channelwatch.cli import app
from channelwatch.instance.config import load_instance
from channelwatch.store import open_store
from channelwatch.store.models import Run
from tests.conftest import write_instance
from tests.ingest.corpus import HEADER, Case, big, corpus

CASES = corpus()
# Every CSV and XLSX case fits in a big file; the suite runs the out-of-range values named in the
# CHANGELOG and one of each other kind (about 1.5 s each), CHANNELWATCH_FULL_CORPUS=1 runs them all.
_BIG_SAMPLE = {
    "date-0.csv",  # 0001-01-01
    "date-2.csv",  # 9999-12-31T23:00-05:00
    "date-4.csv",  # 1e400
    "date-6.csv",  # 99999999999小时前
    "date-13.csv",  # +24:00
    "repost-1.csv",
    "url-0.csv",  # bad IPv6
    "url-2.csv",  # bad port
    "url-long.csv",
    "nul-title.csv",
    "mixed.csv",
    "formula.xlsx",
    "dimension-0.xlsx",
    "truncated.xlsx",
    "sheet-garbage.xlsx",
    "shared-index.xlsx",
}
BIG = [
    big(c)
    for c in CASES
    if c.name.endswith((".csv", ".xlsx"))
    and c.encoding is None
    and not c.name.startswith(("utf16", "odd-utf16", "utf32", "random", "empty", "bom-only", "bomb", "huge", "many"))
    and (os.environ.get("CHANNELWATCH_FULL_CORPUS") == "1" or c.name in _BIG_SAMPLE)
]


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_instance(tmp_path_factory.mktemp("hostile") / "instance")


def _running_runs(instance: Path) -> int:
    opened = open_store(load_instance(instance))
    try:
        with store.read(opened.engine) as conn:
            table = Run.__table__  # type: ignore[attr-defined]
            return len(conn.execute(table.select().where(table.c.status == "running")).all())
    finally:
        opened.dispose()


def run_case(instance: Path, folder: Path, case: Case) -> tuple[int, str, float]:
    path = folder / case.name
    path.write_bytes(case.data)
    args = ["--instance", str(instance), "import", "website", str(path)]
    if case.encoding is not None:
        args += ["--encoding", case.encoding]
    started = time.monotonic()
    result = CliRunner().invoke(app, args)
    elapsed = time.monotonic() - started
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(
            f"{case.name}: {type(result.exception).__name__}: {result.exception}"
        ) from result.exception
    return result.exit_code, result.stderr, elapsed


def check(instance: Path, folder: Path, case: Case) -> None:
    code, stderr, elapsed = run_case(instance, folder, case)
    assert elapsed < 30, f"{case.name} took {elapsed:.1f} s"
    assert code in (0, 1), (case.name, code, stderr)
    assert "Traceback" not in stderr
    if case.expect == "ok":
        assert code == 0, (case.name, stderr)
    elif case.expect == "rejected":
        assert code == 1, case.name
    if code == 1:
        assert stderr.startswith("错误："), (case.name, stderr)
        assert stderr.count("错误：") == 1, (case.name, stderr)
        if case.says:
            assert case.says in stderr, (case.name, stderr)
        assert len(stderr) < 20_000  # the message quotes cells, never the file
    assert _running_runs(instance) == 0, f"{case.name} left its run open"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_file(instance: Path, tmp_path: Path, case: Case) -> None:
    check(instance, tmp_path, case)


@pytest.mark.slow
@pytest.mark.parametrize("case", BIG, ids=[c.name for c in BIG])
def test_hostile_file_read_by_the_readahead_child(instance: Path, tmp_path: Path, case: Case) -> None:
    assert len(case.data) >= 4 << 20
    check(instance, tmp_path, case)


_date_text = st.one_of(
    st.text(max_size=40),
    st.from_regex(
        r"-?\d{1,6}[-/.年]\d{1,3}[-/.月]\d{1,3}日?( \d{1,3}:\d{1,3}(:\d{1,3})?)?( ?[+-]\d{2}:?\d{2})?", fullmatch=True
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cell=_date_text)
def test_any_date_cell_is_stored_or_one_message(instance: Path, tmp_path: Path, cell: str) -> None:
    quoted = '"' + cell.replace('"', '""') + '"'
    data = (HEADER + "\n" + f"通知,{quoted},,原创\n").encode("utf-8", "surrogatepass")
    case = Case("property.csv", data, "either", "property")
    check(instance, tmp_path, case)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    suffix=st.sampled_from([".csv", ".json", ".xlsx", ".txt"]),
    body=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
            max_leaves=20,
        ).map(lambda v: json.dumps(v, allow_nan=True).encode()),
    ),
)
def test_any_bytes_are_stored_or_one_message(instance: Path, tmp_path: Path, suffix: str, body: bytes) -> None:
    check(instance, tmp_path, Case("anything" + suffix, body, "either", "property"))
