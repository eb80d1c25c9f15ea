"""Failure guards on hand-made series: each fires on its symptom, not at the boundary or on NaN."""

from __future__ import annotations

import math

import pytest

from jfhpo.stopping.guards import (
    DeadSignal,
    EntropyCollapse,
    EntropyExplosion,
    EvalDrop,
    KLRunaway,
    NonFinite,
    Truncation,
)

NAN, INF = math.nan, math.inf
N = None


def test_non_finite_fires_once_on_nan(curves) -> None:
    obs = curves.obs(grad_norm=[1.0, 1.2, NAN, 1.0], reward=[0.1] * 4)
    assert curves.first_stop(NonFinite(), obs) == 3
    reason = NonFinite().check(curves.history(obs[:3]), curves.view())
    assert reason is not None and "grad_norm=nan" in reason.message and "step 3" in reason.message


@pytest.mark.parametrize("metric", ["grad_norm", "kl", "loss", "entropy", "reward"])
def test_non_finite_watches_each_metric(curves, metric) -> None:
    assert curves.first_stop(NonFinite(), curves.obs(**{metric: [1.0, -INF]})) == 2


def test_non_finite_patience_and_metric_list(curves) -> None:
    one_inf = curves.obs(kl=[0.1, INF, 0.1, 0.1])
    two_inf = curves.obs(kl=[0.1, INF, INF, 0.1])
    assert curves.first_stop(NonFinite(patience=2), one_inf) is None
    assert curves.first_stop(NonFinite(patience=2), two_inf) == 3
    assert curves.first_stop(NonFinite(metrics=["loss"]), two_inf) is None
    assert curves.first_stop(NonFinite(), curves.obs(clip_frac=[NAN, NAN])) is None


ENT = [2.0, 2.0, 2.0] + [1.5] * 6  # start value 2.0, steps 1..9
COLLAPSE_CASES = [
    ("falls to 15% of start", {"entropy": ENT + [0.3] * 5}, {}, 12),
    ("exactly 20% is not below", {"entropy": ENT + [0.4] * 5}, {}, None),
    ("k steps needed", {"entropy": [*ENT, 0.3, 0.3, 1.0, 0.3, 0.3]}, {}, None),
    ("late low entropy is convergence", {"entropy": [2.0] * 50 + [0.3] * 5}, {}, None),
    ("before=1 lets it count late", {"entropy": [2.0] * 50 + [0.3] * 5}, {"before": 1.0}, 53),
    ("ratio", {"entropy": ENT + [0.3] * 5}, {"ratio": 0.1}, None),
    ("NaN ignored", {"entropy": ENT + [NAN] * 5}, {}, None),
]


@pytest.mark.parametrize(
    "series,opts,expected", [c[1:] for c in COLLAPSE_CASES], ids=[c[0] for c in COLLAPSE_CASES]
)
def test_entropy_collapse(curves, series, opts, expected) -> None:
    assert curves.first_stop(EntropyCollapse(**opts), curves.obs(**series)) == expected


def test_entropy_collapse_spares_a_run_whose_validation_improves(curves) -> None:
    ent = ENT + [0.3] * 5  # low from step 10
    flat = [N] * 4 + [0.4] + [N] * 9
    better = [N] * 4 + [0.4] + [N] * 6 + [0.6, N, N]
    assert curves.first_stop(EntropyCollapse(), curves.obs(entropy=ent, eval_accuracy=flat)) == 12
    assert curves.first_stop(EntropyCollapse(), curves.obs(entropy=ent, eval_accuracy=better)) is None


EXPLOSION_CASES = [
    ("above 3x start", [1.0] * 9 + [3.5] * 4, {}, 12),
    ("exactly 3x", [1.0] * 9 + [3.0] * 4, {}, None),
    ("two steps only", [1.0] * 9 + [3.5, 3.5, 1.0, 3.5], {}, None),
    ("ratio", [1.0] * 9 + [3.5] * 4, {"ratio": 4.0}, None),
    ("start is a 3-step mean", [0.5, 1.0, 1.5] + [3.5] * 4, {}, 6),
]


@pytest.mark.parametrize(
    "ent,opts,expected", [c[1:] for c in EXPLOSION_CASES], ids=[c[0] for c in EXPLOSION_CASES]
)
def test_entropy_explosion(curves, ent, opts, expected) -> None:
    assert curves.first_stop(EntropyExplosion(**opts), curves.obs(entropy=ent)) == expected


TRUNC_CASES = [
    ("3 steps over 20%", [0.0, 0.1, 0.0, 0.3, 0.3, 0.3], {}, 6),
    ("exactly 20%", [0.2] * 6, {}, None),
    ("interrupted", [0.3, 0.3, 0.1, 0.3, 0.3], {}, None),
    ("warm-up", [1.0] * 5 + [0.0] * 3, {"warmup": 5}, None),
    ("warm-up then persistent", [1.0] * 8, {"warmup": 5}, 8),
]


@pytest.mark.parametrize("tr,opts,expected", [c[1:] for c in TRUNC_CASES], ids=[c[0] for c in TRUNC_CASES])
def test_truncation(curves, tr, opts, expected) -> None:
    assert curves.first_stop(Truncation(**opts), curves.obs(truncation=tr)) == expected


DEAD_CASES = [
    ("5 dead steps", [0.5, 1.0, 1.0, 1.0, 1.0, 1.0], {}, 6),
    ("exactly 0.95", [0.95] * 8, {}, None),
    ("4 dead steps", [1.0] * 4 + [0.5] + [1.0] * 4, {}, None),
    ("warm-up", [1.0] * 10, {"warmup": 10}, None),
    ("k", [1.0] * 10, {"k": 10}, 10),
]


@pytest.mark.parametrize("z,opts,expected", [c[1:] for c in DEAD_CASES], ids=[c[0] for c in DEAD_CASES])
def test_dead_signal(curves, z, opts, expected) -> None:
    assert curves.first_stop(DeadSignal(**opts), curves.obs(zero_std_frac=z)) == expected


BASE = 2.0**-7  # 10 x BASE is exact in binary, so the boundary case is exact
RUNAWAY_CASES = [
    ("2 spikes with reward drop", [BASE] * 15 + [0.2] * 2, [0.5] * 15 + [0.1] * 2, {}, 17),
    ("a single spike", [BASE] * 15 + [0.2, BASE], [0.5] * 15 + [0.1] * 2, {}, None),
    ("k=1 stops on a single spike", [BASE] * 15 + [0.2], [0.5] * 15 + [0.1], {"k": 1}, 16),
    ("spikes, reward holds", [BASE] * 15 + [0.2] * 2, [0.5] * 17, {}, None),
    ("without reward condition", [BASE] * 15 + [0.2] * 2, [0.5] * 17, {"with_reward_drop": False}, 17),
    ("exactly 10x", [BASE] * 15 + [10 * BASE] * 2, [0.5] * 15 + [0.1] * 2, {}, None),
    ("median below min_kl", [1e-4] * 15 + [0.01] * 2, [0.5] * 15 + [0.1] * 2, {}, None),
    ("slow rise", [0.01 * 1.1**i for i in range(30)], [0.5] * 29 + [0.1], {}, None),
]


@pytest.mark.parametrize(
    "kl,rew,opts,expected", [c[1:] for c in RUNAWAY_CASES], ids=[c[0] for c in RUNAWAY_CASES]
)
def test_kl_runaway(curves, kl, rew, opts, expected) -> None:
    assert curves.first_stop(KLRunaway(**opts), curves.obs(kl=kl, reward=rew)) == expected


def _evals(values: list[float | None], every: int = 10) -> list[float | None]:
    out: list[float | None] = []
    for v in values:
        out += [N] * (every - 1) + [v]
    return out


EVAL_CASES = [
    ("two evaluations 0.15 below best", [0.5, 0.7, 0.55, 0.55], {}, 40),
    ("one bad evaluation", [0.5, 0.7, 0.55, 0.7, 0.55], {}, None),
    ("exactly delta", [0.5, 0.75, 0.625, 0.625], {"delta": 0.125}, None),
    ("k=1", [0.5, 0.7, 0.55], {"k": 1}, 30),
    ("NaN evaluation skipped", [0.5, 0.7, 0.55, NAN, 0.55], {}, 50),
]


@pytest.mark.parametrize("ev,opts,expected", [c[1:] for c in EVAL_CASES], ids=[c[0] for c in EVAL_CASES])
def test_eval_drop(curves, ev, opts, expected) -> None:
    obs = curves.obs(eval_accuracy=_evals(ev), reward=[0.1] * (10 * len(ev)))
    assert curves.first_stop(EvalDrop(**opts), obs) == expected


def test_eval_drop_other_metric(curves) -> None:
    ev = _evals([0.5, 0.7, 0.5, 0.5])
    obs = curves.obs(eval_greedy_accuracy=ev, reward=[0.1] * 40)
    assert curves.first_stop(EvalDrop(), obs) is None
    assert curves.first_stop(EvalDrop(metric="eval_greedy_accuracy"), obs) == 40
