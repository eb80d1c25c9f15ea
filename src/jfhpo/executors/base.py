"""The executor contract: move segments to workers and events back. No search logic here.

The tuner submits ``SegmentTask``s, reads events with ``next_event`` and answers every
``ObservationEvent`` with ``verdict`` (the worker waits for it, which makes the step at which a
stop takes effect deterministic: the segment ends right after the observation that fired a rule).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jfhpo.backends.base import SegmentOutcome, SegmentTask
from jfhpo.fidelity import ModelRung
from jfhpo.records import Verdict


@dataclass(frozen=True)
class ObservationEvent:
    segment_id: int
    step: int
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class DoneEvent:
    segment_id: int
    outcome: SegmentOutcome
    wall: float  # wall-clock seconds in the worker


@dataclass(frozen=True)
class FailedEvent:
    segment_id: int
    error: str  # traceback or cause, in words


@dataclass(frozen=True)
class ProgressEvent:
    message: str


@dataclass(frozen=True)
class PreparedEvent:
    model: str
    error: str | None = None


Event = ObservationEvent | DoneEvent | FailedEvent | ProgressEvent | PreparedEvent


class ExecutorError(ValueError):
    """The ``executor:`` section cannot work (unknown name, a rung needing more than the pool)."""


class Executor(abc.ABC):
    """Runs segments somewhere (in-process, local processes, Ray actors) and reports what happens.

    Constructed as ``cls(backend, backend_options, workers, threads_per_worker, **options)``, where
    ``options`` are the study file's ``executor:`` keys other than ``name``. The tuner asks
    ``free_slots()`` whether any worker is idle and ``can_submit(task)`` before each launch (the
    task's ``resources`` are its rung's, e.g. ``{"gpus": 2}``), then ``submit``s it.
    """

    def __init__(self, backend: str = "", backend_options: Mapping[str, Any] | None = None,
                 workers: int = 1, threads_per_worker: int = 1, **options: Any) -> None:
        """The construction contract (subclasses keep this signature; calling it is optional)."""

    @abc.abstractmethod
    def free_slots(self) -> int:
        """How many more segments can start now (idle workers, whatever the resources)."""

    def can_submit(self, task: SegmentTask) -> bool:
        """Whether ``task`` can start now, its resources included (default: a free slot)."""
        return self.free_slots() > 0

    def check_resources(self, resources: Mapping[str, float], where: str) -> None:
        """Raise ``ExecutorError`` when a segment asking ``resources`` could never start here
        (called for each rung before the study starts; default: anything goes)."""

    @classmethod
    def validate(cls, options: Mapping[str, Any], rungs: Sequence[ModelRung]) -> None:
        """Check the study file's ``executor:`` options against the ladder before anything is
        created or started (cheap: no workers); raise ``ExecutorError`` naming the key."""

    @abc.abstractmethod
    def submit(self, task: SegmentTask) -> None:
        """Start ``task`` on a free worker."""

    @abc.abstractmethod
    def verdict(self, segment_id: int, verdict: Verdict) -> None:
        """Answer the last observation of ``segment_id``."""

    @abc.abstractmethod
    def next_event(self, timeout: float) -> Event | None:
        """The next event, or None after ``timeout`` seconds without one."""

    @abc.abstractmethod
    def prepare(self, rungs: Sequence[ModelRung], cache_dir: str) -> None:
        """Ask workers to prepare each rung (one ``PreparedEvent`` per rung follows)."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stop every worker."""
