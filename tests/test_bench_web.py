"""The web benchmark still runs end to end and prints its ratios (speed is not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

_CHECKOUT = Path(__file__).resolve().parent.parent


def test_bench_web_prints_a_ratio_per_figure(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_web", "--runs", "120", "--lineage-nodes", "50",
         "--repeats", "2", "--dir", str(tmp_path)],
        cwd=_CHECKOUT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.endswith(("ok", "OVER"))]
    assert len(rows) == 4, done.stdout
    assert "drawn afresh" in rows[0]
    assert "(kept)" in rows[1]
    assert rows[2].startswith("runs page, newest 50 of 120")
    assert rows[3].startswith("runs page, a later page")
