"""samples/2020 is what scripts/make_samples.py writes: regenerating it gives the same data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from openpyxl import load_workbook

from tests.conftest import REPO, SAMPLES


def test_samples_are_generated_deterministically(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_samples.py"), str(tmp_path)], check=True)
    shipped = sorted(p.relative_to(SAMPLES) for p in SAMPLES.rglob("*") if p.is_file())
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert generated == shipped and len(shipped) == 5
    for relative in shipped:
        if relative.suffix == ".xlsx":
            # Workbooks carry their creation time; their cells must be identical.
            def cells(path: Path) -> list[list[object]]:
                sheet = load_workbook(path).worksheets[0]
                return [[c.value for c in row] for row in sheet.iter_rows()]

            assert cells(tmp_path / relative) == cells(SAMPLES / relative), relative
        else:
            assert (tmp_path / relative).read_bytes() == (SAMPLES / relative).read_bytes(), relative
