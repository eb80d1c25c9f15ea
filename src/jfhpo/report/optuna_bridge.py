"""Our study in Optuna's terms: distributions for the search space, trials for the runs.

Two readers use it: the HTML report, which hands the runs to Optuna's maintained importance
evaluators (fANOVA) instead of a hand-written estimate, and ``jfhpo export --format optuna``, which
writes the runs as an Optuna journal that optuna and optuna-dashboard open. Optuna (and, for
fANOVA, scikit-learn) come with the ``report`` extra; they are imported only when called.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jfhpo.results import Outcome, RunResult, StudyResults
from jfhpo.space import CategoricalParam, FloatParam, IntParam, SearchSpace

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial


class OptunaMissing(RuntimeError):
    """Optuna (or scikit-learn for fANOVA) is not installed: install jfhpo[report]."""


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - the report extra installs it
        raise OptunaMissing("this needs optuna: pip install 'jfhpo[report]'") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """The Optuna distribution of each parameter of ``space`` (same ranges, same log scale)."""
    optuna = _optuna()
    out: dict[str, BaseDistribution] = {}
    for p in space.params:
        if isinstance(p, FloatParam):
            out[p.name] = optuna.distributions.FloatDistribution(p.low, p.high, log=p.log)
        elif isinstance(p, IntParam):
            out[p.name] = optuna.distributions.IntDistribution(int(p.low), int(p.high),
                                                               log=bool(p.log))
        elif isinstance(p, CategoricalParam):
            out[p.name] = optuna.distributions.CategoricalDistribution(list(p.choices))
        else:  # pragma: no cover - the space has no other kinds
            raise TypeError(f"parameter '{p.name}': unknown kind {type(p).__name__}")
    return out


_STATE = {
    Outcome.FINISHED: "COMPLETE", Outcome.EXTENDED: "COMPLETE", Outcome.STOPPED: "PRUNED",
    Outcome.FAILED: "FAIL", Outcome.RUNNING: "RUNNING", Outcome.INTERRUPTED: "FAIL",
}


def run_trial(run: RunResult, dists: Mapping[str, BaseDistribution]) -> FrozenTrial:
    """One run as an Optuna trial: its searched parameters, its score as the value, its learning
    curve as intermediate values (step -> objective), its fidelity and effective configuration as
    user attributes. A stopped run is PRUNED (Optuna's word for it), a failed one FAIL."""
    optuna = _optuna()
    state = getattr(optuna.trial.TrialState, _STATE[run.outcome])
    value = run.score if state == optuna.trial.TrialState.COMPLETE else None
    if state == optuna.trial.TrialState.COMPLETE and (value is None or not math.isfinite(value)):
        state, value = optuna.trial.TrialState.FAIL, None
    attrs: dict[str, Any] = {
        "jfhpo_run_id": run.run_id, "model": run.model, "steps": run.steps_done,
        "phase": run.phase.value, "cost": run.cost, "outcome": run.outcome.value,
        "effective_config": {k: v for k, v in run.effective_config.items()},
    }
    if run.stop_rule:
        attrs["stop_rule"] = run.stop_rule
        attrs["stop_message"] = run.stop_message
    if run.error:
        attrs["error"] = run.error
    return optuna.trial.create_trial(
        params={k: run.config[k] for k in dists if k in run.config},
        distributions={k: d for k, d in dists.items() if k in run.config},
        value=value, state=state, user_attrs=attrs,
        intermediate_values={int(s): float(v) for s, v in run.curve if math.isfinite(v)},
    )


@dataclass(frozen=True)
class Importance:
    """Parameter importances (shares summing to 1) at one fidelity, and how they were computed."""

    model: str
    steps: int
    n_trials: int
    evaluator: str
    importances: tuple[tuple[str, float], ...]  # most important first


def importance_trials(res: StudyResults) -> tuple[str, int, list[tuple[Mapping[str, Any], float]]]:
    """The fidelity (model, steps) with the most runs that reached it, and each such run's
    objective at that step. Scores of different fidelities are not comparable, so importance is
    measured on one: the one with the most evidence (ties: the larger fidelity)."""
    reach: Counter[tuple[str, int]] = Counter()
    for r in res.runs:
        if r.outcome is Outcome.FAILED:
            continue
        for s, _ in r.curve:
            reach[(r.model, s)] += 1
    if not reach:
        return "", 0, []
    model, steps = max(reach, key=lambda k: (reach[k], res.models.index(k[0]), k[1]))
    rows = []
    for r in res.runs:
        if r.model == model and r.outcome is not Outcome.FAILED:
            at = dict(r.curve).get(steps)
            if at is not None and math.isfinite(at):
                rows.append((r.config, at))
    return model, steps, rows


def param_importance(res: StudyResults, space: SearchSpace, seed: int = 0) -> Importance | None:
    """fANOVA importances (Optuna's ``FanovaImportanceEvaluator``) over the runs of the
    best-covered fidelity; None with fewer than 4 runs there or no spread in their scores."""
    model, steps, rows = importance_trials(res)
    values = [v for _, v in rows]
    if len(rows) < 4 or max(values) == min(values):
        return None
    optuna = _optuna()
    try:
        import sklearn  # noqa: F401  (fANOVA's random forest)
    except ImportError as exc:  # pragma: no cover - the report extra installs it
        raise OptunaMissing("fANOVA importance needs scikit-learn: pip install 'jfhpo[report]'") \
            from exc
    dists = distributions(space)
    study = optuna.create_study(direction="maximize" if res.mode == "max" else "minimize")
    for config, value in rows:
        study.add_trial(optuna.trial.create_trial(
            params={k: config[k] for k in dists}, distributions=dists, value=float(value)))
    imp = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed))
    return Importance(model, steps, len(rows), "fANOVA (optuna.importance.FanovaImportanceEvaluator)",
                      tuple((k, float(v)) for k, v in imp.items()))


def trials(res: StudyResults, space: SearchSpace) -> Sequence[FrozenTrial]:
    """Every run of the study as an Optuna trial, in run order."""
    dists = distributions(space)
    return [run_trial(r, dists) for r in res.runs]
