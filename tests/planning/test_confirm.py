"""The confirmation planner: the recipe's place, the budget cap, bounded retries."""

from __future__ import annotations

from typing import Any

from jfhpo.planning.confirm import MAX_RETRIES, plan_confirmation, should_retry
from jfhpo.records import SegmentRecord, SegmentStatus


def key(c: Any) -> str:
    return repr(sorted(c.items()))


A, B, R = {"lr": 1}, {"lr": 2}, {"lr": 9}


def plan(left: float, per_run: float = 10.0, calibrated: bool = True, recipe: Any = R) -> Any:
    return plan_confirmation([A, B], recipe, key, budget_left=left, per_run=per_run,
                             calibrated=calibrated, target="t", steps=90)


def test_recipe_goes_second_and_only_once() -> None:
    assert plan(100.0).configs == (A, R, B)
    assert plan_confirmation([A, R], R, key, budget_left=100.0, per_run=10.0, calibrated=True,
                             target="t", steps=90).configs == (A, R)
    assert plan(100.0, recipe=None).configs == (A, B)


def test_the_plan_holds_what_the_budget_pays() -> None:
    p = plan(25.0)
    assert p.configs == (A, R) and p.skipped == 1 and "1 more" in (p.note or "")
    assert plan(30.0).configs == (A, R, B) and plan(30.0).note is None


def test_a_budget_too_small_for_one_run_is_reported() -> None:
    p = plan(9.0)
    assert p.configs == () and p.skipped == 3
    assert p.note is not None and "confirmation skipped" in p.note and "10 s" in p.note


def test_uncalibrated_costs_plan_everything() -> None:
    assert plan(0.0, calibrated=False).configs == (A, R, B)


def seg(i: int, status: SegmentStatus) -> SegmentRecord:
    return SegmentRecord(i, i, 1, 0, 90, status)


def test_retries_are_bounded() -> None:
    F, C = SegmentStatus.FAILED, SegmentStatus.COMPLETED
    assert not should_retry([])
    assert not should_retry([seg(1, C)])
    assert should_retry([seg(1, F)])
    assert should_retry([seg(i, F) for i in range(MAX_RETRIES)])
    assert not should_retry([seg(i, F) for i in range(MAX_RETRIES + 1)])
    assert not should_retry([seg(1, F), seg(2, C)])
