"""The resume planner: which stored decisions still have to be carried out, and how.

Derived from storage alone (decisions, segments, live checkpoints), so a study killed again before
its re-runs started loses nothing and repeats nothing. A decision is pending when it was never
started, when every segment it had was interrupted, or (confirmation only) when its last attempt
failed and retries are left.

Each run's steps form one chain: a segment that would continue a run from a checkpoint that is gone
(deleted between a kill and a resume, released by the disk budget) is not re-run inside the run
from step 0; the decision becomes a NEW run of the same configuration from step 0, recorded as such.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jfhpo.planning.confirm import should_retry
from jfhpo.records import Phase, SegmentRecord, SegmentStatus

__all__ = ["DecisionInfo", "Pending", "RunInfo", "pending_work"]


@dataclass(frozen=True)
class DecisionInfo:
    """A stored decision (a row of ``suggestions``)."""

    suggestion_id: int
    kind: str  # "start" | "extend"
    steps: int
    phase: Phase
    run_id: int | None = None  # the run an extension continues
    config: Mapping[str, Any] | None = None
    model: str | None = None


@dataclass(frozen=True)
class RunInfo:
    run_id: int
    suggestion_id: int
    config: Mapping[str, Any]
    model: str
    phase: Phase
    steps_done: int


@dataclass(frozen=True)
class Pending:
    """Work to queue: ``run_id`` from ``start`` to ``target``; ``run_id`` None means a new run of
    ``config`` on ``model`` must be added first (and ``start`` is 0)."""

    suggestion_id: int
    run_id: int | None
    start: int
    target: int
    config: Mapping[str, Any] | None = None
    model: str | None = None
    phase: Phase = Phase.SEARCH
    why: str = ""


def _resumable(run_id: int, step: int, checkpoints: Collection[tuple[int, int]]) -> bool:
    return step == 0 or (run_id, step) in checkpoints


def continue_run(decision: DecisionInfo, run: RunInfo, start: int, target: int,
                 checkpoints: Collection[tuple[int, int]], *, reuse: bool = True) -> Pending:
    """Continue ``run`` from ``start``; a new run from 0 when that step's checkpoint is gone."""
    if not reuse or _resumable(run.run_id, start, checkpoints):
        return Pending(decision.suggestion_id, run.run_id, start if reuse else 0, target,
                       phase=decision.phase)
    return Pending(decision.suggestion_id, None, 0, target, run.config, run.model,
                   decision.phase,
                   why=f"run {run.run_id} has no checkpoint of step {start}; "
                       "its work is redone as a new run from step 0")


def pending_work(decisions: Sequence[DecisionInfo], segments: Iterable[SegmentRecord],
                 runs: Mapping[int, RunInfo], checkpoints: Collection[tuple[int, int]],
                 *, reuse: bool = True) -> list[Pending]:
    """Every stored decision not carried out yet, in decision order (see the module
    docstring). ``checkpoints``: the (run, step) checkpoints that exist now."""
    by_decision: dict[int, list[SegmentRecord]] = {}
    for seg in sorted(segments, key=lambda s: s.segment_id):
        by_decision.setdefault(seg.suggestion_id, []).append(seg)
    runs_of: dict[int, list[RunInfo]] = {}
    for r in sorted(runs.values(), key=lambda r: r.run_id):
        runs_of.setdefault(r.suggestion_id, []).append(r)
    used = {seg.run_id for segs in by_decision.values() for seg in segs}

    def adopt(p: Pending) -> Pending:
        # a new run added for this decision by a process killed before its first segment
        fresh = [r for r in runs_of.get(p.suggestion_id, []) if r.run_id not in used]
        if p.run_id is None and fresh:
            return Pending(p.suggestion_id, fresh[-1].run_id, 0, p.target, phase=p.phase,
                           why=p.why)
        return p

    out: list[Pending] = []
    for d in decisions:
        segs = by_decision.get(d.suggestion_id, [])
        live = [s for s in segs if s.status is not SegmentStatus.INTERRUPTED]
        if live:
            if d.phase is Phase.CONFIRM and d.kind == "start" and should_retry(live):
                run = runs[live[-1].run_id]
                out.append(adopt(Pending(
                    d.suggestion_id, None, 0, d.steps, run.config, run.model, d.phase,
                    why=f"confirmation run {run.run_id} failed; retried as a new run")))
            continue
        if segs:
            last = segs[-1]
            out.append(adopt(continue_run(d, runs[last.run_id], last.start_step,
                                          last.target_step, checkpoints, reuse=reuse)))
        elif d.kind == "extend":
            assert d.run_id is not None
            run = runs[d.run_id]
            out.append(adopt(continue_run(d, run, run.steps_done, d.steps, checkpoints,
                                          reuse=reuse)))
        else:
            own = runs_of.get(d.suggestion_id)
            if own:
                out.append(Pending(d.suggestion_id, own[-1].run_id, 0, d.steps, phase=d.phase))
            else:
                assert d.config is not None and d.model is not None
                out.append(Pending(d.suggestion_id, None, 0, d.steps, d.config, d.model, d.phase))
    return out
