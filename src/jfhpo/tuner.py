"""The tuner: the only place where optimizer, executor, stopping rules, storage and checkpoints
meet. It runs the search phase until its budget share is spent, then the confirmation phase on the
target model, writing every event to storage the moment it happens.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from jfhpo.backends.base import Backend, SegmentOutcome, SegmentTask
from jfhpo.checkpoints import CheckpointRegistry
from jfhpo.executors.base import (
    DoneEvent,
    Event,
    Executor,
    FailedEvent,
    ObservationEvent,
    PreparedEvent,
    ProgressEvent,
)
from jfhpo.optimizers.base import Optimizer
from jfhpo.progress import ProgressSink, Snapshot
from jfhpo.records import Extend, Phase, SegmentRecord, SegmentStatus, Start, Suggestion, Verdict
from jfhpo.stopping.base import RunHistory, StoppingRule
from jfhpo.study import Study
from jfhpo.view import StudyView


class PrepareError(RuntimeError):
    """A backend could not prepare a model of the ladder (base-model training failed)."""


class StudyAborted(RuntimeError):
    """Segments keep failing one after another: the trainer or the study is broken."""


class Tuner:
    """Drives one study to its end. Construct, then call ``run()``; safe to call after a crash."""

    def __init__(
        self,
        study: Study,
        executor: Executor,
        optimizer: Optimizer,
        rules: StoppingRule | None,
        backend_cls: type[Backend],
        sink: ProgressSink | None = None,
        workers: int = 1,
        cache_dir: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.study = study
        self.executor = executor
        self.optimizer = optimizer
        self.rules = rules
        self.backend_cls = backend_cls
        self.sink = sink or ProgressSink()
        self.workers = workers
        self.cache_dir = cache_dir
        self.clock = clock
        self.registry = CheckpointRegistry(study)
        self.queue: deque[tuple[int, int, int, int]] = deque()  # (run, suggestion, start, target)
        self.in_flight: dict[int, SegmentRecord] = {}
        self.snap = Snapshot()
        self._view: StudyView | None = None
        self._wall0 = study.wall_used()
        self._t0 = clock()
        self._shown = -math.inf
        self._launched: dict[int, float] = {}
        self._failures_in_a_row = 0

    # ---- the loop --------------------------------------------------------------------------
    def run(self) -> dict[str, Any] | None:
        st = self.study
        self.sink.start(str(st.folder), st.spec.name)
        st.mark_interrupted()
        self.registry.sweep()
        self._queue_unfinished_suggestions()
        self._update_transfer()
        self._prepare()
        try:
            if st.phase is Phase.SEARCH:
                self._loop(Phase.SEARCH)
            self._begin_confirmation()
            self._loop(Phase.CONFIRM)
        finally:
            self.study.touch_wall(self.wall_used())
        best = st.best()
        for line in summary_lines(st):
            self.sink.message(line)
        self.sink.finish(best)
        return best

    def _loop(self, phase: Phase) -> None:
        exhausted = False
        while True:
            while self.executor.free_slots() > 0:
                if self.queue:
                    self._launch(*self.queue.popleft())
                    continue
                if exhausted or phase is Phase.CONFIRM or not self._search_budget_left():
                    break
                suggestion = self.optimizer.suggest(self.view())
                if suggestion is None:
                    exhausted = not self.in_flight
                    break
                self._submit_suggestion(suggestion)
            if not self.in_flight and not self.queue:
                return
            event = self.executor.next_event(timeout=1.0)
            if event is not None:
                self._handle(event)
            if not isinstance(event, ObservationEvent) or self.clock() - self._shown > 0.5:
                self._refresh()

    # ---- decisions -> segments -------------------------------------------------------------
    def view(self) -> StudyView:
        if self._view is None:
            v = self.study.view(self.workers)
            if self.study.spec.budget.measure == "wall":
                v = dataclasses.replace(v, budget_spent=self.wall_used())
            if self.study.phase is Phase.SEARCH:
                total = self.study.spec.budget.seconds
                v = dataclasses.replace(v, budget_total=max(total - self._confirm_reserve(), 0.0))
            self._view = v
        return self._view

    def _invalidate(self) -> None:
        self._view = None

    def _submit_suggestion(self, s: Suggestion) -> None:
        st = self.study
        if isinstance(s, Start):
            config = st.space.validate(s.config) if s.phase is Phase.SEARCH else dict(s.config)
            if s.model not in st.ladder:
                raise ValueError(f"optimizer suggested unknown model {s.model!r}")
            steps = min(max(int(s.steps), 1), st.steps.max_steps)
            sid = st.add_suggestion("start", steps, s.phase, config=config, model=s.model)
            rid = st.add_run(sid, config, s.model, s.phase)
            self._launch(rid, sid, 0, steps)
        elif isinstance(s, Extend):
            run = self.view().run(s.run_id)
            steps = min(int(s.steps), st.steps.max_steps)
            if run.busy or run.stopped is not None or steps <= run.steps_done:
                raise ValueError(f"optimizer asked to extend run {s.run_id} to {steps} steps, "
                                 f"which is busy, stopped or already there")
            sid = st.add_suggestion("extend", steps, s.phase, run_id=s.run_id)
            if not st.spec.checkpoints.reuse:
                # the ablation "without checkpoint reuse": the same run retrains from step 0
                self._launch(s.run_id, sid, 0, steps)
            elif self.registry.lookup(s.run_id, run.steps_done) is None:
                # the checkpoint was released (disk budget): a new run retrains from step 0
                st.warn(f"run {s.run_id} had no checkpoint left at step {run.steps_done}; "
                        "its extension retrains from step 0 as a new run")
                rid = st.add_run(sid, run.config, run.model, s.phase)
                self._launch(rid, sid, 0, steps)
            else:
                self._launch(s.run_id, sid, run.steps_done, steps)
        self._invalidate()

    def _launch(self, run_id: int, suggestion_id: int, start: int, target: int) -> None:
        st = self.study
        run = st.runs[run_id]
        resume = None
        if start > 0:
            path = self.registry.lookup(run_id, start)
            if path is None:
                st.warn(f"run {run_id}: checkpoint of step {start} is gone; retraining from 0")
                start = 0
            else:
                resume = str(path)
        seg_id = st.add_segment(run_id, suggestion_id, start, target)
        task = SegmentTask(
            run_id=run_id, segment_id=seg_id, config={**st.spec.fixed, **run.config},
            model=st.ladder[run.model], start_step=start, target_step=target,
            max_steps=st.steps.max_steps, seed=run.seed,
            checkpoint_dir=str(self.registry.staging(seg_id)), resume_from=resume,
            cache_dir=self.cache_dir, eval_every=st.spec.eval_every,
        )
        st.update_segment(seg_id, status=int(SegmentStatus.RUNNING), started=time.time())
        self.in_flight[seg_id] = st.segments[seg_id]
        self._launched[seg_id] = self.clock()
        self.executor.submit(task)
        self._invalidate()

    def _queue_unfinished_suggestions(self) -> None:
        """Queue, in decision order, every stored decision that has not been carried out: one
        never started, or one whose every segment was interrupted. Derived from storage alone,
        so a study killed again before its re-runs started loses nothing."""
        by_suggestion: dict[int, list[SegmentRecord]] = {}
        for seg in sorted(self.study.segments.values(), key=lambda s: s.segment_id):
            by_suggestion.setdefault(seg.suggestion_id, []).append(seg)
        for row in self.study.suggestions:
            segs = by_suggestion.get(row.suggestion_id, [])
            if any(s.status is not SegmentStatus.INTERRUPTED for s in segs):
                continue
            if segs:
                last = segs[-1]
                self.queue.append((last.run_id, row.suggestion_id, last.start_step,
                                   last.target_step))
            elif row.kind == "extend":
                assert row.run_id is not None
                done = self.study.run_record(row.run_id).steps_done
                self.queue.append((row.run_id, row.suggestion_id, done, row.steps))
            else:
                assert row.config is not None and row.model is not None
                rid = next((r.run_id for r in self.study.runs.values()
                            if r.suggestion_id == row.suggestion_id), None)
                if rid is None:
                    rid = self.study.add_run(row.suggestion_id, row.config, row.model, row.phase)
                self.queue.append((rid, row.suggestion_id, 0, row.steps))

    # ---- events ----------------------------------------------------------------------------
    def _handle(self, ev: Event) -> None:
        if isinstance(ev, ObservationEvent):
            self.executor.verdict(ev.segment_id, self._observe(ev))
        elif isinstance(ev, DoneEvent):
            self._done(ev.segment_id, ev.outcome, ev.wall)
        elif isinstance(ev, FailedEvent):
            self._failed(ev.segment_id, ev.error)
        elif isinstance(ev, ProgressEvent):
            self.sink.message(ev.message)

    def _observe(self, ev: ObservationEvent) -> Verdict:
        st = self.study
        seg = st.segments[ev.segment_id]
        st.add_observation(ev.segment_id, ev.step, ev.metrics)
        if seg.reason is not None:
            return Verdict.STOP
        run = st.runs[seg.run_id]
        if self.rules is None or run.phase is Phase.CONFIRM:
            return Verdict.CONTINUE
        history = RunHistory(seg.run_id, run.model, run.config, tuple(st.obs.get(seg.run_id, ())),
                             seg.target_step, st.steps.max_steps)
        reason = self.rules.check(history, self.view())
        if reason is None:
            return Verdict.CONTINUE
        st.update_segment(ev.segment_id, reason_rule=reason.rule, reason_msg=reason.message)
        self.snap.stops.append(f"run {seg.run_id} ({run.model}) at step {ev.step}: {reason.message}")
        return Verdict.STOP

    def _done(self, seg_id: int, outcome: SegmentOutcome, wall: float) -> None:
        st = self.study
        seg = st.segments[seg_id]
        end = int(outcome.end_step)
        if outcome.final_metrics:
            # metrics of the end step that came after its report (the evaluation of a stop)
            st.add_observation(seg_id, end, outcome.final_metrics)
        if outcome.checkpoint:
            self.registry.commit(seg_id, seg.run_id, end)
        score = None
        for ob in reversed(st.obs.get(seg.run_id, [])):
            if ob.segment_id == seg_id and ob.step == end:
                v = st.objective_value(ob.metrics)
                if v is not None:
                    score = st.sign * v
                    break
        status = SegmentStatus.STOPPED if seg.reason is not None else SegmentStatus.COMPLETED
        cost = float(outcome.cost) if math.isfinite(outcome.cost) else float(wall)
        st.update_segment(seg_id, status=int(status), end_step=end, score=score, cost=cost,
                          wall=float(wall), finished=time.time())
        if outcome.checkpoint:
            self.registry.release_superseded(seg.run_id, end)
        self.in_flight.pop(seg_id, None)
        self._launched.pop(seg_id, None)
        self._failures_in_a_row = 0
        self._after_segment()

    def _failed(self, seg_id: int, error: str) -> None:
        st = self.study
        seg = st.segments[seg_id]
        # A failed segment still spent compute: charge the steps it reported at the observed
        # per-step cost (or the wall time, if larger), so a failing trainer cannot loop for free.
        steps = [o.step for o in st.obs.get(seg.run_id, []) if o.segment_id == seg_id]
        ran = (max(steps) - seg.start_step) if steps else 0
        wall = self.clock() - self._launched.pop(seg_id, self.clock())
        cost = max(self.expected_cost(st.runs[seg.run_id].model, ran), wall if ran == 0 else 0.0)
        st.update_segment(seg_id, status=int(SegmentStatus.FAILED), error=error, cost=cost,
                          end_step=seg.start_step + ran, finished=time.time())
        self.in_flight.pop(seg_id, None)
        self.snap.failures += 1
        last = error.strip().splitlines()[-1] if error.strip() else "unknown error"
        self.sink.message(f"segment {seg_id} (run {seg.run_id}) failed: {last}")
        self._failures_in_a_row += 1
        self._after_segment()
        limit = max(3, 2 * self.workers)
        if self._failures_in_a_row >= limit:
            raise StudyAborted(
                f"{self._failures_in_a_row} segments failed in a row; the last error was:\n"
                f"{error.strip()}\nEverything recorded is kept: fix the cause, then run "
                f"`jfhpo resume {st.folder}`")

    def _after_segment(self) -> None:
        self._invalidate()
        self.study.touch_wall(self.wall_used())
        self._update_transfer()
        self._collect_checkpoints()

    def _update_transfer(self) -> None:
        st = self.study
        view = self.view()
        st.refresh_transfer(runs=view.runs)
        self._view = dataclasses.replace(view, transfer=st.transfer)
        warn = getattr(self.optimizer, "warnings", None)
        if callable(warn):
            for text in warn(self.view()):
                if st.warn(text):
                    self.sink.message(f"warning: {text}")

    def _collect_checkpoints(self) -> None:
        view = self.view()
        runs = {r.run_id: r for r in view.runs}

        def keep(run_id: int) -> bool:
            r = runs.get(run_id)
            if r is None or r.busy:
                return True
            return self.study.phase is Phase.SEARCH and self.optimizer.may_extend(view, r)

        def priority(run_id: int) -> float:
            r = runs.get(run_id)
            return -math.inf if r is None or r.score is None else r.score

        budget = self.study.spec.checkpoints.disk_budget_mb * 1e6
        self.registry.collect(keep, budget, priority)

    # ---- budget ------------------------------------------------------------------------------
    def wall_used(self) -> float:
        return self._wall0 + (self.clock() - self._t0)

    def expected_cost(self, model: str, steps: int, *, measured_only: bool = False) -> float:
        """Seconds ``steps`` steps of ``model`` should cost, from the segments seen so far.

        Costs are modelled as a fixed overhead per segment plus a per-step cost (least squares on
        ``a + b * steps`` once two step counts were seen; per-step ratios before). Without
        segments of ``model`` the estimate is scaled from the other models by the cost hints,
        unless ``measured_only``, which then answers 0 (unknown).
        """
        st = self.study
        points: list[tuple[str, int, float]] = []
        for seg in st.segments.values():
            if seg.status not in (SegmentStatus.COMPLETED, SegmentStatus.STOPPED) or not seg.cost:
                continue
            n = (seg.end_step or 0) - seg.start_step
            if n > 0:
                points.append((st.runs[seg.run_id].model, n, float(seg.cost)))
        ladder = st.ladder
        same = [(float(n), c) for m, n, c in points if m == model]
        scaled = [(ladder[m].cost * n, c) for m, n, c in points]
        if same and len({n for n, _ in same}) >= 2:
            return _affine_cost(same, float(steps))
        if same:
            # one step count on this model: overhead and per-step cost cannot be told apart
            # from it alone; take the per-step slope from every model (scaled by the cost
            # hints) and this model's own overhead
            slope = _slope(scaled) * ladder[model].cost
            if slope > 0:
                overhead = max(statistics.fmean(c - slope * n for n, c in same), 0.0)
                return overhead + slope * steps
            return _affine_cost(same, float(steps))
        if measured_only or not points:
            return 0.0
        return _affine_cost(scaled, ladder[model].cost * steps)

    def _search_budget_left(self) -> bool:
        v = self.view()
        inflight = 0.0
        for seg in self.in_flight.values():
            inflight += self.expected_cost(self.study.runs[seg.run_id].model,
                                           seg.target_step - seg.start_step)
        return v.budget_spent + inflight < v.budget_total

    def _confirm_reserve(self) -> float:
        """Budget held back for confirmation: the configured share, or more when the observed
        costs show that the confirmation runs (top-k plus the recipe) will cost more."""
        spec = self.study.spec
        k = spec.confirm.top_k
        if k == 0:
            return 0.0
        n = k + (1 if spec.confirm.include_recipe else 0)
        # only costs measured on the target itself: extrapolating short proxy segments (whose
        # fixed overhead dominates) over-reserves and starves the search
        need = n * self.expected_cost(self.study.ladder.target.name, self.study.steps.max_steps,
                                      measured_only=True)
        return max(spec.budget.seconds * spec.confirm.fraction, need)

    # ---- confirmation --------------------------------------------------------------------------
    def _begin_confirmation(self) -> None:
        """Plan the confirmation runs and queue those not stored yet.

        The plan is a function of the search phase alone (confirmation runs are hidden from the
        view it is made from), so a study killed half-way through planning or confirming makes
        the same plan again on resume and adds only what is missing.
        """
        st = self.study
        k = st.spec.confirm.top_k
        if st.phase is not Phase.CONFIRM:
            st.set_phase(Phase.CONFIRM)
        self._invalidate()
        if k == 0:
            return
        full = self.view()
        search_runs = tuple(r for r in full.runs if r.phase is Phase.SEARCH)
        n_search = sum(1 for s in st.suggestions if s.phase is Phase.SEARCH)
        view = dataclasses.replace(full, runs=search_runs, n_suggestions=n_search)
        configs = list(self.optimizer.confirm(view, k))
        keys = {st.space.key(c) for c in configs}
        if st.spec.confirm.include_recipe:
            recipe = self.backend_cls.recipe()
            rc = {n: recipe[n] for n in st.space.names if n in recipe}
            if len(rc) == len(st.space.names):
                st.set_recipe(rc)
            if len(rc) == len(st.space.names) and st.space.key(rc) not in keys:
                configs.insert(min(1, len(configs)), rc)
        target, steps = st.ladder.target.name, st.steps.max_steps
        search_ids = {r.run_id for r in search_runs}
        spent = sum(s.cost or 0.0 for s in st.segments.values() if s.run_id in search_ids)
        budget_left = st.spec.budget.seconds - spent
        plan: list[dict[str, Any]] = []
        planned = 0.0
        for i, cfg in enumerate(configs):
            cost = self.expected_cost(target, steps)
            if i >= 2 and planned + cost > budget_left:
                st.warn(f"confirmation of {len(configs) - i} more configuration(s) skipped: "
                        "the budget is spent")
                break
            planned += cost
            plan.append(dict(cfg))
        stored = [s for s in st.suggestions if s.phase is Phase.CONFIRM]
        for cfg in plan[len(stored):]:
            sid = st.add_suggestion("start", steps, Phase.CONFIRM, config=cfg, model=target)
            rid = st.add_run(sid, cfg, target, Phase.CONFIRM)
            self.queue.append((rid, sid, 0, steps))
        if not stored:
            self.sink.message(f"confirmation: training {len(plan)} configuration(s) on the "
                              f"target {target} for {steps} steps")

    # ---- preparation ---------------------------------------------------------------------------
    def _prepare(self) -> None:
        rungs = list(self.study.ladder.rungs)
        self.executor.prepare(rungs, self.cache_dir)
        waiting = {r.name for r in rungs}
        while waiting:
            ev = self.executor.next_event(timeout=5.0)
            if isinstance(ev, PreparedEvent):
                if ev.error:
                    raise PrepareError(f"preparing model {ev.model!r} failed:\n{ev.error}")
                waiting.discard(ev.model)
            elif isinstance(ev, ProgressEvent):
                self.sink.message(ev.message)

    # ---- progress ------------------------------------------------------------------------------
    def _refresh(self) -> None:
        self._shown = self.clock()
        st = self.study
        v = self.view()
        self.snap.phase = st.phase.value
        self.snap.budget_spent = v.budget_spent
        self.snap.budget_total = st.spec.budget.seconds
        self.snap.segments_done = sum(
            1 for s in st.segments.values()
            if s.status in (SegmentStatus.COMPLETED, SegmentStatus.STOPPED))
        flight = {}
        for sid, seg in self.in_flight.items():
            run = st.runs[seg.run_id]
            obs = st.obs.get(seg.run_id) or []
            step = obs[-1].step if obs else seg.start_step
            flight[sid] = f"run {seg.run_id} {run.model} step {step}/{seg.target_step}"
        self.snap.in_flight = flight
        best = st.best()
        if best is not None:
            self.snap.best = (f"{best['score']:.4f} ({best['model']}, {best['steps']} steps, "
                              f"run {best['run_id']})")
        if st.transfer:
            self.snap.transfer = "; ".join(
                f"{t.small}->{t.large}: Spearman {t.spearman:.2f} ({t.n_configs} configs)"
                for t in st.transfer)
        self.sink.update(self.snap)


def summary_lines(study: Study) -> list[str]:
    """The closing lines of a study: transfer figures and the recipe beside the winner."""
    lines = [
        f"transfer {t.small} -> {t.large}: Spearman {t.spearman:.2f}, Kendall {t.kendall:.2f} "
        f"over {t.n_configs} configurations ({t.n_pairs} pairs)"
        for t in study.transfer
    ]
    if not lines and len(study.ladder.rungs) > 1:
        lines.append("transfer: not measured — no configurations were scored on two model sizes "
                     "(the check needs at least 3 shared ones)")
    best = study.best()
    if best is not None and best.get("recipe_score") is not None:
        diff = best["score"] - best["recipe_score"]
        lines.append(f"recipe (no search) on the target: {best['objective']}="
                     f"{best['recipe_score']:.4f}; the winner: {best['score']:.4f} "
                     f"({diff:+.4f})")
    return lines


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of cost on x (0 when x does not vary or the slope is negative)."""
    xs = [p[0] for p in points]
    if len(set(xs)) < 2:
        return 0.0
    mx, mc = statistics.fmean(xs), statistics.fmean(c for _, c in points)
    sxx = sum((px - mx) ** 2 for px in xs)
    return max(sum((px - mx) * (c - mc) for px, c in points) / sxx, 0.0)


def _affine_cost(points: list[tuple[float, float]], x: float) -> float:
    """Predict cost at ``x`` from (x, cost) points with ``a + b x`` (a, b >= 0); with a single
    distinct x, proportionally."""
    b = _slope(points)
    if b == 0.0:
        return statistics.median(c / max(px, 1e-9) for px, c in points) * x
    mx, mc = statistics.fmean(p[0] for p in points), statistics.fmean(c for _, c in points)
    return max(mc - b * mx, 0.0) + b * x


def summarize_config(config: Mapping[str, Any]) -> str:
    parts = []
    for k, v in config.items():
        parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(parts)


def default_cache_dir() -> str:
    """Where backends keep base models: $JFHPO_CACHE, else ~/.cache/jfhpo."""
    import os

    return os.environ.get("JFHPO_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "jfhpo")


def build_rules(study: Study) -> StoppingRule | None:
    from jfhpo.stopping.factory import build_rules as _build

    return _build(study.spec.stopping)


def run_study(study: Study, sink: ProgressSink | None = None, workers: int | None = None,
              executor: Executor | None = None) -> dict[str, Any] | None:
    """Wire backend, optimizer, rules and a local executor for ``study`` and run it."""
    from jfhpo.backends.base import get_backend
    from jfhpo.executors.local import LocalExecutor
    from jfhpo.optimizers.base import get_optimizer

    spec = study.spec
    n = workers or spec.workers
    backend_cls = get_backend(spec.backend.name)
    optimizer = get_optimizer(spec.optimizer.name)(spec.optimizer.options)
    rules = build_rules(study)
    cache = spec.cache_dir or default_cache_dir()
    ex_opts = dict(spec.executor)
    ex_name = ex_opts.pop("name", "local")
    if ex_name not in ("local", "ray"):
        from jfhpo.spec import StudyFileError

        raise StudyFileError(f"executor.name: unknown executor {ex_name!r}; valid: ['local', 'ray']")
    if executor is None and ex_name == "ray":
        # minimal hook; the executor registry (jfhpo.executors.get_executor) replaces it
        from jfhpo.executors.ray import RayExecutor

        executor = RayExecutor(spec.backend.name, spec.backend.options, n,
                               spec.threads_per_worker, **ex_opts)
    ex = executor or LocalExecutor(spec.backend.name, spec.backend.options, n,
                                   spec.threads_per_worker)
    try:
        tuner = Tuner(study, ex, optimizer, rules, backend_cls, sink, n, cache)
        return tuner.run()
    finally:
        ex.shutdown()
