"""A read-only view of a study, the only thing optimizers and stopping rules see.

The view is rebuilt from storage whenever the tuner asks for a decision, so decision logic holds no
state that a crash could lose: the same stored events always give the same view, and the same view
and seed always give the same decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from jfhpo.cost import CostModel, SegmentCost
from jfhpo.fidelity import ModelLadder, StepBudget
from jfhpo.records import Observation, Phase, RunRecord
from jfhpo.space import SearchSpace

if TYPE_CHECKING:
    from jfhpo.planning.ledger import Ledger


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

    The view is frozen all the way down: ``observations`` is a read-only mapping of tuples, copied
    when the view is made, so a view kept by a decision does not change under it.

    Budget figures come from the budget ledger (``jfhpo.planning.ledger``), in the budget's unit:
    ``budget_total`` is what this phase may spend (the search's share while searching),
    ``budget_spent`` what finished segments spent, ``budget_committed`` what segments in flight are
    still expected to cost. ``cost`` is THE cost model of the study (``jfhpo.cost``), fitted on
    ``segment_costs``.
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
    segment_costs: tuple[SegmentCost | tuple[Any, ...], ...] = ()
    budget_committed: float = 0.0
    measure: str = "compute"  # the budget's unit: compute-seconds or wall-clock seconds
    cost: CostModel = None  # type: ignore[assignment]  # built from segment_costs when None
    #: the backend's recipe over the searched hyperparameters (what the study confirms against),
    #: or None: the configuration users already train with, a place to start a search from
    recipe: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.cost is None:
            object.__setattr__(self, "cost", CostModel(self.ladder, self.segment_costs))
        if not isinstance(self.observations, MappingProxyType) or any(
                not isinstance(v, tuple) for v in self.observations.values()):
            frozen = {k: tuple(v) for k, v in self.observations.items()}
            object.__setattr__(self, "observations", MappingProxyType(frozen))

    def rng(self, salt: int = 0) -> np.random.Generator:
        """The RNG for the next decision: a function of the seed and the decision count only."""
        return np.random.default_rng([self.seed, self.n_suggestions, salt])

    @property
    def budget_left(self) -> float:
        """What this phase can still start: total minus spent minus committed (never negative)."""
        return max(self.budget_total - self.budget_spent - self.budget_committed, 0.0)

    @property
    def ledger(self) -> Ledger:
        """The budget ledger of this view (what the tuner's gate and ``AskTell`` check)."""
        from jfhpo.planning.ledger import Ledger

        return Ledger(self.budget_total, self.budget_spent, self.budget_committed, self.measure,
                      self.cost.calibrated)

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
