"""Bounded resources: a decompression bomb is refused, no input up to 10 MB costs 300 MB, wide JSON is linear.

Peak memory is measured as the operating system sees it: ``channelwatch import`` runs as a child of a
small runner process, which reports ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` — the largest
resident set of its descendants, the read-ahead child included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import write_instance
from tests.ingest.corpus import with_shared_strings, xlsx_bomb, xlsx_bytes

LIMIT_KB = 300 * 1024
_RUNNER = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "sys.stderr.write(done.stderr)\n"
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def peak_of_import(instance: Path, path: Path) -> tuple[int, int, str, float]:
    """(exit code, peak resident memory in KiB, stderr, seconds) of one ``channelwatch import``."""
    command = [sys.executable, "-m", "channelwatch", "--instance", str(instance), "import", "website", str(path)]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _RUNNER, *command], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    code, peak = (int(v) for v in done.stdout.split())
    return code, peak, done.stderr, elapsed


def _csv(path: Path, size: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("标题,发布时间,链接\n")
        n = 0
        while handle.tell() < size:
            handle.write(
                f"园区动态第{n}条：企业服务与安全生产,2020-{n % 12 + 1:02d}-15 09:00,http://www.example.gov.cn/{n}.html\n"
            )
            n += 1
    return path


def _shared_strings_xlsx(path: Path, size: int) -> Path:
    """A valid XLSX of about ``size`` bytes whose titles are all different shared strings."""
    rows = xlsx_bytes([["占位", "2020-06-01", "", "原创"]])
    count = size // 24
    strings = "".join(f"<si><t>{os.urandom(12).hex()}</t></si>" for _ in range(count))
    shared = (
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        f'count="{count}" uniqueCount="{count}">{strings}</sst>'
    )
    date = "<is><t>2020-06-01</t></is>"
    cells = "".join(
        f'<row r="{n + 2}"><c r="A{n + 2}" t="s"><v>{n}</v></c><c r="B{n + 2}" t="inlineStr">{date}</c></row>'
        for n in range(0, count, 50)
    )
    path.write_bytes(
        with_shared_strings(
            rows,
            lambda sheet: sheet.replace(b"</sheetData>", cells.encode() + b"</sheetData>"),
            lambda: shared.encode(),
        )
    )
    return path


def _wide_json(path: Path, keys: int, objects: int) -> Path:
    names = [f"字段{n}" for n in range(keys)]
    with path.open("w", encoding="utf-8") as handle:
        handle.write("[")
        for index in range(objects):
            entry = dict.fromkeys(names, 1)
            entry.update({"标题": f"通知{index}", "发布时间": "2020-06-01"})
            handle.write(("," if index else "") + json.dumps(entry, ensure_ascii=False))
        handle.write("]")
    return path


@pytest.mark.slow
def test_no_input_up_to_10_mb_costs_300_mb(tmp_path: Path) -> None:
    instance = write_instance(tmp_path / "instance")
    bomb = tmp_path / "bomb.xlsx"
    bomb.write_bytes(xlsx_bomb(1 << 30))
    inputs = {
        "bomb.xlsx": (bomb, 1),
        "big.csv": (_csv(tmp_path / "big.csv", (10 << 20) - 4096), 0),
        "strings.xlsx": (_shared_strings_xlsx(tmp_path / "strings.xlsx", 9 << 20), 0),
        "deep.json": (tmp_path / "deep.json", 1),
        "wide.json": (_wide_json(tmp_path / "wide.json", 100_000, 5), 0),
    }
    (tmp_path / "deep.json").write_bytes(b"[" * (5 << 20) + b"]" * (5 << 20))
    peaks = {}
    for name, (path, expected) in inputs.items():
        assert path.stat().st_size <= 10 << 20, name
        code, peak, stderr, elapsed = peak_of_import(instance, path)
        assert code == expected, (name, stderr)
        assert "Traceback" not in stderr
        assert elapsed < 30, (name, elapsed)
        peaks[name] = peak
        assert peak < LIMIT_KB, f"{name}: {peak // 1024} MB"
    assert bomb.stat().st_size < 2 << 20
    print("peak memory (MB):", {name: peak // 1024 for name, peak in peaks.items()})


def test_a_decompression_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    from channelwatch.errors import InputError
    from channelwatch.sources.files import open_export

    path = tmp_path / "bomb.xlsx"
    path.write_bytes(xlsx_bomb(1 << 30))
    started = time.monotonic()
    with pytest.raises(InputError, match="疑似压缩炸弹"):
        open_export(path, zone="Asia/Shanghai")
    assert time.monotonic() - started < 2


def test_json_with_100000_keys_per_object_is_read_in_linear_time(tmp_path: Path) -> None:
    from channelwatch.sources.files import open_export

    def seconds(keys: int) -> float:
        path = _wide_json(tmp_path / f"wide{keys}.json", keys, 4)
        started = time.monotonic()
        export = open_export(path, zone="Asia/Shanghai")
        entries = list(export.rows())
        assert len(entries) == 4 and not any(getattr(e, "problems", None) for e in entries)
        return time.monotonic() - started

    # The best of three runs: on a shared machine one run can lose a few tenths of a second to other work.
    small, large = min(seconds(20_000) for _ in range(3)), min(seconds(100_000) for _ in range(3))
    assert large < 5  # quadratic header building took 34 s here
    assert large < 5 * small * 3  # five times the keys, well under 25 times the time
