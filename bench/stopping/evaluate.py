"""Replay recorded training curves through the stopping rules and tabulate what they would do.

For every rule (default options), a few deliberately naive variants, the default rule set and all
rules together, the runs of each model are replayed in lock step: at step s every run that has
not been stopped shows its observations up to s to the rule, and the other runs on the same model
are visible up to s (or up to where they were stopped), as in a study whose runs start together.

Reported per rule: runs stopped; false stops (stopped runs that would have ended among the best:
final eval_accuracy in the group's top quartile or within 2 noise standard deviations of the
group's best); bottom-half runs stopped (the ones worth stopping); steps and seconds saved, the
seconds from the recorded per-step timings.

Example (the command behind bench/stopping/results.md)::

    python bench/stopping/evaluate.py bench/stopping/curves.json --out bench/stopping/results.md
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jfhpo.fidelity import ModelLadder, ModelRung, StepBudget
from jfhpo.records import Observation, Phase, RunRecord
from jfhpo.space import FloatParam, SearchSpace
from jfhpo.stopping import build_rules, default_rule_names, rule_names
from jfhpo.stopping.base import RunHistory, StoppingRule
from jfhpo.stopping.compare import second_diff_var
from jfhpo.view import StudyView

EVAL = "eval_accuracy"

#: naive variants that show why the chosen formulas have warm-ups, smoothing and persistence
VARIANTS: dict[str, dict[str, Any]] = {
    "kl_growth, no warm-up or min_kl": {"kl_growth": {"warmup": 0, "min_kl": 0.0}},
    "reward_drop, single steps (window 1, k 1)": {
        "reward_drop": {"window": 1, "k": 1, "min_drop": 0.0, "noise_z": 0.0}
    },
    "zero_reward, k 3": {"zero_reward": {"k": 3}},
    "eval_drop, k 1": {"eval_drop": {"k": 1}},
    "eval_drop, delta 0.05": {"eval_drop": {"delta": 0.05}},
    "kl_runaway, k 1 (single spike)": {"kl_runaway": {"k": 1}},
    "reward_drop, no noise term": {"reward_drop": {"noise_z": 0.0}},
    "peer_gap, 1 check, margin 1": {"peer_gap": {"consecutive": 1, "margin": 1.0}},
    "peer_gap, min_gap 0.05": {"peer_gap": {"min_gap": 0.05}},
    "peer_gap on train reward only": {"peer_gap": {"metric": "no_eval"}},
}


@dataclass
class Run:
    """One recorded curve."""

    run_id: int
    model: str
    config: dict[str, Any]
    observations: list[Observation]
    seconds: list[float]
    final: float | None = None
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _num(v: Any) -> float:
    return float(v)  # 'nan' / 'inf' strings parse too


def load(paths: Sequence[Path]) -> list[Run]:
    """Runs from one or more record_curves.py files (run ids made unique across files)."""
    runs: list[Run] = []
    for path in paths:
        data = json.loads(path.read_text())
        for r in data["runs"]:
            rid = len(runs) + 1
            obs = [
                Observation(rid, 1, row["step"], {k: _num(v) for k, v in row["metrics"].items()})
                for row in r["curve"]
            ]
            evals = [o.metrics[EVAL] for o in obs if EVAL in o.metrics]
            cfg = r["config"]
            label = (
                f"{r['model']} lr={cfg.get('learning_rate', '?'):g} "
                f"T={cfg.get('temperature', '?'):g} seed={r.get('seed', 0)}"
            )
            runs.append(
                Run(
                    rid,
                    r["model"],
                    cfg,
                    obs,
                    [row["seconds"] for row in r["curve"]],
                    final=evals[-1] if evals and math.isfinite(evals[-1]) else None,
                    label=label,
                )
            )
    return runs


def _view(group: Sequence[Run], visible: Mapping[int, int], max_steps: int) -> StudyView:
    models = sorted({r.model for r in group})
    return StudyView(
        space=SearchSpace([FloatParam("learning_rate", 1e-6, 1.0, log=True)]),
        ladder=ModelLadder([ModelRung(m, params=10.0 ** (i + 3)) for i, m in enumerate(models)]),
        steps=StepBudget(min_steps=1, max_steps=max_steps),
        seed=0,
        objective=EVAL,
        runs=tuple(
            RunRecord(run_id=r.run_id, config=r.config, model=r.model, phase=Phase.SEARCH) for r in group
        ),
        observations={
            r.run_id: tuple(o for o in r.observations if o.step <= visible[r.run_id]) for r in group
        },
    )


def replay(
    make_rule: Callable[[], StoppingRule | None], runs: Sequence[Run]
) -> dict[int, tuple[int, str, str]]:
    """run_id -> (stop step, rule name, message) for every run the rule stops."""
    stops: dict[int, tuple[int, str, str]] = {}
    rule = make_rule()
    if rule is None:
        return stops
    by_model: dict[str, list[Run]] = {}
    for r in runs:
        by_model.setdefault(r.model, []).append(r)
    for group in by_model.values():
        max_steps = max((o.step for r in group for o in r.observations), default=1)
        for step in range(1, max_steps + 1):
            visible = {r.run_id: stops.get(r.run_id, (step,))[0] for r in group}
            visible = {rid: min(v, step) for rid, v in visible.items()}
            view = _view(group, visible, max_steps)
            for r in group:
                if r.run_id in stops:
                    continue
                upto = [o for o in r.observations if o.step <= step]
                if not upto or upto[-1].step != step:
                    continue
                hist = RunHistory(r.run_id, r.model, r.config, tuple(upto), max_steps, max_steps)
                reason = rule.check(hist, view)
                if reason is not None:
                    stops[r.run_id] = (step, reason.rule, reason.message)
    return stops


def classify(runs: Sequence[Run]) -> tuple[set[int], set[int], dict[str, float]]:
    """(good run ids, bottom-half run ids, eval noise sd per model) from final eval accuracy.

    Good: top quartile of the model or within 2 noise sd of its best. Bottom half: below the
    model's median and not good (the classes do not overlap).
    """
    good: set[int] = set()
    bad: set[int] = set()
    noise: dict[str, float] = {}
    for model in sorted({r.model for r in runs}):
        group = [r for r in runs if r.model == model]
        curves = [[o.metrics[EVAL] for o in r.observations if EVAL in o.metrics] for r in group]
        var, _ = second_diff_var(curves)
        sd = math.sqrt(var) if math.isfinite(var) else 0.0
        noise[model] = sd
        finals = [r.final if r.final is not None else -math.inf for r in group]
        q75 = float(np.quantile([f for f in finals if math.isfinite(f)] or [0.0], 0.75))
        med = float(np.median([f for f in finals if math.isfinite(f)] or [0.0]))
        best = max(finals)
        for r, f in zip(group, finals):
            if f >= q75 or f >= best - 2 * sd:
                good.add(r.run_id)
            elif f < med:
                bad.add(r.run_id)
    return good, bad, noise


def _saved(runs: Sequence[Run], stops: Mapping[int, tuple[int, str, str]]) -> tuple[int, float]:
    steps, secs = 0, 0.0
    for r in runs:
        if r.run_id in stops:
            at = stops[r.run_id][0]
            after = [i for i, o in enumerate(r.observations) if o.step > at]
            steps += len(after)
            secs += sum(r.seconds[i] for i in after)
    return steps, secs


def evaluate(
    runs: Sequence[Run],
) -> tuple[list[list[str]], dict[str, dict[int, tuple[int, str, str]]]]:
    """The results table and every variant's stops."""
    good, bad, _ = classify(runs)
    total_steps = sum(len(r.observations) for r in runs)
    total_secs = sum(sum(r.seconds) for r in runs)
    variants: dict[str, Any] = {f"{n}": {"defaults": False, n: {}} for n in rule_names()}
    variants.update({k: {"defaults": False, **v} for k, v in VARIANTS.items()})
    variants["default set"] = {}
    variants["all rules"] = {"defaults": False, **{n: {} for n in rule_names()}}
    table, all_stops = [], {}
    for label, cfg in variants.items():
        stops = replay(functools.partial(build_rules, cfg), runs)
        all_stops[label] = stops
        steps, secs = _saved(runs, stops)
        at = [s[0] for s in stops.values()]
        table.append(
            [
                label,
                str(len(stops)),
                str(len(set(stops) & good)),
                f"{len(set(stops) & bad)}/{len(bad)}",
                f"{steps} ({steps / max(total_steps, 1):.0%})",
                f"{secs:.0f} ({secs / max(total_secs, 1e-9):.0%})",
                str(int(statistics.median(at))) if at else "-",
            ]
        )
    return table, all_stops


def _md(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render(runs: Sequence[Run], paths: Sequence[Path], command: str) -> str:
    """The markdown report."""
    table, stops = evaluate(runs)
    good, bad, noise = classify(runs)
    total_secs = sum(sum(r.seconds) for r in runs)
    out = [
        "# Early-stopping rules replayed on recorded tiny-workload curves",
        "",
        f"Produced by `{command}` from {', '.join(str(p) for p in paths)}. "
        f"{len(runs)} runs, {sum(len(r.observations) for r in runs)} steps, "
        f"{total_secs:.0f} s of recorded training. Eval noise sd per model (second differences "
        f"of the eval curves): " + ", ".join(f"{m}: {s:.3f}" for m, s in noise.items()) + ".",
        "",
        "Curves recorded with:",
        "",
        *[f"    nice {json.loads(p.read_text()).get('command', '?')}" for p in paths],
        "",
        "A *false stop* stops a run whose final eval_accuracy is in its model's top quartile or "
        "within 2 noise sd of the best; *bottom half* counts stopped runs whose final "
        "eval_accuracy is below their model's median and that are not good (the runs worth "
        "stopping).",
        "",
        _md(
            [
                "rule / set",
                "runs stopped",
                "false stops",
                "bottom half stopped",
                "steps saved",
                "seconds saved",
                "median stop step",
            ],
            table,
        ),
        "",
        f"Default set: {', '.join(default_rule_names())}.",
        "",
        "## Runs",
        "",
    ]
    rows = []
    for r in runs:
        first = stops["all rules"].get(r.run_id)
        dflt = stops["default set"].get(r.run_id)
        evals = [o.metrics[EVAL] for o in r.observations if EVAL in o.metrics]
        rows.append(
            [
                str(r.run_id),
                r.label,
                " ".join(f"{v:.2f}" for v in evals),
                "good" if r.run_id in good else ("bottom" if r.run_id in bad else "-"),
                f"{dflt[1]} @ {dflt[0]}" if dflt else "-",
                f"{first[1]} @ {first[0]}" if first else "-",
            ]
        )
    out.append(_md(["id", "run", "eval_accuracy curve", "class", "default set", "all rules"], rows))
    out += ["", "## Stop messages (all rules)", ""]
    for rid, (step, _, msg) in sorted(stops["all rules"].items()):
        out.append(f"- run {rid}, step {step}: {msg}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("curves", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="markdown file (default: stdout)")
    args = ap.parse_args(argv)
    runs = load(args.curves)
    command = "python bench/stopping/evaluate.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(runs, args.curves, command)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
