"""BOHB: Hyperband's schedule with model-based proposals, stateless and seeded."""

from __future__ import annotations

import numpy as np
import pytest
from tests.optimizers.drive import MODELS
from tests.optimizers.drive import drive as drive_optimizer

import jfhpo.optimizers.bohb  # noqa: F401  (registers "bohb")
from jfhpo.api import AskTell
from jfhpo.backends.synthetic import example_space
from jfhpo.optimizers.base import OptimizerError, get_optimizer
from jfhpo.optimizers.bohb import BOHB, KDEProposer


def drive(budget: float, seed: int = 0, **opts: object) -> AskTell:
    return drive_optimizer("bohb", budget, seed, **opts)


def test_registered_by_name() -> None:
    assert get_optimizer("bohb") is BOHB


def test_same_schedule_as_hyperband_and_promotions_extend_runs() -> None:
    at = drive(budget=450.0)
    view = at.view()
    first = list(view.runs)[:9]
    assert all(r.model == "4m" for r in view.runs)
    promoted = [r for r in first if r.steps_done >= 30]
    assert len(promoted) == 3
    at10 = sorted(first, key=lambda r: dict(r.curve)[10], reverse=True)
    assert {r.run_id for r in at10[:3]} == {r.run_id for r in promoted}
    at.close()


def test_model_kicks_in_and_proposals_concentrate_on_good_regions() -> None:
    at = drive(budget=3000.0, random_fraction=0.0)
    view = at.view()
    bohb = BOHB({"random_fraction": 0.0})
    data = bohb.observations(view)
    assert data is not None
    _steps, x, y = data
    assert x.shape[1] == view.space.dim and len(y) >= view.space.dim + 2
    # configurations started after the model has data are closer to the good ones than uniform
    runs = [r for r in view.runs if r.steps_done >= 10]
    late = runs[len(runs) // 2:]
    best_lr = np.log10(max(runs, key=lambda r: r.score or -1).config["learning_rate"])
    spread_late = np.mean([abs(np.log10(r.config["learning_rate"]) - best_lr) for r in late])
    assert spread_late < 1.0  # uniform over 3 decades would be about 1.0 or more
    at.close()


def test_uniform_until_enough_observations() -> None:
    at = AskTell(example_space(), MODELS, {"min": 10, "max": 90}, optimizer="bohb", seed=1)
    assert BOHB().observations(at.view()) is None
    at.close()


def test_seeded_and_stateless() -> None:
    a, b = drive(budget=1500.0, seed=4), drive(budget=1500.0, seed=4)
    assert [r.config for r in a.view().runs] == [r.config for r in b.view().runs]
    # a fresh optimizer instance on the same view makes the same decision (no hidden state)
    view = a.view()
    assert BOHB().suggest(view) == BOHB().suggest(view)
    c = drive(budget=1500.0, seed=5)
    assert [r.config for r in a.view().runs] != [r.config for r in c.view().runs]
    for at in (a, b, c):
        at.close()


def test_kde_proposer_prefers_the_good_cluster() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((40, 2))
    y = -np.linalg.norm(x - 0.2, axis=1)  # best near (0.2, 0.2)
    prop = KDEProposer(0.15, 64, 3.0, 1e-3)
    points = np.array([prop.propose(x, y, np.random.default_rng(i)) for i in range(20)])
    assert np.all((points >= 0) & (points <= 1))
    assert np.all(points.mean(axis=0) < 0.4)  # the good corner, not the middle of the cube


@pytest.mark.parametrize("opts", [{"top_fraction": 1.5}, {"random_fraction": -1},
                                  {"n_samples": 0}, {"etta": 3}])
def test_bad_options(opts: dict[str, object]) -> None:
    with pytest.raises(OptimizerError):
        BOHB(opts)
