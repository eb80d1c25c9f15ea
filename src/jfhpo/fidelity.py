"""The two fidelity axes: a model ladder (smallest proxy to target) and RL step budgets."""

from __future__ import annotations

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
    grid of the cost-aware optimizer.
    """

    min_steps: int
    max_steps: int
    eta: int = 3

    def __post_init__(self) -> None:
        if self.min_steps < 1:
            raise LadderError(f"steps.min: must be at least 1, got {self.min_steps}")
        if self.max_steps < self.min_steps:
            raise LadderError(
                f"steps.max ({self.max_steps}) must be at least steps.min ({self.min_steps})"
            )
        if self.eta < 2:
            raise LadderError(f"steps.eta: must be at least 2, got {self.eta}")

    def rungs(self) -> list[int]:
        """Step rungs max, max/eta, max/eta^2, ... down to min (ascending)."""
        out = [self.max_steps]
        while True:
            nxt = round(out[-1] / self.eta)
            if nxt < self.min_steps or nxt == out[-1]:
                break
            out.append(nxt)
        return sorted(out)
