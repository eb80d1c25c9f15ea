from __future__ import annotations

from pathlib import Path

from jfhpo.api import AskTell
from jfhpo.backends.synthetic import SyntheticProblem, example_space
from jfhpo.study import Study

MODELS = [{"name": "50k", "params": 5e4, "cost": 1.0}, {"name": "4m", "params": 4e6, "cost": 10.0}]


def test_ask_tell_any_objective_stored_in_a_real_study(tmp_path: Path) -> None:
    problem = SyntheticProblem(bias=0.0)
    at = AskTell(example_space(), MODELS, {"min": 10, "max": 90}, optimizer="hyperband",
                 optimizer_options={"model": "50k"}, budget=60.0, seed=5, folder=tmp_path / "s")
    told = 0
    while (t := at.ask()) is not None:
        assert t.model == "50k" and 0 <= t.start_step < t.steps <= 90
        score, _, curve = problem.objective(t.config, 5e4, t.steps, seed=t.run_id)
        at.tell(t, score, problem.cost(1.0, t.steps - t.start_step), curve)
        told += 1
    best = at.best()
    assert best is not None and best["model"] == "50k"
    at.close()
    st = Study.open(tmp_path / "s")
    assert st.budget_spent() <= 60.0  # the budget is a cap
    assert len(st.segments) == told
    st.close()


def test_failed_trials_are_recorded() -> None:
    at = AskTell(example_space(), MODELS, {"min": 10, "max": 90}, optimizer="random", budget=50)
    t = at.ask()
    assert t is not None
    at.tell(t, None, cost=30.0, failed=True)
    r = at.view().run(t.run_id)
    assert r.failed and r.score is None
    assert at.view().budget_spent == 30.0
    at.close()
