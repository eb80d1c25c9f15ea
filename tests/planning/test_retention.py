"""Checkpoint retention: keep, the disk budget, and what queued work will load."""

from __future__ import annotations

from jfhpo.planning.retention import plan_release

CK = {(1, 10): 100, (2, 10): 100, (3, 10): 100, (4, 30): 100}
PRIO = {1: 0.9, 2: 0.1, 3: 0.5, 4: 0.2}


def test_runs_that_cannot_grow_are_released() -> None:
    got = plan_release(CK, keep={1, 2, 3}, protected=set(), busy=set(), budget_bytes=1e9,
                       priority=PRIO)
    assert got == [(4, 30)]


def test_disk_budget_releases_the_worst_first() -> None:
    got = plan_release(CK, keep={1, 2, 3, 4}, protected=set(), busy=set(), budget_bytes=200,
                       priority=PRIO)
    assert got == [(2, 10), (4, 30)]


def test_never_releases_what_queued_or_running_work_loads() -> None:
    # run 2's checkpoint is what a queued extension loads; run 4 is busy
    got = plan_release(CK, keep={1, 3}, protected={(2, 10)}, busy={4}, budget_bytes=0,
                       priority=PRIO)
    assert (2, 10) not in got and (4, 30) not in got
    assert set(got) == {(1, 10), (3, 10)}
