"""Drive an optimizer through ask/tell on the synthetic curves (two models: 50k proxy, 4m target)."""

from __future__ import annotations

from jfhpo.api import AskTell
from jfhpo.backends.synthetic import SyntheticProblem, example_space

MODELS = [{"name": "50k", "params": 5e4, "cost": 1.0}, {"name": "4m", "params": 4e6, "cost": 10.0}]


def drive(optimizer: str, budget: float, seed: int = 0, **opts: object) -> AskTell:
    """Ask and tell until the budget is spent; scores are the synthetic evaluation at the end."""
    problem = SyntheticProblem()
    at = AskTell(example_space(), MODELS, {"min": 10, "max": 90}, optimizer=optimizer,
                 optimizer_options=opts, budget=budget, seed=seed,
                 confirm={"top_k": 0})  # the optimizer alone: no confirmation stage
    while (t := at.ask()) is not None:
        params = 5e4 if t.model == "50k" else 4e6
        score = problem.eval_score(t.config, params, t.steps, seed=t.run_id)
        cost = problem.cost(1.0 if t.model == "50k" else 10.0, t.steps - t.start_step)
        at.tell(t, score, cost, [(t.steps, score)])
    return at
