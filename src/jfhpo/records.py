"""Frozen records and enums shared by every part of jfhpo.

Nothing here imports anything else of ours: optimizers, stopping rules, backends and storage all
speak in these types, so they can be tested in isolation and passed between processes.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: How many evaluations near a run's end its ``end_score`` averages (the final one included).
END_EVALS = 3

#: Canonical metric names every backend reports (backend-native names are mapped onto these).
CANONICAL_METRICS: tuple[str, ...] = (
    "reward",
    "kl",
    "entropy",
    "grad_norm",
    "response_length",
    "truncation",
    "zero_std_frac",
    "clip_frac",
    "lr",
    "loss",
)


class SegmentStatus(enum.IntEnum):
    """Life cycle of a segment (one execution of a run from step a to step b)."""

    QUEUED = 0
    RUNNING = 1
    COMPLETED = 2  # reached its target step
    STOPPED = 3  # a stopping rule ended it early; its observations still count
    FAILED = 4  # the trainer raised or the worker died
    INTERRUPTED = 5  # the study process died while it ran; it is re-run on resume


class Phase(str, enum.Enum):
    """Which stage of the study a suggestion belongs to."""

    SEARCH = "search"
    CONFIRM = "confirm"


class Verdict(enum.Enum):
    """What the tuner tells a segment after an observation (scheduler verbs)."""

    CONTINUE = "continue"
    STOP = "stop"


@dataclass(frozen=True)
class Fidelity:
    """A point on the two fidelity axes: a rung of the model ladder and an RL step budget."""

    model: str
    steps: int


@dataclass(frozen=True)
class Start:
    """Suggestion: start a new run of ``config`` on ``model`` and train it to ``steps``."""

    config: Mapping[str, Any]
    model: str
    steps: int
    phase: Phase = Phase.SEARCH


@dataclass(frozen=True)
class Extend:
    """Suggestion: continue run ``run_id`` from its checkpoint up to ``steps`` (total, not extra)."""

    run_id: int
    steps: int
    phase: Phase = Phase.SEARCH


Suggestion = Start | Extend


@dataclass(frozen=True)
class Observation:
    """Metrics a run reported at one (true) training step."""

    run_id: int
    segment_id: int
    step: int
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class StopReason:
    """Why a stopping rule ended a run: the rule's name and a sentence for people."""

    rule: str
    message: str


@dataclass(frozen=True)
class SegmentRecord:
    """One segment as stored: from ``start_step`` towards ``target_step``."""

    segment_id: int
    run_id: int
    suggestion_id: int
    start_step: int
    target_step: int
    status: SegmentStatus
    end_step: int | None = None
    score: float | None = None
    cost: float | None = None
    reason: StopReason | None = None
    error: str | None = None
    wall: float | None = None  # wall-clock seconds it ran (the cost unit of wall budgets)


@dataclass(frozen=True)
class RunRecord:
    """A run: one configuration trained on one model as one lineage of steps.

    ``steps_done`` is the last step reached by a completed or stopped segment; ``score`` the
    objective at that step (None while nothing was evaluated). ``stopped`` tells whether a stopping
    rule ended the run, which makes it ineligible for extension.
    """

    run_id: int
    config: Mapping[str, Any]
    model: str
    phase: Phase
    steps_done: int = 0
    score: float | None = None
    cost: float = 0.0
    stopped: StopReason | None = None
    failed: bool = False
    pending_steps: int | None = None  # target of a queued or running segment, if any
    curve: tuple[tuple[int, float], ...] = field(default_factory=tuple)  # (step, objective)
    checkpoint_step: int | None = None

    @property
    def busy(self) -> bool:
        """True while a segment of this run is queued or running."""
        return self.pending_steps is not None

    def collapsed(self) -> bool:
        """A curve that ended more than half its range below its peak and by more than a fifth
        of the peak (scores in the objective's orientation, higher better): a diverged run
        that no stopping rule ended (confirmation runs are never stopped)."""
        vals = [v for _, v in sorted(self.curve) if math.isfinite(v)]
        if self.score is not None and math.isfinite(self.score):
            vals.append(float(self.score))
        if len(vals) < 2:
            return False
        peak, last = max(vals), vals[-1]
        return peak - last > 0.5 * (peak - min(vals)) and peak - last > 0.2 * abs(peak)

    def rose_and_collapsed(self) -> bool:
        """``collapsed`` after the curve first rose above its first evaluation: a run that
        learned, then diverged (a score that only falls, say a loss-like one, is not one)."""
        if not self.collapsed():
            return False
        vals = [v for _, v in sorted(self.curve) if math.isfinite(v)]
        return bool(vals) and max(vals) > vals[0]

    def end_score(self) -> float | None:
        """The run's score for ranking answers: the mean of its last evaluations, at most three,
        all in the final third of its steps, the final score among them (the final score alone
        when no other evaluation falls there; None without a score). Why: one evaluation is
        noisy (a finite eval set, sampled completions), and the highest of several noisy final
        scores is biased up, so a study answering by it often picks a lucky draw over a better
        configuration; three evaluations near the end cut the noise's sd by up to 1.7x, at the
        price of a little of a still-rising curve's last slope, which runs of equal length share."""
        if self.score is None or not math.isfinite(self.score):
            return self.score
        near = [v for s, v in sorted(self.curve)
                if 3 * s >= 2 * self.steps_done and s < self.steps_done and math.isfinite(v)]
        tail = [*near[max(0, len(near) - (END_EVALS - 1)):], float(self.score)]
        return sum(tail) / len(tail)

    def finished_at(self, model: str, steps: int) -> bool:
        """True when this run trained ``model`` to ``steps`` or more and is settled there: no
        segment pending, not failed, not ended by a stopping rule. Such a run is its
        configuration's confirmation on that model (the study, the confirmation planner and the
        optimizers all ask this of the target at the full budget)."""
        return (self.model == model and self.steps_done >= steps and not self.busy
                and not self.failed and self.stopped is None)
