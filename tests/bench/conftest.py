"""Shared by the benchmark tests: run an ask/tell table script of bench/optimizer on a slice."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: (script name, its arguments) -> (the rows of its CSV, the text of its table)
TableRun = Callable[[str, list[str]], tuple[list[dict[str, str]], str]]


@pytest.fixture
def ask_tell_table(tmp_path: Path) -> TableRun:
    """Run ``bench/optimizer/SCRIPT ARGS --out TMP`` as a user would, check every row scores an
    answer measured on the target (a finite regret, no better than the problem's best), and
    return the rows and the table it wrote."""

    def run(script: str, args: list[str]) -> tuple[list[dict[str, str]], str]:
        out = tmp_path / "out"
        r = subprocess.run([sys.executable, str(ROOT / "bench" / "optimizer" / script), *args,
                            "--out", str(out)],
                           capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        name = Path(script).stem
        with open(out / f"{name}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            regret = float(row["regret"])
            assert math.isfinite(regret) and regret > -1e-3  # no answer beats the problem's best
            assert int(row["target_trials"]) >= 1  # the answer was measured on the target
        return rows, (out / f"{name}.md").read_text()

    return run
