"""Ray executor: run each segment as a Ray task on an existing Ray cluster.

Design (what runs where, and why):

* **One Ray task per segment**, requesting the rung's resources (``gpus``, ``cpus``, custom
  resources; fractional GPUs allowed), so Ray packs small proxies many to a node and gives the
  target the GPUs it asks for. The task runs the study's backend in a Ray worker process, which
  Ray keeps between tasks (``max_calls=0``), so imports and the backend instance are paid once per
  worker like the local executor's persistent workers.
* **Admission on the driver.** The executor keeps its own ledger of what its running segments hold
  and submits a segment to Ray only when the cluster's totals leave room for it (FIFO, so a large
  request is not starved by small ones). Ray enforces the same limits again on each node. The
  ledger is what lets Ray-based trainers be admitted by their GPU count without holding them:
* **Ray-based trainers (VeRL) are not nested.** A trainer that builds its own placement groups
  hangs when started inside another placement group (ray-project/ray#47439). For such backends
  (class attribute ``uses_ray = True``, the built-in name ``verl``, or ``ray_trainer: true`` in the
  ``executor:`` section) the segment task is a *launcher*: it asks Ray for ``launcher_cpus`` CPUs
  (default 0) and no GPUs, points ``RAY_ADDRESS`` at the same cluster and lets the backend start
  the trainer, which creates its placement groups at top level. The executor still admits the
  launcher only when the rung's GPUs are free in its ledger. No jfhpo task ever uses a placement
  group, so nothing is nested.
* **Metrics and verdicts** travel through one small async actor per study (the mailbox, pinned to
  the driver's node): the worker's ``report`` sends an observation and blocks until the tuner's
  verdict for that step comes back, which keeps the local executor's stop semantics (the segment
  ends right after the observation that fired a rule).
* **Faults.** A segment whose worker process or node is lost (any Ray system error, not an
  exception of the backend) is submitted again from the checkpoint it started from (the run's last
  committed checkpoint), up to ``max_retries`` times, then reported failed. Steps it re-runs are
  not reported twice: the mailbox remembers the last step the tuner saw and answers replayed steps
  with the verdict already given. A driver crash kills the study's tasks (Ray ties them to the
  driver); ``jfhpo resume`` re-queues the interrupted segments.
* **Checkpoints** are written by the worker to ``task.checkpoint_dir`` inside the study folder,
  so the study folder must be on a filesystem every node mounts at the same path. On a cluster of
  more than one node this is checked once, before the first segment, by a probe file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import os
import shutil
import time
import traceback
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jfhpo.backends.base import Backend, SegmentOutcome, SegmentTask, get_backend
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
from jfhpo.spec import StudyFileError

try:
    import ray
    import ray.exceptions
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
except ImportError:  # pragma: no cover - depends on the installation
    raise StudyFileError("executor.name: 'ray' needs the Ray package; install it with "
                         "`pip install 'jfhpo[ray]'`") from None

#: backends known to start Ray themselves (run as CPU-only launchers, see the module docstring)
RAY_BASED_BACKENDS = frozenset({"verl"})
#: the process title of a Ray worker running a segment is ``ray::`` + this name
SEGMENT_TASK_NAME = "jfhpo_segment"


# ---- resources ------------------------------------------------------------------------------
def rung_resources(task_or_rung: SegmentTask | ModelRung) -> dict[str, float]:
    """The resource request of a segment or rung, read tolerantly from wherever it is declared.

    In order: ``SegmentTask.resources`` (the engine's contract), ``ModelRung.resources``, then
    ``ModelRung.build["resources"]`` (usable before a study file has a ``resources:`` key).
    Keys are the study file's names: ``gpus``, ``cpus``, ``memory_gb`` and custom resources.
    """
    sources: list[Any] = []
    if isinstance(task_or_rung, SegmentTask):
        sources.append(getattr(task_or_rung, "resources", None))
        rung = task_or_rung.model
    else:
        rung = task_or_rung
    sources.append(getattr(rung, "resources", None))
    build = rung.build if isinstance(rung.build, Mapping) else {}
    sources.append(build.get("resources"))
    for src in sources:
        if src:
            if not isinstance(src, Mapping):
                raise StudyFileError(f"models.{rung.name}.resources: expected a mapping like "
                                     f"{{gpus: 1, cpus: 4}}, got {src!r}")
            out: dict[str, float] = {}
            for k, v in src.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
                        math.isfinite(v) and v >= 0):
                    raise StudyFileError(f"models.{rung.name}.resources.{k}: expected a "
                                         f"non-negative number, got {v!r}")
                out[str(k)] = float(v)
            return out
    return {}


@dataclass(frozen=True)
class Request:
    """A segment's demand in Ray's resource names (``CPU``, ``GPU``, ``memory``, custom), and
    what its Ray task itself asks for (the same, except for launchers of Ray-based trainers)."""

    admit: Mapping[str, float]
    task: Mapping[str, float]

    def ray_options(self) -> dict[str, Any]:
        rest = {k: v for k, v in self.task.items() if k not in ("CPU", "GPU", "memory") and v > 0}
        opts: dict[str, Any] = {"num_cpus": self.task.get("CPU", 0.0),
                                "num_gpus": self.task.get("GPU", 0.0), "resources": rest}
        if self.task.get("memory"):
            opts["memory"] = self.task["memory"]
        return opts


def make_request(resources: Mapping[str, float], default_cpus: float, *, launcher: bool,
                 launcher_cpus: float = 0.0) -> Request:
    """Translate a rung's ``resources`` into a ``Request``."""
    admit: dict[str, float] = {"CPU": default_cpus}
    for k, v in resources.items():
        if k == "gpus":
            admit["GPU"] = v
        elif k == "cpus":
            admit["CPU"] = v
        elif k == "memory_gb":
            admit["memory"] = v * 1e9
        else:
            admit[k] = v
    task = {"CPU": launcher_cpus} if launcher else dict(admit)
    return Request(admit, task)


# ---- the mailbox actor -----------------------------------------------------------------------
class Mailbox:
    """Carries observations from segments to the driver and verdicts back (an async Ray actor).

    ``observe`` is awaited by the worker: it queues the observation for the driver's ``poll`` and
    returns the verdict once the driver sends it. A step at or below the last one delivered for
    the segment (a retried attempt replaying steps) is not queued again; it gets the verdict
    already given. Calls from an older attempt than the newest seen are told to stop.
    """

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.wakeup = asyncio.Event()
        self.delivered: dict[int, int] = {}
        self.attempt: dict[int, int] = {}
        self.verdicts: dict[tuple[int, int], asyncio.Future[str]] = {}

    def _future(self, seg: int, step: int) -> asyncio.Future[str]:
        fut = self.verdicts.get((seg, step))
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self.verdicts[(seg, step)] = fut
        return fut

    async def observe(self, seg: int, attempt: int, step: int, metrics: dict[str, float]) -> str:
        if attempt < self.attempt.get(seg, 0):
            return Verdict.STOP.value
        self.attempt[seg] = attempt
        fut = self._future(seg, step)
        if step > self.delivered.get(seg, -1):
            self.delivered[seg] = step
            self.events.append(("obs", seg, step, metrics))
            self.wakeup.set()
        return await fut

    async def verdict(self, seg: int, step: int, value: str) -> None:
        fut = self._future(seg, step)
        if not fut.done():
            fut.set_result(value)

    async def progress(self, text: str) -> None:
        self.events.append(("progress", text))
        self.wakeup.set()

    async def forget(self, seg: int) -> None:
        self.delivered.pop(seg, None)
        self.attempt.pop(seg, None)
        for key in [k for k in self.verdicts if k[0] == seg]:
            del self.verdicts[key]

    async def poll(self, wait_s: float) -> list[tuple[Any, ...]]:
        """Everything queued, waiting up to ``wait_s`` seconds for the first item."""
        if not self.events:
            try:
                await asyncio.wait_for(self.wakeup.wait(), wait_s)
            except asyncio.TimeoutError:
                pass
        out, self.events = self.events, []
        self.wakeup.clear()
        return out


# ---- what runs in the Ray worker --------------------------------------------------------------
_WORKER_BACKENDS: dict[str, Backend] = {}


def _worker_backend(name: str, options: Mapping[str, Any], threads: int) -> Backend:
    """One backend instance per worker process and (backend, options, threads)."""
    key = json.dumps([name, options, threads], sort_keys=True, default=str)
    backend = _WORKER_BACKENDS.get(key)
    if backend is None:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        os.environ.setdefault("MKL_NUM_THREADS", str(threads))
        backend = get_backend(name)(options)
        backend.setup_worker(threads)
        _WORKER_BACKENDS[key] = backend
    return backend


def jfhpo_segment(mailbox: Any, backend_name: str, options: Mapping[str, Any], threads: int,
                  task: SegmentTask, attempt: int, launcher: bool) -> dict[str, Any]:
    """Run one segment in a Ray worker; the body of the Ray task (named for ``ps``)."""
    t0 = time.time()
    ctx = ray.get_runtime_context()
    info: dict[str, Any] = {"start": t0, "pid": os.getpid(), "node": ctx.get_node_id(),
                            "held": dict(ctx.get_assigned_resources())}
    try:
        if attempt > 0 and os.path.isdir(task.checkpoint_dir):
            # what a lost attempt left half-written in the staging folder goes first
            shutil.rmtree(task.checkpoint_dir)
        os.makedirs(task.checkpoint_dir, exist_ok=True)
        if launcher:
            os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
        backend = _worker_backend(backend_name, options, threads)

        def report(step: int, metrics: Mapping[str, float]) -> Verdict:
            ref = mailbox.observe.remote(task.segment_id, attempt, step, dict(metrics))
            return Verdict(ray.get(ref))

        info["outcome"] = backend.run_segment(task, report)
    except Exception:
        info["error"] = traceback.format_exc()
    info["end"] = time.time()
    return info


def jfhpo_prepare(mailbox: Any, backend_name: str, options: Mapping[str, Any], threads: int,
                  rung: ModelRung, cache_dir: str) -> str | None:
    """Prepare one rung's one-off artefacts in a Ray worker; None or the traceback."""
    try:
        backend = _worker_backend(backend_name, options, threads)
        backend.prepare(ModelLadder([rung]), cache_dir,
                        lambda text: ray.get(mailbox.progress.remote(text)))
        return None
    except Exception:
        return traceback.format_exc()


def jfhpo_probe(path: str) -> bool:
    """Whether ``path`` exists on the node this runs on (the shared-filesystem check)."""
    return os.path.exists(path)


# ---- the driver side --------------------------------------------------------------------------
@dataclass
class _Segment:
    task: SegmentTask
    request: Request
    attempt: int = 0
    ref: Any = None  # the Ray ObjectRef while submitted; None while waiting for admission
    last_step: int | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class _Prepare:
    rung: ModelRung
    request: Request
    ref: Any = None


def _check_options(*, address: Any = "auto", max_retries: Any = 2, ray_trainer: Any = None,
                   launcher_cpus: Any = 0.0, timeline: Any = None, log_to_driver: Any = False,
                   **unknown: Any) -> None:
    """Raise ``StudyFileError`` naming the first bad ``executor:`` option of the ray executor."""
    if unknown:
        raise StudyFileError(
            f"executor: unknown key(s) {sorted(unknown)} for the ray executor; valid: "
            "['address', 'launcher_cpus', 'log_to_driver', 'max_retries', 'ray_trainer', "
            "'timeline']")
    if not isinstance(address, str) or not address:
        raise StudyFileError(f"executor.address: expected 'auto', 'host:port' or "
                             f"'ray://host:port', got {address!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise StudyFileError(f"executor.max_retries: expected an integer >= 0, got {max_retries!r}")
    if ray_trainer is not None and not isinstance(ray_trainer, bool):
        raise StudyFileError(f"executor.ray_trainer: expected true or false, got {ray_trainer!r}")
    if isinstance(launcher_cpus, bool) or not isinstance(launcher_cpus, (int, float)) or \
            launcher_cpus < 0:
        raise StudyFileError(f"executor.launcher_cpus: expected a number >= 0, got {launcher_cpus!r}")


class RayExecutor(Executor):
    """Runs segments as Ray tasks on the cluster at ``address`` (see the module docstring).

    ``workers`` caps the segments in flight; the cluster's resources cap them further.
    Options (the study file's ``executor:`` keys besides ``name``):

    * ``address``: ``auto`` (the cluster this machine belongs to, or ``RAY_ADDRESS``), a
      ``host:port`` of the head node's GCS, or a ``ray://host:10001`` client address.
    * ``max_retries``: how many times a segment whose worker or node was lost runs again.
    * ``ray_trainer``: run segments as CPU-only launchers (default: the backend says).
    * ``launcher_cpus``: CPUs a launcher task asks Ray for (default 0).
    * ``timeline``: a JSONL file to append one line per finished attempt to (where and when it
      ran, what it held); ``self.timeline`` keeps the same records in memory.
    * ``log_to_driver``: forward the workers' stdout/stderr to this process (default false; the
      logs stay in the Ray session folder).
    """

    @classmethod
    def validate(cls, options: Mapping[str, Any], rungs: Sequence[ModelRung]) -> None:
        """Check the ``executor:`` options before a study folder exists (no cluster needed)."""
        _check_options(**options)

    def __init__(self, backend: str, backend_options: Mapping[str, Any], workers: int,
                 threads_per_worker: int = 1, *, address: str = "auto", max_retries: int = 2,
                 ray_trainer: bool | None = None, launcher_cpus: float = 0.0,
                 timeline: str | None = None, log_to_driver: bool = False,
                 **unknown: Any) -> None:
        _check_options(address=address, max_retries=max_retries, ray_trainer=ray_trainer,
                       launcher_cpus=launcher_cpus, **unknown)
        self.backend_name = backend
        self.options = dict(backend_options)
        self.workers = workers
        self.threads = threads_per_worker
        self.max_retries = max_retries
        if ray_trainer is None:
            cls = get_backend(backend)
            ray_trainer = bool(getattr(cls, "uses_ray", False)) or backend in RAY_BASED_BACKENDS
        self.launcher = ray_trainer
        self.launcher_cpus = float(launcher_cpus)
        self.timeline_path = Path(timeline) if timeline else None
        self.timeline: list[dict[str, Any]] = []
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            try:
                ray.init(address=address, log_to_driver=bool(log_to_driver),
                         logging_level=logging.WARNING, configure_logging=True)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise StudyFileError(
                    f"executor.address: cannot connect to a Ray cluster at {address!r} ({exc}); "
                    "start one with `ray start --head` or give the head node's address") from None
        self.ray_version = ray.__version__
        self._segment_fn = ray.remote(max_retries=0, max_calls=0)(jfhpo_segment)
        self._prepare_fn = ray.remote(max_retries=0, max_calls=0)(jfhpo_prepare)
        self._probe_fn = ray.remote(num_cpus=0, max_retries=0)(jfhpo_probe)
        opts: dict[str, Any] = {"num_cpus": 0}
        try:
            node = ray.get_runtime_context().get_node_id()
            opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=True)
        except Exception:  # a ray:// client has no node of its own
            pass
        actor: Any = ray.remote(Mailbox)
        self.mailbox: Any = actor.options(**opts).remote()
        self._poll_ref = self.mailbox.poll.remote(1.0)
        self.segments: dict[int, _Segment] = {}
        self.waiting: deque[int] = deque()  # segments admitted by the tuner, not yet by the cluster
        self.preparing: list[_Prepare] = []
        self.events: deque[Event] = deque()
        self._totals: dict[str, float] = {}
        self._totals_at = -math.inf
        self._checked_roots: set[str] = set()

    # ---- admission ---------------------------------------------------------------------------
    def _request(self, rung_or_task: SegmentTask | ModelRung) -> Request:
        return make_request(rung_resources(rung_or_task), float(self.threads),
                            launcher=self.launcher, launcher_cpus=self.launcher_cpus)

    def cluster_totals(self) -> dict[str, float]:
        """The cluster's resources (refreshed at most every 5 seconds: nodes come and go)."""
        now = time.monotonic()
        if now - self._totals_at > 5.0:
            self._totals = {k: float(v) for k, v in ray.cluster_resources().items()}
            self._totals_at = now
        return self._totals

    def in_use(self) -> dict[str, float]:
        """What this executor's submitted segments and preparations hold."""
        used: dict[str, float] = {}
        held = [s.request for s in self.segments.values() if s.ref is not None]
        held += [p.request for p in self.preparing]
        for req in held:
            for k, v in req.admit.items():
                used[k] = used.get(k, 0.0) + v
        return used

    def _fits(self, req: Request) -> bool:
        totals, used = self.cluster_totals(), self.in_use()
        return all(used.get(k, 0.0) + v <= totals.get(k, 0.0) + 1e-9
                   for k, v in req.admit.items() if v > 0)

    def _check_feasible(self, rung: ModelRung, req: Request) -> None:
        totals = self.cluster_totals()
        short = {k: v for k, v in req.admit.items() if v > totals.get(k, 0.0) + 1e-9}
        if short:
            have = {k: totals.get(k, 0.0) for k in short}
            raise StudyFileError(
                f"models.{rung.name}.resources: asks for {short} but the Ray cluster has {have} "
                "in all; lower the request or add nodes")

    def free_slots(self) -> int:
        return self.workers - len(self.segments) - len(self.preparing)

    def can_submit(self, task: SegmentTask) -> bool:
        """A free slot, and room on the cluster for the segment's resource request."""
        return self.free_slots() > 0 and not self.waiting and self._fits(self._request(task))

    # ---- Executor ----------------------------------------------------------------------------
    def submit(self, task: SegmentTask) -> None:
        if self.free_slots() <= 0:
            raise RuntimeError("no free slot")
        # a Ray worker's working folder is not the driver's: relative paths (`--out S`) would
        # land elsewhere on every node
        task = dataclasses.replace(
            task, checkpoint_dir=os.path.abspath(task.checkpoint_dir),
            resume_from=os.path.abspath(task.resume_from) if task.resume_from else None,
            cache_dir=os.path.abspath(task.cache_dir) if task.cache_dir else "")
        req = self._request(task)
        self._check_feasible(task.model, req)
        self._check_shared(task.checkpoint_dir)
        self.segments[task.segment_id] = _Segment(task, req)
        self.waiting.append(task.segment_id)
        self._dispatch()

    def _dispatch(self) -> None:
        while self.waiting:
            seg = self.segments[self.waiting[0]]
            if not self._fits(seg.request):
                return
            self.waiting.popleft()
            self._start(seg)

    def _start(self, seg: _Segment) -> None:
        seg.ref = self._segment_fn.options(
            **seg.request.ray_options(), name=SEGMENT_TASK_NAME,
        ).remote(self.mailbox, self.backend_name, self.options, self.threads, seg.task,
                 seg.attempt, self.launcher)

    def verdict(self, segment_id: int, verdict: Verdict) -> None:
        seg = self.segments.get(segment_id)
        if seg is not None and seg.last_step is not None:
            self.mailbox.verdict.remote(segment_id, seg.last_step, verdict.value)

    def prepare(self, rungs: Sequence[ModelRung], cache_dir: str) -> None:
        cache_dir = os.path.abspath(cache_dir) if cache_dir else ""
        for r in rungs:  # refuse an impossible request before anything runs
            self._check_feasible(r, self._request(r))
        for r in rungs:
            req = self._request(r)
            # preparation needs no accelerator of a launcher's trainer
            req = Request({"CPU": req.task.get("CPU", 0.0)}, req.task) if self.launcher else req
            p = _Prepare(r, req)
            p.ref = self._prepare_fn.options(**req.ray_options()).remote(
                self.mailbox, self.backend_name, self.options, self.threads, r, cache_dir)
            self.preparing.append(p)

    def next_event(self, timeout: float) -> Event | None:
        deadline = time.monotonic() + timeout
        while not self.events:
            self._dispatch()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            refs = [self._poll_ref]
            refs += [s.ref for s in self.segments.values() if s.ref is not None]
            refs += [p.ref for p in self.preparing]
            ready, _ = ray.wait(refs, num_returns=1, timeout=left)
            if not ready:
                return None
            if self._poll_ref in ready:
                self._read_mailbox()
                continue
            self._finished(ready[0])
        return self.events.popleft()

    def _read_mailbox(self) -> None:
        try:
            items = ray.get(self._poll_ref)
        except ray.exceptions.RayError as exc:
            raise RuntimeError(f"the jfhpo mailbox actor on the Ray cluster was lost: {exc}; "
                               "continue the study with `jfhpo resume`") from None
        self._poll_ref = self.mailbox.poll.remote(1.0)
        for item in items:
            if item[0] == "obs":
                _, sid, step, metrics = item
                seg = self.segments.get(sid)
                if seg is not None:
                    seg.last_step = step
                    self.events.append(ObservationEvent(sid, step, metrics))
            elif item[0] == "progress":
                self.events.append(ProgressEvent(item[1]))

    def _finished(self, ref: Any) -> None:
        for p in self.preparing:
            if p.ref == ref:
                self.preparing.remove(p)
                try:
                    error = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    error = f"the Ray task preparing {p.rung.name!r} was lost: {exc}"
                self.events.append(PreparedEvent(p.rung.name, error))
                return
        seg = next(s for s in self.segments.values() if s.ref == ref)
        sid = seg.task.segment_id
        try:
            info: dict[str, Any] = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the task body could not even run
            self._record(seg, {"error": str(exc)})
            self._end(seg, FailedEvent(sid, str(exc)))
            return
        except ray.exceptions.RayError as exc:  # the worker process or its node was lost
            self._record(seg, {"lost": type(exc).__name__})
            seg.errors.append(f"{type(exc).__name__}: {exc}")
            if seg.attempt < self.max_retries:
                seg.attempt += 1
                self.events.append(ProgressEvent(
                    f"segment {sid} (run {seg.task.run_id}): Ray worker lost "
                    f"({type(exc).__name__}); retry {seg.attempt}/{self.max_retries} from step "
                    f"{seg.task.start_step}"))
                self._start(seg)
            else:
                self._end(seg, FailedEvent(
                    sid, f"the segment's Ray worker was lost {len(seg.errors)} times "
                    f"(max_retries={self.max_retries}); last: {seg.errors[-1]}"))
            return
        self._record(seg, info)
        if "error" in info:
            self._end(seg, FailedEvent(sid, info["error"]))
        else:
            outcome: SegmentOutcome = info["outcome"]
            self._end(seg, DoneEvent(sid, outcome, info["end"] - info["start"]))

    def _end(self, seg: _Segment, event: Event) -> None:
        sid = seg.task.segment_id
        del self.segments[sid]
        self.mailbox.forget.remote(sid)
        self.events.append(event)
        self._dispatch()

    def _record(self, seg: _Segment, info: Mapping[str, Any]) -> None:
        rec = {
            "segment": seg.task.segment_id, "run": seg.task.run_id, "model": seg.task.model.name,
            "attempt": seg.attempt, "start_step": seg.task.start_step,
            "resources": dict(seg.request.admit), "held": info.get("held"),
            "node": info.get("node"),
            "pid": info.get("pid"), "start": info.get("start"), "end": info.get("end"),
            "result": ("lost" if "lost" in info else "failed" if "error" in info else "done"),
        }
        self.timeline.append(rec)
        if self.timeline_path is not None:
            self.timeline_path.parent.mkdir(parents=True, exist_ok=True)
            with self.timeline_path.open("a") as f:
                f.write(json.dumps(rec) + "\n")

    def _check_shared(self, checkpoint_dir: str) -> None:
        """Once per study folder on a multi-node cluster: every node must see the checkpoints."""
        root = str(Path(checkpoint_dir).parent)
        if root in self._checked_roots:
            return
        self._checked_roots.add(root)
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        if len(nodes) < 2:
            return
        Path(root).mkdir(parents=True, exist_ok=True)
        probe = Path(root) / f".shared-probe-{uuid.uuid4().hex}"
        probe.write_text("jfhpo")
        try:
            refs = {n: self._probe_fn.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote(str(probe))
                for n in nodes}
            blind = [n for n, r in refs.items() if not ray.get(r, timeout=120)]
        finally:
            probe.unlink(missing_ok=True)
        if blind:
            raise StudyFileError(
                f"executor: the study folder's checkpoints ({root}) are not visible on Ray "
                f"node(s) {blind}; put the study folder on a filesystem every node mounts at the "
                "same path")

    def shutdown(self) -> None:
        for s in self.segments.values():
            if s.ref is not None:
                try:
                    ray.cancel(s.ref, force=True)
                except Exception:
                    pass
        self.segments.clear()
        self.waiting.clear()
        if ray.is_initialized():
            try:
                ray.kill(self.mailbox)
            except Exception:
                pass
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
