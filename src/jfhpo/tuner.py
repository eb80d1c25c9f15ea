"""The tuner: the event loop, and the only place where optimizer, executor, stopping rules,
storage and checkpoints meet. It runs the search until the budget ledger cannot pay for the next
segment, then the confirmation on the target, writing every event to storage as it happens. Every
decision about budget, confirmation, resumption and retention is a pure planner
(``jfhpo.planning``) over the study's view; the cost of a segment comes from THE cost model.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from jfhpo import progress, wiring
from jfhpo.backends.base import Backend, SegmentOutcome
from jfhpo.checkpoints import CheckpointRegistry
from jfhpo.executors import base as events
from jfhpo.optimizers.base import Optimizer
from jfhpo.planning import translate
from jfhpo.planning.ledger import suggestion_cost
from jfhpo.progress import ProgressSink
from jfhpo.records import Phase, SegmentRecord, SegmentStatus, Suggestion, Verdict
from jfhpo.results import study_results
from jfhpo.stopping.base import StoppingRule
from jfhpo.study import Study
from jfhpo.view import StudyView
from jfhpo.wiring import PrepareError, StudyAborted, default_cache_dir, run_study

__all__ = ["PrepareError", "StudyAborted", "Tuner", "default_cache_dir", "run_study"]


class Tuner:
    """Drives one study to its end. Construct, then call ``run()``; safe to call after a crash."""

    def __init__(self, study: Study, executor: events.Executor, optimizer: Optimizer,
                 rules: StoppingRule | None, backend: Backend | type[Backend],
                 sink: ProgressSink | None = None, workers: int = 1, cache_dir: str = "",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.study, self.executor, self.optimizer, self.rules = study, executor, optimizer, rules
        self.backend = backend(study.spec.backend.options) if isinstance(backend, type) else backend
        self.caps = self.backend.capabilities()
        self.sink = sink or ProgressSink()
        self.workers, self.cache_dir, self.clock = workers, cache_dir, clock
        self.registry = CheckpointRegistry(study)
        self.queue: deque[tuple[int, int, int, int]] = deque()  # (run, decision, start, target)
        self.in_flight: dict[int, SegmentRecord] = {}
        self._view: StudyView | None = None
        self._refused: StudyView | None = None
        self._exhausted = False
        self._wall0, self._t0, self._shown = study.wall_used(), clock(), -math.inf
        self._gap = 0.0  # least seconds between redraws: 5x what the last one took
        self._launched: dict[int, float] = {}
        self._failures_in_a_row = 0

    # ---- the loop --------------------------------------------------------------------------
    def run(self) -> dict[str, Any] | None:
        st = self.study
        self.sink.start(str(st.folder), st.spec.name)
        st.mark_interrupted()
        wiring.remember_recipe(st, self.backend)  # before the first decision: the view shows it
        self.registry.sweep()
        self._queue_pending()
        self._update_transfer()
        wiring.prepare_models(self.executor, st, self.cache_dir, self.sink)
        try:
            if st.phase is Phase.SEARCH:
                self._loop(Phase.SEARCH)
            self._begin_confirmation()
            self._loop(Phase.CONFIRM)
            while self._top_up():
                self._loop(Phase.CONFIRM)
        finally:
            self.study.touch_wall(self.wall_used())
        res = study_results(st, wall_used=self.wall_used())
        for line in progress.closing_lines(res):
            self.sink.message(line)
        self.sink.finish(res.winner)
        return st.best()

    def _loop(self, phase: Phase) -> None:
        self._exhausted = False
        while True:
            blocked = self._fill(phase)
            if not self.in_flight and (blocked or not self.queue):
                self._show()
                return
            event = self.executor.next_event(timeout=1.0)
            if event is not None:
                self._handle(event)
            since = self.clock() - self._shown
            if since > max(0.5, self._gap) or (
                    not isinstance(event, events.ObservationEvent) and since > self._gap):
                self._shown = self.clock()
                self._show()

    def _fill(self, phase: Phase) -> bool:
        """Start what can start; True when the queue's head cannot (resources or budget)."""
        while self.executor.free_slots() > 0:
            if not self.queue:
                view = self.view()
                if self._exhausted or phase is Phase.CONFIRM or view is self._refused:
                    return False
                if not view.cost.calibrated and self.in_flight:
                    return False  # costs unknown: one probe segment measures them first
                s = self.optimizer.suggest(view)
                if s is None or not view.ledger.can_pay(suggestion_cost(view, s)):
                    # nothing (affordable) to do: ask again once something has changed
                    self._exhausted, self._refused = not self.in_flight, view
                    return False
                self._store(s)
                continue
            rid, sid, start, target = self.queue[0]
            model = self.study.runs[rid].model
            if phase is Phase.CONFIRM and not self.view().ledger.can_pay(
                    self.view().cost.between(model, start, target)):
                if not self.in_flight:
                    self._warn(f"confirmation run {rid} not started: the budget cannot pay for it")
                return True
            probe = wiring.make_task(self.study, self.registry, rid, -1, start, target, "")
            if not self.executor.can_submit(probe):
                return True
            self.queue.popleft()
            self._launch(rid, sid, start, target)
        return False

    # ---- decisions -> segments -------------------------------------------------------------
    def view(self) -> StudyView:
        if self._view is None:
            self._view = self.study.view(self.workers, wall_used=self.wall_used(),
                                         resumable=self.caps.resumable)
        return self._view

    def _store(self, s: Suggestion) -> None:
        """Record a decision and queue its segment (the one translation, shared with AskTell)."""
        st = self.study

        def new_run(sid: int, config: Any, model: str, phase: Phase) -> int:
            return wiring.new_run(st, self.backend, sid, config, model, phase)

        for p in translate.store_suggestion(st, self.view(), s, self.caps,
                                            self.registry.existing(), new_run):
            if p.why:
                self._warn(p.why)
            assert p.run_id is not None
            self.queue.append((p.run_id, p.suggestion_id, p.start, p.target))
        self._view = None

    def _queue_pending(self, only: int | None = None) -> None:
        """Queue, in decision order, every stored decision not carried out yet (the resume
        planner), adding the new runs it asks for (a checkpoint gone, a confirmation retry)."""
        for p in wiring.pending_for(self.study, self.registry.existing(), self.caps, only):
            rid = p.run_id
            if rid is None:
                assert p.config is not None and p.model is not None
                rid = wiring.new_run(self.study, self.backend, p.suggestion_id, p.config,
                                     p.model, p.phase)
            if p.why:
                self._warn(p.why)
            self.queue.append((rid, p.suggestion_id, p.start, p.target))

    def _launch(self, run_id: int, suggestion_id: int, start: int, target: int) -> None:
        st = self.study
        seg_id = st.add_segment(run_id, suggestion_id, start, target)
        task = wiring.make_task(st, self.registry, run_id, seg_id, start, target, self.cache_dir)
        st.update_segment(seg_id, status=int(SegmentStatus.RUNNING), started=time.time())
        self.in_flight[seg_id] = st.segments[seg_id]
        self._launched[seg_id] = self.clock()
        self.executor.submit(task)
        self._view = None

    # ---- events ----------------------------------------------------------------------------
    def _handle(self, ev: events.Event) -> None:
        if isinstance(ev, events.ObservationEvent):
            self.executor.verdict(ev.segment_id, self._observe(ev))
        elif isinstance(ev, events.DoneEvent):
            self._done(ev.segment_id, ev.outcome, ev.wall)
        elif isinstance(ev, events.FailedEvent):
            self._failed(ev.segment_id, ev.error)
        elif isinstance(ev, events.ProgressEvent):
            self.sink.message(ev.message)

    def _observe(self, ev: events.ObservationEvent) -> Verdict:
        seg = self.study.segments[ev.segment_id]
        self.study.add_observation(ev.segment_id, ev.step, ev.metrics)
        if seg.reason is not None:
            return Verdict.STOP
        stop = wiring.stop_check(self.study, self.rules, seg, self.view())
        return Verdict.STOP if stop else Verdict.CONTINUE

    def _done(self, seg_id: int, outcome: SegmentOutcome, wall: float) -> None:
        wiring.record_done(self.study, self.registry, seg_id, outcome, wall)
        self.in_flight.pop(seg_id, None)
        self._launched.pop(seg_id, None)
        self._failures_in_a_row = 0
        self._after_segment()

    def _failed(self, seg_id: int, error: str) -> None:
        st, seg = self.study, self.study.segments[seg_id]
        wall = self.clock() - self._launched.pop(seg_id, self.clock())
        self.sink.message(wiring.record_failure(st, seg, error, wall, self.view().cost))
        self.in_flight.pop(seg_id, None)
        if st.runs[seg.run_id].phase is Phase.CONFIRM:
            self._queue_pending(only=seg.suggestion_id)  # a retry, while retries are left
        self._failures_in_a_row += 1
        self._after_segment()
        wiring.abort_if_broken(self._failures_in_a_row, self.workers, error, st.folder)

    def _after_segment(self) -> None:
        self._view = None
        self.study.touch_wall(self.wall_used())
        self._update_transfer()
        self._collect_checkpoints()

    def _show(self) -> None:
        """Redraw the progress view from the results layer (what ``jfhpo status`` reads)."""
        if self.sink.wants_updates:
            t0 = time.perf_counter()
            res = study_results(self.study, wall_used=self.wall_used())
            self.sink.update(progress.snapshot(res))
            self._gap = 5.0 * (time.perf_counter() - t0)  # a big study: redraw less often

    def _warn(self, text: str) -> None:
        if self.study.warn(text):
            self.sink.message(f"warning: {text}")

    def _update_transfer(self) -> None:
        view = self.view()
        self.study.refresh_transfer(runs=view.runs)
        self._view = dataclasses.replace(view, transfer=self.study.transfer)
        warn = getattr(self.optimizer, "warnings", None)
        for text in (warn(self._view) if callable(warn) else ()):
            self._warn(text)

    def _collect_checkpoints(self) -> None:
        queued = {(rid, start) for rid, _, start, _ in self.queue}
        flying = {(s.run_id, s.start_step) for s in self.in_flight.values()}
        wiring.collect_checkpoints(self.study, self.registry, self.view(), self.optimizer,
                                   queued | flying)

    def wall_used(self) -> float:
        return self._wall0 + (self.clock() - self._t0)

    # ---- confirmation --------------------------------------------------------------------------
    def _begin_confirmation(self) -> None:
        """Plan the confirmation runs (from what is recorded, so a resumed study makes the same
        plan) and queue those not stored yet."""
        if self.study.phase is not Phase.CONFIRM:
            self.study.set_phase(Phase.CONFIRM)
        self._queue_confirmation()

    def _top_up(self) -> bool:
        """Once the planned confirmation runs are done, plan again with their outcomes and
        measured cost: the next configurations (no more at once than the workers train), and
        those a target cost predicted too high left out. True when it queued any."""
        added = self._queue_confirmation()
        if added:
            self.sink.message(f"confirmation: training {added} more configuration(s)")
        return added > 0

    def _queue_confirmation(self) -> int:
        """Queue the confirmation decisions the plan holds and the study lacks, show the
        planner's notes, and return how many it queued."""
        self._view = None
        if not self.study.spec.confirm.top_k:
            return 0
        items, notes = wiring.queue_confirmation(self.study, self.view(), self.optimizer,
                                                 self.backend, self.wall_used())
        self.queue.extend(items)
        for warning, text in notes:
            self._warn(text) if warning else self.sink.message(text)
        return len(items)
