"""The peer comparison: fires on hopeless runs only with enough peers, margin and persistence."""

from __future__ import annotations

import math

import numpy as np

from jfhpo.stopping.compare import PeerGap, second_diff_var

N = None


def _evals(values: list[float], every: int = 10) -> list[float | None]:
    out: list[float | None] = []
    for v in values:
        out += [N] * (every - 1) + [v]
    return out


def _peer_evals(n_evals: int, level: float, wiggle: float, phase: int) -> list[float]:
    return [level + wiggle * (-1) ** (i + phase) for i in range(n_evals)]


def _replay(curves, rule, mine, peers, model="m", peer_model="m"):
    """First step at which ``rule`` stops run 1 (metric lists in ``mine``) among ``peers``."""
    peer_obs = {rid: (peer_model, curves.obs(run_id=rid, **series)) for rid, series in peers.items()}
    obs = curves.obs(run_id=1, **mine)
    for i in range(1, len(obs) + 1):
        runs = dict(peer_obs)
        runs[1] = (model, obs[:i])
        reason = rule.check(curves.history(obs[:i], model=model), curves.view(runs))
        if reason is not None:
            return obs[i - 1].step, reason
    return None, None


def _eval_peers(n: int = 5, n_evals: int = 6, level: float = 0.5, wiggle: float = 0.02):
    return {
        rid: {"eval_accuracy": _evals(_peer_evals(n_evals, level, wiggle, rid))} for rid in range(2, 2 + n)
    }


def test_second_diff_var_cancels_a_linear_trend() -> None:
    var, n = second_diff_var([[0.1 * i for i in range(20)]])
    assert n == 18 and var < 1e-20
    rng = np.random.default_rng(0)
    noisy = [list(0.01 * np.arange(400) + rng.normal(0, 0.1, 400)) for _ in range(5)]
    var, _ = second_diff_var(noisy)
    assert math.isclose(math.sqrt(var), 0.1, rel_tol=0.1)
    assert math.isnan(second_diff_var([[1.0, 2.0]])[0])


def test_hopeless_run_stops_at_second_check_after_warm_up(curves) -> None:
    mine = {"eval_accuracy": _evals([0.1] * 6)}
    step, reason = _replay(curves, PeerGap(), mine, _eval_peers())
    assert step == 40
    assert reason.rule == "peer_gap" and "0.1 vs 0.5" in reason.message


def test_one_unlucky_evaluation_is_not_enough(curves) -> None:
    mine = {"eval_accuracy": _evals([0.5, 0.5, 0.5, 0.1, 0.5, 0.1])}
    assert _replay(curves, PeerGap(), mine, _eval_peers())[0] is None


def test_needs_min_peers(curves) -> None:
    mine = {"eval_accuracy": _evals([0.1] * 6)}
    assert _replay(curves, PeerGap(), mine, _eval_peers(n=2))[0] is None
    assert _replay(curves, PeerGap(min_peers=2), mine, _eval_peers(n=2))[0] == 40


def test_peers_on_another_model_do_not_count(curves) -> None:
    mine = {"eval_accuracy": _evals([0.1] * 6)}
    assert _replay(curves, PeerGap(), mine, _eval_peers(), peer_model="big")[0] is None


def test_peers_must_have_reached_the_step(curves) -> None:
    mine = {"eval_accuracy": _evals([0.1] * 6)}
    short = _eval_peers(n_evals=3)  # peers stop at step 30
    assert _replay(curves, PeerGap(), mine, short)[0] is None


def test_warm_up(curves) -> None:
    mine = {"eval_accuracy": _evals([0.1] * 6)}
    assert _replay(curves, PeerGap(warmup=40), mine, _eval_peers())[0] == 60


def test_large_noise_needs_a_larger_gap(curves) -> None:
    mine = {"eval_accuracy": _evals([0.25] * 6)}
    assert _replay(curves, PeerGap(), mine, _eval_peers(wiggle=0.02))[0] == 40
    assert _replay(curves, PeerGap(), mine, _eval_peers(wiggle=0.1))[0] is None


def test_min_gap(curves) -> None:
    # noise-free peers: the estimated sd is 0, so only min_gap protects the run
    mine = {"eval_accuracy": _evals([0.485] * 6)}
    assert _replay(curves, PeerGap(), mine, _eval_peers(wiggle=0.0))[0] is None
    assert _replay(curves, PeerGap(min_gap=0.01), mine, _eval_peers(wiggle=0.0))[0] == 40


def test_train_reward_when_nobody_evaluates(curves) -> None:
    rng = np.random.default_rng(1)
    peers = {rid: {"reward": list(0.5 + rng.normal(0, 0.1, 60))} for rid in range(2, 7)}
    bad = {"reward": list(0.1 + rng.normal(0, 0.1, 60))}
    good = {"reward": list(0.45 + rng.normal(0, 0.1, 60))}
    step, reason = _replay(curves, PeerGap(), bad, peers)
    assert step == 31 and "mean of 10 steps" in reason.message
    assert _replay(curves, PeerGap(), good, peers)[0] is None
