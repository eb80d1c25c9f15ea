"""Hyperband: successive halving over steps on one model, promotions resume checkpoints.

Brackets follow Li et al.: bracket ``s`` starts ``n_s`` configurations at ``max * eta^-s`` steps
and promotes the best ``1/eta`` of each rung to the next, up to the full budget. Promotions are
``Extend`` suggestions, so a promoted run continues from its checkpoint instead of retraining.

The optimizer keeps no state: bracket membership is the order in which its runs were created, and
every rung's state follows from the runs' records, so a resumed study continues exactly. Brackets
are filled in turn; while a rung waits for its last members, the next bracket starts, so parallel
workers stay busy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jfhpo.optimizers.base import Optimizer, OptimizerError, register_optimizer
from jfhpo.records import Extend, Phase, RunRecord, Start, Suggestion
from jfhpo.view import StudyView


def bracket_plan(rungs: list[int], eta: int) -> list[list[tuple[int, int]]]:
    """For each bracket (most exploratory first): [(n_configs, steps)] per rung.

    ``rungs`` are the ascending step rungs (``StepBudget.rungs()``).
    """
    s_max = len(rungs) - 1
    plans = []
    for s in range(s_max, -1, -1):
        n = math.ceil((s_max + 1) / (s + 1) * eta**s)
        plan = []
        for i in range(s + 1):
            plan.append((max(int(n * eta ** (-i)), 1), rungs[s_max - s + i]))
        plans.append(plan)
    return plans


@dataclass
class _Bracket:
    plan: list[tuple[int, int]]
    members: list[RunRecord] = field(default_factory=list)

    def __repr__(self) -> str:
        rows = []
        for n, steps in self.plan:
            at = sum(1 for m in self.members if m.steps_done >= steps)
            rows.append(f"{steps:>6} steps: {at}/{n}")
        return "Bracket(\n  " + "\n  ".join(rows) + "\n)"


def _score_at(run: RunRecord, steps: int) -> float:
    for s, v in run.curve:
        if s == steps:
            return v
    return run.score if run.score is not None else -math.inf


@register_optimizer
class Hyperband(Optimizer):
    """Options: ``model`` (default: the target), ``eta`` (default: the study's steps.eta)."""

    name = "hyperband"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        bad = set(self.options) - {"model", "eta"}
        if bad:
            raise OptimizerError(f"optimizer.options: unknown key(s) {sorted(bad)} for hyperband; "
                                 "valid: ['eta', 'model']")

    def brackets(self, view: StudyView) -> list[_Bracket]:
        """Rebuild the brackets from the study's runs (creation order = membership order)."""
        eta = int(self.options.get("eta", view.steps.eta))
        plans = bracket_plan(view.steps.rungs(), eta)
        model = self._model(view)
        mine = [r for r in view.runs if r.model == model and r.phase is Phase.SEARCH]
        out: list[_Bracket] = []
        i = 0
        while i < len(mine) or not out or len(out[-1].members) == out[-1].plan[0][0]:
            b = _Bracket(plans[len(out) % len(plans)])
            take = b.plan[0][0]
            b.members = mine[i:i + take]
            i += take
            out.append(b)
            if len(b.members) < take:
                break
        return out

    def _promotion(self, b: _Bracket) -> tuple[Extend | None, set[int]]:
        """The next promotion due in ``b`` (or None), and the runs that may still be promoted
        (members of the undecided rung, or runs chosen but not yet extended)."""
        members = list(b.members)
        if len(members) < b.plan[0][0]:
            return None, {m.run_id for m in members}
        for i in range(len(b.plan) - 1):
            steps = b.plan[i][1]
            n_next, next_steps = b.plan[i + 1]
            decided = all(
                not m.busy and (m.steps_done >= steps or m.stopped is not None or m.failed)
                for m in members
            )
            if not decided:
                return None, {m.run_id for m in members}
            ranked = sorted(
                (m for m in members
                 if m.steps_done >= steps and m.stopped is None and not m.failed),
                key=lambda m: (_score_at(m, steps), -m.run_id), reverse=True,
            )
            chosen = ranked[:n_next]
            for m in chosen:
                if m.steps_done < next_steps and not m.busy:
                    return Extend(m.run_id, next_steps), {c.run_id for c in chosen}
            members = chosen
        return None, set()

    def suggest(self, view: StudyView) -> Suggestion | None:
        model = self._model(view)
        for b in self.brackets(view):
            if len(b.members) < b.plan[0][0]:
                return Start(view.space.sample(view.rng()), model, b.plan[0][1])
            promo, _ = self._promotion(b)
            if promo is not None:
                return promo
        return None  # pragma: no cover - brackets() always ends with an unfilled bracket

    def may_extend(self, view: StudyView, run: RunRecord) -> bool:
        if run.stopped is not None or run.failed or run.steps_done >= view.steps.max_steps:
            return False
        for b in self.brackets(view):
            if any(m.run_id == run.run_id for m in b.members):
                _, eligible = self._promotion(b)
                return run.run_id in eligible
        return False
