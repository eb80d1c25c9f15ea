"""The two fidelity axes: a model ladder (smallest proxy to target) and RL step budgets."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class LadderError(ValueError):
    """The model ladder or a step setting is invalid; the message names the field."""


@dataclass(frozen=True)
class ModelRung:
    """One model of the ladder.

    ``params`` is the parameter count (the surrogate's model-size feature is log10 of it);
    ``cost`` a relative cost hint per step (target = whatever the user says; only ratios matter);
    ``build`` holds whatever the backend needs to build or find the model (a path, an HF config,
    a ladder size name, GPU counts for VeRL); ``resources`` what its segments need from the pool.
    """

    name: str
    params: float
    cost: float = 1.0
    build: Mapping[str, Any] = field(default_factory=dict)
    #: what one segment on this rung needs from the executor's pool ({"gpus": 2, "cpus": 4, ...})
    resources: Mapping[str, float] = field(default_factory=dict)

    @property
    def size_feature(self) -> float:
        return math.log10(max(self.params, 1.0))


class ModelLadder:
    """Models of one family ordered from the smallest proxy to the target (the last rung)."""

    def __init__(self, rungs: Sequence[ModelRung]):
        if not rungs:
            raise LadderError("models: the ladder needs at least one model (the target)")
        names = [r.name for r in rungs]
        if len(set(names)) != len(names):
            raise LadderError(f"models: duplicate model names in {names}")
        for r in rungs:
            if not (r.params > 0 and math.isfinite(r.params)):
                raise LadderError(f"models.{r.name}.params: must be a positive number, got {r.params}")
            if not (r.cost > 0 and math.isfinite(r.cost)):
                raise LadderError(f"models.{r.name}.cost: must be a positive number, got {r.cost}")
        self.rungs: tuple[ModelRung, ...] = tuple(sorted(rungs, key=lambda r: r.params))
        if self.rungs[-1].name != rungs[-1].name:
            raise LadderError(
                "models: list the ladder from the smallest proxy to the target; "
                f"'{rungs[-1].name}' is last but '{self.rungs[-1].name}' is larger"
            )

    def __getitem__(self, name: str) -> ModelRung:
        for r in self.rungs:
            if r.name == name:
                return r
        raise LadderError(f"unknown model '{name}'; the ladder has {self.names}")

    def __contains__(self, name: object) -> bool:
        return any(r.name == name for r in self.rungs)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rungs]

    @property
    def target(self) -> ModelRung:
        return self.rungs[-1]

    @property
    def proxies(self) -> tuple[ModelRung, ...]:
        return self.rungs[:-1]

    def index(self, name: str) -> int:
        return self.names.index(self[name].name)


@dataclass(frozen=True)
class StepBudget:
    """RL step budgets: the full budget ``max_steps`` and the smallest useful ``min_steps``.

    ``eta`` is the geometric factor between rungs used by successive halving and by the candidate
    grid of the cost-aware optimizer. ``levels``, when given, are the step rungs themselves (a
    user's natural levels such as 19/53/93 tokens-per-parameter, or multiples of a trainer's save
    interval); ``min_steps`` and ``max_steps`` are then the first and last level (build it with
    ``StepBudget.from_levels``).
    """

    min_steps: int
    max_steps: int
    eta: int = 3
    levels: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.levels:
            lv = self.levels
            for i, n in enumerate(lv):
                if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                    raise LadderError(f"steps.levels[{i}]: must be a whole number of steps >= 1, "
                                      f"got {n!r}")
            if any(b <= a for a, b in itertools.pairwise(lv)):
                raise LadderError(f"steps.levels: must be strictly ascending, got {list(lv)}")
            if (self.min_steps, self.max_steps) != (lv[0], lv[-1]):
                raise LadderError(f"steps.levels {list(lv)} disagree with steps.min "
                                  f"({self.min_steps}) and steps.max ({self.max_steps})")
        if self.min_steps < 1:
            raise LadderError(f"steps.min: must be at least 1, got {self.min_steps}")
        if self.max_steps < self.min_steps:
            raise LadderError(
                f"steps.max ({self.max_steps}) must be at least steps.min ({self.min_steps})"
            )
        if self.eta < 2:
            raise LadderError(f"steps.eta: must be at least 2, got {self.eta}")

    @classmethod
    def from_levels(cls, levels: Sequence[int], eta: int = 3) -> StepBudget:
        """Step budgets given as an explicit list of step counts (ascending)."""
        lv = tuple(levels)
        if not lv:
            raise LadderError("steps.levels: give at least one step count")
        first, last = (lv[0], lv[-1]) if all(isinstance(n, int) for n in lv) else (1, 1)
        return cls(first, last, eta, lv)

    def rungs(self) -> list[int]:
        """The step rungs, ascending: the explicit ``levels``, else max, max/eta, max/eta^2, ...
        down to min."""
        if self.levels:
            return list(self.levels)
        out = [self.max_steps]
        while True:
            nxt = round(out[-1] / self.eta)
            if nxt < self.min_steps or nxt == out[-1]:
                break
            out.append(nxt)
        return sorted(out)
