"""Analytic two-fidelity bowls through ``AskTell``: the problems a new user tries first.

    python bench/optimizer/asktell_toys.py --seeds 20 --budgets 3 5 10 \
        [--problems bowl1-fall bowl2-shift bowl3-ladder bowl4] \
        [--methods random hyperband bohb jfhpo] [--jobs 2] [--out bench/optimizer/results/asktell_toys]

Each problem is a quadratic bowl over hyperparameters in [0, 1] whose optimum may move with
model size, trained for 10 to 90 steps (an evaluation every 10) on a proxy 20 times cheaper per
step than the target (``MODELS``); no recipe, no stopping rules, ``best()`` is the answer, each
budget (in full target runs) its own study. Regret = the target's best full-budget score minus
the answer's, both noise-free. Unlike ``asktell.py`` (GRPO-like curves, a learning rate that
diverges) the bowls have no learning rate and no divergence, so only the generic parts of each
method act: the budget split, successive halving, the surrogate, confirmation.

  bowl1-fall    1 dimension; optimum 0.6 on the proxy, 0.3 on the target; the score
                -(x - optimum)^2 * steps / 90 worsens with training (a loss-like score; no noise)
  bowl2-shift   2 dimensions; optimum (0.7, 0.4) on the proxy, (0.35, 0.5) on the target; the
                score (1 - 2 d^2)(1 - exp(-steps / 30)) rises and saturates; noise sd 0.01
  bowl3-ladder  3 dimensions, three sizes (per-step costs 1, 4, 20); the optimum's first
                coordinate moves 0.2 per size (0.2, 0.4, 0.6); the rising score of bowl2-shift
  bowl4         4 dimensions; the same optimum on both sizes; the rising score

Writes ``asktell_toys.csv`` and ``asktell_toys.md`` (the summary of ``asktell.py``).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from asktell import result_row, table_main  # noqa: E402

from jfhpo.api import AskTell  # noqa: E402

METHODS = ("random", "hyperband", "bohb", "jfhpo")
STEPS = {"min": 10, "max": 90, "eta": 3}
EVAL_EVERY = 10
NOISE = 0.01
#: problem -> (name, parameter count, cost per step) of each model, the target last
MODELS: dict[str, tuple[tuple[str, float, float], ...]] = {
    "bowl1-fall": (("s", 1e6, 1.0), ("t", 1e8, 20.0)),
    "bowl2-shift": (("s", 1e6, 1.0), ("t", 1e8, 20.0)),
    "bowl3-ladder": (("s", 1e6, 1.0), ("m", 1e7, 4.0), ("t", 1e8, 20.0)),
    "bowl4": (("s", 1e6, 1.0), ("t", 1e8, 20.0)),
}
PROBLEMS = tuple(MODELS)


def optimum(problem: str, model: str) -> np.ndarray:
    """Where the bowl's top is on ``model``."""
    names = [m[0] for m in MODELS[problem]]
    rung = names.index(model)
    if problem == "bowl1-fall":
        return np.array([0.6 if rung == 0 else 0.3])
    if problem == "bowl2-shift":
        return np.array([0.7, 0.4]) if rung == 0 else np.array([0.35, 0.5])
    if problem == "bowl3-ladder":
        return np.array([0.2 + 0.2 * rung, 0.5, 0.6])
    return np.array([0.3, 0.6, 0.5, 0.2])


def score(problem: str, x: np.ndarray, model: str, steps: int) -> float:
    """The noise-free score of ``x`` on ``model`` after ``steps`` steps."""
    d2 = float(np.sum((x - optimum(problem, model)) ** 2))
    if problem == "bowl1-fall":
        return -d2 * steps / STEPS["max"]
    return (1.0 - 2.0 * d2) * (1.0 - math.exp(-steps / 30.0))


def run_one(problem: str, method: str, budget_runs: float, seed: int,
            options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Drive ``method`` on ``problem`` through AskTell with ``budget_runs`` full target runs
    (``options``: the optimizer's options, its defaults when None)."""
    models = MODELS[problem]
    dim = len(optimum(problem, models[-1][0]))
    names = [f"x{i}" for i in range(dim)]
    per_step = {name: cost for name, _, cost in models}
    target = models[-1][0]
    at = AskTell({n: {"type": "float", "low": 0.0, "high": 1.0} for n in names},
                 [{"name": n, "params": p, "cost": c} for n, p, c in models], STEPS,
                 optimizer=method, optimizer_options=options, seed=seed,
                 budget=budget_runs * per_step[target] * STEPS["max"])
    noisy = problem != "bowl1-fall"
    rng = np.random.default_rng(seed * 7919 + 1)
    t0 = time.perf_counter()
    n_trials = target_trials = 0
    try:
        while (trial := at.ask()) is not None:
            x = np.array([float(trial.config[n]) for n in names])
            steps = [s for s in [*range(trial.start_step + EVAL_EVERY, trial.steps, EVAL_EVERY),
                                 trial.steps] if s > trial.start_step]
            curve = [(s, score(problem, x, trial.model, s)
                      + (float(rng.normal(0.0, NOISE)) if noisy else 0.0)) for s in steps]
            at.tell(trial, curve[-1][1], per_step[trial.model] * (trial.steps - trial.start_step),
                    curve)
            n_trials += 1
            target_trials += trial.model == target
        best = at.best()
    finally:
        at.close()
    full = STEPS["max"]
    top = score(problem, optimum(problem, target), target, full)
    regret = (top - score(problem, np.array([float(best["config"][n]) for n in names]), target,
                          full)) if best else float("nan")
    return result_row((problem, method, budget_runs, seed), regret, n_trials, target_trials, best,
                      t0)


def _job(args: tuple[str, str, float, int]) -> dict[str, Any]:
    return run_one(*args)


def main(argv: list[str] | None = None) -> int:
    return table_main(argv, doc=__doc__, script="asktell_toys.py", name="asktell_toys",
                      title="Ask/tell regret on analytic bowls", problems=PROBLEMS,
                      methods=METHODS, seeds=20, budgets=(3.0, 5.0, 10.0), job=_job)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
