"""Held-out check of the ask/tell table: the suite's problems driven through ``AskTell`` without
their recipe, as a new user would drive them.

    python bench/optimizer/asktell_suite.py --seeds 10 --budgets 3 5 10 \
        [--problems replay-tiny synthetic-b0 synthetic-b0.5 rosenbrock-mf hartmann-mf] \
        [--methods random hyperband bohb jfhpo] [--jobs 2] [--out bench/optimizer/results/asktell_suite]

``bench/optimizer/asktell.py`` is where jfhpo's choices without a recipe were measured and chosen;
these five problems (``bench/suite/problems.py``: recorded tiny-workload curves, the synthetic
curves on another ladder and space, two BoTorch multi-fidelity test functions) played no part in
those choices, so this table says whether they carry over. Every method runs with its defaults,
no recipe and no stopping rules; each budget (in full target runs of the problem) is its own
study; the answer is ``best()``. Regret = the problem's best target score - the answer's true
target score (``Problem.truth``). Writes ``asktell_suite.csv`` and ``asktell_suite.md`` (the same
summary as ``asktell.py``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "suite"))

from asktell import result_row, table_main  # noqa: E402

from jfhpo.api import AskTell  # noqa: E402
from jfhpo.space import CategoricalParam, FloatParam, IntParam, SearchSpace  # noqa: E402

PROBLEMS = ("replay-tiny", "synthetic-b0", "synthetic-b0.5", "rosenbrock-mf", "hartmann-mf")
METHODS = ("random", "hyperband", "bohb", "jfhpo")
EVAL_EVERY = 10


def space_spec(space: SearchSpace) -> dict[str, dict[str, Any]]:
    """The study-file form of ``space`` (what ``AskTell`` takes)."""
    out: dict[str, dict[str, Any]] = {}
    for p in space.params:
        if isinstance(p, FloatParam):
            out[p.name] = {"type": "float", "low": p.low, "high": p.high, "log": p.log}
        elif isinstance(p, IntParam):
            out[p.name] = {"type": "int", "low": p.low, "high": p.high, "log": p.log}
        elif isinstance(p, CategoricalParam):
            out[p.name] = {"type": "categorical", "choices": list(p.choices)}
        else:
            raise TypeError(f"unknown parameter {p!r}")
    return out


def run_one(problem: str, method: str, budget_runs: float, seed: int) -> dict[str, Any]:
    """Drive ``method`` on the suite problem ``problem`` through AskTell, without its recipe."""
    from problems import make_problem

    p = make_problem(problem)
    models = [{"name": r.name, "params": r.params, "cost": r.cost} for r in p.ladder.rungs]
    steps = {"min": p.steps.min_steps, "max": p.steps.max_steps, "eta": p.steps.eta}
    at = AskTell(space_spec(p.space), models, steps, optimizer=method, seed=seed,
                 budget=budget_runs * p.full_cost)
    t0 = time.perf_counter()
    n_trials = target_trials = 0
    target = p.ladder.target.name
    try:
        while (trial := at.ask()) is not None:
            points = [*range(trial.start_step + EVAL_EVERY, trial.steps, EVAL_EVERY), trial.steps]
            points = [s for s in points if s > trial.start_step]
            key = seed * 100_003 + trial.run_id
            curve = [(s, p.evaluate(trial.config, trial.model, key, s)) for s in points]
            cost = p.cost(trial.config, trial.model, trial.start_step, trial.steps, len(points))
            at.tell(trial, curve[-1][1], cost, curve)
            n_trials += 1
            target_trials += trial.model == target
        best = at.best()
    finally:
        at.close()
    regret = p.best - p.truth(best["config"]) if best else float("nan")
    return result_row((problem, method, budget_runs, seed), regret, n_trials, target_trials, best,
                      t0)


def _job(args: tuple[str, str, float, int]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    return run_one(*args)


def main(argv: list[str] | None = None) -> int:
    return table_main(argv, doc=__doc__, script="asktell_suite.py", name="asktell_suite",
                      title="Ask/tell regret on the suite's problems (held out)",
                      problems=PROBLEMS, methods=METHODS, seeds=10, budgets=(3.0, 5.0, 10.0),
                      job=_job)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
