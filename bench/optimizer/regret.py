"""Target-fidelity regret against spent cost: JF-HPO vs random search vs Hyperband.

    .venv/bin/python bench/optimizer/regret.py --seeds 10 --bias 0.5 0.0 \
        [--budget-runs 10] [--out bench/optimizer/results]

Problem: the synthetic backend's analytic learning curves (``SyntheticProblem``) on a three-rung
ladder 1m -> 30m -> 1b (cost hints 1, 4, 16 per step), steps 10/30/90, a 4-parameter GRPO space
(learning rate, KL coefficient beta, clip epsilon, group size). ``bias`` is the proxy bias: decades
the best learning rate moves down per decade of parameters (0.5: the proxy's best learning rate is
1.5 decades off on the target; 0: proxies rank like the target). Evaluations carry noise (sd 0.02).

Each method gets the same budget of simulated seconds (``--budget-runs`` full-budget target runs).
At every tenth of the budget, the method's recommendation (its ``confirm(view, 1)``) is scored by
its noise-free target score at the full budget; regret = best possible target score minus that.
Methods:
  random      random search, each trial on the target at the full budget (the paper's baseline)
  hyperband   Hyperband over steps on the target (promotions resume checkpoints)
  jfhpo-paper JF-HPO as the paper describes it: fixed proxy 1m, EI/cost at the candidate fidelity
  jfhpo       JF-HPO default: ladder policy, transfer audit, target-valued augmented EI per cost
  jfhpo-ladder-ei  (not run by default) ladder policy with the paper's EI/cost acquisition
JF-HPO variants use lighter GP settings (``FAST``) and every method stops after
``--max-suggestions`` decisions (regret at later budget fractions is then the final one).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problem import LADDER, SEGMENT_OVERHEAD, STEPS, Loop, target_optimum, true_target

from jfhpo.backends.synthetic import SyntheticProblem
from jfhpo.optimizers.base import Optimizer, get_optimizer

#: lighter GP settings than the defaults, so that 10 seeds run in minutes on a shared laptop core
FAST = {"n_candidates": 128, "fit_maxiter": 30, "max_points": 200}
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("random", {}),
    "hyperband": ("hyperband", {}),
    "jfhpo-paper": ("jfhpo", {**FAST, "policy": "fixed_proxy", "acquisition": "ei"}),
    "jfhpo-ladder-ei": ("jfhpo", {**FAST, "acquisition": "ei"}),
    "jfhpo": ("jfhpo", FAST),
}
DEFAULT_METHODS = ["random", "hyperband", "jfhpo-paper", "jfhpo"]
FRACTIONS = [round(0.1 * i, 1) for i in range(1, 11)]


def run_one(
    method: str, seed: int, bias: float, budget_runs: float, max_suggestions: int
) -> list[dict[str, Any]]:
    name, options = METHODS[method]
    opt: Optimizer = get_optimizer(name)(options)
    problem = SyntheticProblem(bias=bias)
    full = problem.cost(LADDER.target.cost, STEPS.max_steps) + SEGMENT_OVERHEAD
    loop = Loop(opt, problem, seed, budget_runs * full)
    best = target_optimum(problem)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    pending = list(FRACTIONS)
    while pending:
        more = loop.n < max_suggestions and loop.step()
        while pending and (loop.spent >= pending[0] * loop.budget or not more):
            frac = pending.pop(0)
            view = loop.view()
            rec = opt.confirm(view, 1)
            regret = best - true_target(problem, rec[0]) if rec else float("nan")
            rows.append({
                "method": method, "bias": bias, "seed": seed, "fraction": frac,
                "spent": round(loop.spent, 2), "regret": round(regret, 5),
                "suggestions": loop.n,
                "target_runs": sum(1 for r in loop.runs if r.model == LADDER.target.name),
                "seconds": round(time.perf_counter() - t0, 2),
            })
    return rows


def summarize(rows: list[dict[str, Any]], out: Path, command: str) -> None:
    """Write the CSV, a markdown table (mean and sd of regret over seeds) and a plot."""
    with open(out / "regret.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    biases = sorted({r["bias"] for r in rows}, reverse=True)
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    lines = ["# Target regret vs spent budget", "", f"Command: `{command}`", ""]
    for bias in biases:
        seeds = sorted({r["seed"] for r in rows if r["bias"] == bias})
        lines += [
            f"## proxy bias {bias} ({len(seeds)} seeds): mean regret (sd) at each budget fraction",
            "",
            "| method | " + " | ".join(f"{f:.1f}" for f in FRACTIONS) + " | suggestions | target runs |",
            "|---|" + "---|" * (len(FRACTIONS) + 2),
        ]
        for m in methods:
            cells = []
            for frac in FRACTIONS:
                v = np.array([r["regret"] for r in rows
                              if (r["method"], r["bias"], r["fraction"]) == (m, bias, frac)])
                cells.append(f"{v.mean():.3f} ({v.std(ddof=1) if len(v) > 1 else 0:.3f})")
            last = [r for r in rows if (r["method"], r["bias"], r["fraction"]) == (m, bias, 1.0)]
            n_sug = np.mean([r["suggestions"] for r in last])
            n_tgt = np.mean([r["target_runs"] for r in last])
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {n_sug:.0f} | {n_tgt:.1f} |")
        lines.append("")
    (out / "regret.md").write_text("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    fig, axes = plt.subplots(1, len(biases), figsize=(5.5 * len(biases), 4), squeeze=False)
    for ax, bias in zip(axes[0], biases):
        for m in methods:
            mean = [np.mean([r["regret"] for r in rows
                             if (r["method"], r["bias"], r["fraction"]) == (m, bias, f)])
                    for f in FRACTIONS]
            ax.plot(FRACTIONS, mean, marker="o", label=m)
        ax.set_title(f"proxy bias {bias}")
        ax.set_xlabel("fraction of budget spent")
        ax.set_ylabel("target regret (mean over seeds)")
        ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "regret.png", dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--bias", type=float, nargs="+", default=[0.5, 0.0])
    ap.add_argument("--budget-runs", type=float, default=10.0)
    ap.add_argument("--max-suggestions", type=int, default=100)
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=list(METHODS))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for bias in args.bias:
        for seed in range(args.seeds):
            for method in args.methods:
                got = run_one(method, seed, bias, args.budget_runs, args.max_suggestions)
                last = got[-1]
                print(f"bias={bias} seed={seed} {method:12s} regret={last['regret']:.4f} "
                      f"suggestions={last['suggestions']} {last['seconds']}s", flush=True)
                rows += got
    args.out.mkdir(parents=True, exist_ok=True)
    summarize(rows, args.out, "python bench/optimizer/regret.py " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
