"""Numbers from finished studies: per-study accounting, statistics over seeds, tables and the plot.

Pure functions over plain data (dicts and lists), so the report can be rebuilt from the CSV files
without rerunning anything.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from jfhpo.records import Phase, SegmentStatus
from jfhpo.study import Study

DONE = (SegmentStatus.COMPLETED, SegmentStatus.STOPPED)


def study_accounting(study: Study) -> dict[str, Any]:
    """What one search study did: runs, segments, compute, and steps saved.

    * ``cost_per_trial``: search compute-seconds (sum of segment costs) per run (a "trial" is a
      run: one configuration on one model, however many segments it took);
    * ``steps_saved_stopping``: steps that stopped segments did not train (target - end);
    * ``steps_saved_reuse``: steps that extensions did not retrain because they resumed a
      checkpoint (their start step).
    """
    segs = [s for s in study.segments.values() if study.runs[s.run_id].phase is Phase.SEARCH]
    done = [s for s in segs if s.status in DONE]
    runs = {s.run_id for s in segs}
    compute = float(sum(s.cost or 0.0 for s in segs))
    stopped = [s for s in done if s.status is SegmentStatus.STOPPED]
    return {
        "runs": len(runs),
        "segments": len(done),
        "failed_segments": sum(1 for s in segs if s.status is SegmentStatus.FAILED),
        "compute": compute,
        "cost_per_trial": compute / len(runs) if runs else float("nan"),
        "steps_trained": int(sum((s.end_step or s.start_step) - s.start_step for s in done)),
        "stopped_segments": len(stopped),
        "steps_saved_stopping": int(sum(s.target_step - (s.end_step or 0) for s in stopped)),
        "steps_saved_reuse": int(sum(s.start_step for s in done)),
        "models": sorted({study.runs[r].model for r in runs}),
    }


def incumbent_trace(study: Study, t0: float,
                    target_value: Callable[[Mapping[str, Any]], float | None]) -> list[tuple[float, float]]:
    """(seconds since ``t0``, target value of the incumbent) after every finished segment.

    The incumbent is the best configuration by the default choice rule (largest model, then most
    steps, then score) among the segments finished so far; ``target_value`` maps it to its score
    on the target (e.g. the synthetic problem's noise-free score).
    """
    rows = [r for r in study.storage.rows("segments") if r["finished"] is not None
            and r["status"] in (int(SegmentStatus.COMPLETED), int(SegmentStatus.STOPPED))
            and r["score"] is not None]
    rows.sort(key=lambda r: r["finished"])
    best: tuple[int, int, float] | None = None
    config: Mapping[str, Any] | None = None
    out: list[tuple[float, float]] = []
    for r in rows:
        run = study.runs[r["run_id"]]
        rank = (study.ladder.index(run.model), int(r["end_step"] or 0), float(r["score"]))
        if best is None or rank > best:
            best, config = rank, run.config
        assert config is not None
        v = target_value(config)
        if v is not None:
            out.append((float(r["finished"]) - t0, v))
    return out


def summary(values: Sequence[float]) -> dict[str, float]:
    """Mean, standard deviation and the t-based 95% interval of the mean."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": float("nan"), "std": float("nan"), "lo": float("nan"),
                "hi": float("nan")}
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else float("nan")
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "std": std, "lo": mean - half, "hi": mean + half}


def paired_tests(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Paired comparison over HPO seeds: mean difference, Wilcoxon signed-rank and paired t
    p-values (two-sided; NaN when undefined, e.g. fewer than 2 pairs or all differences 0)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = x - y
    out = {"diff": float(d.mean()) if len(d) else float("nan"), "p_wilcoxon": float("nan"),
           "p_t": float("nan")}
    if len(d) >= 2 and np.any(d != 0):
        try:
            out["p_wilcoxon"] = float(stats.wilcoxon(x, y).pvalue)
        except ValueError:
            pass
        if np.std(d) > 0:
            out["p_t"] = float(stats.ttest_rel(x, y).pvalue)
    return out


def rank_correlations(scores: Mapping[str, Mapping[str, float]], ladder: Sequence[str]
                      ) -> list[dict[str, Any]]:
    """Spearman and Kendall correlation of configuration rankings between model pairs.

    ``scores[model][config_key]`` is a configuration's score on a model; pairs are every proxy
    against the target and every pair of adjacent rungs.
    """
    pairs = [(m, ladder[-1]) for m in ladder[:-1]]
    pairs += [(a, b) for a, b in itertools.pairwise(ladder[:-1])]
    out = []
    for small, large in pairs:
        keys = sorted(set(scores.get(small, {})) & set(scores.get(large, {})))
        if len(keys) < 3:
            continue
        xs = [scores[small][k] for k in keys]
        ys = [scores[large][k] for k in keys]
        out.append({"small": small, "large": large, "n_configs": len(keys),
                    "spearman": float(stats.spearmanr(xs, ys).statistic),
                    "kendall": float(stats.kendalltau(xs, ys).statistic)})
    return out


def fmt(v: Any, digits: int = 3) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "n/a"
        return f"{v:.{digits}f}"
    return str(v)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def plot_traces(traces: Mapping[str, list[list[tuple[float, float]]]], budget: float, path: str,
                ylabel: str) -> None:
    """Best-so-far target score against wall-clock seconds: the mean over seeds of each
    method's step function, on a common time grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0.0, budget * 1.1, 200)
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, per_seed in sorted(traces.items()):
        curves = []
        for trace in per_seed:
            if not trace:
                continue
            t = np.array([p[0] for p in trace])
            v = np.array([p[1] for p in trace])
            idx = np.searchsorted(t, grid, side="right") - 1
            curves.append(np.where(idx >= 0, v[np.clip(idx, 0, None)], np.nan))
        if not curves:
            continue
        arr = np.array(curves)
        mean = np.full(len(grid), np.nan)
        seen = ~np.all(np.isnan(arr), axis=0)
        mean[seen] = np.nanmean(arr[:, seen], axis=0)
        ax.plot(grid, mean, label=name,
                linestyle="--" if name.startswith("jfhpo_") else "-")
    ax.set_xlabel("wall-clock seconds since the study started (2 workers)")
    ax.set_ylabel(ylabel)
    ax.set_title("best-so-far target score (mean over HPO seeds)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
