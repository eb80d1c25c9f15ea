"""A read-only view of a study, the only thing optimizers and stopping rules see.

The view is rebuilt from storage whenever the tuner asks for a decision, so decision logic holds no
state that a crash could lose: the same stored events always give the same view, and the same view
and seed always give the same decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jfhpo.fidelity import ModelLadder, StepBudget
from jfhpo.records import Observation, Phase, RunRecord
from jfhpo.space import SearchSpace


@dataclass(frozen=True)
class TransferRecord:
    """How well a smaller model ranks configurations compared with a larger one."""

    small: str
    large: str
    n_configs: int
    n_pairs: int
    spearman: float
    kendall: float


@dataclass(frozen=True)
class StudyView:
    """Everything a decision may look at.

    Scores in ``runs`` are oriented so that higher is better, whatever the objective's mode.
    ``observations`` holds, per run, every stored observation of its completed, stopped and
    running segments in step order (interrupted segments are left out: they are re-run).
    """

    space: SearchSpace
    ladder: ModelLadder
    steps: StepBudget
    seed: int
    objective: str
    runs: tuple[RunRecord, ...]
    observations: Mapping[int, Sequence[Observation]] = field(default_factory=dict)
    budget_total: float = float("inf")
    budget_spent: float = 0.0
    n_suggestions: int = 0  # suggestions made so far: seeds the next decision's RNG
    workers: int = 1
    phase: Phase = Phase.SEARCH
    transfer: tuple[TransferRecord, ...] = ()
    segment_costs: tuple[tuple[str, int, float], ...] = ()  # (model, steps run, seconds)

    def rng(self, salt: int = 0) -> np.random.Generator:
        """The RNG for the next decision: a function of the seed and the decision count only."""
        return np.random.default_rng([self.seed, self.n_suggestions, salt])

    @property
    def budget_left(self) -> float:
        return max(self.budget_total - self.budget_spent, 0.0)

    def run(self, run_id: int) -> RunRecord:
        for r in self.runs:
            if r.run_id == run_id:
                return r
        raise KeyError(run_id)

    def pending(self) -> list[RunRecord]:
        """Runs with a queued or running segment."""
        return [r for r in self.runs if r.busy]

    def finished(self, model: str | None = None) -> list[RunRecord]:
        """Runs with a score that are not busy (optionally only those on ``model``)."""
        return [
            r
            for r in self.runs
            if r.score is not None and not r.busy and (model is None or r.model == model)
        ]

    def config_of(self, run_id: int) -> Mapping[str, Any]:
        return self.run(run_id).config
