"""Inline executor: segments run in the calling process, one at a time.

A real executor (the same events, verdicts and backend calls as the local pool), without worker
processes: handy for debugging a backend with a debugger or print statements, and for fast engine
tests. The segment runs on a helper thread of this process so that the tuner can answer each
observation with a verdict while the backend waits for it, exactly as a worker process would.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from jfhpo.backends.base import Backend, SegmentTask, get_backend
from jfhpo.executors import register_executor
from jfhpo.executors.base import (
    DoneEvent,
    Event,
    Executor,
    FailedEvent,
    ObservationEvent,
    PreparedEvent,
    ProgressEvent,
)
from jfhpo.fidelity import ModelLadder, ModelRung
from jfhpo.records import Verdict


@register_executor("inline")
class InlineExecutor(Executor):
    """One slot; the backend lives in this process (``workers`` is ignored: one at a time)."""

    def __init__(self, backend: str, backend_options: Mapping[str, Any], workers: int = 1,
                 threads_per_worker: int = 1, **options: Any) -> None:
        if options:
            from jfhpo.executors.base import ExecutorError

            raise ExecutorError(f"executor: the inline executor takes no options, got "
                                f"{sorted(options)}")
        self.backend: Backend = get_backend(backend)(backend_options)
        self.backend.setup_worker(threads_per_worker)
        self.events: queue.Queue[Event] = queue.Queue()
        self.verdicts: queue.Queue[Verdict] = queue.Queue()
        self.busy: int | None = None
        self.thread: threading.Thread | None = None

    def free_slots(self) -> int:
        return 0 if self.busy is not None else 1

    def submit(self, task: SegmentTask) -> None:
        if self.busy is not None:
            raise RuntimeError("the inline executor is busy")
        self.busy = task.segment_id
        self.thread = threading.Thread(target=self._run, args=(task,), daemon=True,
                                       name=f"jfhpo-inline-{task.segment_id}")
        self.thread.start()

    def _run(self, task: SegmentTask) -> None:
        def report(step: int, metrics: Mapping[str, float]) -> Verdict:
            self.events.put(ObservationEvent(task.segment_id, step, dict(metrics)))
            return self.verdicts.get()

        t0 = time.monotonic()
        try:
            outcome = self.backend.run_segment(task, report)
            ev: Event = DoneEvent(task.segment_id, outcome, time.monotonic() - t0)
        except Exception:
            ev = FailedEvent(task.segment_id, traceback.format_exc())
        self.events.put(ev)

    def verdict(self, segment_id: int, verdict: Verdict) -> None:
        if segment_id == self.busy:
            self.verdicts.put(verdict)

    def next_event(self, timeout: float) -> Event | None:
        try:
            ev = self.events.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        if isinstance(ev, DoneEvent | FailedEvent) and ev.segment_id == self.busy:
            if self.thread is not None:
                self.thread.join()
            self.busy, self.thread = None, None
        return ev

    def prepare(self, rungs: Sequence[ModelRung], cache_dir: str) -> None:
        for rung in rungs:
            try:
                self.backend.prepare(ModelLadder([rung]), cache_dir,
                                     lambda text: self.events.put(ProgressEvent(text)))
                self.events.put(PreparedEvent(rung.name, None))
            except Exception:
                self.events.put(PreparedEvent(rung.name, traceback.format_exc()))

    def shutdown(self) -> None:
        if self.busy is not None:
            self.verdicts.put(Verdict.STOP)
