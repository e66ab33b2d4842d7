"""Run every benchmark in bench/ one after another and print their figures (`make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Helper modules, not benchmarks.
SKIP = {"run_all.py", "harness.py", "fake_llm_server.py", "__init__.py", "corpus.py", "process_db.py"}
# Benchmarks living in subfolders.
EXTRA = ("peers/compare.py",)


def main() -> int:
    failures = 0
    scripts = [s for s in sorted(HERE.glob("*.py")) if s.name not in SKIP] + [HERE / e for e in EXTRA]
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        result = subprocess.run([sys.executable, str(script)], cwd=HERE.parent)
        failures += result.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
