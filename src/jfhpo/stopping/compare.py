"""Comparison with the other runs: stop a run that is stable but hopelessly behind its peers.

The training-dynamics rules catch runs that break. A run with a learning rate ten times too small
breaks nothing; it just learns nothing, and only a comparison with other runs on the same model
at the same step reveals it. RL curves are noisy, so the comparison is guarded three ways:

1. the gap must exceed ``margin`` noise standard deviations, with the noise estimated from the
   data (second differences of the curves of this run and its peers, which cancel a linear trend);
2. at least ``min_peers`` other runs must have reached the step, and the run must be past
   ``warmup`` steps;
3. the shortfall must hold on ``consecutive`` check points in a row (consecutive evaluations, or
   non-overlapping reward windows), so one unlucky evaluation never kills a good run.

At a check point the eval metric is used when the run and enough peers evaluated at that step;
otherwise the mean training reward over the last ``window`` steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from jfhpo.records import Observation, StopReason
from jfhpo.stopping.base import RunHistory, StoppingRule, register_rule
from jfhpo.stopping.paper import fmt, require
from jfhpo.view import StudyView


def second_diff_var(series: Sequence[Sequence[float]]) -> tuple[float, int]:
    """Pooled noise variance of several curves from their second differences, and its count.

    For x_t = trend_t + e_t with independent noise of variance s2, the second difference
    x_{t+1} - 2 x_t + x_{t-1} has variance 6 s2 plus a curvature term; a linear trend cancels.
    Curvature only inflates the estimate, which errs on the side of not stopping.
    """
    total, count = 0.0, 0
    for xs in series:
        a = np.asarray([x for x in xs if math.isfinite(x)], dtype=float)
        if a.size < 3:
            continue
        d2 = a[2:] - 2 * a[1:-1] + a[:-2]
        total += float(np.sum(d2 * d2))
        count += int(d2.size)
    if count == 0:
        return math.nan, 0
    return total / (6 * count), count


def _window_mean(obs: Sequence[Observation], metric: str, end: int, window: int) -> float | None:
    """Mean of ``metric`` over steps in (end - window, end]; None unless the run reached ``end``
    and at least half the window has finite values."""
    if not obs or obs[-1].step < end:
        return None
    vals = [float(o.metrics[metric]) for o in obs if end - window < o.step <= end and metric in o.metrics]
    vals = [v for v in vals if math.isfinite(v)]
    if len(vals) < max(1, window // 2):
        return None
    return sum(vals) / len(vals)


def _value_at(obs: Sequence[Observation], metric: str, step: int) -> float | None:
    for o in obs:
        if o.step == step and metric in o.metrics:
            v = float(o.metrics[metric])
            return v if math.isfinite(v) else None
    return None


@register_rule
class PeerGap(StoppingRule):
    """Stop a run far below the other runs on the same model at the same step.

    Fires when, at each of the last ``consecutive`` check points after ``warmup``, the gap between
    the ``quantile`` of the peers' values and the run's value exceeds both ``min_gap`` and
    ``margin`` noise standard deviations of that gap, with at least ``min_peers`` peers.
    """

    name = "peer_gap"

    def __init__(
        self,
        margin: float = 3.0,
        min_peers: int = 3,
        warmup: int = 20,
        consecutive: int = 2,
        min_gap: float = 0.02,
        quantile: float = 0.5,
        window: int = 10,
        metric: str = "eval_accuracy",
        reward: str = "reward",
    ) -> None:
        require(margin > 0, self.name, "margin", "a positive number", margin)
        require(min_peers >= 1, self.name, "min_peers", "an integer >= 1", min_peers)
        require(warmup >= 0, self.name, "warmup", "an integer >= 0", warmup)
        require(consecutive >= 1, self.name, "consecutive", "an integer >= 1", consecutive)
        require(min_gap >= 0, self.name, "min_gap", "a number >= 0", min_gap)
        require(0 <= quantile <= 1, self.name, "quantile", "a fraction in [0, 1]", quantile)
        require(window >= 1, self.name, "window", "an integer >= 1", window)
        self.margin, self.min_peers, self.warmup = float(margin), int(min_peers), int(warmup)
        self.consecutive, self.min_gap, self.quantile = int(consecutive), float(min_gap), quantile
        self.window, self.metric, self.reward = int(window), metric, reward

    # -- check points --------------------------------------------------------------------------

    def _check_points(self, run: RunHistory) -> tuple[bool, list[int]]:
        """(use the eval metric, the last ``consecutive`` steps to compare at, newest last).

        A run that reports the eval metric at all is compared on it alone, at its evaluation
        steps: its training reward depends on the sampling temperature and the group size, which
        differ between configurations, so it is no fair comparison (in the recorded tiny runs a
        temperature of 1.5 costs 0.08 of train reward at equal validation accuracy). Runs without
        evaluations are compared on window means of the reward, ``window`` steps apart.
        """
        evals = [s for s, v in run.series(self.metric) if math.isfinite(v)]
        if evals:
            after = [s for s in evals if s > self.warmup]
            return True, after[-self.consecutive :] if len(after) >= self.consecutive else []
        last = run.observations[-1].step
        points = [last - i * self.window for i in range(self.consecutive)][::-1]
        return False, points if points[0] > self.warmup else []

    def _values(
        self, run: RunHistory, peers: Mapping[int, Sequence[Observation]], step: int, on_eval: bool
    ) -> tuple[float, list[float]] | None:
        """The run's value and its peers' values at ``step``; None when the run has none."""
        if on_eval:
            mine = _value_at(run.observations, self.metric, step)
            vals = [_value_at(o, self.metric, step) for o in peers.values()]
        else:
            mine = _window_mean(run.observations, self.reward, step, self.window)
            vals = [_window_mean(o, self.reward, step, self.window) for o in peers.values()]
        if mine is None:
            return None
        return mine, [v for v in vals if v is not None]

    def _ref(self, values: list[float]) -> float:
        return float(np.quantile(np.asarray(values, dtype=float), self.quantile))

    @staticmethod
    def _sd(var: float, averaged: int, n_peers: int) -> float:
        """Standard deviation of (peer reference - run value): the run's value has variance
        var / averaged, the peers' median about pi/2 times that over n_peers."""
        return math.sqrt(var / averaged * (1 + math.pi / (2 * n_peers)))

    def check(self, run: RunHistory, view: StudyView) -> StopReason | None:
        if not run.observations:
            return None
        on_eval, points = self._check_points(run)
        if not points:
            return None
        peers = {
            r.run_id: view.observations.get(r.run_id, ())
            for r in view.runs
            if r.model == run.model and r.run_id != run.run_id
        }
        if len(peers) < self.min_peers:
            return None
        metric = self.metric if on_eval else self.reward
        curves = [[v for _, v in run.series(metric)]]
        curves += [[float(o.metrics[metric]) for o in obs if metric in o.metrics] for obs in peers.values()]
        var, n_d2 = second_diff_var(curves)
        if n_d2 < 3:
            return None
        what = metric if on_eval else f"{metric} (mean of {self.window} steps)"
        label = "median" if self.quantile == 0.5 else f"{self.quantile:.0%} quantile"
        parts = []
        for step in points:
            got = self._values(run, peers, step, on_eval)
            if got is None or len(got[1]) < self.min_peers:
                return None
            mine, peer_vals = got
            ref = self._ref(peer_vals)
            sd = self._sd(var, 1 if on_eval else self.window, len(peer_vals))
            need = max(self.min_gap, self.margin * sd)
            if not ref - mine > need:
                return None
            parts.append(
                f"step {step}: {what} {fmt(mine)} vs {fmt(ref)} ({label} of {len(peer_vals)} "
                f"other runs; gap {fmt(ref - mine)} > {fmt(need)})"
            )
        return StopReason(
            self.name,
            f"far below the other runs on model {run.model} at {len(points)} check points in a "
            f"row, by more than {fmt(self.margin)} noise standard deviations: " + "; ".join(parts),
        )
