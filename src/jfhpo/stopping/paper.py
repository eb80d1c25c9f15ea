"""The paper's three early-stopping rules: KL growth, reward drop, zero reward.

The paper gives thresholds (tau1 = 15 % KL growth for k = 5 steps, tau2 = 10 % reward drop, reward
stuck at zero) but not the formulas. The formulas chosen here, and why, are in docs/stopping.md;
in short:

- KL growth is judged step over step on the raw KL, but only once the KL is large enough to matter
  (``min_kl``) and after a warm-up, because a policy that starts at the reference has KL 0 and any
  drift at all looks like huge relative growth in the first steps.
- Reward drop compares a trailing window mean of the reward with the best window mean the run has
  reached, because single-step GRPO rewards are too noisy to compare one by one; the drop must hold
  for ``k`` consecutive steps and also exceed an absolute ``min_drop``.
- Zero reward fires when the raw reward has been (numerically) zero for ``k`` consecutive steps:
  with every reward zero, GRPO's group-centred advantages are zero and the policy cannot learn.

The small series helpers at the top are shared with the guards and the comparison rule.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from jfhpo.records import StopReason
from jfhpo.stopping.base import RuleError, RunHistory, StoppingRule, register_rule
from jfhpo.view import StudyView

# ----------------------------------------------------------------------------------------------
# helpers shared by the rule modules


def finite_series(run: RunHistory, metric: str) -> list[tuple[int, float]]:
    """(step, value) of ``metric`` with non-finite values left out.

    Every rule except the non-finite guard ignores NaN/inf: that guard reports them, and the other
    rules must neither crash on them nor fire because a comparison with NaN happened to be true.
    """
    return [(s, v) for s, v in run.series(metric) if math.isfinite(v)]


def trailing_means(values: Sequence[float], window: int) -> list[float]:
    """Mean of each full trailing window: element i is mean(values[i : i + window]).

    The result has ``len(values) - window + 1`` elements (none when the series is shorter than one
    window), aligned with the last value of each window.
    """
    if window <= 0:
        raise ValueError("window must be positive")
    out: list[float] = []
    total = 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        if i >= window - 1:
            out.append(total / window)
    return out


def trailing_run(flags: Sequence[bool]) -> int:
    """How many of the last elements of ``flags`` are True in a row."""
    n = 0
    for f in reversed(flags):
        if not f:
            break
        n += 1
    return n


def noise_sd(values: Sequence[float]) -> float:
    """Per-step noise of a curve from its second differences (0.0 with fewer than 3 values).

    For x_t = trend_t + e_t, var(x_{t+1} - 2 x_t + x_{t-1}) = 6 var(e) when the trend is linear;
    curvature only makes the estimate larger, which errs on the side of not stopping.
    """
    if len(values) < 3:
        return 0.0
    d2 = [values[i + 1] - 2 * values[i] + values[i - 1] for i in range(1, len(values) - 1)]
    return math.sqrt(sum(d * d for d in d2) / (6 * len(d2)))


def fmt(x: float) -> str:
    """A number for a stop message: short, but with enough digits to check the threshold."""
    if x == 0 or not math.isfinite(x):
        return str(x)
    if abs(x) >= 1000 or abs(x) < 1e-3:
        return f"{x:.3g}"
    return f"{x:.4g}"


def require(cond: bool, rule: str, key: str, what: str, value: object) -> None:
    """Raise RuleError naming the rule and the option unless ``cond`` holds."""
    if not cond:
        raise RuleError(f"stopping.{rule}.{key}: must be {what}, got {value!r}")


# ----------------------------------------------------------------------------------------------
# the paper's rules


@register_rule
class KLGrowth(StoppingRule):
    """KL to the reference grows more than ``tau`` step over step for ``k`` steps in a row.

    A step counts as growth when ``kl[t] > (1 + tau) * kl[t-1]`` for consecutive KL observations.
    The rule fires when the last ``k`` steps all grew, the latest KL is at least ``min_kl`` and the
    whole streak lies after ``warmup`` steps.
    """

    name = "kl_growth"

    def __init__(self, tau: float = 0.15, k: int = 5, min_kl: float = 0.01, warmup: int = 10) -> None:
        require(tau > 0, self.name, "tau", "a positive number", tau)
        require(k >= 1, self.name, "k", "an integer >= 1", k)
        require(min_kl >= 0, self.name, "min_kl", "a number >= 0", min_kl)
        require(warmup >= 0, self.name, "warmup", "an integer >= 0", warmup)
        self.tau, self.k, self.min_kl, self.warmup = float(tau), int(k), float(min_kl), int(warmup)

    def check(self, run: RunHistory, view: StudyView) -> StopReason | None:
        kl = finite_series(run, "kl")
        if len(kl) < self.k + 1:
            return None
        tail = kl[-(self.k + 1) :]
        if tail[1][0] <= self.warmup or tail[-1][1] < self.min_kl:
            return None
        for (_, prev), (_, cur) in itertools.pairwise(tail):
            if not (prev > 0 and cur > (1 + self.tau) * prev):
                return None
        first, last = tail[0], tail[-1]
        return StopReason(
            self.name,
            f"KL grew more than {self.tau:.0%} step over step for {self.k} steps in a row "
            f"(step {first[0]}: {fmt(first[1])} -> step {last[0]}: {fmt(last[1])})",
        )


@register_rule
class RewardDrop(StoppingRule):
    """The smoothed training reward fell more than ``tau`` below the run's best smoothed reward.

    Smoothing is a trailing mean over ``window`` reward observations. The best is the highest
    window mean ending after ``warmup`` steps. The rule fires when each of the last ``k`` window
    means is below ``best`` by more than all of: ``tau * |best|`` (the paper's relative drop),
    ``min_drop`` and ``noise_z`` standard deviations of a difference of two window means, the
    per-step noise estimated from the run's own rewards after warm-up (second differences, which
    cancel a linear trend). Without the noise term a 10 % drop of a 10-step mean is within the
    noise of the recorded GRPO curves (see docs/stopping.md).
    """

    name = "reward_drop"

    def __init__(
        self,
        tau: float = 0.10,
        window: int = 10,
        k: int = 3,
        min_drop: float = 0.05,
        noise_z: float = 3.0,
        warmup: int = 10,
    ) -> None:
        require(tau > 0, self.name, "tau", "a positive number", tau)
        require(noise_z >= 0, self.name, "noise_z", "a number >= 0", noise_z)
        require(window >= 1, self.name, "window", "an integer >= 1", window)
        require(k >= 1, self.name, "k", "an integer >= 1", k)
        require(min_drop >= 0, self.name, "min_drop", "a number >= 0", min_drop)
        require(warmup >= 0, self.name, "warmup", "an integer >= 0", warmup)
        self.tau, self.window, self.k = float(tau), int(window), int(k)
        self.min_drop, self.noise_z, self.warmup = float(min_drop), float(noise_z), int(warmup)

    def check(self, run: RunHistory, view: StudyView) -> StopReason | None:
        rew = finite_series(run, "reward")
        means = trailing_means([v for _, v in rew], self.window)
        steps = [s for s, _ in rew][self.window - 1 :]
        eligible = [(s, m) for s, m in zip(steps, means) if s > self.warmup]
        if len(eligible) < self.k + 1:
            return None
        best_step, best = max(eligible, key=lambda t: t[1])
        noise = self.noise_z * noise_sd([v for s, v in rew if s > self.warmup])
        need = max(self.tau * abs(best), self.min_drop, noise * math.sqrt(2 / self.window))
        tail = eligible[-self.k :]
        if not all(best - m > need for _, m in tail):
            return None
        step, cur = tail[-1]
        return StopReason(
            self.name,
            f"the reward (mean of the last {self.window} steps) fell from its best "
            f"{fmt(best)} at step {best_step} to {fmt(cur)} at step {step}, more than "
            f"{fmt(need)} down ({self.tau:.0%} of the best, and above the noise) "
            f"for {self.k} steps in a row",
        )


@register_rule
class ZeroReward(StoppingRule):
    """The training reward stayed at zero (``|reward| <= eps``) for ``k`` steps in a row.

    Counted only after ``warmup`` steps. With every reward zero, GRPO's group-centred advantages
    vanish: the run gets no learning signal and its reward cannot rise except by sampling luck.
    """

    name = "zero_reward"

    def __init__(self, k: int = 10, eps: float = 1e-9, warmup: int = 0) -> None:
        require(k >= 1, self.name, "k", "an integer >= 1", k)
        require(eps >= 0, self.name, "eps", "a number >= 0", eps)
        require(warmup >= 0, self.name, "warmup", "an integer >= 0", warmup)
        self.k, self.eps, self.warmup = int(k), float(eps), int(warmup)

    def check(self, run: RunHistory, view: StudyView) -> StopReason | None:
        rew = [(s, v) for s, v in finite_series(run, "reward") if s > self.warmup]
        n = trailing_run([abs(v) <= self.eps for _, v in rew])
        if n < self.k:
            return None
        return StopReason(
            self.name,
            f"the reward was 0 for {n} steps in a row (steps {rew[-n][0]} to {rew[-1][0]}): "
            "no learning signal",
        )
