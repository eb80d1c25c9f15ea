"""The one translation of an optimizer's suggestion into a recorded decision and its segment.

The tuner and ``AskTell`` both call ``store_suggestion``, so a suggestion becomes the same run
and the same segment whichever of them drives the study: the step target is clamped to what the
trainer can honour (``wiring.segment_steps``), a start must name a model of the ladder and (in
the search) a configuration of the space, and an extension must name an idle, unstopped run short
of the new step target. Where runs cannot resume (the study's ``checkpoints.reuse: false`` or a
backend whose ``capabilities().resumable`` is False) the resume planner (``wiring.pending_for``)
turns an extension into a fresh run of the run's configuration to the new step count, from step
0, and THE cost model prices it so.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jfhpo.planning.resume import Pending
from jfhpo.records import Extend, Phase, Start, Suggestion

if TYPE_CHECKING:
    from jfhpo.backends.base import Capabilities
    from jfhpo.study import Study
    from jfhpo.view import StudyView

__all__ = ["SegmentPlan", "resumable", "store_suggestion", "translate", "with_runs"]

#: new_run(suggestion_id, config, model, phase) -> run_id: how the caller adds a run
NewRun = Callable[[int, Mapping[str, Any], str, Phase], int]


@dataclass(frozen=True)
class SegmentPlan:
    """A checked suggestion: a start of ``config`` on ``model`` or an extension of ``run_id``,
    to ``steps`` (total steps, already clamped)."""

    kind: str  # "start" | "extend"
    steps: int
    phase: Phase
    model: str
    config: Mapping[str, Any]
    run_id: int | None = None


def resumable(study: Study, caps: Capabilities) -> bool:
    """Whether runs of ``study`` may continue from a checkpoint: the study says so
    (``checkpoints.reuse``) and so does the backend (``capabilities().resumable``)."""
    return bool(study.spec.checkpoints.reuse and caps.resumable)


def translate(s: Suggestion, view: StudyView, study: Study, caps: Capabilities) -> SegmentPlan:
    """Check ``s`` against the study and clamp its step target; ValueError names what is wrong
    (an optimizer bug, not a user error)."""
    from jfhpo.wiring import segment_steps

    steps = segment_steps(s.steps, caps, study.steps.max_steps)
    if isinstance(s, Start):
        if s.model not in study.ladder:
            raise ValueError(f"optimizer suggested unknown model {s.model!r}; "
                             f"the ladder has {study.ladder.names}")
        config = study.space.validate(s.config) if s.phase is Phase.SEARCH else dict(s.config)
        return SegmentPlan("start", steps, s.phase, s.model, config)
    if isinstance(s, Extend):
        run = view.run(s.run_id)
        if run.busy or run.stopped is not None or steps <= run.steps_done:
            raise ValueError(f"optimizer asked to extend run {s.run_id} to {steps} steps, "
                             f"which is busy, stopped or already there")
        return SegmentPlan("extend", steps, s.phase, run.model, dict(run.config), s.run_id)
    raise TypeError(f"not a suggestion: {s!r}")


def with_runs(pending: list[Pending], new_run: NewRun) -> list[Pending]:
    """``pending`` with a run added (``new_run``) for each item that asks for a new one."""
    out = []
    for p in pending:
        if p.run_id is None:
            assert p.config is not None and p.model is not None
            rid = new_run(p.suggestion_id, p.config, p.model, p.phase)
            p = Pending(p.suggestion_id, rid, p.start, p.target, p.config, p.model, p.phase, p.why)
        out.append(p)
    return out


def store_suggestion(study: Study, view: StudyView, s: Suggestion, caps: Capabilities,
                     checkpoints: Collection[tuple[int, int]], new_run: NewRun) -> list[Pending]:
    """Record ``s`` as a decision (and a new run for a start) and return the segment(s) to carry
    it out, each with its run: (run, start step, target step). ``checkpoints`` are the (run,
    step) checkpoints that exist; ``new_run`` adds a run and returns its id."""
    plan = translate(s, view, study, caps)
    if plan.kind == "start":
        sid = study.add_suggestion("start", plan.steps, plan.phase, config=plan.config,
                                   model=plan.model)
        rid = new_run(sid, plan.config, plan.model, plan.phase)
        return [Pending(sid, rid, 0, plan.steps, phase=plan.phase)]
    from jfhpo.wiring import pending_for

    sid = study.add_suggestion("extend", plan.steps, plan.phase, run_id=plan.run_id)
    return with_runs(pending_for(study, checkpoints, caps, only=sid), new_run)
