"""BOHB: Hyperband's brackets and promotions, with new configurations drawn from a density model.

Falkner, Klein and Hutter (2018) keep Hyperband's schedule and replace its uniform sampling of new
configurations by a TPE-style model. Here:

* the schedule, bracket membership and promotions are ``Hyperband``'s (steps are the only
  fidelity, on one model, by default the target; promotions resume checkpoints);
* a new configuration is drawn uniformly with probability ``random_fraction``, and always while no
  step budget has ``dim + 2`` observations; otherwise the model is fitted on the observations of
  the largest step budget that has enough of them (a run's score at a step is read from its
  learning curve, so runs promoted past a budget still count at it);
* those observations are split into the best ``top_fraction`` ("good", at least ``dim + 1``) and
  the rest ("bad"); each set gets a product of Gaussian kernels in the encoded unit cube with
  Scott's-rule bandwidths (never below ``min_bandwidth``); ``n_samples`` candidates are drawn from
  the good density with bandwidths widened by ``bandwidth_factor``, and the one with the largest
  ratio good/bad is suggested.

Categorical parameters are modelled on their encoded coordinate (choice index scaled to [0, 1])
and decoded by rounding, which for the short choice lists of RL spaces behaves like an ordinal
kernel. The optimizer keeps no state: the model is refitted from the view at every decision, and
its randomness comes from ``view.rng``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from jfhpo.optimizers.base import OptimizerError, register_optimizer
from jfhpo.optimizers.hyperband import Hyperband
from jfhpo.records import Phase, Start, Suggestion
from jfhpo.space import FloatParam
from jfhpo.view import StudyView

__all__ = ["BOHB", "KDEProposer"]

_DEFAULTS: dict[str, float] = {
    "random_fraction": 1.0 / 3.0,
    "top_fraction": 0.15,
    "n_samples": 64,
    "bandwidth_factor": 3.0,
    "min_bandwidth": 1e-3,
}


def _bandwidths(points: np.ndarray, floor: float) -> np.ndarray:
    """Scott's rule per dimension: sigma * n^(-1/(d+4)), floored so a collapsed set still has
    width."""
    n, d = points.shape
    sigma = points.std(axis=0, ddof=1) if n > 1 else np.zeros(d)
    bw = sigma * n ** (-1.0 / (d + 4))
    return np.maximum(bw, floor)


def _log_density(x: np.ndarray, points: np.ndarray, bw: np.ndarray) -> np.ndarray:
    """Log of a product-Gaussian kernel density (mean over ``points``) at each row of ``x``."""
    z = (x[:, None, :] - points[None, :, :]) / bw[None, None, :]
    log_k = -0.5 * (z**2).sum(axis=2) - np.log(bw).sum() - 0.5 * x.shape[1] * math.log(2 * math.pi)
    m = log_k.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(log_k - m).mean(axis=1, keepdims=True)))[:, 0]


class KDEProposer:
    """The density-ratio proposal of BOHB over encoded configurations (pure functions of data)."""

    def __init__(self, top_fraction: float, n_samples: int, bandwidth_factor: float,
                 min_bandwidth: float) -> None:
        self.top_fraction = top_fraction
        self.n_samples = n_samples
        self.bandwidth_factor = bandwidth_factor
        self.min_bandwidth = min_bandwidth

    def split(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(good, bad) rows of ``x``; higher ``y`` is better."""
        n, d = x.shape
        n_good = max(d + 1, int(self.top_fraction * n))
        n_good = min(n_good, n - 1)
        order = np.argsort(-y, kind="stable")
        return x[order[:n_good]], x[order[n_good:]]

    def propose(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One point of the unit cube: the best of ``n_samples`` draws by good/bad ratio."""
        good, bad = self.split(x, y)
        bw_good = _bandwidths(good, self.min_bandwidth)
        bw_bad = _bandwidths(bad, self.min_bandwidth)
        centres = good[rng.integers(0, len(good), size=self.n_samples)]
        draws = centres + rng.normal(size=centres.shape) * (bw_good * self.bandwidth_factor)
        # reflect into [0, 1] rather than clip, so mass does not pile up on the edges
        draws = np.abs(draws)
        draws = 1.0 - np.abs(1.0 - draws)
        draws = np.clip(draws, 0.0, 1.0)
        ratio = _log_density(draws, good, bw_good) - _log_density(draws, bad, bw_bad)
        return np.asarray(draws[int(np.argmax(ratio))])


@register_optimizer
class BOHB(Hyperband):
    """Options: ``model`` and ``eta`` (as Hyperband), ``random_fraction`` (share of new
    configurations drawn uniformly, default 1/3), ``top_fraction`` (share of observations in the
    good density, default 0.15), ``n_samples`` (candidates per proposal, default 64),
    ``bandwidth_factor`` (widening of the good kernels when sampling, default 3),
    ``min_bandwidth`` (default 1e-3)."""

    name = "bohb"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        opts = dict(options or {})
        own = {k: opts.pop(k) for k in list(opts) if k in _DEFAULTS}
        try:
            super().__init__(opts)
        except OptimizerError as exc:
            raise OptimizerError(str(exc).replace("for hyperband", "for bohb").replace(
                "valid: ['eta', 'model']", f"valid: {sorted(['eta', 'model', *_DEFAULTS])}")) from None
        self.options.update(own)
        vals = {**_DEFAULTS, **own}
        for k, v in vals.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise OptimizerError(f"optimizer.options.{k}: expected a number, got {v!r}")
        if not 0.0 <= vals["random_fraction"] <= 1.0:
            raise OptimizerError("optimizer.options.random_fraction: must be in [0, 1]")
        if not 0.0 < vals["top_fraction"] < 1.0:
            raise OptimizerError("optimizer.options.top_fraction: must be in (0, 1)")
        if int(vals["n_samples"]) < 1 or vals["bandwidth_factor"] <= 0 or vals["min_bandwidth"] <= 0:
            raise OptimizerError("optimizer.options: n_samples, bandwidth_factor and "
                                 "min_bandwidth must be positive")
        self.random_fraction = float(vals["random_fraction"])
        self.proposer = KDEProposer(float(vals["top_fraction"]), int(vals["n_samples"]),
                                    float(vals["bandwidth_factor"]), float(vals["min_bandwidth"]))

    def observations(self, view: StudyView) -> tuple[int, np.ndarray, np.ndarray] | None:
        """(steps, X, y) at the largest step rung with at least ``dim + 2`` distinct
        observations of this optimizer's model, or None when no rung has that many."""
        model = self._model(view)
        need = view.space.dim + 2
        per_rung: dict[int, dict[str, tuple[np.ndarray, float]]] = {}
        rungs = set(view.steps.rungs())
        for r in view.runs:
            if r.model != model or r.phase is not Phase.SEARCH:
                continue
            key = view.space.key(r.config)
            for step, value in r.curve:
                if step in rungs and step <= r.steps_done and math.isfinite(value):
                    per_rung.setdefault(step, {})[key] = (view.space.encode(r.config), value)
        for steps in sorted(per_rung, reverse=True):
            obs = per_rung[steps]
            if len(obs) >= need:
                x = np.stack([v[0] for v in obs.values()])
                y = np.array([v[1] for v in obs.values()])
                return steps, x, y
        return None

    def propose(self, view: StudyView) -> dict[str, Any]:
        """A new configuration: uniform, or the KDE proposal when enough data exists."""
        rng = view.rng(salt=17)
        data = self.observations(view)
        if data is None or rng.random() < self.random_fraction:
            return view.space.sample(rng)
        _, x, y = data
        config = view.space.decode(self.proposer.propose(x, y, rng))
        # a log-scale decode of an edge can land one ulp outside the range: clamp to it
        for p in view.space.params:
            if isinstance(p, FloatParam):
                config[p.name] = min(max(config[p.name], p.low), p.high)
        return config

    def suggest(self, view: StudyView) -> Suggestion | None:
        s = super().suggest(view)
        if isinstance(s, Start):
            return Start(self.propose(view), s.model, s.steps, s.phase)
        return s
