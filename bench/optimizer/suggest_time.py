"""Time one JF-HPO suggestion at 50, 200, 500 and 1000 observations (curve points).

    .venv/bin/python bench/optimizer/suggest_time.py [--repeats 7] [--points 50 200 500 1000]
        [--out bench/optimizer/results]

Views are built from random runs of the benchmark problem on every rung of the ladder, each run
reporting an evaluation every 10 steps, until the study holds the requested number of curve
points. The optimizer runs with its default options (256 candidates, 60 L-BFGS iterations, at most
300 training points); each repeat is a fresh decision (another ``n_suggestions``, so another RNG).
"""

from __future__ import annotations

import argparse
import csv
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problem import LADDER, SPACE, STEPS, Loop

from jfhpo.backends.synthetic import SyntheticProblem
from jfhpo.optimizers.jfhpo import JFHPOOptimizer
from jfhpo.optimizers.random import RandomSearch
from jfhpo.records import Start


def study_with(n_points: int, seed: int = 0) -> Loop:
    """A study whose runs hold about ``n_points`` curve points in all."""
    rng = np.random.default_rng(seed)
    loop = Loop(RandomSearch(), SyntheticProblem(), seed, float("inf"))
    total = 0
    while total < n_points:
        model = LADDER.names[int(rng.integers(0, 3))]
        steps = int(rng.choice(STEPS.rungs()))
        steps = min(steps, max((n_points - total) * 10, 10))
        sug = Start(SPACE.sample(rng), model, steps)
        loop.optimizer.suggest = lambda _v, s=sug: s  # type: ignore[method-assign]
        loop.step()
        total += len(loop.runs[-1].curve)
    return loop


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--points", type=int, nargs="+", default=[50, 200, 500, 1000])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    rows = []
    # audit off: an audit decision skips the GP; this times the GP path, the slow one
    opt = JFHPOOptimizer({"audit": False})
    opt.suggest(study_with(50).view())  # warm-up: imports and first-call allocations
    for n_points in args.points:
        loop = study_with(n_points)
        base = loop.view()
        n_obs = sum(len(r.curve) for r in base.runs)
        times, cpu = [], []
        for rep in range(args.repeats):
            view = type(base)(**{**base.__dict__, "n_suggestions": 1000 + rep})
            t0, c0 = time.perf_counter(), time.process_time()
            opt.suggest(view)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        row = {
            "observations": n_obs,
            "runs": len(base.runs),
            "median_s": round(statistics.median(times), 3),
            "max_s": round(max(times), 3),
            "median_cpu_s": round(statistics.median(cpu), 3),
            "repeats": args.repeats,
        }
        print(row, flush=True)
        rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "suggest_time.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [
        "# JF-HPO suggestion time",
        "",
        "Command: `.venv/bin/python bench/optimizer/suggest_time.py`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        "torch on 1 thread (the optimizer pins it), CPU shared with other jobs.",
        "",
        "Wall-clock seconds per decision, and the process CPU seconds (what one free core needs).",
        "",
        "| observations (curve points) | runs | median s | max s | median CPU s | repeats |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['observations']} | {r['runs']} | {r['median_s']} | {r['max_s']} "
        f"| {r['median_cpu_s']} | {r['repeats']} |"
        for r in rows
    ]
    (args.out / "suggest_time.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
