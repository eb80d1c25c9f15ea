"""The budget ledger: one formula, both units, the confirmation reserve."""

from __future__ import annotations

import pytest

from jfhpo.cost import CostModel, SegmentCost
from jfhpo.fidelity import ModelLadder, ModelRung
from jfhpo.planning.ledger import (
    RESERVE_MARGIN,
    Ledger,
    committed,
    confirm_reserve,
    make_ledger,
    spent,
)
from jfhpo.records import Phase, SegmentStatus

LADDER = ModelLadder([ModelRung("s", 1e6, 1.0), ModelRung("t", 1e8, 4.0)])
S = SegmentStatus
SEGS = [(S.COMPLETED, 10.0), (S.STOPPED, 5.0), (S.FAILED, 2.0), (S.INTERRUPTED, 100.0),
        (S.RUNNING, None), (S.QUEUED, None)]


@pytest.mark.parametrize(("measure", "wall", "want"), [("compute", 99.0, 17.0),
                                                       ("wall", 42.0, 42.0)])
def test_spent_is_one_unit(measure: str, wall: float, want: float) -> None:
    assert spent(SEGS, measure, wall) == want


def test_in_flight_commits_compute_not_wall() -> None:
    cm = CostModel(LADDER, [SegmentCost("s", 10, 10.0), SegmentCost("s", 20, 20.0)])
    flying = [("s", 0, 10), ("t", 10, 20)]
    assert committed(flying, cm, "compute") == pytest.approx(10.0 + 40.0)
    assert committed(flying, cm, "wall") == 0.0


@pytest.mark.parametrize(("spent_", "committed_", "cost", "ok"), [
    (50.0, 20.0, 30.0, True), (50.0, 20.0, 30.1, False), (0.0, 0.0, float("inf"), False),
    (100.0, 0.0, 0.0, True),
])
def test_can_pay_is_a_cap(spent_: float, committed_: float, cost: float, ok: bool) -> None:
    led = Ledger(total=100.0, spent=spent_, committed=committed_)
    assert led.can_pay(cost) is ok
    assert led.left == max(100.0 - spent_ - committed_, 0.0)


def test_uncalibrated_ledger_pays_while_anything_is_left() -> None:
    assert Ledger(100.0, 10.0, calibrated=False).can_pay(1e9)
    assert not Ledger(100.0, 100.0, calibrated=False).can_pay(0.0)


def test_reserve_is_the_share_until_the_target_is_measured_then_the_runs_cost() -> None:
    proxy_only = CostModel(LADDER, [SegmentCost("s", 10, 10.0)])  # predicts 4 s/step on "t"
    assert confirm_reserve(1000.0, 0.2, 3, proxy_only, "t", 100) == pytest.approx(400.0)
    assert confirm_reserve(1000.0, 0.5, 3, proxy_only, "t", 100) == pytest.approx(500.0)
    measured = CostModel(LADDER, [SegmentCost("t", 10, 40.0)])  # 4 s/step on the target
    m = 1.0 + RESERVE_MARGIN  # measured: the runs' predicted cost and a margin
    # 3 runs of 400 wanted; at most what half the budget pays for, at least one
    assert confirm_reserve(1000.0, 0.2, 3, measured, "t", 100) == pytest.approx(400.0 * m)
    assert confirm_reserve(2000.0, 0.2, 3, measured, "t", 100) == pytest.approx(800.0 * m)
    assert confirm_reserve(3000.0, 0.2, 3, measured, "t", 100) == pytest.approx(1200.0 * m)
    # measured: the runs' cost, not the configured share when that is larger
    assert confirm_reserve(10000.0, 0.45, 1, measured, "t", 100) == pytest.approx(400.0 * m)
    assert confirm_reserve(10000.0, 0.45, 2, measured, "t", 100) == pytest.approx(800.0 * m)
    # wall: the runs go side by side on the workers
    assert confirm_reserve(3000.0, 0.2, 3, measured, "t", 100, "wall", 2) == pytest.approx(800.0 * m)
    assert confirm_reserve(1000.0, 0.2, 0, measured, "t", 100) == 0.0
    # a budget that cannot pay for one run besides the search: only the configured share
    assert confirm_reserve(300.0, 0.2, 3, measured, "t", 100) == pytest.approx(60.0)


def test_search_phase_holds_the_reserve_back_confirmation_does_not() -> None:
    cm = CostModel(LADDER, [SegmentCost("s", 10, 10.0)])
    kw = dict(budget=1000.0, measure="compute", reserve=250.0, segments=SEGS,
              in_flight=[("s", 0, 10)], cost=cm, wall_used=0.0)
    search = make_ledger(phase=Phase.SEARCH, **kw)  # type: ignore[arg-type]
    confirm = make_ledger(phase=Phase.CONFIRM, **kw)  # type: ignore[arg-type]
    assert (search.total, confirm.total) == (750.0, 1000.0)
    assert search.spent == confirm.spent == 17.0
    assert search.committed == pytest.approx(10.0)
    assert search.left == pytest.approx(750.0 - 17.0 - 10.0)
