"""bench/optimizer/asktell_suite.py: the suite's problems through AskTell, run as a user runs it
on a slice (two problems, two methods, one seed), and the table it writes."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_held_out_ask_tell_table_runs_and_scores_every_answer(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "optimizer" / "asktell_suite.py"), "--seeds", "1",
         "--budgets", "3", "--problems", "synthetic-b0.5", "hartmann-mf", "--methods",
         "hyperband", "jfhpo", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    with open(out / "asktell_suite.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(row["problem"], row["method"]) for row in rows} == {
        (p, m) for p in ("synthetic-b0.5", "hartmann-mf") for m in ("hyperband", "jfhpo")}
    for row in rows:
        regret = float(row["regret"])
        assert math.isfinite(regret) and regret > -1e-3  # no answer beats the problem's best
        assert int(row["target_trials"]) >= 1  # the answer was measured on the target
    table = (out / "asktell_suite.md").read_text()
    assert "held out" in table and "## hartmann-mf, budget 3" in table
