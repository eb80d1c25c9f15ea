"""Tight-budget regret through the public ``AskTell`` API, on two-fidelity problems (size x steps).

    python bench/optimizer/asktell.py --seeds 20 --budgets 3 5 [--problems syn-b0 syn-b05] \
        [--methods random hyperband bohb jfhpo] [--jobs 2] [--out bench/optimizer/results/asktell]

Every method is driven as a new user would drive it: ``AskTell(...)``, then ``ask`` / run the
trial / ``tell`` until ``ask`` returns None, then ``best()`` is the answer (the engine's rule: the
best run at the largest fidelity reached, so a full-budget target run beats any proxy score).
Regret = the best noise-free target score at the full step budget minus the answer's noise-free
target score. The budget is counted in full target runs (``--budgets``), so "3" means the compute
of three full-budget runs on the target.

Problems (``PROBLEMS``): the synthetic backend's analytic GRPO learning curves (``SyntheticProblem``:
rise and saturate, divergence past a learning rate that shrinks with size) on a ladder of three
sizes whose per-step costs grow like the tiny workload's (1, 3, 10), plus 5 simulated seconds per
segment; steps 10/30/90, an evaluation every 10 steps, noise sd 0.02.

  syn-b0    proxies rank like the target (bias 0)
  syn-b05   the best learning rate moves down 0.5 decades per decade of parameters (1 decade
            from the smallest proxy to the target)
  syn-b1-4  a 4-rung ladder (1m..1b, costs 1/2/5/10) where it moves 1 decade per decade (3
            decades proxy -> target) and the proxy's optimum diverges on the target

Outputs ``asktell.csv`` (one row per method x problem x budget x seed) and ``asktell.md``
(mean, median and worst-seed regret, target runs, and a paired Wilcoxon test of jfhpo against each
peer). Reusable by the suite: ``run_one(problem, method, budget_runs, seed)`` returns one row.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.stats import wilcoxon

from jfhpo.api import AskTell
from jfhpo.backends.synthetic import SyntheticProblem

SPACE_SPEC: dict[str, dict[str, Any]] = {
    "learning_rate": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    "beta": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "epsilon": {"type": "float", "low": 0.1, "high": 0.4},
    "num_generations": {"type": "categorical", "choices": [4, 8, 16]},
}
STEPS = {"min": 10, "max": 90, "eta": 3}
EVAL_EVERY = 10
OVERHEAD = 5.0  # simulated seconds per segment (process start, model load, final evaluation)


@dataclass(frozen=True)
class Problem:
    """A two-fidelity problem: a ``SyntheticProblem`` over a ladder of (name, params, cost)."""

    name: str
    bias: float
    models: tuple[tuple[str, float, float], ...]
    lr_opt_at_1m: float = -3.5

    def fn(self) -> SyntheticProblem:
        return SyntheticProblem(bias=self.bias, lr_opt_at_1m=self.lr_opt_at_1m)

    @property
    def target(self) -> tuple[str, float, float]:
        return self.models[-1]

    def full_cost(self) -> float:
        return self.fn().cost(self.target[2], STEPS["max"]) + OVERHEAD


PROBLEMS = {
    "syn-b0": Problem("syn-b0", 0.0, (("1m", 1e6, 1.0), ("10m", 1e7, 3.0), ("100m", 1e8, 10.0))),
    "syn-b05": Problem("syn-b05", 0.5, (("1m", 1e6, 1.0), ("10m", 1e7, 3.0), ("100m", 1e8, 10.0))),
    "syn-b1-4": Problem(
        "syn-b1-4", 1.0,
        (("1m", 1e6, 1.0), ("10m", 1e7, 2.0), ("100m", 1e8, 5.0), ("1b", 1e9, 10.0)),
        lr_opt_at_1m=-2.5,
    ),
}

#: stands for the problem's target model in a method's options
TARGET = "<target>"

#: method -> (optimizer name, options); JF-HPO runs with its defaults
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("random", {}),
    "hyperband": ("hyperband", {}),
    "bohb": ("bohb", {}),
    "jfhpo": ("jfhpo", {}),
    "jfhpo-paper": ("jfhpo", {"policy": "fixed_proxy", "acquisition": "ei"}),
    # the target as its own proxy: no proxy search, the GP and successive halving on the target
    "jfhpo-target-only": ("jfhpo", {"proxy": TARGET}),
    # the three options tried on this branch (off by default: they did not win here)
    "jfhpo-all-on": ("jfhpo", {"drift": True, "finish": True, "long_target_starts": "seen"}),
    "jfhpo-nofinish": ("jfhpo", {"drift": True, "long_target_starts": "seen"}),
}


def target_optimum(p: Problem) -> float:
    """The best noise-free target score at the full budget (grid over the categorical)."""
    fn, params = p.fn(), p.target[1]
    lo = [math.log10(1e-6), math.log10(1e-4), 0.1]
    hi = [math.log10(1e-2), math.log10(1e-1), 0.4]
    best = -math.inf
    rng = np.random.default_rng(0)
    for g in (4, 8, 16):
        def neg(x: np.ndarray, g: int = g) -> float:
            cfg = {"learning_rate": 10 ** x[0], "beta": 10 ** x[1], "epsilon": x[2],
                   "num_generations": g}
            return -fn.true_score(cfg, params, STEPS["max"])

        starts = lo + rng.random((64, 3)) * (np.array(hi) - lo)
        vals = [neg(x) for x in starts]
        for x0 in starts[np.argsort(vals)[:4]]:
            res = minimize(neg, x0, bounds=list(zip(lo, hi)), method="L-BFGS-B")
            best = max(best, -float(res.fun))
    return best


def true_target(p: Problem, config: Mapping[str, Any]) -> float:
    return p.fn().true_score(config, p.target[1], STEPS["max"])


def run_one(problem: str, method: str, budget_runs: float, seed: int,
            on_tell: Callable[[Any, list[tuple[int, float]]], None] | None = None,
            ) -> dict[str, Any]:
    """Drive ``method`` on ``problem`` through AskTell with ``budget_runs`` full target runs
    (``on_tell(trial, curve)``: called with every trial told, for scripts that look inside)."""
    p = PROBLEMS[problem]
    fn = p.fn()
    name, options = METHODS[method]
    options = {k: p.target[0] if v == TARGET else v for k, v in options.items()}
    models = [{"name": n, "params": params, "cost": c} for n, params, c in p.models]
    at = AskTell(SPACE_SPEC, models, STEPS, optimizer=name, optimizer_options=options, seed=seed,
                 budget=budget_runs * p.full_cost())
    info = {n: (params, c) for n, params, c in p.models}
    t0 = time.perf_counter()
    n_trials = target_trials = 0
    try:
        while (trial := at.ask()) is not None:
            params, hint = info[trial.model]
            steps = [*range(trial.start_step + EVAL_EVERY, trial.steps, EVAL_EVERY), trial.steps]
            steps = [s for s in steps if s > trial.start_step]
            rs = seed * 100_003 + trial.run_id
            curve = [(s, fn.eval_score(trial.config, params, s, rs)) for s in steps]
            cost = fn.cost(hint, trial.steps - trial.start_step) + OVERHEAD
            at.tell(trial, curve[-1][1], cost, curve)
            if on_tell is not None:
                on_tell(trial, curve)
            n_trials += 1
            target_trials += trial.model == p.target[0]
        best = at.best()
    finally:
        at.close()
    answer = best["config"] if best else None
    regret = target_optimum(p) - true_target(p, answer) if answer else float("nan")
    return result_row((problem, method, budget_runs, seed), regret, n_trials, target_trials, best,
                      t0)


def result_row(job: tuple[str, str, float, int], regret: float, n_trials: int,
               target_trials: int, best: Mapping[str, Any] | None, t0: float) -> dict[str, Any]:
    """One row of an ask/tell table: the (problem, method, budget, seed) ``job``, the answer's
    regret, the trials told (all and on the target), where the answer ``best`` was measured, and
    the seconds since ``t0``."""
    problem, method, budget_runs, seed = job
    return {"problem": problem, "method": method, "budget": budget_runs, "seed": seed,
            "regret": round(regret, 5), "trials": n_trials, "target_trials": target_trials,
            "answer_model": best["model"] if best else "", "answer_steps": best["steps"] if best else 0,
            "seconds": round(time.perf_counter() - t0, 2)}


def _job(args: tuple[str, str, float, int]) -> dict[str, Any]:
    return run_one(*args)


def run_jobs(job: Callable[[tuple[str, str, float, int]], dict[str, Any]],
             jobs: list[tuple[str, str, float, int]], workers: int, csv_path: Path,
             ) -> list[dict[str, Any]]:
    """Run ``job`` on every (problem, method, budget, seed) in ``workers`` processes, print a
    line per row as it comes, and write the rows to ``csv_path``."""
    rows: list[dict[str, Any]] = []
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=max(workers, 1)) as pool:
        for row in pool.map(job, jobs):
            print(f"{row['problem']} b={row['budget']:g} seed={row['seed']} {row['method']:10s} "
                  f"regret={row['regret']:.4f} target_trials={row['target_trials']} "
                  f"{row['seconds']}s", flush=True)
            rows.append(row)
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


def summarize(rows: list[dict[str, Any]], command: str,
              title: str = "Ask/tell regret at tight budgets") -> str:
    lines = [f"# {title}", "", f"Command: `{command}`", "",
             "Regret = best target score - the answer's (noise-free, target, full steps); "
             "budget in full target runs. p: paired Wilcoxon (jfhpo vs method, two-sided).", ""]
    keys = sorted({(r["problem"], r["budget"]) for r in rows})
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    for prob, b in keys:
        lines += [f"## {prob}, budget {b:g}", "",
                  "| method | seeds | mean | median | worst | target trials | trials | p vs jfhpo |",
                  "|---|---|---|---|---|---|---|---|"]
        by = {m: {r["seed"]: r for r in rows if (r["problem"], r["budget"], r["method"]) ==
                  (prob, b, m)} for m in methods}
        for m in methods:
            rs = by[m]
            if not rs:
                continue
            v = np.array([r["regret"] for r in rs.values()])
            pv = ""
            if m != "jfhpo" and by.get("jfhpo"):
                common = sorted(set(rs) & set(by["jfhpo"]))
                a = np.array([by["jfhpo"][s]["regret"] for s in common])
                c = np.array([rs[s]["regret"] for s in common])
                if len(common) >= 5 and np.any(a != c):
                    pv = f"{wilcoxon(a, c).pvalue:.3g}"
            lines.append(
                f"| {m} | {len(v)} | {v.mean():.4f} | {np.median(v):.4f} | {v.max():.4f} | "
                f"{np.mean([r['target_trials'] for r in rs.values()]):.1f} | "
                f"{np.mean([r['trials'] for r in rs.values()]):.1f} | {pv} |")
        lines.append("")
    return "\n".join(lines)


def table_main(argv: list[str] | None, *, doc: str | None, script: str, name: str, title: str,
               problems: Sequence[str], methods: Sequence[str], seeds: int,
               budgets: Sequence[float], job: Callable[[tuple[str, str, float, int]], dict[str, Any]],
               ) -> int:
    """The command line of an ask/tell table script (``asktell_suite.py``, ``asktell_toys.py``):
    every (problem, budget, seed, method) run by ``job``, written to ``NAME.csv`` and summarized
    under ``title`` in ``NAME.md`` in ``--out`` (default ``results/NAME``)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, default=seeds)
    ap.add_argument("--budgets", type=float, nargs="+", default=list(budgets))
    ap.add_argument("--problems", nargs="+", default=list(problems), choices=list(problems))
    ap.add_argument("--methods", nargs="+", default=list(methods), choices=list(methods))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / name)
    args = ap.parse_args(argv)
    jobs = [(p, m, b, s) for p in args.problems for b in args.budgets
            for s in range(args.seeds) for m in args.methods]
    rows = run_jobs(job, jobs, args.jobs, args.out / f"{name}.csv")
    cmd = f"python bench/optimizer/{script} " + " ".join(argv if argv is not None else sys.argv[1:])
    text = summarize(rows, cmd, title=title)
    (args.out / f"{name}.md").write_text(text)
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--budgets", type=float, nargs="+", default=[3.0, 5.0])
    ap.add_argument("--problems", nargs="+", default=["syn-b0", "syn-b05"], choices=list(PROBLEMS))
    ap.add_argument("--methods", nargs="+", default=["random", "hyperband", "bohb", "jfhpo"],
                    choices=list(METHODS))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "asktell")
    ap.add_argument("--merge", nargs="+", default=None, metavar="CSV[:NAME]",
                    help="only summarize these CSVs (a :NAME renames their jfhpo rows)")
    args = ap.parse_args(argv)
    if args.merge:
        merged: list[dict[str, Any]] = []
        for item in args.merge:
            path, _, rename = item.partition(":")
            with open(path, newline="") as f:
                read = list(csv.DictReader(f))
            for r in read:
                r = {**r, "budget": float(r["budget"]), "seed": int(r["seed"]),
                     "regret": float(r["regret"]), "trials": int(r["trials"]),
                     "target_trials": int(r["target_trials"])}
                if rename and r["method"] == "jfhpo":
                    r["method"] = rename
                merged.append(r)
        args.out.mkdir(parents=True, exist_ok=True)
        cmd = "python bench/optimizer/asktell.py " + " ".join(
            argv if argv is not None else sys.argv[1:])
        (args.out / "asktell.md").write_text(summarize(merged, cmd))
        print(summarize(merged, cmd))
        return 0
    jobs = [(p, m, b, s) for p in args.problems for b in args.budgets
            for s in range(args.first_seed, args.first_seed + args.seeds) for m in args.methods]
    rows = run_jobs(_job, jobs, args.jobs, args.out / "asktell.csv")
    cmd = "python bench/optimizer/asktell.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "asktell.md").write_text(summarize(rows, cmd))
    print(summarize(rows, cmd))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
