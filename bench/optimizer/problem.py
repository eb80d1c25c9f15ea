"""The benchmark problem and a minimal sequential ask/tell loop over ``StudyView``/``RunRecord``.

The objective is the synthetic backend's analytic learning curves (``SyntheticProblem``, called as
a pure function: no processes, no storage), whose best learning rate moves with model size (the
proxy bias). The loop keeps runs as ``RunRecord``s and rebuilds a ``StudyView`` before every
decision, as the tuner does, so each optimizer sees exactly what it would see in a study.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.optimize import minimize

from jfhpo.backends.synthetic import SyntheticProblem
from jfhpo.fidelity import ModelLadder, ModelRung, StepBudget
from jfhpo.optimizers.base import Optimizer
from jfhpo.records import Extend, Phase, RunRecord, Start
from jfhpo.space import CategoricalParam, FloatParam, SearchSpace
from jfhpo.transfer import measure_transfer
from jfhpo.view import StudyView

SPACE = SearchSpace(
    [
        FloatParam("learning_rate", 1e-6, 1e-2, log=True),
        FloatParam("beta", 1e-4, 1e-1, log=True),
        FloatParam("epsilon", 0.1, 0.4),
        CategoricalParam("num_generations", (4, 8, 16)),
    ]
)
LADDER = ModelLadder(
    [
        ModelRung("1m", 1e6, cost=1.0),
        ModelRung("30m", 3e7, cost=4.0),
        ModelRung("1b", 1e9, cost=16.0),
    ]
)
STEPS = StepBudget(min_steps=10, max_steps=90, eta=3)
EVAL_EVERY = 10
#: simulated seconds every segment costs on top of its steps (process start, model load, final eval)
SEGMENT_OVERHEAD = 5.0


def true_target(problem: SyntheticProblem, config: Mapping[str, Any]) -> float:
    """Noise-free score of ``config`` on the target at the full budget."""
    return problem.true_score(config, LADDER.target.params, STEPS.max_steps)


def target_optimum(problem: SyntheticProblem) -> float:
    """The best noise-free target score (grid over the categorical, L-BFGS over the rest)."""
    best = -math.inf
    rng = np.random.default_rng(0)
    for g in (4, 8, 16):
        def neg(u: np.ndarray, g: int = g) -> float:
            cfg = {**SPACE.decode([*u, 0.0]), "num_generations": g}
            return -true_target(problem, cfg)

        starts = rng.random((64, 3))
        vals = [neg(u) for u in starts]
        for u0 in starts[np.argsort(vals)[:4]]:
            res = minimize(neg, u0, bounds=[(0, 1)] * 3, method="L-BFGS-B")
            best = max(best, -float(res.fun))
    return best


@dataclass
class Loop:
    """Sequential ask/tell over a synthetic problem; one worker, costs in simulated seconds."""

    optimizer: Optimizer
    problem: SyntheticProblem
    seed: int
    budget: float
    runs: list[RunRecord] = field(default_factory=list)
    costs: list[tuple[str, int, float]] = field(default_factory=list)
    spent: float = 0.0
    n: int = 0

    def view(self) -> StudyView:
        return StudyView(
            space=SPACE,
            ladder=LADDER,
            steps=STEPS,
            seed=self.seed,
            objective="score",
            runs=tuple(self.runs),
            budget_total=self.budget,
            budget_spent=self.spent,
            n_suggestions=self.n,
            transfer=measure_transfer(self.runs, LADDER, SPACE),
            segment_costs=tuple(self.costs),
        )

    def _curve(self, config: Mapping[str, Any], model: str, run_id: int, upto: int) -> list[
        tuple[int, float]
    ]:
        params = LADDER[model].params
        steps = [*range(EVAL_EVERY, upto, EVAL_EVERY), upto]
        seed = self.seed * 100_003 + run_id
        return [(s, self.problem.eval_score(config, params, s, seed)) for s in steps]

    def step(self) -> bool:
        """One decision and its (instant) execution; False when the budget is spent."""
        if self.spent >= self.budget:
            return False
        sug = self.optimizer.suggest(self.view())
        self.n += 1
        if sug is None:
            return False
        if isinstance(sug, Start):
            rid, config, model, start = len(self.runs), dict(sug.config), sug.model, 0
            old_cost = 0.0
        else:
            assert isinstance(sug, Extend)
            old = self.runs[sug.run_id]
            rid, config, model, start, old_cost = old.run_id, dict(old.config), old.model, (
                old.steps_done
            ), old.cost
        curve = self._curve(config, model, rid, sug.steps)
        cost = self.problem.cost(LADDER[model].cost, sug.steps - start) + SEGMENT_OVERHEAD
        rec = RunRecord(rid, config, model, Phase.SEARCH, steps_done=sug.steps,
                        score=curve[-1][1], cost=old_cost + cost, curve=tuple(curve),
                        checkpoint_step=sug.steps)
        if rid == len(self.runs):
            self.runs.append(rec)
        else:
            self.runs[rid] = replace(rec)
        self.costs.append((model, sug.steps - start, cost))
        self.spent += cost
        return True
