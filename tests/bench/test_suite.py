"""The benchmark suite (bench/suite): its accounting and a small end-to-end run.

The accounting tests use real problems and real optimizers through the suite's loop; the end-to-end
test runs bench/suite/run.py as a user would, on a slice (two problems, three cheap methods, three
seeds), and checks the tables it writes.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "bench" / "suite"


def _load(name: str) -> ModuleType:
    """Import bench/suite/NAME.py under its own name (the suite's modules import each other so)."""
    if name in sys.modules and getattr(sys.modules[name], "__file__", "") == str(SUITE / f"{name}.py"):
        return sys.modules[name]
    sys.path.insert(0, str(SUITE))
    spec = importlib.util.spec_from_file_location(name, SUITE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


problems = _load("problems")
loop = _load("loop")


def test_confirmation_is_counted_in_the_budget() -> None:
    from jfhpo.optimizers.base import get_optimizer

    p = problems.make_problem("hartmann-mf")
    opt = get_optimizer("hyperband")({})
    traj = loop.trajectory(p, opt, 0, 3 * p.full_cost, None, True, 60)
    for budget in (1.5, 3.0):
        truth, used = traj.result_at(budget * p.full_cost)
        assert used <= budget * p.full_cost + 1e-9
        assert truth <= p.best + 1e-9
    # a recommendation that has no full target run pays one confirmation run on top of the search
    for i in range(1, traj.n):
        pt = traj.point(i)
        if pt.config is not None and not pt.on_target:
            need = pt.spent + p.target_run_cost(pt.config)
            _, used = traj.result_at(need)
            assert used <= need + 1e-9
            if pt.spent < need - 1e-9:
                _, used_less = traj.result_at(need - 1e-6)
                assert used_less <= need - 1e-6
            break


def test_the_answer_is_the_best_observed_full_target_run_as_a_study_reports_it() -> None:
    from jfhpo.optimizers.base import get_optimizer

    p = problems.make_problem("synthetic-b0.5")
    traj = loop.trajectory(p, get_optimizer("hyperband")({}), 0, 5 * p.full_cost, None, True, 80)
    target, full = p.ladder.target.name, p.steps.max_steps
    checked = 0
    for i in range(1, traj.n):
        pt = traj.point(i)
        if pt.config is None:
            continue
        runs = [r for r in traj.snapshots[i].runs if r.model == target and r.steps_done >= full]
        seen = [(float(r.score), p.space.key(r.config)) for r in runs]
        if not pt.on_target:
            seen.append((p.evaluate(pt.config, target, loop.CONFIRM_RUN, full),
                         p.space.key(pt.config)))
        answer = traj._answer(i, pt)
        assert p.space.key(answer) == max(seen)[1]
        checked += len(runs) > 1
    assert checked, "no decision had two full-budget target runs to choose between"


def test_stopping_rules_end_runs_in_the_loop() -> None:
    """A divergent synthetic learning rate is stopped by the default rules before the full budget."""
    from jfhpo.records import Start
    from jfhpo.stopping.factory import build_rules

    p = problems.make_problem("synthetic-b0.5")

    class Fixed:
        name = "fixed"

        def suggest(self, view: object) -> Start:
            return Start({**p.recipe, "learning_rate": 1e-2}, p.ladder.target.name, 90)

    lp = loop.Loop(p, Fixed(), 0, 10 * p.full_cost, build_rules({}), True)  # type: ignore[arg-type]
    assert lp.step()
    run = lp.runs[0]
    assert run.stopped is not None and run.steps_done < 90
    free = loop.Loop(p, Fixed(), 0, 10 * p.full_cost, None, True)  # type: ignore[arg-type]
    assert free.step() and free.runs[0].steps_done == 90 and free.spent > lp.spent


def test_suite_command_writes_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "suite"
    r = subprocess.run(
        [sys.executable, str(SUITE / "run.py"), "--seeds", "3", "--problems", "synthetic-b0.5",
         "rosenbrock-mf", "--methods", "random", "recipe", "manual", "--workers", "1",
         "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"problem", "budget", "method", "seeds", "mean_regret", "median_regret",
            "max_regret"} <= set(rows[0])
    keys = {(r["problem"], float(r["budget"]), r["method"]) for r in rows}
    for prob in ("synthetic-b0.5", "rosenbrock-mf"):
        for b in (1.5, 3.0, 5.0, 10.0):
            for m in ("random", "recipe"):
                assert (prob, b, m) in keys
    # manual needs a learning rate: it runs on the synthetic problem only
    assert ("synthetic-b0.5", 3.0, "manual") in keys and ("rosenbrock-mf", 3.0, "manual") not in keys
    for row in rows:
        assert int(row["seeds"]) == 3
        mean, med, mx = float(row["mean_regret"]), float(row["median_regret"]), float(row["max_regret"])
        assert med <= mx + 1e-12 and mean <= mx + 1e-12 and math.isfinite(mean)
    # more budget never hurts random search on the same seeds (its answers only improve)
    rnd = {float(r["budget"]): float(r["mean_regret"]) for r in rows
           if r["problem"] == "rosenbrock-mf" and r["method"] == "random"}
    assert rnd[10.0] <= rnd[1.5] + 1e-12
    assert (out / "report.md").read_text().count("## ") >= 3
    assert (out / "regret.png").stat().st_size > 0


@pytest.mark.parametrize("name", ["rosenbrock-mf", "hartmann-mf"])
def test_test_functions_reach_their_known_optimum_at_full_fidelity(name: str) -> None:
    p = problems.make_problem(name)
    opt = {"rosenbrock-mf": [1.0] * 4,
           "hartmann-mf": [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]}[name]
    cfg = dict(zip(p.space.names, opt))
    assert p.truth(cfg) == pytest.approx(p.best, abs=1e-4)
    # a lower fidelity gives a different value (the fidelities matter)
    assert p.evaluate(cfg, "50k", 0, 10) != pytest.approx(p.truth(cfg), abs=1e-6)


@pytest.mark.parametrize("method", ["random", "hyperband", "bohb", "dehb", "smac_mf",
                                    "optuna_tpe_hyperband", "optuna_asha"])
def test_methods_outside_budget_aware_answer_alike_whatever_budget_they_are_told(method: str) -> None:
    """The suite reads one long trajectory at every budget for these methods: that is only the
    study of each budget if their decisions never depend on the budget they are told."""
    from jfhpo.optimizers.base import get_optimizer
    from jfhpo.stopping.factory import build_rules

    run = _load("run")
    p = problems.make_problem("synthetic-b0.5")
    spec = run.method_table(p.ladder.target.name)[method]
    assert spec["optimizer"] not in run.BUDGET_AWARE

    def answers(budget: float) -> list[tuple[float, float]]:
        opt = get_optimizer(spec["optimizer"])(spec["options"])
        rules = build_rules({}) if spec["stopping"] else None
        traj = loop.trajectory(p, opt, 1, budget * p.full_cost, rules, spec["reuse"], 40)
        return [traj.result_at(b * p.full_cost) for b in (1.5, 3.0)]

    assert answers(3.0) == answers(10.0)


def test_jfhpo_reads_the_budget_it_is_told() -> None:
    """jfhpo plans with the budget (its verification and end-game), so the suite runs one study
    per budget for it: told 3 target runs, its answer at 3 differs from a 10-run study's there
    on some seed."""
    from jfhpo.optimizers.base import get_optimizer
    from jfhpo.stopping.factory import build_rules

    run = _load("run")
    assert "jfhpo" in run.BUDGET_AWARE
    p = problems.make_problem("synthetic-b0.5")
    differ = 0
    for seed in range(2):
        got = []
        for budget in (3.0, 10.0):
            opt = get_optimizer("jfhpo")({**run.FAST})
            traj = loop.trajectory(p, opt, seed, budget * p.full_cost, build_rules({}), True, 40)
            got.append(traj.result_at(3.0 * p.full_cost))
        differ += got[0] != got[1]
    assert differ
