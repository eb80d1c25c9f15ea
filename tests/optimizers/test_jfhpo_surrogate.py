"""Tests of the JF-HPO surrogate pieces: features, training set, GP, fantasies, cost model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jfhpo.fidelity import ModelLadder, ModelRung, StepBudget
from jfhpo.optimizers.surrogate import (
    CostModel,
    FidelityFeatures,
    GPSurrogate,
    TrainingSet,
    training_set,
)
from jfhpo.records import Phase, RunRecord, StopReason
from jfhpo.space import FloatParam, SearchSpace

SPACE = SearchSpace([FloatParam("x", 0.0, 1.0)])
LADDER = ModelLadder([ModelRung("s", 1e6, cost=1.0), ModelRung("t", 1e8, cost=10.0)])
STEPS = StepBudget(4, 64, 2)
FEAT = FidelityFeatures(SPACE, LADDER, STEPS)


def curve_run(rid: int, x: float, n: int, model: str = "s", **kw: object) -> RunRecord:
    curve = tuple((s, x * s / 64) for s in range(1, n + 1))
    return RunRecord(rid, {"x": x}, model, Phase.SEARCH, steps_done=n, score=curve[-1][1],
                     curve=curve, **kw)  # type: ignore[arg-type]


def test_features_span_the_unit_cube() -> None:
    assert FEAT.size("s") == 0.0 and FEAT.size("t") == 1.0
    assert FEAT.step(64) == 1.0 and FEAT.step(1) == 0.0
    assert FEAT.row(np.array([0.3]), "t", 8).tolist() == pytest.approx([0.3, 1.0, 0.5])


def test_training_set_thins_curves_and_keeps_last_points() -> None:
    runs = [curve_run(i, i / 10, 40) for i in range(5)]
    data = training_set(runs, FEAT, max_points_per_run=6, max_points=1000)
    assert len(data) == 30
    assert np.sum(data.X[:, -1] == FEAT.step(40)) == 5  # every run's final point is kept
    capped = training_set(runs, FEAT, max_points_per_run=6, max_points=12)
    assert len(capped) <= 12


def test_stopped_runs_get_a_floor_point_at_the_full_budget() -> None:
    runs = [curve_run(i, 0.5 + i / 10, 8) for i in range(4)]
    runs.append(curve_run(9, 0.9, 8, stopped=StopReason("kl", "KL grew")))
    floor = training_set(runs, FEAT, stopped_score="floor")
    last = training_set(runs, FEAT, stopped_score="last")
    assert len(floor) == len(last) + 1
    extra = floor.X[-1]
    assert extra[-1] == 1.0 and floor.y[-1] <= np.quantile(last.y, 0.1) + 1e-12


def test_gp_fits_predicts_and_fantasizes() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((30, 3))
    y = np.sin(3 * X[:, 0]) + X[:, 2]
    gp = GPSurrogate(TrainingSet(X, y), seed=0, fit_maxiter=30)
    mean, _ = gp.predict(X)
    assert np.corrcoef(mean, (y - gp.y_mean) / gp.y_std)[0, 1] > 0.95
    x_new = np.array([[0.5, 0.5, 0.9]])
    _, sd_before = gp.predict(x_new)
    _, sd_after = gp.with_fantasies(x_new).predict(x_new)
    assert sd_after[0] < sd_before[0]
    m1, v1, m2, _, cov = gp.pair(x_new, x_new)
    assert m1 == pytest.approx(m2) and cov == pytest.approx(v1)
    again = GPSurrogate(TrainingSet(X, y), seed=0, fit_maxiter=30).predict(x_new)
    assert again[0] == pytest.approx(gp.predict(x_new)[0], abs=1e-12)


def test_cost_model_falls_back_to_hints_then_learns() -> None:
    hints = CostModel(LADDER)
    assert not hints.calibrated
    assert hints.per_step("t") / hints.per_step("s") == pytest.approx(10.0)
    one = CostModel(LADDER, [("s", 10, 5.0)])
    assert one.per_step("s") == pytest.approx(0.5) and one.per_step("t") == pytest.approx(5.0)
    # the target turns out 40x, not 10x, dearer per step: the slope learns it (shrunk a little)
    both = CostModel(LADDER, [("s", 10, 5.0), ("t", 10, 200.0)] * 5)
    ratio = both.per_step("t") / both.per_step("s")
    assert 20 < ratio <= 40
    assert both.segment("s", 4) == pytest.approx(4 * both.per_step("s"))
    ignored = CostModel(LADDER, [("s", 0, 5.0), ("s", 3, math.nan), ("zz", 3, 1.0)])
    assert not ignored.calibrated


def test_cost_model_learns_a_fixed_overhead_per_segment() -> None:
    # every segment pays 5 s on top of 0.1 s/step on "s" and 1 s/step on "t"
    segs = [("s", 4, 5.4), ("s", 60, 11.0), ("t", 4, 9.0), ("t", 32, 37.0)]
    model = CostModel(LADDER, segs)
    assert model.overhead == pytest.approx(5.0, abs=0.3)
    assert model.per_step("s") == pytest.approx(0.1, rel=0.15)
    assert model.segment("t", 64) == pytest.approx(69.0, rel=0.1)
    assert model.segment("t", 0) == 0.0
    # one segment length per model: the overhead cannot be told apart, it stays 0
    assert CostModel(LADDER, [("s", 10, 6.0), ("t", 10, 15.0)]).overhead == 0.0
