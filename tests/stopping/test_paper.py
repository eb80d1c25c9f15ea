"""The paper's rules on hand-made series: thresholds, warm-up, NaN, exact boundaries."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jfhpo.stopping.paper import (
    KLGrowth,
    RewardDrop,
    ZeroReward,
    noise_sd,
    trailing_means,
    trailing_run,
)

NAN = math.nan


def test_trailing_means_and_run() -> None:
    assert trailing_means([1, 2, 3, 4], 2) == [1.5, 2.5, 3.5]
    assert trailing_means([1, 2], 3) == []
    assert trailing_run([True, False, True, True]) == 2
    assert trailing_run([]) == 0


def _grow(start: float, factor: float, n: int) -> list[float]:
    return [start * factor**i for i in range(n)]


KL_CASES = [
    # (id, kl series from step 1, rule options, expected first stop step)
    ("grows 20%/step from step 13", [0.02] * 12 + _grow(0.024, 1.2, 8), {}, 17),
    ("only 4 growth steps", [0.02] * 12 + _grow(0.024, 1.2, 4) + [0.04] * 5, {}, None),
    ("exactly tau is not growth", [0.02] * 12 + _grow(0.023, 1.15, 8), {}, None),
    ("growth only during warm-up", _grow(0.01, 1.5, 9) + [0.4] * 10, {}, None),
    ("tiny KL below min_kl", [1e-4] * 12 + _grow(1e-4, 1.2, 10), {}, None),
    ("k applies", [0.02] * 12 + _grow(0.024, 1.2, 8), {"k": 2}, 14),
    ("tau applies", [0.02] * 12 + _grow(0.024, 1.2, 8), {"tau": 0.25}, None),
    ("warm-up 0, min_kl 0", _grow(1e-6, 2.0, 8), {"warmup": 0, "min_kl": 0.0}, 6),
]


@pytest.mark.parametrize("kl,opts,expected", [c[1:] for c in KL_CASES], ids=[c[0] for c in KL_CASES])
def test_kl_growth(curves, kl, opts, expected) -> None:
    assert curves.first_stop(KLGrowth(**opts), curves.obs(kl=kl)) == expected


def test_kl_growth_message_has_numbers(curves) -> None:
    obs = curves.obs(kl=[0.02] * 12 + _grow(0.024, 1.2, 5))
    reason = KLGrowth().check(curves.history(obs), curves.view())
    assert reason is not None and reason.rule == "kl_growth"
    assert "15%" in reason.message and "0.02" in reason.message and "0.04977" in reason.message


def test_kl_growth_ignores_nan(curves) -> None:
    obs = curves.obs(kl=[0.02, NAN, 0.02, math.inf] * 10)
    assert curves.first_stop(KLGrowth(warmup=0), obs) is None


# reward 1.0 for 30 steps then 0.5; window 8: the mean at step t > 30 is 1 - (t - 30) / 16, exact
# in binary floating point, so the boundary case (mean == limit at step 32) is exact too.
DROP = [1.0] * 30 + [0.5] * 20
REWARD_CASES = [
    ("drop for k=3 steps below 0.875", DROP, {"window": 8, "tau": 0.125}, 35),
    ("k=1 fires on the first mean below", DROP, {"window": 8, "tau": 0.125, "k": 1}, 33),
    ("noisy but flat", [0.3, 0.5] * 30, {}, None),
    ("drop smaller than min_drop", [0.04] * 30 + [0.0] * 20, {}, None),
    (
        "min_drop 0 lets relative drop count",
        [0.04] * 30 + [0.0] * 20,
        {"min_drop": 0.0, "window": 8, "noise_z": 0.0},
        33,
    ),
    ("rising reward", [i / 100 for i in range(60)], {}, None),
    ("single bad step", [0.8] * 30 + [0.0] + [0.8] * 20, {}, None),
]


@pytest.mark.parametrize("rew,opts,expected", [c[1:] for c in REWARD_CASES], ids=[c[0] for c in REWARD_CASES])
def test_reward_drop(curves, rew, opts, expected) -> None:
    assert curves.first_stop(RewardDrop(**opts), curves.obs(reward=rew)) == expected


def test_reward_drop_best_excludes_warm_up(curves) -> None:
    # a high start inside the warm-up is not the baseline: 1.0 for 10 steps, then a flat 0.5
    rew = [1.0] * 10 + [0.5] * 40
    assert curves.first_stop(RewardDrop(window=1, warmup=10), curves.obs(reward=rew)) is None
    assert curves.first_stop(RewardDrop(window=1, warmup=0), curves.obs(reward=rew)) == 13


def test_reward_drop_message(curves) -> None:
    reason = RewardDrop(window=8, tau=0.125).check(
        curves.history(curves.obs(reward=DROP[:35])), curves.view()
    )
    assert reason is not None
    assert "best 1" in reason.message and "0.6875 at step 35" in reason.message


ZERO_CASES = [
    ("10 zeros", [0.0] * 10, {}, 10),
    ("9 zeros then a success", [0.0] * 9 + [0.25] + [0.0] * 9, {}, None),
    ("warm-up not counted", [0.0] * 20, {"warmup": 5}, 15),
    ("eps", [1e-12] * 10, {}, 10),
    ("eps 0 still counts exact zeros", [0.0] * 10, {"eps": 0.0}, 10),
    ("NaN is skipped, not zero", [0.0, NAN] * 6, {"k": 6}, 11),
    ("k", [0.0] * 10, {"k": 11}, None),
]


@pytest.mark.parametrize("rew,opts,expected", [c[1:] for c in ZERO_CASES], ids=[c[0] for c in ZERO_CASES])
def test_zero_reward(curves, rew, opts, expected) -> None:
    assert curves.first_stop(ZeroReward(**opts), curves.obs(reward=rew)) == expected


def test_reward_drop_noise_term(curves) -> None:
    # a flat reward with the per-step noise of the recorded tiny runs (sd 0.09 around 0.4): the
    # paper's 10 % of a 10-step mean is within the noise, the noise term keeps the run alive
    rng = np.random.default_rng(3)
    rew = list(0.4 + rng.normal(0, 0.09, 80))
    assert curves.first_stop(RewardDrop(noise_z=0.0), curves.obs(reward=rew)) is not None
    assert curves.first_stop(RewardDrop(), curves.obs(reward=rew)) is None
    # a real collapse, 0.4 -> 0.1, is still caught under the same noise
    fall = rew[:40] + list(0.1 + rng.normal(0, 0.09, 40))
    assert curves.first_stop(RewardDrop(), curves.obs(reward=fall)) is not None


def test_noise_sd() -> None:
    assert noise_sd([1.0, 2.0]) == 0.0
    assert noise_sd([0.1 * i for i in range(10)]) < 1e-12
    rng = np.random.default_rng(0)
    assert abs(noise_sd(list(rng.normal(0, 0.2, 2000))) - 0.2) < 0.01
