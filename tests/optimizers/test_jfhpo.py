"""Tests of the JF-HPO optimizer on hand-built views and an in-test analytic two-fidelity problem.

The analytic problem has a proxy bias: the best value of ``lr`` moves with model size (small
models like small learning rates in encoded units 0.2, the target 0.8), so rankings on the proxy
invert on the target. A small ask/tell loop drives the optimizer over ``StudyView``s built by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from jfhpo.fidelity import ModelLadder, ModelRung, StepBudget
from jfhpo.optimizers.base import OptimizerError, get_optimizer
from jfhpo.optimizers.jfhpo import VERIFY_SLACK, JFHPOOptimizer
from jfhpo.records import Extend, Phase, RunRecord, Start, StopReason
from jfhpo.space import FloatParam, SearchSpace, learning_rate_param
from jfhpo.transfer import measure_transfer
from jfhpo.view import StudyView

SPACE = SearchSpace([FloatParam("lr", 1e-7, 1e-4, log=True), FloatParam("clip", 0.1, 0.4)])
LADDER = ModelLadder([ModelRung("small", 1e6, cost=1.0), ModelRung("target", 1e8, cost=10.0)])
STEPS = StepBudget(min_steps=4, max_steps=36, eta=3)
FAST = {"n_candidates": 64, "fit_maxiter": 25, "n_init": 5}


def objective(config: Mapping[str, Any], model: str, step: int) -> float:
    """Analytic learning curve with a proxy bias on ``lr``."""
    u = SPACE.encode(config)
    size = (LADDER[model].size_feature - 6.0) / 2.0  # 0 small, 1 target
    lr_opt = 0.2 + 0.6 * size
    quality = math.exp(-((u[0] - lr_opt) ** 2) / (2 * 0.15**2)) * math.exp(
        -((u[1] - 0.5) ** 2) / (2 * 0.35**2)
    )
    return quality * (1.0 - math.exp(-step / 10.0))


def make_view(runs: list[RunRecord], n: int, seed: int = 0, **kw: Any) -> StudyView:
    costs = tuple((r.model, r.steps_done, r.cost) for r in runs if not r.busy and r.steps_done)
    return StudyView(
        space=SPACE,
        ladder=LADDER,
        steps=STEPS,
        seed=seed,
        objective="reward",
        runs=tuple(runs),
        n_suggestions=n,
        transfer=measure_transfer(runs, LADDER, SPACE),
        segment_costs=costs,
        **kw,
    )


def run_to(config: Mapping[str, Any], model: str, steps: int, run_id: int) -> RunRecord:
    """A finished run evaluated every 4 steps."""
    curve = tuple((s, objective(config, model, s)) for s in range(4, steps + 1, 4))
    if not curve or curve[-1][0] != steps:
        curve = (*curve, (steps, objective(config, model, steps)))
    return RunRecord(
        run_id=run_id,
        config=dict(config),
        model=model,
        phase=Phase.SEARCH,
        steps_done=steps,
        score=curve[-1][1],
        cost=LADDER[model].cost * steps,
        curve=curve,
        checkpoint_step=steps,
    )


def apply(runs: list[RunRecord], sug: Start | Extend | None) -> None:
    assert sug is not None
    if isinstance(sug, Start):
        runs.append(run_to(sug.config, sug.model, sug.steps, len(runs)))
    else:
        old = runs[sug.run_id]
        new = run_to(old.config, old.model, sug.steps, old.run_id)
        runs[sug.run_id] = replace(new, cost=old.cost + LADDER[old.model].cost * (sug.steps - old.steps_done))


def drive(opt: JFHPOOptimizer, n_iter: int, seed: int = 0) -> list[RunRecord]:
    runs: list[RunRecord] = []
    for i in range(n_iter):
        apply(runs, opt.suggest(make_view(runs, i, seed)))
    return runs


def drive_policy(policy: str, n_iter: int = 30, **options: Any) -> tuple[JFHPOOptimizer, StudyView]:
    opt = JFHPOOptimizer({**FAST, "policy": policy, **options})
    runs = drive(opt, n_iter)
    return opt, make_view(runs, n_iter)


def test_registered_under_its_name() -> None:
    assert get_optimizer("jfhpo") is JFHPOOptimizer


def test_suggestions_stay_in_space_ladder_and_step_rungs() -> None:
    opt = JFHPOOptimizer(FAST)
    runs: list[RunRecord] = []
    kinds = set()
    for i in range(14):
        view = make_view(runs, i)
        sug = opt.suggest(view)
        if isinstance(sug, Start):
            assert SPACE.validate(sug.config) == dict(sug.config)
            assert sug.model in LADDER
            assert sug.steps in STEPS.rungs()
            kinds.add("start")
        else:
            assert isinstance(sug, Extend)
            run = view.run(sug.run_id)
            assert not run.busy and run.stopped is None
            assert run.steps_done < sug.steps <= STEPS.max_steps
            kinds.add("extend")
        apply(runs, sug)
    assert kinds == {"start", "extend"}


def _mid_study(n: int = 8) -> list[RunRecord]:
    rng = np.random.default_rng(3)
    return [run_to(SPACE.sample(rng), "small", STEPS.rungs()[i % 2], i) for i in range(n)]


def test_same_view_and_seed_give_the_same_suggestion() -> None:
    runs = _mid_study()
    opts = {**FAST, "audit": False}  # the audit's choice does not depend on the seed
    a = JFHPOOptimizer(opts).suggest(make_view(runs, 8, seed=5))
    b = JFHPOOptimizer(opts).suggest(make_view(runs, 8, seed=5))
    assert repr(a) == repr(b)
    others = {repr(JFHPOOptimizer(opts).suggest(make_view(runs, 8, seed=s))) for s in range(4)}
    assert len(others) > 1  # the seed matters


def test_proxy_bias_is_detected_and_ladder_finds_the_target_optimum() -> None:
    ladder_opt, ladder_view = drive_policy("ladder")
    fixed_opt, fixed_view = drive_policy("fixed_proxy")
    [rec] = [t for t in ladder_view.transfer if (t.small, t.large) == ("small", "target")]
    assert rec.spearman < 0.5 and rec.n_configs >= 4
    assert any("do not carry over" in w for w in ladder_opt.warnings(ladder_view))
    assert ladder_opt.search_models(ladder_view) == ["target"]
    best_ladder = ladder_opt.confirm(ladder_view, 1)[0]
    best_fixed = fixed_opt.confirm(fixed_view, 1)[0]
    assert abs(SPACE.encode(best_ladder)[0] - 0.8) < 0.15
    assert abs(SPACE.encode(best_fixed)[0] - 0.8) > 0.3
    assert objective(best_ladder, "target", 36) > objective(best_fixed, "target", 36) + 0.3
    # the paper's policy never leaves its proxy during the search
    assert {r.model for r in fixed_view.runs} == {"small"}


def test_fixed_proxy_warns_without_moving() -> None:
    runs = _mid_study(6) + [
        run_to(r.config, "target", r.steps_done, 10 + i) for i, r in enumerate(_mid_study(6))
    ]
    view = make_view(runs, 12)
    opt = JFHPOOptimizer({**FAST, "policy": "fixed_proxy"})
    assert opt.search_models(view) == ["small"]
    assert any("consider policy: ladder" in w for w in opt.warnings(view))
    assert JFHPOOptimizer(FAST).search_models(view) == ["target"]


def _pending(sug: Start | Extend | None, runs: list[RunRecord]) -> list[RunRecord]:
    assert sug is not None
    if isinstance(sug, Start):
        busy = RunRecord(len(runs), dict(sug.config), sug.model, Phase.SEARCH, pending_steps=sug.steps)
        return [*runs, busy]
    return [replace(r, pending_steps=sug.steps) if r.run_id == sug.run_id else r for r in runs]


@pytest.mark.parametrize("n_runs", [2, 8])
def test_pending_runs_lead_to_different_suggestions(n_runs: int) -> None:
    runs = _mid_study(n_runs)
    opt = JFHPOOptimizer(FAST)
    first = opt.suggest(make_view(runs, n_runs))
    runs2 = _pending(first, runs)
    second = opt.suggest(make_view(runs2, n_runs, workers=2))
    assert repr(first) != repr(second)
    runs3 = _pending(second, runs2)
    third = opt.suggest(make_view(runs3, n_runs, workers=3))
    assert repr(third) not in {repr(first), repr(second)}


def test_stopped_runs_teach_but_are_never_extended() -> None:
    runs = _mid_study()
    reason = StopReason("zero_reward", "reward stayed at 0")
    runs = [replace(r, stopped=reason) if r.steps_done < 36 else r for r in runs]
    opt = JFHPOOptimizer(FAST)
    for i in range(3):
        view = make_view(runs, 8 + i)
        sug = opt.suggest(view)
        if isinstance(sug, Extend):
            assert view.run(sug.run_id).stopped is None
    assert not any(opt.may_extend(view, r) for r in runs if r.stopped is not None)


def test_may_extend_follows_the_policy() -> None:
    cfg = {"lr": 1e-6, "clip": 0.2}
    runs = [run_to(cfg, "small", 4, 0), run_to(cfg, "target", 4, 1)]
    view = make_view(runs, 2)
    assert JFHPOOptimizer(FAST).may_extend(view, runs[0])
    fixed = JFHPOOptimizer({**FAST, "policy": "fixed_proxy", "proxy": "target"})
    assert not fixed.may_extend(view, runs[0]) and fixed.may_extend(view, runs[1])


def test_confirm_ranks_by_the_predicted_target_score() -> None:
    _, view = drive_policy("ladder", n_iter=20)
    opt = JFHPOOptimizer(FAST)
    top = opt.confirm(view, 3)
    assert len(top) == 3 and len({SPACE.key(c) for c in top}) == 3
    assert abs(SPACE.encode(top[0])[0] - 0.8) < 0.2


def test_confirm_puts_target_trained_configs_first_when_no_confirmation_can_be_paid() -> None:
    _, view = drive_policy("ladder", n_iter=20)
    held = {SPACE.key(r.config) for r in view.runs
            if r.model == "target" and r.steps_done == STEPS.max_steps}
    spent = sum(r.cost for r in view.runs)
    opt = JFHPOOptimizer(FAST)
    plenty = replace(view, budget_total=spent * 10, budget_spent=spent)
    # the surrogate's favourite has a short target run only (its rise beats the full runs)
    assert SPACE.key(opt.confirm(plenty, 1)[0]) not in held
    per_run = plenty.cost.segment("target", STEPS.max_steps)
    spent_out = replace(view, budget_total=spent + 0.5 * per_run, budget_spent=spent)
    ranked = opt.confirm(spent_out, len(held) + 1)
    assert {SPACE.key(c) for c in ranked[:len(held)]} == held
    assert SPACE.key(ranked[-1]) not in held


def test_initial_design_is_random_at_the_cheapest_fidelity() -> None:
    opt = JFHPOOptimizer({**FAST, "n_init": 3})
    runs: list[RunRecord] = []
    for i in range(3):
        sug = opt.suggest(make_view(runs, i))
        assert isinstance(sug, Start) and (sug.model, sug.steps) == ("small", 4)
        apply(runs, sug)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"n_init": 0}, "n_init"),
        ({"n_candidates": 2}, "n_candidates"),
        ({"policy": "magic"}, "policy"),
        ({"transfer_threshold": 2}, "transfer_threshold"),
        ({"min_transfer_configs": 2}, "min_transfer_configs"),
        ({"xi": -1}, "xi"),
        ({"acquisition": "ucb"}, "acquisition"),
        ({"fit_maxiter": 0}, "fit_maxiter"),
        ({"stopped_score": "zero"}, "stopped_score"),
        ({"audit": "yes"}, "audit"),
        ({"audit_fraction": 0}, "audit_fraction"),
        ({"n_init": True}, "n_init"),
        ({"bogus": 1}, "bogus"),
        ({"drift": 1}, "drift"),
        ({"finish_margin": 3}, "finish_margin"),
        ({"long_target_starts": "never"}, "long_target_starts"),
        ({"check_configs": 2}, "check_configs"),
        ({"check_after": 0}, "check_after"),
        ({"verify": "yes"}, "verify"),
        ({"verify_margin": 3}, "verify_margin"),
        ({"anchor": "proxy"}, "anchor"),
        ({"target_search": "bracket"}, "target_search"),
        ({"neighbours": 1.0}, "neighbours"),
        ({"neighbours": True}, "neighbours"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, Any], name: str) -> None:
    with pytest.raises(OptimizerError, match=name):
        JFHPOOptimizer(options)


def test_unknown_proxy_is_reported_when_the_ladder_is_known() -> None:
    opt = JFHPOOptimizer({"policy": "fixed_proxy", "proxy": "70b"})
    with pytest.raises(OptimizerError, match="proxy"):
        opt.suggest(make_view([], 0))


def test_audit_trains_the_proxy_runs_to_the_full_budget_before_comparing() -> None:
    opt = JFHPOOptimizer({**FAST, "n_init": 4, "policy": "ladder"})
    runs: list[RunRecord] = []
    sugs = []
    for i in range(12):
        sug = opt.suggest(make_view(runs, i))
        sugs.append(sug)
        apply(runs, sug)
    # the initial design, then its four proxy runs extended to the full budget ...
    assert all(isinstance(s, Start) and s.model == "small" for s in sugs[:4])
    assert all(isinstance(s, Extend) and s.steps == STEPS.max_steps for s in sugs[4:8])
    # ... and only then re-run on the target, at the step count the proxy runs reached
    audit = [s for s in sugs[8:12] if isinstance(s, Start) and s.model == "target"]
    assert len(audit) == 4 and all(s.steps == STEPS.max_steps for s in audit)
    assert {SPACE.key(s.config) for s in audit} == {SPACE.key(r.config) for r in runs[:4]}


def test_audit_starts_fresh_full_budget_proxy_runs_when_early_stopping_ended_the_first_ones() -> None:
    """Stopped runs cannot grow; the audit must still reach enough full-budget proxy runs."""
    opt = JFHPOOptimizer({**FAST, "n_init": 4, "policy": "ladder"})
    runs: list[RunRecord] = []
    for i in range(4):
        sug = opt.suggest(make_view(runs, i))
        apply(runs, sug)
    # early stopping ended three of the four initial runs
    for r in runs[:3]:
        runs[r.run_id] = replace(r, stopped=StopReason("reward_drop", "reward fell"))
    sugs = []
    for i in range(4, 12):
        sug = opt.suggest(make_view(runs, i))
        sugs.append(sug)
        apply(runs, sug)
    # the one live run grows to the full budget, then fresh configurations start there directly
    assert isinstance(sugs[0], Extend) and sugs[0].run_id == 3
    fresh = [s for s in sugs[1:4] if isinstance(s, Start)]
    assert len(fresh) == 3
    assert all(s.model == "small" and s.steps == STEPS.max_steps for s in fresh)
    assert len({SPACE.key(s.config) for s in fresh} | {SPACE.key(r.config) for r in runs[:4]}) == 7
    # and then the audit compares four full-budget proxy configurations on the target
    audit = [s for s in sugs[4:8] if isinstance(s, Start) and s.model == "target"]
    assert len(audit) == 4 and all(s.steps == STEPS.max_steps for s in audit)


def _spread_runs() -> list[RunRecord]:
    """Full-budget runs over a grid of learning rates on both models (the optimum moves 0.6 in
    encoded units from the small model to the target)."""
    runs: list[RunRecord] = []
    for model in ("small", "target"):
        grid = np.linspace(0.05, 0.95, 8 if model == "small" else 3)
        for u in grid:
            runs.append(run_to(SPACE.decode([u, 0.5]), model, 36, len(runs)))
    return runs


def test_drift_is_fitted_from_the_ladder_and_moves_the_predicted_optimum() -> None:
    runs = _spread_runs()
    view = make_view(runs, len(runs))
    opt = JFHPOOptimizer({**FAST, "drift": True})
    features, data = opt._training_data(view, runs)
    gp = opt._fit(view, data)
    assert gp.drift().shape == (2,)
    # the kernel compares u + a * size: the optimum moving up with size means a < 0
    assert gp.drift()[0] < -0.3
    grid = np.column_stack([np.linspace(0, 1, 101), np.full(101, 0.5)])
    mu, _ = gp.predict(features.rows(grid, "target", 36))
    assert grid[int(np.argmax(mu)), 0] > 0.6  # the small model's optimum is at 0.2
    off = JFHPOOptimizer({**FAST, "drift": False})._fit(view, data)
    assert off.drift().shape == (0,)


def test_finish_trains_the_predicted_best_on_the_target_when_the_budget_is_nearly_spent() -> None:
    runs = [run_to(SPACE.decode([u, 0.5]), "small", 36, i)
            for i, u in enumerate(np.linspace(0.05, 0.95, 6))]
    full = 10.0 * 36  # one full-budget target run, in the views' cost units
    spent = sum(r.cost for r in runs)
    opt = JFHPOOptimizer({**FAST, "finish": True, "policy": "ladder"})
    # the target's cost is only extrapolated: no finish before half the budget is spent
    early = make_view(runs, len(runs), budget_total=spent + 1.1 * full, budget_spent=spent)
    assert spent < 0.5 * (spent + 1.1 * full) and opt._finishing(early, runs) is False
    spent += full  # (spent elsewhere)
    view = make_view(runs, len(runs), budget_total=spent + 1.1 * full, budget_spent=spent)
    sug = opt.suggest(view)
    assert isinstance(sug, Start) and sug.model == "target" and sug.steps == 36
    assert view.space.key(sug.config) == view.space.key(opt.confirm(view, 1)[0])
    # once the predicted best has its full target run, the rest of the budget goes on searching
    runs.append(run_to(sug.config, "target", 36, len(runs)))
    view = make_view(runs, len(runs), budget_total=spent + 1.1 * full, budget_spent=spent + full)
    nxt = opt.suggest(view)
    assert nxt is None or not (isinstance(nxt, Start) and nxt.model == "target"
                               and view.space.key(nxt.config) == view.space.key(sug.config))
    # with plenty left, no early finish
    roomy = make_view(runs[:-1], len(runs) - 1, budget_total=spent + 20 * full, budget_spent=spent)
    assert opt._finishing(roomy, list(roomy.runs)) is False


def test_long_target_starts_only_for_curves_seen_that_long() -> None:
    opt = JFHPOOptimizer({**FAST, "audit": False, "long_target_starts": "seen"})
    runs: list[RunRecord] = []
    first = STEPS.rungs()[0]
    for i in range(14):
        view = make_view(runs, i)
        sug = opt.suggest(view)
        if isinstance(sug, Start) and sug.model == "target" and sug.steps > first:
            key = view.space.key(sug.config)
            assert any(view.space.key(r.config) == key and r.steps_done >= sug.steps
                       for r in runs), sug
        apply(runs, sug)


# ---- the climb policy (the default) -------------------------------------------------------------


def _proxy_runs(n: int) -> list[RunRecord]:
    """``n`` configurations on the proxy, every third one trained to the full budget."""
    rng = np.random.default_rng(5)
    full = STEPS.max_steps
    return [run_to(SPACE.sample(rng), "small", full if i % 3 == 0 else STEPS.rungs()[0], i)
            for i in range(n)]


def test_climb_is_the_default_and_searches_the_proxy_until_refuted() -> None:
    assert JFHPOOptimizer().opts.policy == "climb"
    view = make_view(_proxy_runs(6), 6)
    assert JFHPOOptimizer(FAST).search_models(view) == ["small"]


def test_climb_verifies_the_proxys_favourite_on_the_target_after_check_after_configs() -> None:
    runs = _proxy_runs(6)
    opt = JFHPOOptimizer({**FAST, "check_after": 6})
    sug = opt.suggest(make_view(runs, 6))
    full = [r for r in runs if r.steps_done == STEPS.max_steps]
    favourite = max(full, key=lambda r: r.score or 0.0)
    assert isinstance(sug, Start)
    assert (sug.model, sug.steps) == ("target", STEPS.max_steps)
    assert SPACE.key(sug.config) == SPACE.key(favourite.config)
    # one check_after's worth of proxy configurations per verification: not again at once
    runs.append(run_to(sug.config, "target", STEPS.max_steps, len(runs)))
    again = opt.suggest(make_view(runs, 7))
    assert again is not None
    assert (again.model if isinstance(again, Start) else runs[again.run_id].model) == "small"


def test_a_target_run_of_a_configuration_the_proxy_never_trained_is_no_verification() -> None:
    # a run of the target design, made before the budget's cost was known, does not push the
    # first verification back by check_after configurations
    runs = _proxy_runs(6)
    design = run_to(SPACE.sample(np.random.default_rng(99)), "target", STEPS.rungs()[0], len(runs))
    runs.append(design)
    sug = JFHPOOptimizer({**FAST, "check_after": 6}).suggest(make_view(runs, len(runs)))
    assert isinstance(sug, Start)
    assert (sug.model, sug.steps) == ("target", STEPS.max_steps)
    assert SPACE.key(sug.config) != SPACE.key(design.config)


def test_a_verification_stopped_on_the_target_refutes_the_proxy() -> None:
    runs = _proxy_runs(6)
    opt = JFHPOOptimizer({**FAST, "check_after": 6})
    sug = opt.suggest(make_view(runs, 6))
    assert isinstance(sug, Start) and sug.model == "target"
    stopped = replace(run_to(sug.config, "target", 8, len(runs)),
                      stopped=StopReason("kl_runaway", "KL ran away"))
    view = make_view([*runs, stopped], 7)
    assert opt.search_models(view) == ["target"]
    assert any("refuted" in w and "target" in w for w in opt.warnings(view))
    nxt = opt.suggest(view)
    assert nxt is not None
    assert (nxt.model if isinstance(nxt, Start) else view.runs[nxt.run_id].model) == "target"


def _refuted(n: int = 6) -> tuple[JFHPOOptimizer, list[RunRecord]]:
    """The proxy refuted by a verification the stopping rules ended on the target."""
    runs = _proxy_runs(n)
    opt = JFHPOOptimizer({**FAST, "check_after": n})
    sug = opt.suggest(make_view(runs, n))
    assert isinstance(sug, Start) and sug.model == "target"
    runs.append(replace(run_to(sug.config, "target", 8, len(runs)),
                        stopped=StopReason("kl_runaway", "KL ran away")))
    return opt, runs


RECIPE = {"lr": 3e-6, "clip": 0.2}


def test_the_target_search_starts_from_the_recipe_at_the_first_step_rung() -> None:
    opt, runs = _refuted()
    sug = opt.suggest(make_view(runs, len(runs), recipe=RECIPE))
    assert isinstance(sug, Start)
    assert (sug.model, sug.steps) == ("target", STEPS.rungs()[0])
    assert SPACE.key(sug.config) == SPACE.key(RECIPE)
    # once the recipe has a target run, the search goes on without it
    runs.append(run_to(sug.config, "target", sug.steps, len(runs)))
    nxt = opt.suggest(make_view(runs, len(runs), recipe=RECIPE))
    assert nxt is not None and not (isinstance(nxt, Start) and SPACE.key(nxt.config) == SPACE.key(RECIPE))
    # no recipe in the view, or anchor: none: no recipe run
    for o, view in ((opt, make_view(runs[:-1], len(runs) - 1)),
                    (JFHPOOptimizer({**FAST, "check_after": 6, "anchor": "none"}),
                     make_view(runs[:-1], len(runs) - 1, recipe=RECIPE))):
        other = o.suggest(view)
        assert not (isinstance(other, Start) and SPACE.key(other.config) == SPACE.key(RECIPE))


def test_the_recipe_is_not_a_first_run_while_the_proxy_is_searched() -> None:
    sug = JFHPOOptimizer(FAST).suggest(make_view([], 0, recipe=RECIPE))
    assert isinstance(sug, Start) and sug.model == "small"
    assert SPACE.key(sug.config) != SPACE.key(RECIPE)


def test_the_target_search_promotes_the_top_third_of_a_step_rung() -> None:
    opt, runs = _refuted()
    lo, hi = STEPS.rungs()[:2]
    rng = np.random.default_rng(11)
    fresh = [run_to(SPACE.sample(rng), "target", lo, len(runs) + i) for i in range(2)]
    view = make_view([*runs, *fresh], len(runs) + 2)
    nxt = opt.suggest(view)  # the stopped verification and two fresh runs reached the rung
    reached = [r for r in view.runs if r.model == "target" and r.steps_done >= lo]
    best = max(reached, key=lambda r: next(v for s, v in r.curve if s >= lo))
    if best.stopped is None:
        assert nxt == Extend(run_id=best.run_id, steps=hi)
    else:  # the top third is the stopped run: nothing to promote, a new configuration
        assert isinstance(nxt, Start) and (nxt.model, nxt.steps) == ("target", lo)
    # with the GP's own choice instead (target_search: gp), no promotion rule
    gp = JFHPOOptimizer({**FAST, "check_after": 6, "target_search": "gp"})
    assert gp.opts.target_search == "gp" and JFHPOOptimizer().opts.target_search == "asha"


def test_the_recipe_is_trained_on_the_target_beside_the_first_verification() -> None:
    runs = _proxy_runs(6)
    opt = JFHPOOptimizer({**FAST, "check_after": 6})
    sug = opt.suggest(make_view(runs, 6, recipe=RECIPE))
    assert isinstance(sug, Start)
    assert (sug.model, sug.steps, SPACE.key(sug.config)) == ("target", STEPS.max_steps,
                                                              SPACE.key(RECIPE))
    runs.append(run_to(sug.config, "target", STEPS.max_steps, len(runs)))
    verify = opt.suggest(make_view(runs, 7, recipe=RECIPE))  # then the proxy's favourite
    favourite = max((r for r in runs if r.model == "small" and r.steps_done == STEPS.max_steps),
                    key=lambda r: r.score or 0.0)
    assert isinstance(verify, Start) and verify.model == "target"
    assert SPACE.key(verify.config) == SPACE.key(favourite.config)
    # recipe_check: false leaves the recipe to confirmation
    off = JFHPOOptimizer({**FAST, "check_after": 6, "recipe_check": False})
    first = off.suggest(make_view(runs[:6], 6, recipe=RECIPE))
    assert isinstance(first, Start) and SPACE.key(first.config) == SPACE.key(favourite.config)


def test_a_favourite_below_the_recipe_on_the_target_refutes_the_proxy() -> None:
    runs = _proxy_runs(6)
    opt = JFHPOOptimizer({**FAST, "check_after": 6})
    favourite = max((r for r in runs if r.steps_done == STEPS.max_steps),
                    key=lambda r: r.score or 0.0)
    fav_target = run_to(favourite.config, "target", STEPS.max_steps, len(runs))
    recipe = run_to(RECIPE, "target", STEPS.max_steps, len(runs) + 1)
    for score, refuted in ((recipe.score - 0.01, True), (recipe.score + 0.01, False)):  # type: ignore[operator]
        view = make_view([*runs, replace(fav_target, score=score), recipe], 8, recipe=RECIPE)
        assert (opt.search_models(view) == ["target"]) is refuted
        assert any("below the recipe" in w for w in opt.warnings(view)) is refuted


def test_a_stopped_recipe_run_does_not_refute_the_proxy() -> None:
    runs = _proxy_runs(6)
    opt = JFHPOOptimizer({**FAST, "check_after": 6})
    stopped = replace(run_to(RECIPE, "target", 20, len(runs)),
                      stopped=StopReason("reward_drop", "the reward fell"))
    view = make_view([*runs, stopped], 7, recipe=RECIPE)
    assert opt.search_models(view) == ["small"]
    assert not any("refuted" in w for w in opt.warnings(view))
    nxt = opt.suggest(view)  # and it is not trained again: the favourite's verification is next
    assert not (isinstance(nxt, Start) and SPACE.key(nxt.config) == SPACE.key(RECIPE))


def _diverged_beside_the_recipe(lr: float) -> list[RunRecord]:
    """Proxy runs (one at ``lr``), the recipe trained on the target, and the verification of
    the configuration at ``lr``, which the rules stopped on the target (it refutes the proxy)."""
    runs = _proxy_runs(6)
    runs.append(run_to({**RECIPE, "lr": lr}, "small", STEPS.max_steps, len(runs)))
    runs.append(run_to(RECIPE, "target", STEPS.max_steps, len(runs)))
    runs.append(replace(run_to({**RECIPE, "lr": lr}, "target", 8, len(runs)),
                        stopped=StopReason("kl_runaway", "KL ran away")))
    return runs


@pytest.mark.parametrize(("diverged_lr", "first", "second"), [
    (3e-5, 1.0 / 3.0, 3.0),  # a larger learning rate diverged: the smaller neighbour first
    (3e-7, 3.0, 1.0 / 3.0),  # a smaller one did: the larger neighbour first
])
def test_the_target_search_tries_the_recipes_learning_rate_neighbours_at_the_full_budget(
        diverged_lr: float, first: float, second: float) -> None:
    opt = JFHPOOptimizer({**FAST, "check_after": 6})
    runs = _diverged_beside_the_recipe(diverged_lr)
    for factor in (first, second):
        view = make_view(runs, len(runs), recipe=RECIPE)
        assert opt.search_models(view) == ["target"]
        sug = opt.suggest(view)
        assert isinstance(sug, Start)
        assert (sug.model, sug.steps) == ("target", STEPS.max_steps)
        assert sug.config["clip"] == RECIPE["clip"]
        assert sug.config["lr"] == pytest.approx(RECIPE["lr"] * factor)
        runs.append(run_to(sug.config, "target", STEPS.max_steps, len(runs)))
    # both tried: the search goes on by successive halving and the GP (first step rung)
    nxt = opt.suggest(make_view(runs, len(runs), recipe=RECIPE))
    assert nxt is not None and not (isinstance(nxt, Start) and nxt.steps == STEPS.max_steps)
    # neighbours: 0 leaves them out
    off = JFHPOOptimizer({**FAST, "check_after": 6, "neighbours": 0})
    other = off.suggest(make_view(runs[:9], 9, recipe=RECIPE))
    assert not (isinstance(other, Start) and other.steps == STEPS.max_steps)


def test_the_neighbours_stay_inside_the_range_and_need_a_learning_rate() -> None:
    opt = JFHPOOptimizer({**FAST, "check_after": 6})
    edge = {**RECIPE, "lr": 2e-7}  # lr/3 would leave the range [1e-7, 1e-4]
    runs = _proxy_runs(6)
    runs.append(run_to({**edge, "lr": 3e-5}, "small", STEPS.max_steps, len(runs)))
    runs.append(run_to(edge, "target", STEPS.max_steps, len(runs)))
    runs.append(replace(run_to({**edge, "lr": 3e-5}, "target", 8, len(runs)),
                        stopped=StopReason("kl_runaway", "KL ran away")))
    sug = opt.suggest(make_view(runs, len(runs), recipe=edge))
    assert isinstance(sug, Start) and sug.config["lr"] == pytest.approx(1e-7)
    assert learning_rate_param(SearchSpace([FloatParam("actor.optim.lr", 1e-7, 1e-4, log=True)]))
    assert learning_rate_param(SearchSpace([FloatParam("clip", 0.1, 0.4)])) is None


def test_the_refutation_names_the_verification_not_a_later_target_search_run() -> None:
    opt = JFHPOOptimizer({**FAST, "check_after": 6})
    fav = {**RECIPE, "lr": 3e-7}  # far from the target's best learning rate
    runs = _proxy_runs(6)
    runs.append(run_to(fav, "small", STEPS.max_steps, len(runs)))
    runs.append(run_to(RECIPE, "target", STEPS.max_steps, len(runs)))
    runs.append(run_to(fav, "target", STEPS.max_steps, len(runs)))  # below the recipe there
    before = opt.warnings(make_view(runs, len(runs), recipe=RECIPE))
    assert any("below the recipe" in w for w in before)
    # the target search's neighbour (a configuration the proxy never trained) is then stopped
    runs.append(replace(run_to({**RECIPE, "lr": 9e-6}, "target", 8, len(runs)),
                        stopped=StopReason("reward_drop", "the reward fell")))
    assert opt.warnings(make_view(runs, len(runs), recipe=RECIPE)) == before


def test_a_learning_rate_that_diverged_on_the_target_bounds_target_runs_and_the_answer() -> None:
    runs = _diverged_beside_the_recipe(3e-5)  # the proxy loved 3e-5; it diverged on the target
    for lr in (4e-5, 6e-5, 8e-5):  # the proxy likes even larger ones
        runs.append(run_to({"lr": lr, "clip": 0.5}, "small", STEPS.max_steps, len(runs)))
    opt = JFHPOOptimizer({**FAST, "check_after": 6, "neighbours": 0})
    view = make_view(runs, len(runs), recipe=RECIPE)
    assert opt._lr_ceiling(view) == pytest.approx(3e-5)
    ranked = opt.confirm(view, len({SPACE.key(r.config) for r in runs}))
    safe = opt._below_ceiling(view, ranked)
    assert safe == [c["lr"] < 1e-5 for c in ranked]  # a factor `neighbours` below it
    assert safe[0] and safe == sorted(safe, reverse=True)  # the safe ones first
    # a configuration that trained on the target without diverging is safe whatever its lr
    sound = run_to({"lr": 2e-5, "clip": 0.3}, "target", 8, len(runs))
    assert opt._below_ceiling(make_view([*runs, sound], len(runs) + 1, recipe=RECIPE),
                              [sound.config]) == [True]
    for _ in range(6):  # no new target run near or above it
        sug = opt.suggest(make_view(runs, len(runs), recipe=RECIPE))
        assert sug is not None
        if isinstance(sug, Start) and sug.model == "target":
            assert sug.config["lr"] < 1e-5
        apply(runs, sug)
    # a run that failed below a learning rate that trained well there failed for another reason
    low = replace(run_to({"lr": 1e-6, "clip": 0.5}, "target", 8, len(runs)),
                  stopped=StopReason("reward_drop", "the reward fell"))
    assert opt._lr_ceiling(make_view([*runs, low], len(runs) + 1, recipe=RECIPE)) == (
        pytest.approx(3e-5))
    # a run that trailed its peers did not diverge: no ceiling from it
    peer = replace(runs[8], stopped=StopReason("peer_gap", "behind its peers"))
    assert opt._lr_ceiling(make_view([*runs[:8], peer], 9, recipe=RECIPE)) is None
    assert opt._lr_ceiling(make_view(runs[:8], 8, recipe=RECIPE)) is None


def test_without_a_recipe_the_neighbours_come_from_the_best_sound_target_run() -> None:
    runs = _proxy_runs(6)
    good = {"lr": 3e-6, "clip": 0.3}
    runs.append(run_to(good, "small", STEPS.max_steps, len(runs)))
    runs.append(run_to({"lr": 5e-5, "clip": 0.3}, "small", STEPS.max_steps, len(runs)))
    runs.append(run_to(good, "target", STEPS.max_steps, len(runs)))  # a verification that passed
    runs.append(replace(run_to({"lr": 5e-5, "clip": 0.3}, "target", 8, len(runs)),
                        stopped=StopReason("kl_runaway", "KL ran away")))  # one that did not
    opt = JFHPOOptimizer({**FAST, "check_after": 6})
    view = make_view(runs, len(runs))
    assert opt.search_models(view) == ["target"]
    sug = opt.suggest(view)
    assert isinstance(sug, Start) and (sug.model, sug.steps) == ("target", STEPS.max_steps)
    assert sug.config["clip"] == good["clip"]
    assert sug.config["lr"] == pytest.approx(good["lr"] / 3.0)  # away from the divergence


def _verified_then(extra: list[tuple[float, float]]) -> list[RunRecord]:
    """Three proxy configurations at the full budget (the favourite at encoded (0.45, 0.5)),
    the favourite verified soundly on the target, then ``extra`` proxy configurations (encoded
    points) at the full budget."""
    full = STEPS.max_steps
    points = [(0.45, 0.5), (0.8, 0.2), (0.9, 0.9)]
    runs = [run_to(SPACE.decode(np.array(u)), "small", full, i) for i, u in enumerate(points)]
    runs.append(run_to(runs[0].config, "target", full, len(runs)))
    runs += [run_to(SPACE.decode(np.array(u)), "small", full, len(runs) + i)
             for i, u in enumerate(extra)]
    return runs


def test_a_proxy_search_that_stopped_improving_after_a_verification_moves_to_the_target() -> None:
    # ``leave``: SPACE has a learning rate, where ``auto`` (the default) stays on the proxy
    opt = JFHPOOptimizer({**FAST, "n_init": 3, "check_after": 3, "spent_proxy": "leave"})
    # three more proxy configurations, none better there than the verified favourite
    flat = _verified_then([(0.7, 0.5), (0.75, 0.4), (0.95, 0.6)])
    view = make_view(flat, len(flat))
    assert opt.search_models(view) == ["target"]
    assert any("spent" in w and "searching on the target" in w for w in opt.warnings(view))
    nxt = opt.suggest(view)
    assert nxt is not None
    assert (nxt.model if isinstance(nxt, Start) else view.runs[nxt.run_id].model) == "target"
    # not yet: only two proxy configurations since the verification
    assert opt.search_models(make_view(flat[:-1], len(flat) - 1)) == ["small"]
    # the proxy still pays: one of them scores far above the favourite there (0.97 vs 0.25)
    rising = _verified_then([(0.2, 0.5), (0.75, 0.4), (0.95, 0.6)])
    assert opt.search_models(make_view(rising, len(rising))) == ["small"]
    # with a recipe (its check is the yardstick), or with the option off: the proxy stays
    assert opt.search_models(make_view(flat, len(flat), recipe=RECIPE)) == ["small"]
    for mode in ("stay", "auto"):
        other = JFHPOOptimizer({**FAST, "n_init": 3, "check_after": 3, "spent_proxy": mode})
        assert other.search_models(view) == ["small"], mode
    with pytest.raises(OptimizerError, match="spent_proxy"):
        JFHPOOptimizer({"spent_proxy": "sometimes"})


def test_without_a_learning_rate_a_spent_proxy_is_left_by_default() -> None:
    # the same study in a space whose parameters have other names: nothing can diverge there
    renamed = SearchSpace([FloatParam("a", 1e-7, 1e-4, log=True), FloatParam("b", 0.1, 0.4)])
    assert learning_rate_param(renamed) is None
    runs = [replace(r, config={"a": r.config["lr"], "b": r.config["clip"]})
            for r in _verified_then([(0.7, 0.5), (0.75, 0.4), (0.95, 0.6)])]
    costs = tuple((r.model, r.steps_done, r.cost) for r in runs)
    view = StudyView(space=renamed, ladder=LADDER, steps=STEPS, seed=0, objective="reward",
                     runs=tuple(runs), n_suggestions=len(runs), segment_costs=costs,
                     transfer=measure_transfer(runs, LADDER, renamed))
    opt = JFHPOOptimizer({**FAST, "n_init": 3, "check_after": 3})
    assert opt.opts.spent_proxy == "auto"
    assert opt.search_models(view) == ["target"]


def test_the_last_verification_leaves_room_only_where_a_neighbour_may_need_it() -> None:
    rng = np.random.default_rng(3)  # ten proxy configurations and the recipe's target run
    proxy = [run_to(SPACE.sample(rng), "small", STEPS.rungs()[0], i) for i in range(10)]
    full = 10.0 * STEPS.max_steps  # one full-budget target run, in the views' cost units
    opt = JFHPOOptimizer({**FAST, "check_after": 10})

    def view_at(left: float, recipe: dict[str, Any]) -> StudyView:
        runs = [*proxy, run_to(recipe, "target", STEPS.max_steps, len(proxy))]
        spent = sum(r.cost for r in runs)
        return make_view(runs, len(runs), budget_total=spent + left, budget_spent=spent,
                         recipe=recipe)

    # a recipe whose learning rate is the range's lowest: the favourite's is above it, where a
    # run that trained on a proxy may diverge on the target, so the room stays (0.5 run)
    low = {"lr": 1e-7, "clip": 0.2}
    pick = opt.confirm(view_at(1.3 * full, low), 1)[0]
    assert pick["lr"] > low["lr"]
    assert opt._verify_room(view_at(1.3 * full, low), pick) == opt.opts.verify_margin
    assert isinstance(opt._last_verify(view_at(1.3 * full, low)), Start)
    # a recipe at the range's highest learning rate: no divergence to make room for, so the
    # proxy search goes on until the budget left is within VERIFY_SLACK of one target run
    high = {"lr": 1e-4, "clip": 0.2}
    assert opt._verify_room(view_at(1.3 * full, high), pick) == VERIFY_SLACK
    assert opt._last_verify(view_at(1.3 * full, high)) is None
    assert isinstance(opt._last_verify(view_at(1.05 * full, high)), Start)
    # without the neighbours nothing needs the room either
    plain = JFHPOOptimizer({**FAST, "check_after": 10, "neighbours": 0})
    assert plain._verify_room(view_at(1.3 * full, low), pick) == VERIFY_SLACK


def test_the_last_target_run_the_search_can_pay_verifies_the_favourite() -> None:
    rng = np.random.default_rng(3)  # ten proxy configurations, none at the full budget yet
    runs = [run_to(SPACE.sample(rng), "small", STEPS.rungs()[0], i) for i in range(10)]
    # (the proxy search kept at a tight budget without a recipe: target_below 0)
    opt = JFHPOOptimizer({**FAST, "check_after": 10, "target_below": 0})
    spent = sum(r.cost for r in runs)
    full = 10.0 * STEPS.max_steps  # one full-budget target run, in the views' cost units

    def at(left: float, **kw: Any) -> StudyView:
        return make_view(runs, len(runs), budget_total=spent + left, budget_spent=spent, **kw)

    sug = opt.suggest(at(3 * full))
    assert not (isinstance(sug, Start) and sug.model == "target")
    last = at(1.2 * full)
    sug = opt.suggest(last)
    assert isinstance(sug, Start) and (sug.model, sug.steps) == ("target", STEPS.max_steps)
    assert SPACE.key(sug.config) == SPACE.key(opt.confirm(last, 1)[0])
    # a smaller verify_margin keeps the proxy search going until the budget left is closer to
    # one target run
    narrow = JFHPOOptimizer({**FAST, "check_after": 10, "target_below": 0, "verify_margin": 0.1})
    assert narrow._last_verify(last) is None
    assert isinstance(narrow._last_verify(at(1.05 * full)), Start)
    # with a recipe, its target run comes first (the yardstick, and the target's measured cost)
    assert opt._last_verify(at(1.2 * full, recipe=RECIPE)) is None
    first = opt.suggest(at(1.2 * full, recipe=RECIPE))
    assert isinstance(first, Start) and SPACE.key(first.config) == SPACE.key(RECIPE)
    # once the favourite has its target run, not again
    runs.append(run_to(sug.config, "target", STEPS.max_steps, len(runs)))
    again = make_view(runs, len(runs), budget_total=spent + 2.3 * full,
                      budget_spent=spent + full)
    nxt = opt.suggest(again)
    assert not (isinstance(nxt, Start) and SPACE.key(nxt.config) == SPACE.key(sug.config)
                and nxt.model == "target")


def _target_view(runs: list[RunRecord], runs_of_budget: float, **kw: Any) -> StudyView:
    """A view whose search share pays for ``runs_of_budget`` full-budget target runs (cost
    units of ``run_to``: the target's cost per step times steps)."""
    full = LADDER["target"].cost * STEPS.max_steps
    spent = sum(r.cost for r in runs)
    return make_view(runs, len(runs), budget_total=runs_of_budget * full, budget_spent=spent, **kw)


def test_without_a_recipe_a_tight_budget_searches_the_target_itself() -> None:
    opt = JFHPOOptimizer(FAST)
    runs = [run_to({"lr": 1e-6, "clip": 0.2}, "small", STEPS.rungs()[0], 0)]  # costs measured
    assert opt.search_models(_target_view(runs, 3.0)) == ["target"]
    sug = opt.suggest(_target_view(runs, 3.0))
    assert isinstance(sug, Start) and sug.model == "target"
    # a roomy budget, a recipe, an unbounded budget or target_below 0: the proxy search
    assert opt.search_models(_target_view(runs, 30.0)) == ["small"]
    assert opt.search_models(_target_view(runs, 3.0, recipe=RECIPE)) == ["small"]
    assert opt.search_models(make_view(runs, 1)) == ["small"]
    off = JFHPOOptimizer({**FAST, "target_below": 0})
    assert off.search_models(_target_view(runs, 3.0)) == ["small"]
    with pytest.raises(OptimizerError, match="target_below"):
        JFHPOOptimizer({"target_below": -1})


def test_the_initial_design_covers_each_range_in_strata() -> None:
    """Latin hypercube (``initial_design: lhs``): the n_init first configurations put one
    learning rate (encoded) in each fifth of its range; a different seed draws another design.
    The default (``auto``) draws them independently for a proxy search."""
    opt = JFHPOOptimizer({**FAST, "initial_design": "lhs"})
    firsts = []
    for seed in (0, 1):
        runs: list[RunRecord] = []
        for i in range(FAST["n_init"]):
            sug = opt.suggest(make_view(runs, i, seed))
            assert isinstance(sug, Start)
            runs.append(run_to(sug.config, sug.model, sug.steps, i))
        u = sorted(SPACE.encode(r.config)[0] for r in runs)
        assert [int(x * 5) for x in u] == [0, 1, 2, 3, 4]
        firsts.append(u)
    assert firsts[0] != firsts[1]
    random = JFHPOOptimizer({**FAST, "initial_design": "random"})
    assert random.suggest(make_view([], 0)) != opt.suggest(make_view([], 0))
    assert JFHPOOptimizer(FAST).suggest(make_view([], 0)) == random.suggest(make_view([], 0))


def test_the_target_search_extends_its_best_run_when_the_budget_left_pays_for_little_more() -> None:
    rng = np.random.default_rng(5)
    runs = [run_to(SPACE.sample(rng), "target", STEPS.rungs()[0], i) for i in range(6)]
    runs.append(run_to({"lr": 1e-5, "clip": 0.5 * (0.1 + 0.4)}, "target", STEPS.rungs()[1], 6))
    opt = JFHPOOptimizer({**FAST, "target_final": True})
    spent = sum(r.cost for r in runs)
    target = LADDER["target"].cost

    def left(amount: float) -> StudyView:
        return make_view(runs, len(runs), budget_total=spent + amount, budget_spent=spent)

    ext = target * (STEPS.max_steps - STEPS.rungs()[1])  # the best run's missing steps
    sug = opt.suggest(left(ext + 0.5 * target * STEPS.rungs()[0]))
    assert isinstance(sug, Extend) and sug.steps == STEPS.max_steps
    assert view_run(runs, sug.run_id).steps_done == STEPS.rungs()[1]
    # with room for more search, or with the option off (the default), no extension to the
    # full budget yet
    roomy = opt.suggest(left(ext + 5 * target * STEPS.rungs()[0]))
    assert not (isinstance(roomy, Extend) and roomy.steps == STEPS.max_steps)
    off = JFHPOOptimizer(FAST)
    sug = off.suggest(left(ext + 0.5 * target * STEPS.rungs()[0]))
    assert not (isinstance(sug, Extend) and sug.steps == STEPS.max_steps)


def view_run(runs: list[RunRecord], run_id: int) -> RunRecord:
    return next(r for r in runs if r.run_id == run_id)


def test_the_target_search_starts_from_a_design_of_its_own_size() -> None:
    """On the target (a tight budget, no recipe) the design has ``target_init`` points (by
    default twice the hyperparameters, at least ``n_init``), one per stratum of each range."""
    for options, n in (({}, max(FAST["n_init"], 2 * SPACE.dim)), ({"target_init": 7}, 7)):
        opt = JFHPOOptimizer({**FAST, **options})
        runs = [run_to({"lr": 1e-6, "clip": 0.2}, "small", STEPS.rungs()[0], 0)]
        for _ in range(n):
            sug = opt.suggest(_target_view(runs, 3.0))
            assert isinstance(sug, Start) and (sug.model, sug.steps) == ("target", STEPS.rungs()[0])
            runs.append(run_to(sug.config, sug.model, sug.steps, len(runs)))
        u = sorted(SPACE.encode(r.config)[1] for r in runs[1:])
        assert [int(x * n) for x in u] == list(range(n))
