"""The budget ledger: one formula for what a study spent, what is committed and what it can pay.

``Study.view`` (and so every optimizer), the tuner's gate before each launch, the confirmation
planner and ``AskTell.ask`` all read the same ``Ledger``, so they cannot disagree about the budget.

The unit is the budget's measure, end to end:

* ``compute``: spent = the sum of the costs of finished segments (completed, stopped, failed);
  committed = what segments in flight are still expected to cost (the cost model); a segment
  may start when spent + committed + its expected cost fits.
* ``wall``: spent = wall-clock seconds the study has run; segments in flight run side by side, so
  they commit nothing more; a segment may start when spent + its expected wall time fits.

While searching, ``total`` is the budget minus the confirmation reserve; in confirmation, the
whole budget. The budget is a cap: a segment whose expected cost does not fit is not started.
Before the cost model is calibrated (no segment measured yet) costs are in relative units and
every segment is affordable: the first segments are what measure the costs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from jfhpo.cost import CostModel
from jfhpo.records import Extend, Phase, SegmentStatus, Start, Suggestion
from jfhpo.view import StudyView

__all__ = ["FINISHED", "RESERVE_MARGIN", "Ledger", "committed", "confirm_reserve", "make_ledger", "spent",
           "suggestion_cost"]

#: statuses whose cost is spent (an interrupted segment's cost is reported apart and re-run)
FINISHED = (SegmentStatus.COMPLETED, SegmentStatus.STOPPED, SegmentStatus.FAILED)
LIVE = (SegmentStatus.QUEUED, SegmentStatus.RUNNING)


@dataclass(frozen=True)
class Ledger:
    """What the current phase may spend, has spent and has committed, in the budget's unit."""

    total: float
    spent: float
    committed: float = 0.0
    measure: str = "compute"
    calibrated: bool = True

    @property
    def left(self) -> float:
        return max(self.total - self.spent - self.committed, 0.0)

    def can_pay(self, cost: float) -> bool:
        """Whether a segment expected to cost ``cost`` may start now."""
        if not self.calibrated:
            return self.total - self.spent - self.committed > 0
        if not math.isfinite(cost):
            return False
        return self.spent + self.committed + max(cost, 0.0) <= self.total + 1e-9


def spent(segments: Iterable[tuple[SegmentStatus, float | None]], measure: str,
          wall_used: float) -> float:
    """Budget spent: finished segments' costs (compute) or the study's wall-clock time (wall)."""
    if measure == "wall":
        return float(wall_used)
    return float(sum(c or 0.0 for status, c in segments if status in FINISHED))


def committed(in_flight: Iterable[tuple[str, int, int]], cost: CostModel, measure: str) -> float:
    """What segments in flight, (model, start_step, target_step), are still expected to cost."""
    if measure == "wall":
        return 0.0
    return float(sum(cost.between(m, a, b) for m, a, b in in_flight))


#: what the reserve holds on top of the confirmation runs' predicted cost, once it is measured
RESERVE_MARGIN = 0.15


def confirm_reserve(total: float, fraction: float, n_runs: int, cost: CostModel, target: str,
                    max_steps: int, measure: str = "compute", workers: int = 1) -> float:
    """Budget held back from the search for ``n_runs`` confirmation runs on the target.

    Before the target's costs are measured: the configured share, or one run at the cost
    model's prediction if that is more (proxy-only extrapolations of every run over-reserve and
    starve the search, but without one run held back the search can leave nothing to confirm
    with). Once they are measured: what the ``n_runs`` runs will cost, plus ``RESERVE_MARGIN``
    for segments that cost more than predicted (a busy machine), not the configured share when
    that is larger (it would be left unspent when the study ends; the search gets it).
    Never so many runs that the search is left nothing, and once measured never more than half
    the budget pays for (at least one): at a few target runs of budget two confirmation runs
    left the search nothing after its first target run (Hyperband through ``AskTell`` stopped
    after one trial at 3 target runs of budget), and the confirmation is topped up when the
    search leaves more. A budget that cannot pay for one run beside the search keeps the
    configured share."""
    if n_runs <= 0:
        return 0.0
    need = 0.0
    if cost.calibrated:
        per_run = cost.segment(target, max_steps)
        # unmeasured target: one run; and always leave the search part of the budget
        runs = n_runs if cost.measured(target) else 1
        if per_run > 0:
            runs = min(runs, max(math.ceil(total / per_run - 1e-9) - 1, 0))
            if cost.measured(target):
                half = math.floor(total / (2.0 * per_run * (1.0 + RESERVE_MARGIN)) + 1e-9)
                runs = min(runs, max(half, 1))
        waves = math.ceil(runs / max(workers, 1)) if measure == "wall" else runs
        need = waves * per_run
        if need > 0 and cost.measured(target):
            return min(need * (1.0 + RESERVE_MARGIN), total)
    return max(total * fraction, need)


def make_ledger(*, budget: float, measure: str, phase: Phase, reserve: float,
                segments: Iterable[tuple[SegmentStatus, float | None]],
                in_flight: Iterable[tuple[str, int, int]], cost: CostModel,
                wall_used: float) -> Ledger:
    """The ledger of a study from its stored segments (status, cost in the budget's unit) and the
    segments in flight."""
    total = budget - reserve if phase is Phase.SEARCH else budget
    return Ledger(total=max(total, 0.0), spent=spent(segments, measure, wall_used),
                  committed=committed(in_flight, cost, measure) if cost.calibrated else 0.0,
                  measure=measure,
                  calibrated=cost.calibrated)


def suggestion_cost(view: StudyView, s: Suggestion) -> float:
    """Expected cost of carrying out ``s`` (a start, or an extension from the run's checkpoint),
    from the view's cost model: the number the optimizer and the gate both use."""
    if isinstance(s, Start):
        return view.cost.segment(s.model, min(int(s.steps), view.steps.max_steps))
    if isinstance(s, Extend):
        run = view.run(s.run_id)
        return view.cost.between(run.model, run.steps_done, min(int(s.steps), view.steps.max_steps))
    raise TypeError(f"not a suggestion: {s!r}")
