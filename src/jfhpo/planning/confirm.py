"""The confirmation planner: which configurations are trained on the target at the full budget.

The plan is a function of what the study has recorded (the ranked configurations, the recipe, the
decisions already taken and the budget they leave), so a study killed half-way through planning or
confirming makes the same plan again on resume and adds only what is missing. The budget is a cap
here too: the plan holds as many runs as the budget left can pay for, best first (none when it
cannot pay for one; the reason is returned for the study's warnings and ``jfhpo status``). Once the
planned runs are done the plan is made again (a top-up): a target cost predicted too high from the
proxies' costs leaves budget that the measured cost shows pays for the next configurations.

A confirmation segment that fails (a worker killed, a flaky node) is retried as a new run of the
same decision, at most ``MAX_RETRIES`` times, so a failure does not silently change the answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jfhpo.records import SegmentRecord, SegmentStatus

__all__ = ["MAX_RETRIES", "ConfirmPlan", "plan_confirmation", "should_retry"]

#: retries of a failed confirmation decision (so at most MAX_RETRIES + 1 attempts)
MAX_RETRIES = 2


@dataclass(frozen=True)
class ConfirmPlan:
    configs: tuple[Mapping[str, Any], ...]
    per_run: float  # expected cost of one confirmation run (0 when not calibrated)
    skipped: int  # ranked configurations left out because the budget cannot pay for them
    note: str | None = None  # why some were left out, in words


def plan_confirmation(ranked: Sequence[Mapping[str, Any]], recipe: Mapping[str, Any] | None,
                      key: Callable[[Mapping[str, Any]], str], *, budget_left: float,
                      per_run: float, calibrated: bool, target: str,
                      steps: int) -> ConfirmPlan:
    """The confirmation runs: the optimizer's ``ranked`` configurations, with the ``recipe``
    (when given and not among them) in second place, cut to what ``budget_left`` can pay at
    ``per_run`` each (every one of them when the cost model is not ``calibrated``)."""
    configs = [dict(c) for c in ranked]
    if recipe is not None and key(recipe) not in {key(c) for c in configs}:
        configs.insert(min(1, len(configs)), dict(recipe))
    n = len(configs)
    if calibrated and per_run > 0:
        n = min(n, max(math.floor(budget_left / per_run + 1e-9), 0))
    skipped = len(configs) - n
    note = None
    if skipped and n == 0:
        note = (f"confirmation skipped: one run on the target {target} at {steps} steps is "
                f"expected to cost {per_run:.3g} s and the search left {max(budget_left, 0):.3g} s "
                "of the budget; the answer is the best search run (raise budget.seconds or "
                "confirm.fraction)")
    elif skipped:
        note = (f"confirmation of {skipped} more configuration(s) skipped: the budget left "
                f"({max(budget_left, 0):.3g} s) pays for {n} run(s) of {per_run:.3g} s")
    return ConfirmPlan(tuple(configs[:n]), per_run if calibrated else 0.0, skipped, note)


def should_retry(attempts: Sequence[SegmentRecord]) -> bool:
    """Whether a confirmation decision whose segments are ``attempts`` (in order, interrupted
    ones excluded) gets another attempt: its last one failed and retries are left."""
    if not attempts or attempts[-1].status is not SegmentStatus.FAILED:
        return False
    failed = sum(1 for s in attempts if s.status is SegmentStatus.FAILED)
    return failed <= MAX_RETRIES
