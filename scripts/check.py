"""The test command: linters, type check, then the test suite. Exits non-zero on the first failure.

python scripts/check.py [extra pytest arguments]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STEPS = [
    ["ruff", "check", "src", "tests", "scripts"],
    ["ruff", "format", "--check", "src", "tests", "scripts"],
    ["mypy", "src"],
]


def main() -> int:
    for step in STEPS:
        print(f"$ {' '.join(step)}", flush=True)
        if subprocess.run([sys.executable, "-m", *step], cwd=REPO).returncode:
            return 1
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *sys.argv[1:]]
    print(f"$ {' '.join(pytest[2:])}", flush=True)
    return subprocess.run(pytest, cwd=REPO).returncode


if __name__ == "__main__":
    sys.exit(main())
