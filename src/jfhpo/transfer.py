"""Measure, from a study's own runs, whether small models rank configurations like larger ones.

JF-HPO rests on one premise: a configuration that wins on a small proxy (and short runs) also wins
on the target. The reference paper backs it with five configurations. jfhpo measures it while the
study runs instead: whenever the same configurations have been scored on two model sizes, it
compares the two rankings with Spearman's rho and Kendall's tau, and the optimizer reacts when the
smaller model misranks (see ``jfhpo.optimizers.jfhpo``).

Which scores are compared: for each configuration seen on both models, the two learning curves are
read at the LARGEST STEP COUNT BOTH MODELS REACHED for that configuration (the last evaluation at or
before that step on each side). Comparing at a shared step keeps a long run on one model from
looking better than a short run on the other only because it trained longer. Several runs of one
configuration on one model (say a search run and a confirmation run) are merged into one curve,
averaging the objectives reported at the same step.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations

import numpy as np
from scipy import stats

from jfhpo.fidelity import ModelLadder
from jfhpo.records import RunRecord
from jfhpo.space import SearchSpace
from jfhpo.view import TransferRecord

__all__ = ["config_curves", "measure_transfer"]

Curve = dict[int, float]


def _run_points(run: RunRecord) -> list[tuple[int, float]]:
    """Every (step, objective) a run reported, including its final score."""
    pts = [(int(s), float(v)) for s, v in run.curve if math.isfinite(v)]
    if run.score is not None and math.isfinite(run.score) and run.steps_done > 0:
        pts.append((int(run.steps_done), float(run.score)))
    return pts


def config_curves(
    runs: Sequence[RunRecord], space: SearchSpace
) -> dict[str, dict[str, Curve]]:
    """Group runs into one learning curve per (model, configuration key).

    Failed runs are left out (their numbers say more about the infrastructure than about the
    configuration); stopped runs count, up to the step where they stopped. Objectives reported at
    the same step by several runs are averaged.
    """
    sums: dict[str, dict[str, dict[int, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for run in runs:
        if run.failed:
            continue
        seen: set[int] = set()
        for step, value in _run_points(run):
            if step in seen:  # the final score usually repeats the last curve point
                continue
            seen.add(step)
            sums[run.model][space.key(run.config)][step].append(value)
    return {
        model: {key: {s: float(np.mean(v)) for s, v in curve.items()} for key, curve in per.items()}
        for model, per in sums.items()
    }


def _value_at(curve: Curve, step: int) -> float:
    """The last objective at or before ``step`` (the curve's first point if none is earlier)."""
    earlier = [s for s in curve if s <= step]
    return curve[max(earlier)] if earlier else curve[min(curve)]


def _pair_record(
    small: str, large: str, a: dict[str, Curve], b: dict[str, Curve], min_configs: int
) -> TransferRecord | None:
    common = sorted(set(a) & set(b))
    if len(common) < min_configs:
        return None
    xs, ys = [], []
    for key in common:
        shared = min(max(a[key]), max(b[key]))
        xs.append(_value_at(a[key], shared))
        ys.append(_value_at(b[key], shared))
    if np.ptp(xs) == 0.0 or np.ptp(ys) == 0.0:
        return None  # one side ranks nothing: no ranking to compare
    rho = float(stats.spearmanr(xs, ys).statistic)
    tau = float(stats.kendalltau(xs, ys).statistic)
    if not (math.isfinite(rho) and math.isfinite(tau)):
        return None
    n = len(common)
    return TransferRecord(
        small=small,
        large=large,
        n_configs=n,
        n_pairs=n * (n - 1) // 2,
        spearman=rho,
        kendall=tau,
    )


def measure_transfer(
    runs: Sequence[RunRecord],
    ladder: ModelLadder,
    space: SearchSpace,
    min_configs: int = 3,
) -> tuple[TransferRecord, ...]:
    """One ``TransferRecord`` per model pair (smaller, larger) sharing ``min_configs`` configs.

    Records are ordered by the smaller model, then the larger one, along the ladder. A pair is left
    out when fewer than ``min_configs`` configurations were scored on both models, or when all
    configurations score the same on one of them (there is then no ranking to compare).
    ``n_pairs`` is the number of configuration pairs the rankings were compared on.
    """
    if min_configs < 2:
        raise ValueError(f"min_configs must be at least 2, got {min_configs}")
    curves = config_curves(runs, space)
    out: list[TransferRecord] = []
    for small, large in combinations(ladder.names, 2):
        if small in curves and large in curves:
            rec = _pair_record(small, large, curves[small], curves[large], min_configs)
            if rec is not None:
                out.append(rec)
    return tuple(out)
