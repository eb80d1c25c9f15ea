"""The resume planner: what is pending after a crash, a failure or a lost checkpoint."""

from __future__ import annotations

from jfhpo.planning.resume import DecisionInfo, Pending, RunInfo, pending_work
from jfhpo.records import Phase, SegmentRecord, SegmentStatus

S = SegmentStatus
CFG = {"lr": 1.0}


def seg(i: int, run: int, dec: int, a: int, b: int, status: SegmentStatus) -> SegmentRecord:
    return SegmentRecord(i, run, dec, a, b, status, end_step=b if status is S.COMPLETED else None)


def run(rid: int, dec: int, done: int = 0, phase: Phase = Phase.SEARCH) -> RunInfo:
    return RunInfo(rid, dec, CFG, "m", phase, done)


START1 = DecisionInfo(1, "start", 10, Phase.SEARCH, config=CFG, model="m")
EXT2 = DecisionInfo(2, "extend", 30, Phase.SEARCH, run_id=1)


def test_done_work_is_not_pending() -> None:
    segs = [seg(1, 1, 1, 0, 10, S.COMPLETED), seg(2, 1, 2, 10, 30, S.COMPLETED)]
    assert pending_work([START1, EXT2], segs, {1: run(1, 1, 30)}, {(1, 30)}) == []


def test_never_started_decisions_are_queued_in_order() -> None:
    got = pending_work([START1, EXT2], [], {1: run(1, 1)}, set())
    assert got[0] == Pending(1, 1, 0, 10, phase=Phase.SEARCH)
    # the extension continues from the run's steps (0 here: nothing to load)
    assert got[1] == Pending(2, 1, 0, 30, phase=Phase.SEARCH)
    # a start decision killed before its run was added gets a new one
    got = pending_work([START1], [], {}, set())
    assert got == [Pending(1, None, 0, 10, CFG, "m", Phase.SEARCH)]


def test_interrupted_segment_reruns_from_its_checkpoint() -> None:
    segs = [seg(1, 1, 1, 0, 10, S.COMPLETED), seg(2, 1, 2, 10, 30, S.INTERRUPTED)]
    got = pending_work([START1, EXT2], segs, {1: run(1, 1, 10)}, {(1, 10)})
    assert got == [Pending(2, 1, 10, 30, phase=Phase.SEARCH)]


def test_a_lost_checkpoint_makes_a_new_run_never_a_rerun_inside_the_run() -> None:
    segs = [seg(1, 1, 1, 0, 10, S.COMPLETED), seg(2, 1, 2, 10, 30, S.INTERRUPTED)]
    got = pending_work([START1, EXT2], segs, {1: run(1, 1, 10)}, set())
    assert len(got) == 1
    p = got[0]
    assert (p.run_id, p.start, p.target, p.config, p.model) == (None, 0, 30, CFG, "m")
    assert "no checkpoint of step 10" in p.why
    # killed again after the new run was added but before its segment: the same run is reused
    runs = {1: run(1, 1, 10), 2: run(2, 2)}
    got = pending_work([START1, EXT2], segs, runs, set())
    assert [(g.run_id, g.start) for g in got] == [(2, 0)]


def test_without_reuse_the_ablation_retrains_the_run() -> None:
    got = pending_work([START1, EXT2], [seg(1, 1, 1, 0, 10, S.COMPLETED)], {1: run(1, 1, 10)},
                       set(), reuse=False)
    assert got == [Pending(2, 1, 0, 30, phase=Phase.SEARCH)]


def test_failed_confirmation_is_retried_as_a_new_run_search_failures_are_not() -> None:
    conf = DecisionInfo(3, "start", 90, Phase.CONFIRM, config=CFG, model="m")
    runs = {5: run(5, 3, phase=Phase.CONFIRM)}
    got = pending_work([conf], [seg(9, 5, 3, 0, 90, S.FAILED)], runs, set())
    assert len(got) == 1 and got[0].run_id is None and got[0].phase is Phase.CONFIRM
    failed_search = pending_work([START1], [seg(1, 1, 1, 0, 10, S.FAILED)], {1: run(1, 1)}, set())
    assert failed_search == []
    many = [seg(i, 5, 3, 0, 90, S.FAILED) for i in range(10, 14)]
    assert pending_work([conf], many, runs, set()) == []
