"""The methods of the comparison and the study files they run as.

Every method except ``recipe`` is a study of the same workload that differs only in its
``optimizer``, ``stopping`` and ``checkpoints`` sections; all run through ``jfhpo.tuner.run_study``
with the same executor, workers and budget. ``recipe`` searches nothing: its "choice" is the
backend's recipe configuration (``Backend.recipe()``), which only the benchmark knows, so it is a
benchmark-level method rather than an optimizer.

Early stopping from training dynamics is part of JF-HPO's method, not of the baselines': the
baselines run with ``stopping: false`` (as their papers and libraries do), JF-HPO and its ablations
with the workload's default rules (except the "without early stopping" ablation).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from jfhpo.backends.base import get_backend
from jfhpo.optimizers.base import Optimizer, register_optimizer
from jfhpo.records import Start, Suggestion
from jfhpo.view import StudyView


@dataclass(frozen=True)
class Method:
    """A row of the comparison: an optimizer with its options and the study sections it changes."""

    name: str
    optimizer: str | None  # None: no search (the recipe)
    options: Mapping[str, Any] = field(default_factory=dict)
    stopping: bool = False  # True: the workload's default rules
    reuse: bool = True
    kind: str = "baseline"  # baseline | jfhpo | ablation
    note: str = ""


def methods(target: str) -> dict[str, Method]:
    """Every method, by name, for a ladder whose target model is ``target``."""
    rows = [
        Method("recipe", None, note="the backend's recipe configuration, no search"),
        Method("random", "random", note="random search, full fidelity on the target"),
        Method("hyperband", "hyperband", note="Hyperband, steps only, on the target"),
        Method("bohb", "bohb", note="BOHB (ours), steps only, on the target"),
        Method("optuna_tpe_hyperband", "optuna_tpe_hyperband",
               note="Optuna TPE + HyperbandPruner; its budget = steps on the target"),
        Method("optuna_asha", "optuna_asha",
               note="Optuna random + SuccessiveHalvingPruner (ASHA); its budget = steps on the target"),
        Method("smac_mf", "smac_mf", note="SMAC3 MultiFidelityFacade; its budget = steps on the target"),
        Method("dehb", "dehb", note="DEHB; its budget = steps on the target"),
        Method("jfhpo", "jfhpo", stopping=True, kind="jfhpo",
               note="JF-HPO (climb: smallest proxy, favourite verified on the target), early "
                    "stopping, checkpoint reuse"),
        Method("jfhpo_ladder", "jfhpo", {"policy": "ladder"}, stopping=True, kind="ablation",
               note="the former default: every rung, transfer audit up the ladder"),
        Method("jfhpo_fixed_proxy", "jfhpo", {"policy": "fixed_proxy"}, stopping=True,
               kind="ablation", note="the paper's policy: one fixed proxy (the smallest)"),
        Method("jfhpo_no_proxy", "jfhpo", {"policy": "fixed_proxy", "proxy": target},
               stopping=True, kind="ablation", note="without the proxy: steps only, on the target"),
        Method("jfhpo_no_reuse", "jfhpo", stopping=True, reuse=False, kind="ablation",
               note="without checkpoint reuse (extensions retrain from step 0)"),
        Method("jfhpo_no_stopping", "jfhpo", stopping=False, kind="ablation",
               note="without early stopping"),
    ]
    return {m.name: m for m in rows}


QUICK_METHODS = ("recipe", "random", "hyperband", "bohb", "jfhpo")


def base_spec(workload: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The workload's example study as a dict, with the benchmark's ``overrides`` merged in."""
    data = yaml.safe_load(get_backend(workload).example_study())
    for key, value in (overrides or {}).items():
        if isinstance(value, Mapping) and isinstance(data.get(key), Mapping):
            data[key] = {**data[key], **value}
        else:
            data[key] = copy.deepcopy(value)
    return dict(data)


def study_spec(base: Mapping[str, Any], method: Method, seed: int, budget: float, measure: str,
               workers: int) -> dict[str, Any]:
    """The study file (as a dict) of ``method`` with HPO seed ``seed``.

    The whole budget is search: confirmation is done by the benchmark afterwards, the same way
    for every method (``confirm.top_k: 0``), and is not counted in the budget.
    """
    assert method.optimizer is not None
    data = copy.deepcopy(dict(base))
    data["name"] = f"{method.name}-s{seed}"
    data["seed"] = seed
    data["optimizer"] = {"name": method.optimizer, "options": dict(method.options)}
    data["stopping"] = data.get("stopping", {}) if method.stopping else False
    if data["stopping"] is None:
        data["stopping"] = {}
    data["checkpoints"] = {**(data.get("checkpoints") or {}), "reuse": method.reuse}
    data["budget"] = {"seconds": float(budget), "measure": measure}
    data["workers"] = workers
    data["confirm"] = {"top_k": 0, "fraction": 0.0, "include_recipe": False}
    return data


def fixed_spec(base: Mapping[str, Any], name: str, seed: int, configs: Sequence[Mapping[str, Any]],
               models: Sequence[str], repeats: int, workers: int) -> dict[str, Any]:
    """A study that trains given configurations on given models at the full step budget
    (confirmation and transfer measurements): no stopping, no confirmation, unlimited budget."""
    data = copy.deepcopy(dict(base))
    data["name"] = name
    data["seed"] = seed
    data["optimizer"] = {"name": FixedList.name, "options": {
        "configs": [dict(c) for c in configs], "models": list(models), "repeats": repeats}}
    data["stopping"] = False
    data["budget"] = {"seconds": 1e12, "measure": "compute"}
    data["workers"] = workers
    data["confirm"] = {"top_k": 0, "fraction": 0.0, "include_recipe": False}
    return data


@register_optimizer
class FixedList(Optimizer):
    """Benchmark helper: start each (configuration, model) ``repeats`` times at the full step
    budget, in order, then stop. Each start is a new run, so repeats get distinct training seeds
    (a run's seed is a function of the study seed and the run's index)."""

    name = "bench_fixed_list"

    def suggest(self, view: StudyView) -> Suggestion | None:
        configs = list(self.options["configs"])
        models = list(self.options["models"])
        plan = [(c, m) for c in configs for m in models for _ in range(int(self.options["repeats"]))]
        i = len(view.runs)
        if i >= len(plan):
            return None
        cfg, model = plan[i]
        return Start(dict(cfg), model, view.steps.max_steps)

    def may_extend(self, view: StudyView, run: Any) -> bool:
        return False
