"""Rules on recorded curves of the real tiny GRPO workload (tests/stopping/fixtures/sweep_50k.json).

The fixture holds the 18 runs of the 50k model (learning rate x temperature 0.7/1.0/1.5), 80 steps
each, cut from bench/stopping/curves.json (commands in the file). Learning rates 1e-5 to 3e-4 are
healthy (final eval_accuracy 0.40-0.43); lr 1e-3 degrades (0.22-0.32); lr 3e-3 collapses within a
few steps (reward 0, every group scored alike). Runs are replayed in lock step as in a study.
"""

from __future__ import annotations

import pytest

from jfhpo.stopping import build_rules
from jfhpo.stopping.compare import PeerGap
from jfhpo.stopping.guards import DeadSignal, KLRunaway, NonFinite
from jfhpo.stopping.paper import KLGrowth, RewardDrop, ZeroReward


@pytest.fixture
def sweep(curves):
    return curves.recorded("sweep_50k")


def _by_lr(runs, stops):
    """{(lr, temperature): stop step} for the stopped runs."""
    return {
        (m["config"]["learning_rate"], m["config"]["temperature"]): s
        for (m, _), s in zip(runs, stops)
        if s is not None
    }


TEMPS = (0.7, 1.0, 1.5)
HEALTHY = [(lr, t) for lr in (1e-5, 3e-5, 1e-4, 3e-4) for t in TEMPS]
BROKEN = [(lr, t) for lr in (1e-3, 3e-3) for t in TEMPS]
COLLAPSED = {(3e-3, t) for t in TEMPS}


def test_fixture_is_what_the_docstring_says(sweep) -> None:
    keys = {(m["config"]["learning_rate"], m["config"]["temperature"]) for m, _ in sweep}
    assert keys == set(HEALTHY) | set(BROKEN)
    assert all(len(obs) == 80 for _, obs in sweep)


def test_default_set_stops_exactly_the_broken_runs(curves, sweep) -> None:
    stopped = _by_lr(sweep, curves.replay_group(build_rules({}), sweep))
    assert set(stopped) == set(BROKEN)
    assert all(stopped[k] <= 16 for k in COLLAPSED)  # collapse caught early


@pytest.mark.parametrize("rule", [DeadSignal(), ZeroReward()])
def test_collapse_rules_catch_the_collapsed_runs_only(curves, sweep, rule) -> None:
    stopped = _by_lr(sweep, curves.replay_group(rule, sweep))
    assert set(stopped) == COLLAPSED


def test_peer_gap_on_validation_stops_the_degrading_runs(curves, sweep) -> None:
    stopped = _by_lr(sweep, curves.replay_group(PeerGap(), sweep))
    assert set(stopped) == set(BROKEN)
    assert min(stopped.values()) == 40  # the 2nd evaluation after the 20-step warm-up


def test_peer_gap_on_train_reward_confuses_temperature_with_quality(curves, sweep) -> None:
    # why the eval metric is preferred: train reward at temperature 1.5 is lower at equal
    # validation accuracy, so a reward-only comparison stops healthy hot runs
    stopped = _by_lr(sweep, curves.replay_group(PeerGap(metric="no_eval"), sweep))
    assert any(k in HEALTHY and k[1] == 1.5 for k in stopped)


def test_single_kl_spike_in_a_healthy_run(curves, sweep) -> None:
    # lr 3e-4, T 1.0 has one KL spike to 4.5 (20x its median) at step 52 and recovers at once
    assert _by_lr(sweep, curves.replay_group(KLRunaway(), sweep)) == {}
    assert _by_lr(sweep, curves.replay_group(KLRunaway(k=1), sweep)) == {(3e-4, 1.0): 52}


def test_reward_drop_needs_its_noise_term(curves, sweep) -> None:
    assert _by_lr(sweep, curves.replay_group(RewardDrop(), sweep)) == {}
    naive = _by_lr(sweep, curves.replay_group(RewardDrop(noise_z=0.0), sweep))
    assert any(k in HEALTHY for k in naive)


def test_kl_growth_needs_warm_up_and_min_kl(curves, sweep) -> None:
    assert _by_lr(sweep, curves.replay_group(KLGrowth(), sweep)) == {}
    naive = _by_lr(sweep, curves.replay_group(KLGrowth(warmup=0, min_kl=0.0), sweep))
    assert any(k in HEALTHY for k in naive)


def test_no_recorded_run_went_non_finite(curves, sweep) -> None:
    assert _by_lr(sweep, curves.replay_group(NonFinite(), sweep)) == {}
