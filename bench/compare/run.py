"""Compare JF-HPO, its ablations and the baselines under one wall-clock budget per method and seed.

    .venv/bin/python bench/compare/run.py --workload synthetic --budget 600 --seeds 5 \
        --out bench/results/compare-synthetic
    .venv/bin/python bench/compare/run.py --workload tiny --budget 900 --seeds 5 \
        --out bench/results/compare-tiny
    .venv/bin/python bench/compare/run.py --workload synthetic --quick --out /tmp/q

What is counted, identically for every method: each (method, HPO seed) is one study run by
``jfhpo.tuner.run_study`` with ``workers`` (default 2) local worker processes on this machine and
``budget.seconds = --budget``. With ``--measure wall`` (the default for real workloads) the budget
is the study's wall-clock time, optimizer time included; with ``--measure compute`` (the default
for the synthetic workload, whose trainer is a formula) it is the sum of the segments' simulated
costs. The search gets the whole budget (``confirm.top_k: 0``). Afterwards every method's chosen
configuration (its optimizer's own ``confirm(view, 1)`` choice; the recipe for ``recipe``) is
trained on the target at the full step budget with ``--train-seeds`` training seeds, in a
separate study that is NOT counted in the budget and is the same for every method: for HPO seed
``i`` the confirmation study has seed ``100000 + i``, so all methods get the same training seeds
(paired comparisons). Proxy-to-target transfer is measured on ``--transfer-configs`` random
configurations trained at the full step budget on every model of the ladder.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import analysis
from methods import QUICK_METHODS, Method, base_spec, fixed_spec, methods, study_spec

import jfhpo.optimizers.bohb  # registers "bohb"
import jfhpo.optimizers.peers  # noqa: F401  (registers the peer adapters)
from jfhpo.backends.base import get_backend
from jfhpo.optimizers.base import get_optimizer
from jfhpo.progress import ProgressSink
from jfhpo.records import Phase
from jfhpo.spec import parse_spec
from jfhpo.study import Study
from jfhpo.tuner import default_cache_dir, run_study

CONFIRM_SEED = 100_000


TRANSFER_SEED = 200_000


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _run(folder: Path, data: Mapping[str, Any]) -> tuple[Study, float, float]:
    """Create and run a study; (study, start time, wall seconds)."""
    spec = parse_spec(dict(data))
    backend_cls = get_backend(spec.backend.name)
    backend_cls(spec.backend.options).validate(spec.search_space(), spec.ladder())
    study = Study.create(folder, spec, spec.objective_metric(backend_cls.default_objective))
    t0 = time.time()
    run_study(study, ProgressSink())
    return study, t0, time.time() - t0


def _recipe(workload: str, space_names: list[str]) -> dict[str, Any]:
    recipe = get_backend(workload)().recipe()
    return {n: recipe[n] for n in space_names if n in recipe}


def _target_value_fn(workload: str, base: Mapping[str, Any]) -> Any:
    """The noise-free target score of a configuration, where the workload has one (synthetic);
    else None (the trace then shows the incumbent's search score at its fidelity)."""
    if workload != "synthetic":
        return None
    from jfhpo.backends.synthetic import SyntheticProblem

    opts = {k: float(v) for k, v in (base["backend"].get("options") or {}).items()
            if k in ("bias", "lr_opt_at_1m", "noise", "reward_noise", "step_seconds")}
    problem = SyntheticProblem(**opts)
    target = base["models"][-1]
    steps = int(base["steps"]["max"])
    return lambda cfg: problem.true_score(cfg, float(target["params"]), steps)


class Journal:
    """``progress.jsonl`` in the results folder: every finished study's outcome, appended as it
    ends, so ``--resume`` continues a run killed midway (a study cut short is redone from
    scratch: a partial study would not have had its whole budget)."""

    def __init__(self, out: Path) -> None:
        self.path = out / "progress.jsonl"
        self.done: dict[str, Any] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    entry = json.loads(line)
                    self.done[entry["key"]] = entry["value"]

    def get(self, key: str) -> Any:
        return self.done.get(key)

    def put(self, key: str, value: Any) -> None:
        self.done[key] = value
        with open(self.path, "a") as f:
            f.write(json.dumps({"key": key, "value": value}, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _fresh(folder: Path) -> Path:
    """``folder``, emptied of a study left unfinished by an earlier, killed run."""
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def search(args: argparse.Namespace, base: Mapping[str, Any], todo: list[Method], out: Path,
           journal: Journal) -> list[dict[str, Any]]:
    """Run every method with every HPO seed; one row per (method, seed)."""
    rows = []
    target_value = _target_value_fn(args.workload, base)
    space_names = list(base["space"])
    for seed in range(args.seeds):
        for m in todo:
            row: dict[str, Any] = {"method": m.name, "seed": seed, "kind": m.kind}
            if m.optimizer is None:
                row.update(chosen=_recipe(args.workload, space_names), wall=0.0, runs=0,
                           segments=0, compute=0.0, trace=[])
                rows.append(row)
                continue
            saved = journal.get(f"search/{m.name}/{seed}")
            if saved is not None:
                rows.append(saved)
                continue
            data = study_spec(base, m, seed, args.budget, args.measure, args.workers)
            folder = _fresh(out / "studies" / f"{m.name}-s{seed}")
            log(f"search {m.name} seed {seed} ({args.budget:.0f} s {args.measure} budget)")
            try:
                study, t0, wall = _run(folder, data)
            except Exception as exc:  # a broken method must not sink the whole comparison
                log(f"  {m.name} seed {seed} FAILED: {type(exc).__name__}: {exc}")
                row.update(error=f"{type(exc).__name__}: {exc}", chosen=None, wall=float("nan"))
                rows.append(row)
                journal.put(f"search/{m.name}/{seed}", row)
                continue
            view = study.view(args.workers)
            opt = get_optimizer(m.optimizer)(m.options)
            chosen = opt.confirm(view, 1) if view.finished() else []
            row.update(analysis.study_accounting(study))
            row["wall"] = wall
            row["chosen"] = dict(chosen[0]) if chosen else _recipe(args.workload, space_names)
            search_scores = [r.score for r in view.runs
                             if r.phase is Phase.SEARCH and r.score is not None]
            row["best_search_score"] = max(search_scores) if search_scores else float("nan")
            fn = target_value or (lambda cfg: None)
            row["trace"] = analysis.incumbent_trace(study, t0, fn)
            if target_value is None:  # the search score of the incumbent, at its own fidelity
                row["trace"] = _search_trace(study, t0)
            study.close()
            log(f"  {m.name} seed {seed}: {row['runs']} runs, {row['segments']} segments, "
                f"wall {wall:.1f}s, compute {row['compute']:.1f}s")
            rows.append(row)
            journal.put(f"search/{m.name}/{seed}", row)
    return rows


def _search_trace(study: Study, t0: float) -> list[tuple[float, float]]:
    best = -float("inf")
    out = []
    target = study.ladder.target.name
    for r in sorted(study.storage.rows("segments"), key=lambda r: r["finished"] or 0):
        if r["finished"] is None or r["score"] is None:
            continue
        if study.runs[r["run_id"]].model == target and r["end_step"] == study.steps.max_steps:
            best = max(best, float(r["score"]))
            out.append((float(r["finished"]) - t0, best))
    return out


def confirm(args: argparse.Namespace, base: Mapping[str, Any], rows: list[dict[str, Any]],
            out: Path, journal: Journal) -> None:
    """Train every chosen configuration on the target with the same training seeds."""
    target = base["models"][-1]["name"]
    for seed in range(args.seeds):
        chosen: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["seed"] == seed and row.get("chosen") is not None:
                chosen.setdefault(json.dumps(row["chosen"], sort_keys=True), row["chosen"])
        scores: dict[str, list[float]] = {}
        for i, (key, cfg) in enumerate(chosen.items()):
            saved = journal.get(f"confirm/{seed}/{key}")
            if saved is not None:
                scores[key] = saved
                continue
            data = fixed_spec(base, f"confirm-s{seed}-{i}", CONFIRM_SEED + seed, [cfg], [target],
                              args.train_seeds, args.workers)
            log(f"confirm seed {seed}: configuration {i + 1}/{len(chosen)} x {args.train_seeds}")
            study, _, _ = _run(_fresh(out / "confirm" / f"s{seed}-c{i}"), data)
            view = study.view()
            scores[key] = [study.sign * r.score for r in view.runs if r.score is not None]
            study.close()
            journal.put(f"confirm/{seed}/{key}", scores[key])
        for row in rows:
            if row["seed"] == seed and row.get("chosen") is not None:
                s = scores[json.dumps(row["chosen"], sort_keys=True)]
                row["target_scores"] = s
                row["target_score"] = float(np.mean(s)) if s else float("nan")


def transfer(args: argparse.Namespace, base: Mapping[str, Any], out: Path, journal: Journal
             ) -> list[dict[str, Any]]:
    """Rank correlation of random configurations between ladder models (full step budget)."""
    if args.transfer_configs <= 0:
        return []
    saved = journal.get("transfer")
    if saved is not None:
        return list(saved)
    spec = parse_spec(dict(base))
    rng = np.random.default_rng(TRANSFER_SEED)
    configs = [spec.search_space().sample(rng) for _ in range(args.transfer_configs)]
    names = [m["name"] for m in base["models"]]
    log(f"transfer: {len(configs)} configurations x {len(names)} models")
    data = fixed_spec(base, "transfer", TRANSFER_SEED, configs, names, 1, args.workers)
    study, _, _ = _run(_fresh(out / "transfer"), data)
    scores: dict[str, dict[str, float]] = {}
    for r in study.view().runs:
        if r.score is not None:
            scores.setdefault(r.model, {})[study.space.key(r.config)] = study.sign * r.score
    study.close()
    corr = analysis.rank_correlations(scores, names)
    journal.put("transfer", corr)
    return corr


def machine() -> dict[str, str]:
    try:
        import torch

        torch_version = str(torch.__version__)
    except ImportError:
        torch_version = "not installed"
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=False).stdout.strip()
    except OSError:
        commit = "unknown"
    return {"commit": commit or "unknown", "cpus": str(os.cpu_count()),
            "python": platform.python_version(), "torch": torch_version,
            "platform": platform.platform()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", default="synthetic", help="backend: synthetic | tiny")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds per method and seed (default 600; quick: 300 synthetic, 120 tiny)")
    p.add_argument("--seeds", type=int, default=5, help="HPO seeds per method (quick: 1)")
    p.add_argument("--train-seeds", type=int, default=3,
                   help="training seeds of each chosen configuration on the target (quick: 2)")
    p.add_argument("--transfer-configs", type=int, default=12,
                   help="random configurations for the proxy-to-target rank correlation (0: skip)")
    p.add_argument("--methods", nargs="*", default=None, help="subset of the methods to run")
    p.add_argument("--measure", choices=("wall", "compute"), default=None,
                   help="budget measure (default: compute for synthetic, wall otherwise)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--set", action="append", default=[], metavar="KEY=YAML",
                   help="override a top-level key of the workload's example study, e.g. "
                        "--set 'steps={min: 5, max: 45, eta: 3}'")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite report.md, summary.csv and the plot from --out/rows.json")
    p.add_argument("--quick", action="store_true", help="one seed, small budget, few methods")
    p.add_argument("--out", required=True, help="results folder (must not hold a previous run)")
    p.add_argument("--resume", action="store_true",
                   help="continue a run killed midway in --out, with the same arguments: finished "
                        "studies are read from --out/progress.jsonl, an unfinished one is redone")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds = 1 if "--seeds" not in (argv or sys.argv) else args.seeds
        args.train_seeds = 2 if "--train-seeds" not in (argv or sys.argv) else args.train_seeds
        args.methods = args.methods or list(QUICK_METHODS)
        if "--transfer-configs" not in (argv or sys.argv):
            args.transfer_configs = 10
    if args.budget is None:
        args.budget = (300.0 if args.workload == "synthetic" else 120.0) if args.quick else 600.0
    if args.measure is None:
        args.measure = "compute" if args.workload == "synthetic" else "wall"
    return args


def main(argv: list[str] | None = None) -> int:
    import yaml

    from report import write_report

    args = parse_args(argv)
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    base = base_spec(args.workload, overrides)
    table = methods(base["models"][-1]["name"])
    if args.report_only:
        saved = json.loads((Path(args.out) / "rows.json").read_text())
        write_report(Path(args.out), saved["meta"], saved["rows"], saved["transfer"], table)
        return 0
    names = args.methods or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        print(f"unknown method(s) {unknown}; valid: {list(table)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if (out / "studies").exists() and not args.resume:
        print(f"{out} holds a previous run; choose another --out, or add --resume",
              file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    journal = Journal(out)
    t_start = time.time() - float(journal.get("elapsed") or 0.0)
    if args.workload != "synthetic":  # base models once, before any budget clock starts
        spec = parse_spec(dict(base))
        backend = get_backend(spec.backend.name)(spec.backend.options)
        log("preparing base models")
        backend.prepare(spec.ladder(), spec.cache_dir or default_cache_dir(), log)
    try:
        rows = search(args, base, [table[n] for n in names], out, journal)
        confirm(args, base, rows, out, journal)
        corr = transfer(args, base, out, journal)
    finally:  # the time spent so far, for the report's total after a --resume
        journal.put("elapsed", time.time() - t_start)
    meta = {"command": " ".join([sys.executable, *sys.argv]) if argv is None
            else "bench/compare/run.py " + " ".join(argv),
            **machine(), "workload": args.workload, "budget": args.budget,
            "measure": args.measure, "seeds": args.seeds, "train_seeds": args.train_seeds,
            "workers": args.workers, "methods": names, "overrides": overrides,
            "total_seconds": time.time() - t_start}
    (out / "rows.json").write_text(json.dumps({"meta": meta, "rows": rows, "transfer": corr},
                                              indent=1, default=str))
    with open(out / "runs.csv", "w", newline="") as f:
        cols = ["method", "kind", "seed", "runs", "segments", "failed_segments", "compute",
                "cost_per_trial", "steps_trained", "steps_saved_stopping", "steps_saved_reuse",
                "wall", "best_search_score", "target_score", "target_scores", "chosen", "error"]
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (json.dumps(r[k]) if isinstance(r.get(k), (dict, list)) else r.get(k))
                        for k in cols})
    write_report(out, meta, rows, corr, table)
    log(f"wrote {out}/report.md ({time.time() - t_start:.0f}s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
