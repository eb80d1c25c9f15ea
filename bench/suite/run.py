"""The benchmark suite: every method on every problem at budgets of 1.5, 3, 5 and 10 target runs.

    .venv/bin/python bench/suite/run.py            # the committed run (bench/results/suite/)

Problems (``problems.py``): replay-tiny (recorded real GRPO curves), the synthetic problem in 4
dimensions with a proxy bias of 0 and 0.5, and BoTorch's multi-fidelity Rosenbrock and Hartmann
functions with model size and steps as fidelities.

Methods: every optimizer of jfhpo as ``bench/compare/methods.py`` lists them (jfhpo and its four
ablations, random, hyperband, bohb, and the peers optuna_tpe_hyperband, optuna_asha, smac_mf, dehb
through the ask/tell adapters), ``recipe`` (the recipe trained once on the target) and ``manual``
(three learning rates around the recipe's, x1, /3 and x3, each trained once on the target in that
order, as many as the budget buys; the answer is the best of them as ``Study.best`` ranks runs, by
the mean of the last evaluations). The test functions have no learning rate: ``manual`` is not
run there and ``recipe`` is the centre of the box.

Budgets are in full target runs (the mean cost of one full-budget target run of the problem) and
count everything: a method's answer at budget B is its recommendation (``confirm(view, 1)``) after
the latest decision whose search spend plus one confirmation run on the target (none when the
recommendation already has a full target run) fits in B. A study is told its budget: methods whose
decisions read it (``BUDGET_AWARE``: jfhpo and its ablations) run one trajectory per budget; the
others, whose decisions never read it, run one trajectory to the largest budget, read at every
budget (the same answers a trajectory per budget would give). Regret = best truth of the problem
minus the truth of the answer (replay: mean over recorded training seeds on the target at the full
budget; best over the recorded configurations).

Efficiency: the compute a method needs until its answer reaches 95% of the way from the problem's
worst to its best truth (for replay-tiny, whose worst is 0 accuracy, 95% of the best recorded
target score), divided by random search's; median over seeds, a seed that never reaches it counts
as infinite. It reads every method's trajectory of the largest budget as it goes.

Writes ``runs.csv`` (one row per problem, method, seed, budget), ``summary.csv``, ``ranks.csv``,
``efficiency.csv``, ``report.md`` and ``regret.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "bench" / "compare"))

from loop import Point, Trajectory, full_run_end_score, trajectory  # noqa: E402
from problems import PROBLEMS, Problem, make_problem  # noqa: E402

BUDGETS = (1.5, 3.0, 5.0, 10.0)
#: budgets (full target runs) at which the efficiency figure looks for the 95% level
GRID = tuple(sorted({*BUDGETS, *(float(b) for b in range(1, 11))}))
#: lighter GP settings for jfhpo and its ablations (bench/optimizer/regret.py's, with fewer fit
#: iterations and points), so that the suite fits in 20 minutes on 2 cores; the decision logic is
#: the default one
FAST = {"n_candidates": 96, "fit_maxiter": 12, "max_points": 100}
SPECIAL = ("recipe", "manual")
#: optimizers whose decisions read the study's budget (``StudyView.budget_total``): each budget
#: is its own study, told that budget, as a user runs one. The others never read it, so one
#: trajectory to the largest budget, read at each, is the study of every budget
BUDGET_AWARE = ("jfhpo",)


def method_table(target: str) -> dict[str, dict[str, Any]]:
    """name -> {optimizer, options, stopping, reuse} for every method of the suite."""
    from methods import methods  # bench/compare/methods.py

    out: dict[str, dict[str, Any]] = {}
    for name, m in methods(target).items():
        if m.optimizer is None:
            out[name] = {"optimizer": None}
            continue
        opts = dict(m.options)
        if m.optimizer == "jfhpo":
            opts = {**FAST, **opts}
        out[name] = {"optimizer": m.optimizer, "options": opts, "stopping": m.stopping,
                     "reuse": m.reuse}
    out["manual"] = {"optimizer": None}
    return out


_PROBLEMS: dict[str, Problem] = {}


def get_problem(name: str, recording: str | None) -> Problem:
    if name not in _PROBLEMS:
        _PROBLEMS[name] = make_problem(name, recording)
    return _PROBLEMS[name]


def manual_points(p: Problem) -> list[Point]:
    """The practitioner's three learning rates, each trained once on the target, in order, the
    best so far (by the same rule as every method's answer) after each."""
    if "learning_rate" not in p.space.names:
        return []
    lr_param = p.space.params[p.space.names.index("learning_rate")]
    points, spent, best = [Point(0.0, None, False)], 0.0, (-math.inf, None)
    for i, factor in enumerate((1.0, 1.0 / 3.0, 3.0)):
        lr = min(max(float(p.recipe["learning_rate"]) * factor, lr_param.low), lr_param.high)  # type: ignore[union-attr]
        cfg = {**p.recipe, "learning_rate": lr}
        spent += p.target_run_cost(cfg)
        seen = full_run_end_score(p, cfg, i)  # ranked as ``Study.best`` ranks target runs
        if seen > best[0]:
            best = (seen, cfg)
        points.append(Point(spent, best[1], True))
    return points


def run_task(problem_name: str, method: str, seed: int, recording: str | None,
             max_decisions: int) -> dict[str, Any]:
    """One trajectory; its regret at every budget and its cost to reach the 95% level."""
    from jfhpo.optimizers.base import get_optimizer
    from jfhpo.stopping.factory import build_rules

    if hasattr(__import__("torch"), "set_num_threads"):
        import torch

        torch.set_num_threads(1)
    c0 = time.process_time()
    p = get_problem(problem_name, recording)
    spec = method_table(p.ladder.target.name)[method]
    t0 = time.perf_counter()
    own: dict[float, Trajectory] = {}  # a budget-aware method's study of each budget
    if method == "recipe":
        traj = Trajectory(p, None, seed, [], fixed=[Point(0.0, dict(p.recipe), False)])
    elif method == "manual":
        traj = Trajectory(p, None, seed, [], fixed=manual_points(p))
    else:
        def run(budget: float) -> Trajectory:
            opt = get_optimizer(spec["optimizer"])(spec["options"])
            rules = build_rules({}) if spec["stopping"] else None
            return trajectory(p, opt, seed, budget * p.full_cost, rules, spec["reuse"],
                              max_decisions)

        traj = run(max(BUDGETS))
        if spec["optimizer"] in BUDGET_AWARE:
            own = {b: run(b) for b in BUDGETS if b < max(BUDGETS)}
    level = p.worst + 0.95 * (p.best - p.worst)
    rows = []
    reach = math.inf
    for b in GRID:
        truth, used = traj.result_at(b * p.full_cost)
        if truth >= level and not math.isfinite(reach):
            reach = b
        if b in BUDGETS:
            study = own.get(b, traj)  # the 10-run study's answers are cached: no work twice
            truth, used = study.result_at(b * p.full_cost)
            rows.append({"problem": problem_name, "method": method, "seed": seed, "budget": b,
                         "regret": round(p.best - truth, 6), "truth": round(truth, 6),
                         "used_runs": round(used / p.full_cost, 3), "decisions": study.n - 1})
    return {"rows": rows, "reach": reach, "seconds": time.perf_counter() - t0,
            "cpu": time.process_time() - c0, "problem": problem_name, "method": method, "seed": seed}


# ---- statistics ---------------------------------------------------------------------------------
def bootstrap_ci(x: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    if len(x) < 2:
        return float(x.mean()), float(x.mean())
    means = rng.choice(x, size=(n, len(x)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarize(rows: list[dict[str, Any]], reach: list[dict[str, Any]], out: Path, note: str,
              command: str, wall: float, methods: list[str], problems: list[str]) -> None:
    from scipy.stats import rankdata, wilcoxon

    rng = np.random.default_rng(0)
    by: dict[tuple[str, float, str], dict[int, float]] = defaultdict(dict)
    for r in rows:
        by[(r["problem"], r["budget"], r["method"])][r["seed"]] = r["regret"]
    summary, ranks_rows = [], []
    for prob in problems:
        for b in BUDGETS:
            present = [m for m in methods if (prob, b, m) in by]
            if not present:
                continue
            seeds = sorted(set.intersection(*(set(by[(prob, b, m)]) for m in present)))
            mat = np.array([[by[(prob, b, m)][s] for m in present] for s in seeds])
            ranks = np.array([rankdata(row) for row in mat]).mean(axis=0) if len(seeds) else []
            for j, m in enumerate(present):
                x = mat[:, j]
                lo, hi = bootstrap_ci(x, rng)
                p_val, diff = math.nan, math.nan
                if "jfhpo" in present and m != "jfhpo":
                    y = mat[:, present.index("jfhpo")]
                    diff = float(np.mean(x - y))
                    if np.any(x != y):
                        p_val = float(wilcoxon(x, y).pvalue)
                summary.append({
                    "problem": prob, "budget": b, "method": m, "seeds": len(seeds),
                    "mean_regret": round(float(x.mean()), 5),
                    "median_regret": round(float(np.median(x)), 5),
                    "max_regret": round(float(x.max()), 5),
                    "ci_low": round(lo, 5), "ci_high": round(hi, 5),
                    "mean_rank": round(float(ranks[j]), 2),
                    "minus_jfhpo": round(diff, 5) if math.isfinite(diff) else "",
                    "wilcoxon_p_vs_jfhpo": round(p_val, 4) if math.isfinite(p_val) else "",
                })
                ranks_rows.append({"problem": prob, "budget": b, "method": m,
                                   "mean_rank": round(float(ranks[j]), 2)})
    _write_csv(out / "summary.csv", summary)
    _write_csv(out / "ranks.csv", ranks_rows)
    eff = []
    for prob in problems:
        med: dict[str, float] = {}
        for m in methods:
            vals = [r["reach"] for r in reach if r["problem"] == prob and r["method"] == m]
            if vals:
                med[m] = float(np.median(vals))
                eff.append({"problem": prob, "method": m, "seeds": len(vals),
                            "median_cost_runs": med[m],
                            "reached": round(float(np.mean(np.isfinite(vals))), 3)})
        base = med.get("random", math.nan)
        for e in eff:
            if e["problem"] == prob:
                c = e["median_cost_runs"]
                e["ratio_to_random"] = round(c / base, 3) if math.isfinite(c) and math.isfinite(base) else (
                    "inf" if not math.isfinite(c) else "")
                e["median_cost_runs"] = round(c, 3) if math.isfinite(c) else "inf"
    _write_csv(out / "efficiency.csv", eff)
    _report(summary, eff, out, note, command, wall, methods, problems)
    _plot(summary, out, methods, problems)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _report(summary: list[dict[str, Any]], eff: list[dict[str, Any]], out: Path, note: str,
            command: str, wall: float, methods: list[str], problems: list[str]) -> None:
    lines = [
        "# Benchmark suite: regret against budget", "",
        f"Command: `{command}`  ", f"Wall time: {wall / 60:.1f} min on {os.cpu_count()} cores "
        f"({platform.machine()}, shared with other jobs).  ", note, "",
        "Budgets are in full target runs, search and confirmation counted. Regret = best truth minus "
        "the truth of the method's answer (lower is better). `rank`: mean rank over seeds (1 = best). "
        "`p`: Wilcoxon signed-rank test against `jfhpo` over the paired seeds. CI: 95% bootstrap "
        "interval of the mean.", "",
    ]
    for prob in problems:
        lines += [f"## {prob}", "", "| method | " + " | ".join(
            f"B={b:g}: mean [CI] (rank, p)" for b in BUDGETS) + " |", "|---|" + "---|" * len(BUDGETS)]
        for m in methods:
            cells = []
            for b in BUDGETS:
                r = next((s for s in summary
                          if (s["problem"], s["budget"], s["method"]) == (prob, b, m)), None)
                if r is None:
                    cells.append("-")
                    continue
                p = f", p={r['wilcoxon_p_vs_jfhpo']:.3g}" if r["wilcoxon_p_vs_jfhpo"] != "" else ""
                cells.append(f"{r['mean_regret']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
                             f"({r['mean_rank']:.1f}{p})")
            if any(c != "-" for c in cells):
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Efficiency: compute to reach 95% of the best target score, relative to random search",
              "", "Median over seeds of the compute (in full target runs, search + confirmation) "
              "until the method's answer reaches the 95% level; `reached`: fraction of seeds that "
              "reach it within 10 target runs.", "",
              "| method | " + " | ".join(problems) + " |", "|---|" + "---|" * len(problems)]
    for m in methods:
        cells = []
        for prob in problems:
            e = next((x for x in eff if x["problem"] == prob and x["method"] == m), None)
            cells.append("-" if e is None else f"{e['ratio_to_random']} ({e['median_cost_runs']} runs, "
                         f"{e['reached']:.0%})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    (out / "report.md").write_text("\n".join(lines) + "\n")


def _plot(summary: list[dict[str, Any]], out: Path, methods: list[str], problems: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(problems), figsize=(4.2 * len(problems), 4), squeeze=False)
    for ax, prob in zip(axes[0], problems):
        for m in methods:
            pts = [(s["budget"], s["mean_regret"], s["ci_low"], s["ci_high"]) for s in summary
                   if s["problem"] == prob and s["method"] == m]
            if not pts:
                continue
            b, y, lo, hi = map(np.array, zip(*pts))
            style = "-" if m.startswith("jfhpo") else "--"
            ax.plot(b, y, style, marker="o", ms=3, label=m, lw=2.2 if m == "jfhpo" else 1.0)
            ax.fill_between(b, lo, hi, alpha=0.08)
        ax.set_title(prob)
        ax.set_xscale("log")
        ax.set_xticks(BUDGETS, [f"{b:g}" for b in BUDGETS])
        ax.set_xlabel("budget (full target runs)")
        ax.set_ylabel("regret (mean, 95% CI)")
    axes[0][-1].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "regret.png", dpi=100)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    ap.add_argument("--methods", nargs="+", default=None, help="default: all")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-decisions", type=int, default=80)
    ap.add_argument("--recording", default=None, help="replay file (default: the packaged one)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "suite")
    ap.add_argument("--resume", action="store_true",
                    help="keep the trajectories already in OUT/trajectories.jsonl (same recording)")
    ap.add_argument("--note", default="", help="a sentence for the report (how the run went)")
    ap.add_argument("--report-only", action="store_true",
                    help="write the tables from OUT/trajectories.jsonl without running anything")
    args = ap.parse_args(argv)
    all_methods = list(method_table("target"))
    methods = args.methods or all_methods
    bad = sorted(set(methods) - set(all_methods))
    if bad:
        print(f"--methods: unknown {bad}; valid: {all_methods}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    journal = args.out / "trajectories.jsonl"
    tag = _recording_tag(args)
    if not args.resume and not args.report_only and journal.exists():
        journal.unlink()
    previous = _read_journal(journal, tag)
    done = {(r["problem"], r["method"], r["seed"]) for r in previous}
    tasks = []
    # seed-major order: a run cut short still has every method on the same seeds
    for s in range(args.seeds):
        for prob in args.problems:
            for m in methods:
                if m == "manual" and prob in ("rosenbrock-mf", "hartmann-mf"):
                    continue
                if m in SPECIAL and m != "manual" and s > 0:
                    continue  # deterministic: one run stands for every seed
                if (prob, m, s) not in done:
                    tasks.append((prob, m, s))
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = list(previous)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if tasks and not args.report_only:
        with ProcessPoolExecutor(args.workers) as pool:
            futs = [pool.submit(run_task, p, m, s, args.recording, args.max_decisions)
                    for p, m, s in tasks]
            for i, fut in enumerate(as_completed(futs)):
                res = fut.result()
                res["recording"] = tag if res["problem"] == "replay-tiny" else ""
                results.append(res)
                with open(journal, "a") as f:
                    f.write(json.dumps(res) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                if (i + 1) % 25 == 0 or i + 1 == len(futs):
                    print(f"{i + 1}/{len(futs)} trajectories, {time.perf_counter() - t0:.0f} s", flush=True)
    # only seeds every method finished are compared (a resumed or cut run may lack some)
    complete = _complete_seeds(results, methods, args.problems, args.seeds)
    results = [r for r in results if r["seed"] in complete.get(r["problem"], set())
               or (r["method"] in SPECIAL and r["method"] != "manual")]
    wall = time.perf_counter() - t0
    if not results:
        print("no finished trajectories", file=sys.stderr)
        return 1
    rows = [r for res in results for r in res["rows"]]
    # deterministic methods ran once: their one row stands for every seed
    for res in results:
        if res["method"] in SPECIAL and res["method"] != "manual":
            rows += [{**r, "seed": s} for s in sorted(complete.get(res["problem"], set())) if s > 0
                     for r in res["rows"]]
    reach = [{"problem": r["problem"], "method": r["method"], "reach": r["reach"]} for r in results]
    rows.sort(key=lambda r: (r["problem"], r["method"], r["seed"], r["budget"]))
    args.out.mkdir(parents=True, exist_ok=True)
    _write_csv(args.out / "runs.csv", rows)
    cpu: dict[str, list[float]] = defaultdict(list)
    for res in results:
        cpu[res["method"]].append(res["cpu"])
    total_cpu = sum(res["cpu"] for res in results)
    note = _recording_note(args)
    note += (f"  \nCPU seconds in the trajectories: {total_cpu:.0f} in all; per trajectory (mean): "
             + ", ".join(f"{m} {np.mean(v):.1f}" for m, v in sorted(cpu.items())))
    note += f"  \nCommit: {_commit()} (working tree may differ: see git log of bench/results/suite)."
    if args.note:
        note += "  \n" + args.note
    given = list(argv if argv is not None else sys.argv[1:])
    if "--note" in given:  # the note is printed on its own line
        i = given.index("--note")
        del given[i:i + 2]
    command = "python bench/suite/run.py " + " ".join(given)
    summarize(rows, reach, args.out, note, command.strip(), wall, methods, args.problems)
    print(f"wrote {args.out} in {wall / 60:.1f} min")
    return 0


def _recording_tag(args: argparse.Namespace) -> str:
    """Which recording the replay problem used (results of another one are not mixed in)."""
    if "replay-tiny" not in args.problems:
        return ""
    rec = get_problem("replay-tiny", args.recording).rec  # type: ignore[attr-defined]
    return f"{len(rec.complete)} configs, {len(rec.runs)} runs"


def _read_journal(path: Path, tag: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if r["problem"] != "replay-tiny" or r.get("recording") == tag:
            out.append(r)
    return out


def _complete_seeds(results: list[dict[str, Any]], methods: list[str], problems: list[str],
                    seeds: int) -> dict[str, set[int]]:
    """Per problem: the seeds on which every (seeded) method has a trajectory."""
    have: dict[tuple[str, str], set[int]] = defaultdict(set)
    for r in results:
        have[(r["problem"], r["method"])].add(r["seed"])
    out: dict[str, set[int]] = {}
    for prob in problems:
        seeded = [m for m in methods if m not in SPECIAL or m == "manual"]
        seeded = [m for m in seeded if not (m == "manual" and prob in ("rosenbrock-mf", "hartmann-mf"))]
        sets = [have[(prob, m)] for m in seeded]
        out[prob] = set.intersection(*sets) & set(range(seeds)) if sets else set(range(seeds))
    return out


def _recording_note(args: argparse.Namespace) -> str:
    if "replay-tiny" not in args.problems:
        return ""
    p = get_problem("replay-tiny", args.recording)
    rec = p.rec  # type: ignore[attr-defined]
    return (f"replay-tiny: {len(rec.complete)} recorded configurations (of a {len(rec.configs)}-point "
            f"design) on rungs {list(rec.rung_params)}, {rec.max_steps} steps; best target score "
            f"{p.best:.3f} (mean over seeds {rec.seeds(rec.target)}); one full target run = "
            f"{p.full_cost:.0f} CPU s.")


if __name__ == "__main__":
    raise SystemExit(main())
