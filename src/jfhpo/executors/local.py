"""Local executor: a pool of persistent worker processes on this machine.

Starting Python with torch and transformers costs seconds, so each worker serves many segments.
Workers are spawned (not forked), run one backend instance each with a fixed number of torch
threads, and talk to the pool over a duplex pipe. A worker that dies is replaced; its segment is
reported failed with the exit code; the study goes on.

Resources: the pool declares what it has (``executor: {name: local, gpus: 2, cpus: 8,
resources: {licence: 1}}``); a segment starts only when a worker is idle and its rung's
``resources`` are free, and each segment gets its GPU ids through ``CUDA_VISIBLE_DEVICES`` (set in
the worker before the segment runs; a backend must not initialise CUDA before its first segment).
Undeclared ``cpus`` are not counted; undeclared GPUs or custom resources are none.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from jfhpo.backends.base import SegmentTask
from jfhpo.executors import register_executor
from jfhpo.executors.base import (
    DoneEvent,
    Event,
    Executor,
    ExecutorError,
    FailedEvent,
    ObservationEvent,
    PreparedEvent,
    ProgressEvent,
)
from jfhpo.fidelity import ModelLadder, ModelRung
from jfhpo.records import Verdict


def worker_main(conn: Connection, backend_name: str, options: Mapping[str, Any],
                threads: int) -> None:
    """Entry point of a worker process: serve segments until told to exit."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(threads))
    from jfhpo.backends.base import get_backend

    backend = get_backend(backend_name)(options)
    backend.setup_worker(threads)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg[0] == "exit":
            return
        if msg[0] == "prepare":
            rung, cache_dir = msg[1], msg[2]
            try:
                backend.prepare(ModelLadder([rung]), cache_dir,
                                lambda text: conn.send(("progress", text)))
                conn.send(("prepared", rung.name, None))
            except Exception:
                conn.send(("prepared", rung.name, traceback.format_exc()))
            continue
        task: SegmentTask = msg[1]
        for key, value in (msg[2] if len(msg) > 2 else {}).items():
            os.environ[key] = value

        def report(step: int, metrics: Mapping[str, float], _task: SegmentTask = task) -> Verdict:
            conn.send(("obs", _task.segment_id, step, dict(metrics)))
            reply = conn.recv()  # ("verdict", segment_id, "continue" | "stop")
            return Verdict(reply[2])

        t0 = time.monotonic()
        try:
            outcome = backend.run_segment(task, report)
            conn.send(("done", task.segment_id, outcome, time.monotonic() - t0))
        except Exception:
            conn.send(("failed", task.segment_id, traceback.format_exc()))


@dataclass
class _Worker:
    index: int
    proc: Any  # multiprocessing.Process (spawn context)
    conn: Connection
    segment: int | None = None  # the segment (or -1 for a prepare job) it is busy with
    ready: bool = False


def _amount(key: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ExecutorError(f"executor.{key}: must be a number, got {value!r}") from None
    if not (v >= 0 and v < float("inf")):
        raise ExecutorError(f"executor.{key}: must be a finite number >= 0, got {value!r}")
    return v


@register_executor("local")
class LocalExecutor(Executor):
    """``workers`` processes, each running ``backend_name`` with ``threads`` torch threads, over
    a pool of ``gpus`` GPUs (ids 0..gpus-1, or ``gpu_ids``), ``cpus`` CPUs and custom
    ``resources``."""

    @classmethod
    def validate(cls, options: Mapping[str, Any], rungs: Sequence[ModelRung]) -> None:
        pool = cls.__new__(cls)
        pool._pool(options)
        for rung in rungs:
            pool.check_resources(rung.resources, f"models.{rung.name}")

    def __init__(self, backend_name: str, options: Mapping[str, Any], workers: int,
                 threads: int = 1, **pool: Any) -> None:
        self._pool(pool)
        self.backend_name = backend_name
        self.options = dict(options)
        self.threads = threads
        self.ctx = mp.get_context("spawn")
        self.workers = [self._spawn(i) for i in range(workers)]
        self.pending_prepare: deque[tuple[ModelRung, str]] = deque()
        self.events: deque[Event] = deque()

    def _pool(self, pool: Mapping[str, Any]) -> None:
        """Read the pool's declaration (``executor:`` keys)."""
        unknown = set(pool) - {"gpus", "gpu_ids", "cpus", "resources"}
        if unknown:
            raise ExecutorError(f"executor: unknown key(s) {sorted(unknown)} for the local "
                                "executor; valid: cpus, gpu_ids, gpus, resources")
        if "gpu_ids" in pool:
            self.gpu_ids = [str(g) for g in pool["gpu_ids"]]
        else:
            self.gpu_ids = [str(i) for i in range(int(_amount("gpus", pool.get("gpus", 0))))]
        self.has_gpus = "gpus" in pool or "gpu_ids" in pool
        self.capacity: dict[str, float] = {
            k: _amount(f"resources.{k}", v) for k, v in dict(pool.get("resources") or {}).items()}
        if "cpus" in pool:
            self.capacity["cpus"] = _amount("cpus", pool["cpus"])
        self.free_gpus = list(self.gpu_ids)
        self.used: dict[str, float] = {}
        self.held: dict[int, tuple[list[str], dict[str, float]]] = {}  # segment -> its share

    # ---- resources -------------------------------------------------------------------------
    def check_resources(self, resources: Mapping[str, float], where: str) -> None:
        for key, need in resources.items():
            if key == "gpus":
                have = float(len(self.gpu_ids))
            elif key == "cpus" and "cpus" not in self.capacity:
                continue
            else:
                have = self.capacity.get(key, 0.0)
            if need > have:
                raise ExecutorError(
                    f"{where}.resources.{key}: asks {need:g} but the local pool has {have:g}; "
                    f"declare it under executor: (e.g. executor: {{name: local, {key}: {need:g}}})")

    def _fits(self, resources: Mapping[str, float]) -> bool:
        for key, need in resources.items():
            if key == "gpus":
                if round(need) > len(self.free_gpus):
                    return False
            elif key in self.capacity and self.used.get(key, 0.0) + need > self.capacity[key] + 1e-9:
                return False
        return True

    def can_submit(self, task: SegmentTask) -> bool:
        return self.free_slots() > 0 and self._fits(task.resources)

    def _take(self, task: SegmentTask) -> dict[str, str]:
        n = round(task.resources.get("gpus", 0))
        gpus, self.free_gpus = self.free_gpus[:n], self.free_gpus[n:]
        share = {k: v for k, v in task.resources.items() if k != "gpus" and k in self.capacity}
        for k, v in share.items():
            self.used[k] = self.used.get(k, 0.0) + v
        self.held[task.segment_id] = (gpus, share)
        return {"CUDA_VISIBLE_DEVICES": ",".join(gpus)} if self.has_gpus else {}

    def _give_back(self, segment_id: int | None) -> None:
        if segment_id is None or segment_id not in self.held:
            return
        gpus, share = self.held.pop(segment_id)
        self.free_gpus = sorted([*self.free_gpus, *gpus], key=self.gpu_ids.index)
        for k, v in share.items():
            self.used[k] = self.used.get(k, 0.0) - v

    def _spawn(self, index: int) -> _Worker:
        parent, child = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(
            target=worker_main, args=(child, self.backend_name, self.options, self.threads),
            name=f"jfhpo-worker-{index}", daemon=True,
        )
        proc.start()
        child.close()
        return _Worker(index, proc, parent)

    # ---- Executor --------------------------------------------------------------------------
    def free_slots(self) -> int:
        return sum(1 for w in self.workers if w.segment is None) - len(self.pending_prepare)

    def submit(self, task: SegmentTask) -> None:
        if not self._fits(task.resources):
            raise RuntimeError(f"segment {task.segment_id}: its resources are not free")
        for w in self.workers:
            if w.segment is None:
                w.segment = task.segment_id
                w.conn.send(("run", task, self._take(task)))
                return
        raise RuntimeError("no free worker")

    def verdict(self, segment_id: int, verdict: Verdict) -> None:
        for w in self.workers:
            if w.segment == segment_id:
                try:
                    w.conn.send(("verdict", segment_id, verdict.value))
                except (BrokenPipeError, OSError):
                    pass  # the worker died; its sentinel reports it
                return

    def prepare(self, rungs: Sequence[ModelRung], cache_dir: str) -> None:
        for r in rungs:
            self.pending_prepare.append((r, cache_dir))
        self._dispatch_prepare()

    def _dispatch_prepare(self) -> None:
        for w in self.workers:
            if w.segment is None and self.pending_prepare:
                rung, cache_dir = self.pending_prepare.popleft()
                w.segment = -1
                w.conn.send(("prepare", rung, cache_dir))

    def next_event(self, timeout: float) -> Event | None:
        if self.events:
            return self.events.popleft()
        deadline = time.monotonic() + timeout
        while not self.events:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            handles: list[Any] = [w.conn for w in self.workers]
            handles += [w.proc.sentinel for w in self.workers]
            ready = wait(handles, timeout=left)
            for w in list(self.workers):
                if w.conn in ready:
                    self._read(w)
            for w in list(self.workers):
                if w.proc.sentinel in ready and not w.conn.poll():
                    self._died(w)
        return self.events.popleft()

    def _read(self, w: _Worker) -> None:
        try:
            msg = w.conn.recv()
        except (EOFError, OSError):
            self._died(w)
            return
        kind = msg[0]
        if kind == "ready":
            w.ready = True
        elif kind == "obs":
            self.events.append(ObservationEvent(msg[1], msg[2], msg[3]))
        elif kind == "done":
            self._give_back(w.segment)
            w.segment = None
            self.events.append(DoneEvent(msg[1], msg[2], msg[3]))
        elif kind == "failed":
            self._give_back(w.segment)
            w.segment = None
            self.events.append(FailedEvent(msg[1], msg[2]))
        elif kind == "progress":
            self.events.append(ProgressEvent(msg[1]))
        elif kind == "prepared":
            w.segment = None
            self.events.append(PreparedEvent(msg[1], msg[2]))
            self._dispatch_prepare()

    def _died(self, w: _Worker) -> None:
        w.proc.join(timeout=1.0)
        code = w.proc.exitcode
        self._give_back(w.segment)
        if w.segment is not None and w.segment >= 0:
            self.events.append(FailedEvent(
                w.segment, f"worker process {w.proc.pid} died (exit code {code}) during the segment"))
        elif w.segment == -1:
            self.events.append(PreparedEvent("?", f"worker died (exit code {code}) while preparing"))
        elif not w.ready:
            # died before serving anything: the backend cannot even start; do not loop forever
            raise RuntimeError(
                f"worker for backend '{self.backend_name}' exited with code {code} at start-up")
        w.conn.close()
        self.workers[self.workers.index(w)] = self._spawn(w.index)

    def shutdown(self) -> None:
        for w in self.workers:
            try:
                w.conn.send(("exit",))
            except (BrokenPipeError, OSError):
                pass
        for w in self.workers:
            w.proc.join(timeout=5.0)
            if w.proc.is_alive():
                w.proc.terminate()
                w.proc.join(timeout=2.0)
