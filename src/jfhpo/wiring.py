"""What the tuner wires together, kept out of its event loop: building the executor and the
stopping rules for a study, preparing the ladder's models, and the arithmetic of segment targets
and failed segments' costs. (The progress view reads the results layer: ``jfhpo.progress``.)"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Collection, Mapping
from typing import Any

from jfhpo.backends.base import Backend, Capabilities, SegmentOutcome, SegmentTask
from jfhpo.checkpoints import CheckpointRegistry
from jfhpo.cost import CostModel
from jfhpo.executors.base import Executor, PreparedEvent, ProgressEvent
from jfhpo.optimizers.base import Optimizer
from jfhpo.planning.confirm import ConfirmPlan, plan_confirmation, should_retry
from jfhpo.planning.resume import DecisionInfo, Pending, RunInfo, pending_work
from jfhpo.progress import ProgressSink
from jfhpo.records import Phase, SegmentRecord, SegmentStatus
from jfhpo.stopping.base import RunHistory, StoppingRule
from jfhpo.study import Study
from jfhpo.view import StudyView


class PrepareError(RuntimeError):
    """A backend could not prepare a model of the ladder (base-model training failed)."""


class StudyAborted(RuntimeError):
    """Segments keep failing one after another: the trainer or the study is broken."""


def default_cache_dir() -> str:
    """Where backends keep base models: $JFHPO_CACHE, else ~/.cache/jfhpo."""
    return os.environ.get("JFHPO_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "jfhpo")


def build_rules(study: Study) -> StoppingRule | None:
    from jfhpo.stopping.factory import build_rules as _build

    return _build(study.spec.stopping)


def make_executor(study: Study, workers: int) -> Executor:
    """The executor the study file's ``executor:`` section names (default: the local pool),
    checked against every rung's resources before anything runs."""
    from jfhpo.executors import get_executor

    spec = study.spec
    cls = get_executor(spec.executor.name)
    ex = cls(spec.backend.name, spec.backend.options, workers, spec.threads_per_worker,
             **spec.executor.options())
    try:
        for rung in study.ladder.rungs:
            ex.check_resources(rung.resources, f"models.{rung.name}")
    except BaseException:
        ex.shutdown()
        raise
    return ex


def prepare_models(executor: Executor, study: Study, cache_dir: str, sink: ProgressSink) -> None:
    """Have the executor prepare every rung (base models) and wait for all of them."""
    rungs = list(study.ladder.rungs)
    executor.prepare(rungs, cache_dir)
    waiting = {r.name for r in rungs}
    while waiting:
        ev = executor.next_event(timeout=5.0)
        if isinstance(ev, PreparedEvent):
            if ev.error:
                raise PrepareError(f"preparing model {ev.model!r} failed:\n{ev.error}")
            waiting.discard(ev.model)
        elif isinstance(ev, ProgressEvent):
            sink.message(ev.message)


def segment_steps(steps: int, caps: Capabilities, max_steps: int) -> int:
    """A suggestion's step target as the trainer can honour it: within [1, max_steps], rounded
    up to a multiple of the checkpoint interval so that a completed segment ends on a save."""
    steps = min(max(int(steps), 1), max_steps)
    k = caps.checkpoint_every
    if k > 0 and steps % k:
        steps = min(math.ceil(steps / k) * k, max_steps)
    return steps


def failed_cost(seg: SegmentRecord, model: str, ran: int, wall: float, cost: CostModel) -> float:
    """What a failed segment spent: the steps it reported at the modelled cost (or the wall time
    when it reported none), so a failing trainer cannot loop for free."""
    if ran <= 0:
        return wall
    return max(cost.segment(model, ran, start=seg.start_step == 0), 0.0)


def summarize_config(config: Mapping[str, Any]) -> str:
    parts = []
    for k, v in config.items():
        parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(parts)


def pending_for(study: Study, checkpoints: Collection[tuple[int, int]], caps: Capabilities,
                only: int | None = None) -> list[Pending]:
    """The resume planner's answer for ``study`` (only for decision ``only`` when given)."""
    st = study
    decisions = [DecisionInfo(r.suggestion_id, r.kind, r.steps, r.phase, r.run_id, r.config,
                              r.model) for r in st.suggestions
                 if only is None or r.suggestion_id == only]
    runs = {rid: RunInfo(rid, r.suggestion_id, r.config, r.model, r.phase,
                         st.run_record(rid).steps_done) for rid, r in st.runs.items()}
    reuse = st.spec.checkpoints.reuse and caps.resumable
    return pending_work(decisions, st.segments.values(), runs, checkpoints, reuse=reuse)


def make_task(study: Study, registry: CheckpointRegistry, run_id: int, seg_id: int, start: int,
              target: int, cache_dir: str) -> SegmentTask:
    """The ``SegmentTask`` of a segment (``seg_id`` -1: a provisional one, to ask the executor
    whether its resources are free; it gets no staging folder)."""
    st = study
    run = st.runs[run_id]
    rung = st.ladder[run.model]
    resume = registry.lookup(run_id, start) if start > 0 else None
    ck = str(registry.staging(seg_id)) if seg_id >= 0 else ""
    return SegmentTask(
        run_id=run_id, segment_id=seg_id, config={**st.spec.fixed, **run.config}, model=rung,
        start_step=start, target_step=target, max_steps=st.steps.max_steps, seed=run.seed,
        checkpoint_dir=ck, resume_from=None if resume is None else str(resume),
        cache_dir=cache_dir, eval_every=st.spec.eval_every, resources=rung.resources)


def remember_recipe(study: Study, backend: Any) -> dict[str, Any] | None:
    """The backend's recipe over the searched hyperparameters, stored in the study (so every
    view shows it, ``StudyView.recipe``), when the study confirms against it
    (``confirm.include_recipe``) and it sets every searched hyperparameter; else None."""
    if not study.spec.confirm.include_recipe:
        return None
    rc = {n: v for n, v in backend.recipe().items() if n in study.space.names}
    if len(rc) != len(study.space.names):
        return None
    if study.recipe() != rc:
        study.set_recipe(rc)
    return rc


def confirmation_plan(study: Study, full: StudyView, optimizer: Optimizer, backend: Backend,
                      wall_used: float) -> ConfirmPlan:
    """The confirmation runs to add to those already decided: the optimizer's top-k (less the
    decided ones), the backend's recipe, cut to what the budget left pays after the decided runs
    still to train (the confirmation planner). At the start of confirmation that is the whole
    plan; asked again once the decided runs are done (a top-up), the view holds their outcomes
    and the target's measured cost, so a plan cut by a cost predicted too high gets the rest,
    ranked with what the confirmation runs showed. The ranking's random draws are those of the
    search phase, so a resumed study adds the same runs."""
    st = study
    n_search = sum(1 for s in st.suggestions if s.phase is Phase.SEARCH)
    view = dataclasses.replace(full, n_suggestions=n_search)
    recipe = remember_recipe(st, backend)
    key = st.space.key
    spent = (wall_used if st.spec.budget.measure == "wall" else
             sum(st.unit_cost(s) or 0.0 for s in st.segments.values()))
    target, steps = st.ladder.target.name, st.steps.max_steps
    decided = {s.suggestion_id: key(s.config) for s in st.suggestions
               if s.phase is Phase.CONFIRM and s.config is not None}
    to_train = sum(1 for sid in decided if _still_to_train(st, sid))
    # a configuration already trained on the target at the full budget (and no rule stopped)
    # has its confirmation: it competes for the answer as it is (Study.best)
    done = {key(r.config) for r in full.runs if r.finished_at(target, steps)} | set(decided.values())
    # the top_k best that have no such run yet, less the slots the decided ones took (the
    # recipe takes none)
    rkey = None if recipe is None else key(recipe)
    k = max(st.spec.confirm.top_k - len(set(decided.values()) - {rkey}), 0)
    ranked = [c for c in optimizer.confirm(view, k + len(done)) if key(c) not in done][:k]
    if rkey in done:
        recipe = None  # trained on the target at the full budget already, or decided
    per_run = full.cost.segment(target, steps)
    plan = plan_confirmation(
        ranked, recipe, key,
        budget_left=st.spec.budget.seconds - spent - to_train * per_run, per_run=per_run,
        calibrated=full.cost.calibrated, target=target, steps=steps)
    # no more at once than the workers can train: the next is planned (a top-up) once one is
    # done, ranked with its outcome (a confirmation that diverged sets the learning-rate
    # ceiling the next one stays under; planned together, two learning rates 0.04 decades
    # apart both diverged on the target)
    room = max(max(full.workers, 1) - to_train, 0)
    return dataclasses.replace(plan, configs=plan.configs[:room])


def _still_to_train(study: Study, suggestion_id: int) -> bool:
    """Whether a confirmation decision's run is still to be paid for: none of its segments
    completed, and it was never tried, is queued or running, or gets a retry."""
    attempts = sorted((s for s in study.segments.values() if s.suggestion_id == suggestion_id
                       and s.status is not SegmentStatus.INTERRUPTED), key=lambda s: s.segment_id)
    if any(s.status is SegmentStatus.COMPLETED for s in attempts):
        return False
    return (not attempts or attempts[-1].status in (SegmentStatus.QUEUED, SegmentStatus.RUNNING)
            or should_retry(attempts))


def run_study(study: Study, sink: ProgressSink | None = None, workers: int | None = None,
              executor: Executor | None = None) -> dict[str, Any] | None:
    """Wire backend, optimizer, rules and the study file's executor for ``study`` and run it."""
    from jfhpo.backends.base import get_backend
    from jfhpo.optimizers.base import get_optimizer
    from jfhpo.tuner import Tuner

    spec = study.spec
    n = workers or spec.workers
    backend = get_backend(spec.backend.name)(spec.backend.options)
    optimizer = get_optimizer(spec.optimizer.name)(spec.optimizer.options)
    ex = executor or make_executor(study, n)
    try:
        tuner = Tuner(study, ex, optimizer, build_rules(study), backend, sink, n,
                      spec.cache_dir or default_cache_dir())
        return tuner.run()
    finally:
        ex.shutdown()


def stop_check(study: Study, rules: StoppingRule | None, seg: SegmentRecord,
               view: StudyView) -> bool:
    """Ask the stopping rules about ``seg``'s run after its latest observation; when one fires,
    record why on the segment (the progress view and ``status`` read it from there) and return
    True. Confirmation runs are never stopped."""
    run = study.runs[seg.run_id]
    if rules is None or run.phase is Phase.CONFIRM:
        return False
    history = RunHistory(seg.run_id, run.model, run.config, tuple(study.obs.get(seg.run_id, ())),
                         seg.target_step, study.steps.max_steps)
    reason = rules.check(history, view)
    if reason is None:
        return False
    study.update_segment(seg.segment_id, reason_rule=reason.rule, reason_msg=reason.message)
    return True


def record_done(study: Study, registry: CheckpointRegistry, seg_id: int,
                outcome: SegmentOutcome, wall: float) -> None:
    """Store a finished segment: its late metrics, its checkpoint (at the step it holds), its
    score, status and cost; then release the run's older checkpoints."""
    st = study
    seg = st.segments[seg_id]
    end, saved = int(outcome.end_step), outcome.saved_step
    if outcome.final_metrics:
        # metrics of the end step that came after its report (the evaluation of a stop)
        st.add_observation(seg_id, end, outcome.final_metrics)
    if saved is not None and saved > seg.start_step:
        registry.commit(seg_id, seg.run_id, saved)
    score = None
    for ob in reversed(st.obs.get(seg.run_id, [])):
        v = st.objective_value(ob.metrics) if ob.segment_id == seg_id and ob.step == end else None
        if v is not None:
            score = st.sign * v
            break
    status = SegmentStatus.STOPPED if seg.reason is not None else SegmentStatus.COMPLETED
    cost = float(outcome.cost)
    if not (math.isfinite(cost) and cost > 0):
        # a cost that cannot pay for anything would let the study loop for free: charge the
        # segment's wall time instead, and say so once
        st.warn(f"the backend reported a cost of {cost!r} for a segment; segments are charged "
                "their wall-clock time instead (costs must be positive and finite)")
        cost = max(float(wall), 1e-6)
    st.update_segment(seg_id, status=int(status), end_step=end, score=score, cost=cost,
                      wall=float(wall), finished=time.time())
    if saved is not None and saved > seg.start_step:
        registry.release_superseded(seg.run_id, saved)


def record_failure(study: Study, seg: SegmentRecord, error: str, wall: float,
                   cost: CostModel) -> str:
    """Store a failed segment with what it spent; return the line that says so."""
    st = study
    steps = [o.step for o in st.obs.get(seg.run_id, []) if o.segment_id == seg.segment_id]
    ran = (max(steps) - seg.start_step) if steps else 0
    spent = failed_cost(seg, st.runs[seg.run_id].model, ran, wall, cost)
    st.update_segment(seg.segment_id, status=int(SegmentStatus.FAILED), error=error, cost=spent,
                      wall=wall, end_step=seg.start_step + ran, finished=time.time())
    last = error.strip().splitlines()[-1] if error.strip() else "unknown error"
    return f"segment {seg.segment_id} (run {seg.run_id}) failed: {last}"


def collect_checkpoints(study: Study, registry: CheckpointRegistry, view: StudyView,
                        optimizer: Optimizer, needed: Collection[tuple[int, int]]) -> None:
    """Run the retention planner: keep what may still be extended (while searching), never
    what queued or running work (``needed``: (run, start step)) loads."""
    searching = study.phase is Phase.SEARCH
    registry.collect(
        keep={r.run_id for r in view.runs
              if r.busy or (searching and optimizer.may_extend(view, r))},
        protected=needed, busy={rid for rid, _ in needed},
        budget_bytes=study.spec.checkpoints.disk_budget_mb * 1e6,
        priority={r.run_id: -math.inf if r.score is None else r.score for r in view.runs})


def new_run(study: Study, backend: Backend, suggestion_id: int, config: Mapping[str, Any],
            model: str, phase: Phase) -> int:
    """Record a new run with its effective configuration (as the backend will train it)."""
    eff = backend.effective_config({**study.spec.fixed, **config})
    return study.add_run(suggestion_id, config, model, phase, eff)


def queue_confirmation(study: Study, view: StudyView, optimizer: Optimizer, backend: Backend,
                       wall_used: float) -> tuple[list[tuple[int, int, int, int]],
                                                  list[tuple[bool, str]]]:
    """Store the confirmation decisions the plan holds and a resumed study lacks; return the
    queue items (run, decision, 0, steps) and the notes to show ((is a warning, text))."""
    st = study
    target, steps = st.ladder.target.name, st.steps.max_steps
    stored = [s for s in st.suggestions if s.phase is Phase.CONFIRM]
    plan = confirmation_plan(st, view, optimizer, backend, wall_used)
    # a top-up that finds no room says nothing: the first plan's note stands
    notes = [(True, plan.note)] if plan.note and (plan.configs or not stored) else []
    items = []
    for cfg in plan.configs:
        sid = st.add_suggestion("start", steps, Phase.CONFIRM, config=cfg, model=target)
        items.append((new_run(st, backend, sid, cfg, target, Phase.CONFIRM), sid, 0, steps))
    if not stored and plan.configs:
        notes.append((False, f"confirmation: training {len(plan.configs)} configuration(s) on "
                             f"the target {target} for {steps} steps"))
    return items, notes


def abort_if_broken(failures_in_a_row: int, workers: int, error: str, folder: Any) -> None:
    """Stop the study (``StudyAborted``) after ``max(3, 2 x workers)`` failures in a row: the
    trainer or the study is broken, and retrying would only burn the budget."""
    if failures_in_a_row >= max(3, 2 * workers):
        raise StudyAborted(
            f"{failures_in_a_row} segments failed in a row; the last error was:\n"
            f"{error.strip()}\nEverything recorded is kept: fix the cause, then run "
            f"`jfhpo resume {folder}`")
