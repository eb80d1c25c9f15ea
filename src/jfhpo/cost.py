"""THE cost model: what a segment is expected to cost, in the study's budget unit.

One model, fitted once per study view from one extraction of the finished segments
(``segment_costs``), and read by everyone who needs a cost: the optimizers (cost-aware acquisition,
affordability), the budget ledger (what in-flight segments still commit, whether a new one can be
paid) and the confirmation planner. Because all of them read the same object, the optimizer's
"affordable" and the tuner's budget gate cannot disagree.

``seconds = fixed(kind) + steps * per_step(model)`` where ``kind`` tells a *start* (a run's first
segment: process set-up, model load and preparation) from an *extension* (a later segment: loading
the run's checkpoint); each kind pays its own fixed cost. ``per_step`` corrects the ladder's cost
hints: ``log(per_step(model)) = log(hint) + a + b * size``. With no measured segment it is the
hints themselves (relative units, ``calibrated`` is False); with one model measured ``a`` rescales
every hint; with two or more ``b`` learns how cost grows with size (ridge-shrunk towards the
hints' own slope so that two noisy points cannot invert the ladder). The fixed costs can only be
told apart from the per-step cost once some model has segments of two different lengths; they stay
0 before that, and are kept only when they explain the costs better than noise would (BIC). An
extension's fixed cost without any measured extension is the start's.

A fixed cost takes one of two shapes, whichever fits the segments better: seconds that are the
same on every model (process start-up), or a number of *steps' worth* of the model's own per-step
cost (evaluation and model loading, which grow with the model like a step does). The second shape
is what lets one short segment on a large model predict a long one: without it, a 10-step target
segment whose evaluation costs as much as 20 steps was extrapolated to a 90-step run at three times
its real cost, and the confirmation reserve starved the search. Each measured model also gets its
own correction of the per-step cost (its mean log-residual, shrunk towards 0 by one pseudo-segment),
so a model whose cost hint is off is priced from its own segments.

The unit is whatever the segments were measured in: compute-seconds (``cost``) under
``budget.measure: compute``, wall-clock seconds of each segment under ``measure: wall``; the view
builds the model from the column that matches its budget, so one unit runs end to end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from jfhpo.fidelity import ModelLadder

__all__ = ["CostModel", "SegmentCost", "segment_costs"]


@dataclass(frozen=True)
class SegmentCost:
    """One finished segment as the cost model sees it."""

    model: str
    steps: int  # steps the segment trained
    seconds: float  # what it cost, in the budget's unit
    start: bool = True  # True for a run's first segment (from step 0), False for an extension


def segment_costs(rows: Iterable[tuple[str, int, int | None, float | None]]) -> tuple[SegmentCost, ...]:
    """The one extraction: (model, start_step, end_step, seconds) of finished segments ->
    ``SegmentCost``s (segments that trained no step or have no finite positive cost are left
    out)."""
    out = []
    for model, start, end, seconds in rows:
        n = (end if end is not None else start) - start
        if n <= 0 or seconds is None or not (seconds > 0 and math.isfinite(seconds)):
            continue
        out.append(SegmentCost(model, n, float(seconds), start == 0))
    return tuple(out)


def _as_cost(item: SegmentCost | Sequence[object]) -> SegmentCost:
    if isinstance(item, SegmentCost):
        return item
    model, steps, seconds, *rest = item
    return SegmentCost(str(model), int(cast(float, steps)), float(cast(float, seconds)),
                       bool(rest[0]) if rest else True)


class CostModel:
    """Predicts the cost of a segment on each model of the ladder (see the module docstring)."""

    def __init__(
        self,
        ladder: ModelLadder,
        segments: Iterable[SegmentCost | Sequence[object]] = (),
        ridge: float = 0.1,
        resumable: bool = True,
    ) -> None:
        self.ladder = ladder
        self.ridge = ridge
        #: False when runs cannot continue from a checkpoint: an extension to ``n`` steps is then
        #: a fresh run to ``n`` steps, and ``between`` prices it so
        self.resumable = resumable
        self.a, self.b = 0.0, 0.0
        self.start_overhead, self.extend_overhead = 0.0, 0.0
        #: True when the fixed costs are in steps of the model's own per-step cost (see above)
        self.relative = False
        self._corr: dict[str, float] = {}  # per-model log correction of the per-step cost
        self._models: list[str] = []  # the model of each fitted segment, in row order
        rows: list[tuple[float, float, float, float, float]] = []  # size, log hint, n, t, start
        self._measured: set[str] = set()
        for seg in map(_as_cost, segments):
            if seg.model not in ladder or seg.steps <= 0:
                continue
            if not (seg.seconds > 0 and math.isfinite(seg.seconds)):
                continue
            rung = ladder[seg.model]
            rows.append((rung.size_feature, math.log(rung.cost), float(seg.steps), seg.seconds,
                         1.0 if seg.start else 0.0))
            self._measured.add(seg.model)
            self._models.append(seg.model)
        self.n_segments = len(rows)
        if not rows:
            return
        arr = np.asarray(rows)
        self._s, self._h, self._n, self._t, self._k = (arr[:, i] for i in range(5))
        self.a, self.b = self._fit_rates(0.0, 0.0)
        self._fit_fixed()
        if self.start_overhead or self.extend_overhead:
            self.a, self.b = self._fit_rates(self.start_overhead, self.extend_overhead)
        self._fit_corrections()

    def _fit_fixed(self) -> None:
        """Choose the fixed costs (absolute seconds or steps' worth, whichever fits better)."""
        lengths: dict[float, set[float]] = {}
        for size, n in zip(self._s, self._n):
            lengths.setdefault(float(size), set()).add(float(n))
        if max(len(v) for v in lengths.values()) < 2:
            return  # one segment length per model: a fixed cost is not identifiable
        starts, exts = self._k == 1.0, self._k == 0.0
        fits: list[tuple[float, bool, tuple[float, float]]] = []
        for relative in (False, True):
            self.relative = relative
            if relative:  # in steps' worth: up to three times the longest segment
                top_s = top_e = 3.0 * float(self._n.max())
            else:
                top_s = 0.95 * float(self._t[starts].min()) if starts.any() else 0.0
                top_e = 0.95 * float(self._t[exts].min()) if exts.any() else 0.0
            best = self._search(top_s, top_e, bool(starts.any()), bool(exts.any()))
            if best is not None:
                fits.append((self._loss(*best), relative, best))
        self.relative = False
        if not fits:
            return
        # on one model the two shapes are the same model: keep seconds unless steps' worth
        # explains the segments clearly better
        _, self.relative, (start, extend) = min(
            fits, key=lambda f: f[0] * (1.0 if f[1] else 0.95))
        self.start_overhead, self.extend_overhead = start, extend
        if not exts.any():
            self.extend_overhead = self.start_overhead
        elif not starts.any():
            self.start_overhead = self.extend_overhead

    def _fit_corrections(self) -> None:
        """Per-model mean log-residual, shrunk by one pseudo-segment at 0."""
        pred = self._predict(self.start_overhead, self.extend_overhead, self.a, self.b)
        res = np.log(self._t) - np.log(np.maximum(pred, 1e-12))
        sums: dict[str, list[float]] = {}
        for m, r in zip(self._models, res):
            sums.setdefault(m, []).append(float(r))
        self._corr = {m: sum(v) / (len(v) + 1.0) for m, v in sums.items()}

    # ---- fitting --------------------------------------------------------------------------
    def _search(self, top_s: float, top_e: float, has_s: bool,
                has_e: bool) -> tuple[float, float] | None:
        """Fixed costs minimising the log-error (grid, then a bounded refinement); None when
        they do not beat no fixed cost at all."""
        gs = np.linspace(0.0, top_s, 20) if has_s else np.array([0.0])
        ge = np.linspace(0.0, top_e, 20) if has_e else np.array([0.0])
        if not has_s:
            gs = ge  # one kind only: both share the grid (the other is copied after)
        if not has_e:
            ge = gs
        pairs = [(s, e) for s in gs for e in ge] if has_s and has_e else list(zip(gs, ge))
        losses = [self._loss(s, e) for s, e in pairs]
        i = int(np.argmin(losses))
        best, best_loss = (float(pairs[i][0]), float(pairs[i][1])), float(losses[i])
        from scipy.optimize import minimize

        if has_s and has_e:
            bounds = [(0.0, max(top_s, 1e-12)), (0.0, max(top_e, 1e-12))]
            res = minimize(lambda x: self._loss(float(x[0]), float(x[1])), np.array(best),
                           method="L-BFGS-B", bounds=bounds)
            if res.success and float(res.fun) < best_loss:
                best, best_loss = (float(res.x[0]), float(res.x[1])), float(res.fun)
        else:
            from scipy.optimize import minimize_scalar

            grid = gs
            lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
            if hi > lo:
                r1 = minimize_scalar(lambda o: self._loss(o, o), bounds=(lo, hi), method="bounded")
                if r1.success and float(r1.fun) < best_loss:
                    best, best_loss = (float(r1.x), float(r1.x)), float(r1.fun)
        # accept the fixed costs only when they explain more than noise would (the Bayesian
        # information criterion: k fitted fixed costs must pay k * log(n) in log-likelihood), so
        # a trainer without fixed costs does not get spurious ones from noisy timings
        base, n = self._loss(0.0, 0.0), len(self._t)
        k = 2 if has_s and has_e else 1
        if best_loss < base - 1e-12 and (
                best_loss <= 0.0 or n * math.log(base / best_loss) > k * math.log(n)):
            return best
        return None

    def _fixed(self, start: float, extend: float) -> np.ndarray:
        return np.asarray(np.where(self._k == 1.0, start, extend))

    def _predict(self, start: float, extend: float, a: float, b: float) -> np.ndarray:
        rate = np.exp(self._h + a + b * self._s)
        if self.relative:
            return np.asarray((self._n + self._fixed(start, extend)) * rate)
        return np.asarray(self._fixed(start, extend) + self._n * rate)

    def _fit_rates(self, start: float, extend: float) -> tuple[float, float]:
        """``a`` and ``b`` for given fixed costs (least squares, slope ridge-shrunk to 0)."""
        s = self._s
        if self.relative:
            r = np.log(self._t / (self._n + self._fixed(start, extend))) - self._h
        else:
            r = np.log(np.maximum(self._t - self._fixed(start, extend), 1e-12) / self._n) - self._h
        if np.ptp(s) > 0:
            sc = s - s.mean()
            b = float((sc @ (r - r.mean())) / (sc @ sc + self.ridge * len(s)))
            return float(r.mean() - b * s.mean()), b
        return float(r.mean()), 0.0

    def _loss(self, start: float, extend: float) -> float:
        a, b = self._fit_rates(start, extend)
        pred = self._predict(start, extend, a, b)
        return float(np.sum((np.log(pred) - np.log(self._t)) ** 2))

    # ---- predictions ----------------------------------------------------------------------
    @property
    def overhead(self) -> float:
        """The fixed cost of a start (kept for readers of the one-overhead model)."""
        return self.start_overhead

    @property
    def calibrated(self) -> bool:
        """True once predictions are in the budget's unit (some segment was measured)."""
        return self.n_segments > 0

    def measured(self, model: str) -> bool:
        """True when some finished segment of ``model`` was measured."""
        return model in self._measured

    def per_step(self, model: str) -> float:
        rung = self.ladder[model]
        return float(rung.cost * math.exp(self.a + self.b * rung.size_feature
                                          + self._corr.get(model, 0.0)))

    def fixed(self, model: str, *, start: bool = True) -> float:
        """The fixed cost of a start (or an extension) on ``model``, in the budget's unit."""
        fixed = self.start_overhead if start else self.extend_overhead
        return self.per_step(model) * fixed if self.relative else fixed

    def segment(self, model: str, steps: float, *, start: bool = True) -> float:
        """Expected cost of one segment training ``steps`` steps on ``model``: a start (from
        step 0) or an extension (from a checkpoint) as ``start`` says."""
        if steps <= 0:
            return 0.0
        return self.fixed(model, start=start) + self.per_step(model) * float(steps)

    def between(self, model: str, start_step: int, target_step: int) -> float:
        """Expected cost of growing a run from ``start_step`` to ``target_step``: an extension
        of the new steps, or (runs not ``resumable``) a fresh start to ``target_step``."""
        if not self.resumable and start_step > 0:
            return self.segment(model, target_step, start=True)
        return self.segment(model, target_step - start_step, start=start_step == 0)

    def __repr__(self) -> str:
        return (f"CostModel(segments={self.n_segments}, a={self.a:.3g}, b={self.b:.3g}, "
                f"start={self.start_overhead:.3g}, extend={self.extend_overhead:.3g}"
                f"{' steps' if self.relative else ''})")
