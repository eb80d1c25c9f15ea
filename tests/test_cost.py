"""THE cost model (jfhpo.cost): starts and extensions pay their own fixed cost, and the optimizer's
affordability check and the tuner's budget gate read the same numbers."""

from __future__ import annotations

import math

import pytest

from jfhpo.api import AskTell
from jfhpo.backends.synthetic import SyntheticProblem, example_space
from jfhpo.cost import CostModel, SegmentCost, segment_costs
from jfhpo.fidelity import ModelLadder, ModelRung
from jfhpo.optimizers.jfhpo import JFHPOOptimizer as JFHPO
from jfhpo.planning.ledger import suggestion_cost
from jfhpo.records import Extend, Start

LADDER = ModelLadder([ModelRung("s", 1e6, 1.0), ModelRung("t", 1e8, 10.0)])


def test_one_extraction_drops_what_trained_nothing() -> None:
    got = segment_costs([("s", 0, 10, 5.0), ("s", 10, 30, 3.0), ("s", 4, 4, 1.0),
                         ("s", 0, None, 2.0), ("s", 0, 5, math.nan), ("t", 0, 5, 0.0)])
    assert got == (SegmentCost("s", 10, 5.0, True), SegmentCost("s", 20, 3.0, False))


def test_starts_and_extensions_each_pay_their_own_fixed_cost() -> None:
    # truth: 0.5 s per step on s, a start pays 20 s (model load), an extension 4 s (checkpoint)
    segs = []
    for n in (5, 10, 20, 40):
        segs.append(SegmentCost("s", n, 20.0 + 0.5 * n, True))
        segs.append(SegmentCost("s", n, 4.0 + 0.5 * n, False))
    cm = CostModel(LADDER, segs)
    assert cm.calibrated and cm.measured("s") and not cm.measured("t")
    assert cm.start_overhead == pytest.approx(20.0, rel=0.05)
    assert cm.extend_overhead == pytest.approx(4.0, rel=0.1)
    assert cm.segment("s", 30) == pytest.approx(35.0, rel=0.03)
    assert cm.segment("s", 30, start=False) == pytest.approx(19.0, rel=0.03)
    assert cm.between("s", 10, 40) == cm.segment("s", 30, start=False)
    assert cm.between("s", 0, 30) == cm.segment("s", 30)


def test_without_measured_extensions_an_extension_pays_the_start_cost() -> None:
    segs = [SegmentCost("s", n, 10.0 + 1.0 * n) for n in (5, 10, 20)]
    cm = CostModel(LADDER, segs)
    assert cm.extend_overhead == cm.start_overhead == pytest.approx(10.0, rel=0.05)


def test_uncalibrated_model_is_the_hints() -> None:
    cm = CostModel(LADDER)
    assert not cm.calibrated
    assert cm.segment("t", 3) == pytest.approx(30.0)
    assert cm.segment("s", 0) == 0.0


def _driven(budget: float, workers: int = 1) -> AskTell:
    problem = SyntheticProblem()
    models = [{"name": "50k", "params": 5e4, "cost": 1.0}, {"name": "4m", "params": 4e6,
                                                             "cost": 10.0}]
    at = AskTell(example_space(), models, {"min": 10, "max": 90}, optimizer="jfhpo",
                 optimizer_options={"n_init": 4}, budget=budget, seed=3, workers=workers)
    for _ in range(8):
        t = at.ask()
        assert t is not None
        params = 5e4 if t.model == "50k" else 4e6
        score = problem.eval_score(t.config, params, t.steps, seed=t.run_id)
        at.tell(t, score, problem.cost(1.0 if t.model == "50k" else 10.0, t.steps - t.start_step))
    return at


def test_the_optimizer_and_the_budget_gate_agree() -> None:
    """The cost-aware optimizer's pick is affordable exactly when the gate says so, and both price
    it with the same number."""
    at = _driven(budget=400.0)
    try:
        view = at.view()
        assert view.cost.calibrated
        opt = JFHPO({"n_init": 4})
        s = opt.suggest(view)
        assert s is not None
        price = suggestion_cost(view, s)
        if isinstance(s, Start):
            assert price == view.cost.segment(s.model, s.steps)
        else:
            assert isinstance(s, Extend)
            run = view.run(s.run_id)
            assert price == view.cost.between(run.model, run.steps_done, s.steps)
        # the optimizer only falls back to an unaffordable pick when nothing is affordable; then
        # the gate refuses it too (and otherwise accepts it)
        cheapest = min(view.cost.segment(m, view.steps.min_steps) for m in view.ladder.names)
        assert view.ledger.can_pay(price) == (price <= view.budget_left)
        if view.ledger.can_pay(cheapest):
            assert view.ledger.can_pay(price)
        # AskTell's own gate is the same ledger: it stops asking once nothing is affordable
        spent_view = at.view()
        assert spent_view.ledger.left == spent_view.budget_left
    finally:
        at.close()


def test_a_tight_budget_makes_both_refuse() -> None:
    at = _driven(budget=1e9)
    try:
        view = at.view()
        # shrink the budget to just what is spent: nothing is affordable any more
        import dataclasses

        tight = dataclasses.replace(view, budget_total=view.budget_spent + 1e-6)
        s = JFHPO({"n_init": 4}).suggest(tight)
        assert s is not None  # the cheapest fallback...
        assert not tight.ledger.can_pay(suggestion_cost(tight, s))  # ...which the gate refuses
    finally:
        at.close()


def test_noisy_costs_without_fixed_costs_predict_well_real_ones_are_found() -> None:
    rng = __import__("random").Random(3)
    lengths = [10, 30, 90, 10, 30, 90, 10, 30]
    noisy = [SegmentCost("s", n, 0.1 * n * math.exp(0.05 * rng.gauss(0, 1)), i % 2 == 0)
             for i, n in enumerate(lengths)]
    cm = CostModel(LADDER, noisy)
    assert max(cm.fixed("s"), cm.fixed("s", start=False)) < 0.15  # at most noise-sized
    assert cm.segment("s", 50) == pytest.approx(5.0, rel=0.05)
    assert cm.segment("s", 10, start=False) == pytest.approx(1.0, rel=0.1)
    fixed = [SegmentCost(s.model, s.steps, s.seconds + (3.0 if s.start else 0.3), s.start)
             for s in noisy]
    cm = CostModel(LADDER, fixed)
    assert cm.fixed("s") == pytest.approx(3.0, rel=0.3)
    assert cm.segment("s", 20, start=False) < cm.segment("s", 20)


def test_a_fixed_cost_that_grows_with_the_model_predicts_a_long_target_run_from_a_short_one() -> None:
    """Evaluation costs about 20 steps' worth on every model: one 10-step target segment must
    not be extrapolated as if all of its cost were per-step (the demo's starved confirmation)."""
    ladder = ModelLadder([ModelRung("s", 5e4, 1.0), ModelRung("m", 2e5, 1.4),
                          ModelRung("t", 4e6, 10.0)])
    per_step = {"s": 0.085, "m": 0.12, "t": 0.83}
    segs = [SegmentCost(m, n, per_step[m] * (n + 20.0), True)
            for m, lengths in (("s", (10, 30, 90, 10)), ("m", (10, 30)), ("t", (10,)))
            for n in lengths]
    cm = CostModel(ladder, segs)
    assert cm.relative
    true = per_step["t"] * (90 + 20.0)
    assert cm.segment("t", 90) == pytest.approx(true, rel=0.15)
