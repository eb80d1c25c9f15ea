"""The suite's problems: a search space, a model ladder, step budgets, curves, costs and the truth.

Every problem answers the same questions, as pure functions (no processes, no storage):

* ``metrics(config, model, run_key, step)``: what a trainer would report at ``step`` (canonical
  training metrics where the problem has them, for the stopping rules);
* ``evaluate(config, model, run_key, step)``: the objective the optimizer sees at ``step``;
* ``cost(config, model, start, end, evals)``: simulated seconds of one segment;
* ``truth(config)``: the score regret is measured against (the target at the full budget; for the
  replay problem the mean over the recorded training seeds);
* ``best`` and ``worst``: the best and worst truth over the problem's reference set.

Problems:

``replay-tiny``
    Recorded real GRPO curves of the tiny workload (``jfhpo.backends.replay.Recording``); a
    configuration maps to the nearest recorded one, the optimizer sees the seed-0 curve, costs are
    the recorded CPU seconds. Best and worst over the recorded configurations.
``synthetic-b0`` / ``synthetic-b0.5``
    The synthetic backend's analytic curves (``SyntheticProblem``) in 4 dimensions (learning rate,
    KL beta, clip epsilon, group size) on the ladder 1m -> 30m -> 1b with a proxy bias of 0 / 0.5
    decades of learning rate per decade of parameters (bench/optimizer/problem.py's setting).
``rosenbrock-mf``
    BoTorch's ``AugmentedRosenbrock`` in 6 dimensions: 4 design variables on [-5, 10] and its two
    fidelity parameters, the first set by the model size (rungs at 0.25, 0.5, 0.75, 1.0), the second
    by the steps (steps / max steps). Score = -log10(1 + f) (f >= 0; 0 at the optimum).
``hartmann-mf``
    BoTorch's ``AugmentedHartmann``: 6 design variables on [0, 1] and one fidelity parameter, set to
    the mean of the normalised model-size and step fidelities (the function has only one). Score =
    -H (the optimum 3.32237 at fidelity 1).
The test functions are noise-free and have no training metrics (only the evaluation-based stopping
rules can act on them); their cost per step follows the tiny ladder's measured CPU ratios.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jfhpo.backends.replay import Recording, ReplayBackend, load_recording
from jfhpo.backends.synthetic import DEFAULTS as SYN_DEFAULTS
from jfhpo.backends.synthetic import SyntheticProblem
from jfhpo.fidelity import ModelLadder, ModelRung, StepBudget
from jfhpo.space import FloatParam, SearchSpace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "optimizer"))
import problem as optbench

EVAL_EVERY = 10


@dataclass
class Problem:
    """Base: subclasses fill the fields and implement the four functions."""

    name: str
    space: SearchSpace
    ladder: ModelLadder
    steps: StepBudget
    recipe: Mapping[str, Any]
    best: float = math.nan
    worst: float = math.nan
    full_cost: float = math.nan  # mean seconds of one full-budget target run (the budget unit)

    def metrics(self, config: Mapping[str, Any], model: str, run_key: int, step: int) -> dict[str, float]:
        return {}

    def evaluate(self, config: Mapping[str, Any], model: str, run_key: int, step: int) -> float:
        raise NotImplementedError

    def cost(self, config: Mapping[str, Any], model: str, start: int, end: int, evals: int) -> float:
        raise NotImplementedError

    def truth(self, config: Mapping[str, Any]) -> float:
        raise NotImplementedError

    def target_run_cost(self, config: Mapping[str, Any]) -> float:
        """Seconds of one full-budget target run of ``config`` (what confirmation costs)."""
        n_evals = len(range(EVAL_EVERY, self.steps.max_steps + 1, EVAL_EVERY)) or 1
        return self.cost(config, self.ladder.target.name, 0, self.steps.max_steps, n_evals)


class ReplayProblem(Problem):
    """Recorded tiny-workload curves (see the module docstring)."""

    def __init__(self, recording: Recording) -> None:
        rec = recording
        rungs = sorted(rec.rung_params, key=lambda m: rec.rung_params[m])
        base = rec.mean_step_cpu(rungs[0])
        ladder = ModelLadder([ModelRung(m, rec.rung_params[m], cost=rec.mean_step_cpu(m) / base)
                              for m in rungs])
        self.rec = rec
        self.backend = ReplayBackend({})
        self.backend._path = rec.path or None
        recipe = {k: v for k, v in ReplayBackend.recipe().items() if k in rec.space.names}
        super().__init__("replay-tiny", rec.space, ladder,
                         StepBudget(min_steps=10, max_steps=rec.max_steps, eta=3), recipe)
        truths = [rec.target_score(c) for c in rec.complete]
        self.best, self.worst = float(max(truths)), float(min(truths))
        target = ladder.target.name
        n_evals = len(range(EVAL_EVERY, rec.max_steps + 1, EVAL_EVERY))
        self.full_cost = float(np.mean([
            self.backend.segment_cost(rec.run(c, target, 0), 0, rec.max_steps, n_evals)
            for c in rec.complete
        ]))
        self._cid: dict[str, int] = {}

    def cid(self, config: Mapping[str, Any]) -> int:
        key = self.space.key(config)
        if key not in self._cid:
            self._cid[key] = self.rec.nearest({**self.recipe, **config})
        return self._cid[key]

    def metrics(self, config: Mapping[str, Any], model: str, run_key: int, step: int) -> dict[str, float]:
        return dict(self.rec.run(self.cid(config), model, 0).metrics_at(step))

    def evaluate(self, config: Mapping[str, Any], model: str, run_key: int, step: int) -> float:
        return self.rec.score(self.cid(config), model, step, 0)

    def cost(self, config: Mapping[str, Any], model: str, start: int, end: int, evals: int) -> float:
        return self.backend.segment_cost(self.rec.run(self.cid(config), model, 0), start, end, evals)

    def truth(self, config: Mapping[str, Any]) -> float:
        return self.rec.target_score(self.cid(config))


class SyntheticSuiteProblem(Problem):
    """``SyntheticProblem`` on bench/optimizer's 4-d space and 1m -> 30m -> 1b ladder."""

    def __init__(self, bias: float, seed: int = 0) -> None:
        self.p = SyntheticProblem(bias=bias)
        super().__init__(f"synthetic-b{bias:g}", optbench.SPACE, optbench.LADDER, optbench.STEPS,
                         {k: SYN_DEFAULTS[k] for k in optbench.SPACE.names})
        self.best = optbench.target_optimum(self.p)
        rng = np.random.default_rng(1)
        self.worst = float(min(self.truth(self.space.sample(rng)) for _ in range(1024)))
        self.full_cost = self.target_run_cost(self.recipe)
        self.seed = seed

    def metrics(self, config: Mapping[str, Any], model: str, run_key: int, step: int) -> dict[str, float]:
        rng = np.random.default_rng([self.seed, run_key, step, 3])
        return self.p.step_metrics(config, self.ladder[model].params, step, rng)

    def evaluate(self, config: Mapping[str, Any], model: str, run_key: int, step: int) -> float:
        return self.p.eval_score(config, self.ladder[model].params, step, self.seed * 100_003 + run_key)

    def cost(self, config: Mapping[str, Any], model: str, start: int, end: int, evals: int) -> float:
        return self.p.cost(self.ladder[model].cost, end - start) + optbench.SEGMENT_OVERHEAD

    def truth(self, config: Mapping[str, Any]) -> float:
        return optbench.true_target(self.p, config)


#: the tiny ladder's measured CPU seconds per step relative to 50k (bench/tiny_workload timing)
TINY_COST = {"50k": 1.0, "200k": 1.35, "1m": 3.24, "4m": 9.79}
TEST_STEP_SECONDS = 0.085  # the 50k model's measured CPU seconds per GRPO step
TEST_OVERHEAD = 1.0


class TestFunctionProblem(Problem):
    """A BoTorch multi-fidelity test function with model size and steps as fidelities."""

    def __init__(self, name: str) -> None:
        import torch
        from botorch.test_functions.multi_fidelity import AugmentedHartmann, AugmentedRosenbrock

        self.kind = name
        if name == "rosenbrock-mf":
            self.fn: Any = AugmentedRosenbrock(dim=6)
            params = [FloatParam(f"x{i}", -5.0, 10.0) for i in range(4)]
        elif name == "hartmann-mf":
            self.fn = AugmentedHartmann()
            params = [FloatParam(f"x{i}", 0.0, 1.0) for i in range(6)]
        else:
            raise ValueError(name)
        self.torch = torch
        rungs = [ModelRung(m, p, cost=TINY_COST[m]) for m, p in
                 (("50k", 5.07e4), ("200k", 2.0e5), ("1m", 9.9e5), ("4m", 3.95e6))]
        space = SearchSpace(params)
        super().__init__(name, space, ModelLadder(rungs), StepBudget(10, 90, 3),
                         space.decode([0.5] * space.dim))
        self.level = {r.name: (i + 1) / len(rungs) for i, r in enumerate(rungs)}
        self.best = 0.0 if name == "rosenbrock-mf" else 3.32237
        rng = np.random.default_rng(1)
        self.worst = float(min(self.truth(self.space.sample(rng)) for _ in range(1024)))
        self.full_cost = self.target_run_cost(self.recipe)

    def _score(self, config: Mapping[str, Any], model: str, step: int) -> float:
        x = [float(config[n]) for n in self.space.names]
        size, frac = self.level[model], step / self.steps.max_steps
        fid = [size, frac] if self.kind == "rosenbrock-mf" else [(size + frac) / 2.0]
        val = float(self.fn.evaluate_true(self.torch.tensor([x + fid], dtype=self.torch.float64))[0])
        return -math.log10(1.0 + max(val, 0.0)) if self.kind == "rosenbrock-mf" else -val

    def evaluate(self, config: Mapping[str, Any], model: str, run_key: int, step: int) -> float:
        return self._score(config, model, step)

    def cost(self, config: Mapping[str, Any], model: str, start: int, end: int, evals: int) -> float:
        return TEST_STEP_SECONDS * self.ladder[model].cost * (end - start) + TEST_OVERHEAD

    def truth(self, config: Mapping[str, Any]) -> float:
        return self._score(config, self.ladder.target.name, self.steps.max_steps)


def make_problem(name: str, recording: str | None = None) -> Problem:
    """A problem by name (``recording``: a replay file other than the packaged one)."""
    if name == "replay-tiny":
        return ReplayProblem(load_recording(recording))
    if name.startswith("synthetic-b"):
        return SyntheticSuiteProblem(float(name[len("synthetic-b"):]))
    return TestFunctionProblem(name)


PROBLEMS = ("replay-tiny", "synthetic-b0", "synthetic-b0.5", "rosenbrock-mf", "hartmann-mf")
