"""Prediction error of the cost model for starts and extensions, before and after #17.

A trace of segments is made by an ask/tell study of the ``jfhpo`` optimizer on the synthetic
backend's curves (``SyntheticProblem``; the example study's ladder 50k/200k/1m/4m, steps 10..90),
with each segment's cost = a fixed cost of its kind (a start: process start and model load; an
extension: loading the run's checkpoint) + the synthetic backend's per-step cost, times 5 %
log-normal noise. Then, for every segment k of the trace from the 4th on, each cost model is
fitted on segments 1..k-1 and predicts segment k (a start from step 0, or an extension of the new
steps). Reported: the mean and median absolute relative error, for starts and for extensions.

"before": main's model (``jfhpo.optimizers.surrogate.CostModel``: one overhead shared by every
segment, extensions priced as that overhead + their steps), run from main's sources in a
subprocess (``git archive main src``). "after": ``jfhpo.cost.CostModel`` of this branch (a fixed
cost per kind; an extension is priced with ``between``).

    PYTHONPATH=src python bench/cost_model/measure.py --out bench/cost_model/results.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

from jfhpo.api import AskTell
from jfhpo.backends.synthetic import SyntheticProblem, example_space
from jfhpo.cost import CostModel, SegmentCost
from jfhpo.fidelity import ModelLadder, ModelRung

MODELS = [{"name": "50k", "params": 5e4, "cost": 1.0}, {"name": "200k", "params": 2e5, "cost": 1.6},
          {"name": "1m", "params": 1e6, "cost": 3.5}, {"name": "4m", "params": 4e6, "cost": 10.0}]
OPTIONS = {"n_init": 5, "n_candidates": 48, "fit_maxiter": 20}
#: (name, start fixed cost, extension fixed cost) in seconds
SCENARIOS = [("synthetic backend as is (no fixed cost)", 0.0, 0.0),
             ("+ fixed costs: start 3 s, extension 0.3 s", 3.0, 0.3)]
Row = tuple[str, int, int, float]  # model, start step, end step, cost


def trace(seed: int, start_fixed: float, ext_fixed: float, budget: float) -> list[Row]:
    """The segments of one ask/tell study, in order, with their costs."""
    problem = SyntheticProblem()
    hints = {m["name"]: (m["params"], m["cost"]) for m in MODELS}
    rng = np.random.default_rng([seed, 99])
    at = AskTell(example_space(), MODELS, {"min": 10, "max": 90}, optimizer="jfhpo",
                 optimizer_options=OPTIONS, seed=seed, budget=budget,
                 confirm={"top_k": 1})
    out: list[Row] = []
    while (t := at.ask()) is not None:
        params, hint = hints[t.model]
        fixed = start_fixed if t.start_step == 0 else ext_fixed
        cost = (fixed + problem.cost(hint, t.steps - t.start_step)) * math.exp(
            0.05 * rng.normal())
        score = problem.eval_score(t.config, params, t.steps, t.seed)
        curve = [(s, problem.eval_score(t.config, params, s, t.seed))
                 for s in range(t.start_step + 10, t.steps, 10)]
        at.tell(t, score, cost, curve)
        out.append((t.model, t.start_step, t.steps, cost))
    at.close()
    return out


def predict_new(rows: list[Row]) -> list[float | None]:
    ladder = ModelLadder([ModelRung(m["name"], m["params"], m["cost"]) for m in MODELS])
    preds: list[float | None] = [None] * 3
    for k in range(3, len(rows)):
        cm = CostModel(ladder, [SegmentCost(m, e - s, c, s == 0) for m, s, e, c in rows[:k]])
        m, s, e, _ = rows[k]
        preds.append(cm.between(m, s, e))
    return preds


OLD = """
import json, sys
from jfhpo.fidelity import ModelLadder, ModelRung
from jfhpo.optimizers.surrogate import CostModel
models, rows = json.load(sys.stdin)
ladder = ModelLadder([ModelRung(m["name"], m["params"], m["cost"]) for m in models])
preds = [None] * 3
for k in range(3, len(rows)):
    cm = CostModel(ladder, [(m, e - s, c) for m, s, e, c in rows[:k]])
    m, s, e, _ = rows[k]
    preds.append(cm.segment(m, e - s))
print(json.dumps(preds))
"""


def main_sources(ref: str) -> str:
    """main's ``src`` in a temporary folder (``git archive``)."""
    root = Path(__file__).resolve().parents[2]
    blob = subprocess.run(["git", "archive", ref, "src"], cwd=root, check=True,
                          capture_output=True).stdout
    folder = tempfile.mkdtemp(prefix="jfhpo-main-src-")
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(folder, filter="data")
    return os.path.join(folder, "src")


def predict_old(rows: list[Row], src: str) -> list[float | None]:
    env = {**os.environ, "PYTHONPATH": src}
    r = subprocess.run([sys.executable, "-c", OLD], input=json.dumps([MODELS, rows]), env=env,
                       capture_output=True, text=True, check=True)
    return list(json.loads(r.stdout))


def errors(rows: list[Row], preds: list[float | None], start: bool) -> list[float]:
    return [abs(p - c) / c for (m, s, e, c), p in zip(rows, preds)
            if p is not None and (s == 0) == start]


def fmt(errs: list[float]) -> str:
    if not errs:
        return "n/a"
    return f"{100 * statistics.mean(errs):.1f} % / {100 * statistics.median(errs):.1f} %"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=600.0)
    ap.add_argument("--main", default="main", help="git ref of the 'before' sources")
    ap.add_argument("--out", help="write the markdown table here too")
    args = ap.parse_args()
    src = main_sources(args.main)
    lines = [f"Cost-model prediction error, {args.seeds} seeds, budget {args.budget:g} "
             "(mean / median absolute relative error of the next segment's cost)", "",
             "| costs | segments (starts / extensions) | starts: before | starts: after "
             "| extensions: before | extensions: after |", "|---|---|---|---|---|---|"]
    raw: dict[str, Any] = {}
    for name, sf, ef in SCENARIOS:
        acc: dict[str, list[float]] = {"sb": [], "sa": [], "eb": [], "ea": []}
        n_s = n_e = 0
        for seed in range(args.seeds):
            rows = trace(seed, sf, ef, args.budget)
            old, new = predict_old(rows, src), predict_new(rows)
            acc["sb"] += errors(rows, old, True)
            acc["sa"] += errors(rows, new, True)
            acc["eb"] += errors(rows, old, False)
            acc["ea"] += errors(rows, new, False)
            n_s += sum(1 for r in rows[3:] if r[1] == 0)
            n_e += sum(1 for r in rows[3:] if r[1] > 0)
            raw[f"{name} seed {seed}"] = {"rows": rows, "before": old, "after": new}
        lines.append(f"| {name} | {n_s} / {n_e} | {fmt(acc['sb'])} | {fmt(acc['sa'])} "
                     f"| {fmt(acc['eb'])} | {fmt(acc['ea'])} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
        Path(args.out).with_suffix(".json").write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
