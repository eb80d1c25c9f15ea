"""The comparison's report: markdown tables, a summary CSV and the best-so-far plot."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from analysis import fmt, markdown_table, paired_tests, plot_traces, summary
from methods import Method

BASELINES = ("recipe", "random", "hyperband", "bohb", "optuna_tpe_hyperband", "optuna_asha",
             "smac_mf", "dehb")


def _by_method(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["method"], []).append(r)
    for v in out.values():
        v.sort(key=lambda r: r["seed"])
    return out


def _mean(rows: Sequence[Mapping[str, Any]], key: str) -> float:
    vals = [float(r[key]) for r in rows if r.get(key) is not None
            and math.isfinite(float(r[key]))]
    return float(np.mean(vals)) if vals else float("nan")


def _paired(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]
            ) -> tuple[list[float], list[float]]:
    sb = {r["seed"]: r.get("target_score") for r in b}
    xs, ys = [], []
    for r in a:
        y = sb.get(r["seed"])
        x = r.get("target_score")
        if x is not None and y is not None and math.isfinite(x) and math.isfinite(y):
            xs.append(float(x))
            ys.append(float(y))
    return xs, ys


def write_report(out: Path, meta: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                 corr: Sequence[Mapping[str, Any]], table: Mapping[str, Method]) -> None:
    by = _by_method(rows)
    order = [n for n in table if n in by]
    random_cpt = _mean(by.get("random", []), "cost_per_trial")
    recipe = summary([r.get("target_score", float("nan")) for r in by.get("recipe", [])])

    # ---- per-method table ------------------------------------------------------------------
    head = ["method", "what (fidelity)", "seeds", "runs", "segments", "cost/trial (s)",
            "x cheaper than random",
            "steps saved: stopping", "steps saved: reuse", "wall (s)", "target score",
            "std", "95% CI", "vs recipe (points)", "vs recipe (%)"]
    body = []
    csv_rows = []
    for name in order:
        rs = by[name]
        s = summary([r.get("target_score", float("nan")) for r in rs])
        cpt = _mean(rs, "cost_per_trial")
        ratio = random_cpt / cpt if cpt and math.isfinite(cpt) and cpt > 0 else float("nan")
        d_pts = 100.0 * (s["mean"] - recipe["mean"])
        d_pct = 100.0 * (s["mean"] - recipe["mean"]) / recipe["mean"] if recipe["mean"] else math.nan
        errors = sum(1 for r in rs if r.get("error"))
        line = [name + (f" ({errors} failed)" if errors else ""), table[name].note, s["n"],
                _mean(rs, "runs"),
                _mean(rs, "segments"), cpt, ratio, _mean(rs, "steps_saved_stopping"),
                _mean(rs, "steps_saved_reuse"), _mean(rs, "wall"), s["mean"], s["std"],
                f"[{fmt(s['lo'])}, {fmt(s['hi'])}]", d_pts, d_pct]
        body.append(line)
        csv_rows.append(dict(zip(["method", "what", "seeds", "runs", "segments", "cost_per_trial",
                                  "ratio_vs_random", "steps_saved_stopping", "steps_saved_reuse",
                                  "wall", "target_mean", "target_std", "ci95", "vs_recipe_points",
                                  "vs_recipe_percent"], line, strict=True)))
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(csv_rows[0]) if csv_rows else ["method"])
        w.writeheader()
        w.writerows(csv_rows)

    # ---- paired tests ----------------------------------------------------------------------
    tests = []
    for name in order:
        for base in BASELINES:
            if base == name or base not in by or (name in BASELINES and base != "recipe"):
                continue
            xs, ys = _paired(by[name], by[base])
            if not xs:
                continue
            t = paired_tests(xs, ys)
            tests.append([name, base, len(xs), 100.0 * t["diff"], t["p_wilcoxon"], t["p_t"]])

    # ---- ablations -------------------------------------------------------------------------
    full = summary([r.get("target_score", float("nan")) for r in by.get("jfhpo", [])])
    abl = []
    for name in order:
        if table[name].kind not in ("jfhpo", "ablation"):
            continue
        s = summary([r.get("target_score", float("nan")) for r in by[name]])
        p = paired_tests(*_paired(by[name], by["jfhpo"])) if name != "jfhpo" and "jfhpo" in by \
            else {"p_wilcoxon": float("nan")}
        abl.append([name, table[name].note, s["mean"], s["std"], 100.0 * (s["mean"] - full["mean"]),
                    p["p_wilcoxon"], _mean(by[name], "cost_per_trial"), _mean(by[name], "runs")])

    # ---- plot ------------------------------------------------------------------------------
    traces = {n: [list(r.get("trace") or []) for r in by[n]] for n in order
              if table[n].optimizer is not None}
    ylabel = ("noise-free target score of the incumbent" if meta["workload"] == "synthetic"
              else "best search score on the target at full steps")
    horizon = max((p[0] for tr in traces.values() for t in tr for p in t), default=1.0)
    plot_traces(traces, horizon / 1.1, str(out / "best_so_far.png"), ylabel)

    # ---- markdown --------------------------------------------------------------------------
    md = [f"# Method comparison on the `{meta['workload']}` workload", "",
          "Command:", "", f"    {meta['command']}", "",
          f"- git commit: `{meta['commit']}`",
          f"- machine: {meta['cpus']} CPUs, Python {meta['python']}, torch {meta['torch']}, "
          f"{meta['platform']}",
          f"- budget per method and HPO seed: {meta['budget']:.0f} s ({meta['measure']}: "
          + ("wall-clock seconds of the study, optimizer time included"
             if meta["measure"] == "wall" else
             "sum of the segments' costs; for the synthetic workload these are simulated seconds")
          + f"), {meta['workers']} workers on this machine; the whole budget is search",
          f"- HPO seeds: {meta['seeds']}; each chosen configuration trained on the target at the "
          f"full step budget with {meta['train_seeds']} training seeds (the same seeds for every "
          "method); that confirmation is NOT counted in the budget",
          f"- total time of this benchmark: {meta['total_seconds']:.0f} s",
          *(["- workload settings changed from the example study: "
             + "; ".join(f"`{k}` = `{json.dumps(v)}`" for k, v in meta["overrides"].items())]
            if meta.get("overrides") else []),
          "", "## Per method", "",
          "cost/trial: search compute-seconds per run (a run = one configuration on one model); "
          "'x cheaper than random' is random search's cost per trial divided by the method's "
          "(the paper's 14.9x). Steps saved are means per study. Target score: mean over HPO "
          "seeds of the chosen configuration's mean target score over training seeds; 95% CI is "
          "the t-interval over HPO seeds. 'vs recipe (points)' is 100 x the difference in score.",
          "", markdown_table(head, body), "",
          "## Paired tests over HPO seeds", "",
          "Difference in target score (x100) and two-sided p-values (Wilcoxon signed-rank, paired "
          "t); pairs share the HPO seed and the training seeds. With 5 seeds the smallest possible "
          "Wilcoxon p-value is 0.0625.", "",
          markdown_table(["method", "baseline", "pairs", "diff (points)", "p Wilcoxon", "p t"],
                         tests), "",
          "## Ablations of JF-HPO", "",
          markdown_table(["variant", "what", "target score", "std", "vs jfhpo (points)",
                          "p Wilcoxon vs jfhpo", "cost/trial (s)", "runs"], abl), "",
          "## Proxy-to-target rank correlation", "",
          "Random configurations trained at the full step budget on every model of the ladder, "
          "ranked per model.", "",
          markdown_table(["smaller", "larger", "configurations", "Spearman", "Kendall"],
                         [[c["small"], c["large"], c["n_configs"], c["spearman"], c["kendall"]]
                          for c in corr]) if corr else "(not measured in this run)", "",
          "## Best-so-far target score against wall-clock time", "",
          "![best so far](best_so_far.png)", "",
          f"y axis: {ylabel}. x axis: wall-clock seconds since each study started, so it "
          "includes the optimizer's own time (the GP of JF-HPO shows here); with "
          "`measure: compute` the budget itself is the simulated compute, not this axis. "
          "A segment in flight when the budget ends is finished, so studies can overrun.", "",
          "## Files", "",
          "- `runs.csv`: one row per (method, HPO seed), with the chosen configuration",
          "- `summary.csv`: the per-method table",
          "- `rows.json`: everything above, including the traces",
          "- `studies/`, `confirm/`, `transfer/`: the study folders (`jfhpo status <folder>`); "
          "not committed (bench/results/.gitignore)", ""]
    (out / "report.md").write_text("\n".join(md))
