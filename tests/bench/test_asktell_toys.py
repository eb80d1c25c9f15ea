"""bench/optimizer/asktell_toys.py: the analytic bowls through AskTell, run as a user runs it on
a slice (two bowls, two methods, one seed), the bowls' scores, and the table it writes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tests.bench.conftest import TableRun

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "optimizer"))

import asktell_toys  # noqa: E402


def test_each_bowl_peaks_at_its_optimum_on_every_model() -> None:
    rng = np.random.default_rng(0)
    for problem, models in asktell_toys.MODELS.items():
        for name, _, _ in models:
            top = asktell_toys.optimum(problem, name)
            peak = asktell_toys.score(problem, top, name, 90)
            others = [asktell_toys.score(problem, rng.uniform(size=top.size), name, 90)
                      for _ in range(20)]
            assert all(v < peak for v in others), (problem, name)
    # the moving bowls' target optimum is not the proxy's; bowl4's is
    for problem in ("bowl1-fall", "bowl2-shift", "bowl3-ladder"):
        first, last = asktell_toys.MODELS[problem][0][0], asktell_toys.MODELS[problem][-1][0]
        assert not np.allclose(asktell_toys.optimum(problem, first),
                               asktell_toys.optimum(problem, last))
    assert np.allclose(asktell_toys.optimum("bowl4", "s"), asktell_toys.optimum("bowl4", "t"))
    # bowl1-fall's score worsens with training away from its optimum, the others' rise
    x = np.array([0.9])
    assert asktell_toys.score("bowl1-fall", x, "t", 90) < asktell_toys.score("bowl1-fall", x, "t", 10)
    x2 = np.array([0.4, 0.5])
    assert asktell_toys.score("bowl2-shift", x2, "t", 90) > asktell_toys.score("bowl2-shift", x2, "t", 10)


def test_the_bowls_table_runs_and_scores_every_answer(ask_tell_table: TableRun) -> None:
    rows, table = ask_tell_table("asktell_toys.py", [
        "--seeds", "1", "--budgets", "3", "--problems", "bowl1-fall", "bowl3-ladder",
        "--methods", "hyperband", "jfhpo"])
    assert {(row["problem"], row["method"]) for row in rows} == {
        (p, m) for p in ("bowl1-fall", "bowl3-ladder") for m in ("hyperband", "jfhpo")}
    for row in rows:
        assert float(row["regret"]) >= -1e-12  # the bowls are noise-free at the answer
        assert row["answer_model"] == "t" and int(row["answer_steps"]) == 90
    assert "analytic bowls" in table and "## bowl3-ladder, budget 3" in table
