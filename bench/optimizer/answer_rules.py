"""How much of an ask/tell answer's regret is the answer rule, not the search.

    python bench/optimizer/answer_rules.py --problem syn-b05 --budget 16 --seeds 5 \
        [--methods hyperband jfhpo]

For each study of ``asktell.py``'s ``problem`` (driven by ``asktell.run_one``), the regret of
four picks among the full-budget target runs the method trained: the engine's answer
(``best()``: the run whose last evaluations average highest, ``RunRecord.end_score``), the run
with the highest final measured score (the engine's rule before e894fd9), the best
confirmation run unless a search run beats it by more than two evaluation-noise standard
deviations (``confirm_margin``; the noise estimated from the runs' last evaluations), and the
best by its true (noise-free) score, an oracle's pick that bounds what any answer rule could
do with those runs. Prints one line per study and the
means per method.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asktell

from jfhpo.optimizers.jfhpo import eval_noise_sd


def picks(problem: str, method: str, budget_runs: float, seed: int) -> dict[str, float]:
    """Regret of the engine's answer, of the highest final score, of the confirmation kept
    unless beaten beyond the noise, and of the oracle's pick, over the full-budget target runs
    of one study."""
    p = asktell.PROBLEMS[problem]
    top, full = asktell.target_optimum(p), asktell.STEPS["max"]
    # (last score, true score, confirmation?, last three)
    runs: list[tuple[float, float, bool, list[float]]] = []

    def keep(trial: Any, curve: list[tuple[int, float]]) -> None:
        if trial.model == p.target[0] and trial.steps == full:
            runs.append((curve[-1][1], asktell.true_target(p, trial.config),
                         str(getattr(trial.phase, "value", trial.phase)) == "confirm",
                         [v for _, v in curve[-3:]]))

    row = asktell.run_one(problem, method, budget_runs, seed, on_tell=keep)
    nan = float("nan")
    if not runs:
        return {"engine": float(row["regret"]), "final": nan, "confirm_margin": nan,
                "oracle": nan}
    final = max(runs, key=lambda r: r[0])
    pick = final
    confirmed = [r for r in runs if r[2]]
    if confirmed:
        first = max(confirmed, key=lambda r: r[0])
        margin = 2.0 * eval_noise_sd(r[3] for r in runs)
        pick = pick if pick[0] > first[0] + margin else first
    return {"engine": float(row["regret"]),
            "final": top - final[1],
            "confirm_margin": top - pick[1],
            "oracle": top - max(r[1] for r in runs)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--problem", default="syn-b05", choices=list(asktell.PROBLEMS))
    ap.add_argument("--methods", nargs="+", default=["hyperband", "jfhpo"],
                    choices=list(asktell.METHODS))
    ap.add_argument("--budget", type=float, default=16.0)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args(argv)
    for method in args.methods:
        rows = []
        for seed in range(args.seeds):
            r = picks(args.problem, method, args.budget, seed)
            rows.append(r)
            print(f"{args.problem} {method} seed={seed} " +
                  " ".join(f"{k}={v:.4f}" for k, v in r.items()), flush=True)
        print(f"{args.problem} {method} mean over {args.seeds} seeds: " +
              " ".join(f"{k}={np.nanmean([r[k] for r in rows]):.4f}" for k in rows[0]),
              flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
