"""Start-up pays only for what a command uses: `--help` and `summary` load no chart, office-file or HTTP library."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import write_instance

# Libraries only some commands need: charts, XLSX, Word, HTTP, the scheduler, the fast XLSX reader.
DEFERRED = ["matplotlib", "openpyxl", "docx", "httpx", "apscheduler", "python_calamine"]


def _loaded_after(code: str) -> tuple[list[str], str]:
    probe = textwrap.dedent(f"""
        import json, sys
        {code}
        print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}} & set({DEFERRED!r}))))
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return list(json.loads(done.stdout.strip().splitlines()[-1])), done.stdout


def test_importing_the_cli_loads_no_deferred_library() -> None:
    assert _loaded_after("import channelwatch.cli")[0] == []
    assert _loaded_after("import channelwatch.cli, httpx")[0] == ["httpx"]  # the probe sees a library loaded
    assert (
        "channelwatch"
        in subprocess.run(
            [sys.executable, "-m", "channelwatch", "--help"], capture_output=True, text=True, check=True
        ).stdout
    )


def test_summary_loads_no_deferred_library(tmp_path: Path) -> None:
    root = write_instance(tmp_path / "instance")
    code = textwrap.dedent(f"""
        from channelwatch.cli import app
        try:
            app(["--instance", {str(root)!r}, "summary", "--year", "2020"], standalone_mode=False)
        except SystemExit as exc:
            assert not exc.code, exc.code
    """).replace("\n", "\n        ")
    loaded, output = _loaded_after(code)
    assert "2020年" in output and "公开政府信息" in output  # the summary really ran
    assert loaded == []
