"""The trainer-backend contract: run one segment of one run inside a worker process.

A backend knows trainers, not search. The executor's worker calls ``run_segment`` once per
segment; the backend trains from ``task.start_step`` (resuming ``task.resume_from`` when it is
set) towards ``task.target_step``, calls ``report`` after every step with canonical metric names,
stops within one step when ``report`` answers ``Verdict.STOP``, evaluates, and writes a checkpoint
of the step it ended at into ``task.checkpoint_dir``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from jfhpo.fidelity import ModelLadder, ModelRung
from jfhpo.records import Verdict
from jfhpo.space import SearchSpace


class BackendError(ValueError):
    """The study does not fit the backend (unknown model, missing option); a user error."""


@dataclass(frozen=True)
class SegmentTask:
    """Everything a worker needs to run one segment; plain data so it crosses process borders."""

    run_id: int
    segment_id: int
    config: Mapping[str, Any]
    model: ModelRung
    start_step: int
    target_step: int
    max_steps: int  # the study's full step budget (schedules must not depend on target_step)
    seed: int  # the run's seed: same seed, same curve, however the run is cut into segments
    checkpoint_dir: str  # empty folder to write the checkpoint of the end step into
    resume_from: str | None = None  # checkpoint folder of step start_step (None when it is 0)
    cache_dir: str = ""  # study-independent cache (base models); backends may ignore it
    eval_every: int = 0  # evaluate every k steps (0: only at the end of the segment)


@dataclass(frozen=True)
class SegmentOutcome:
    """What a backend returns when a segment ends (completed or stopped on request)."""

    end_step: int
    cost: float  # seconds this segment cost (simulated seconds for the synthetic backend)
    checkpoint: bool = True  # whether checkpoint_dir now holds a checkpoint of end_step
    final_metrics: Mapping[str, float] = field(default_factory=dict)


#: report(step, metrics) -> Verdict. Called once per completed step with canonical names
#: (and eval_* names at evaluation steps). Returning STOP asks the backend to end the segment.
Reporter = Callable[[int, Mapping[str, float]], Verdict]
#: progress(message) for long one-off preparation (base models); may be a no-op.
Progress = Callable[[str], None]


class Backend(abc.ABC):
    """Base class of trainer adapters. Subclasses register themselves with ``@register_backend``.

    ``metric_names`` maps canonical names to the trainer's native names, so stopping rules and
    reports use one vocabulary across backends (see ``jfhpo.stopping.metric_map``).
    """

    name: ClassVar[str] = ""
    metric_names: ClassVar[Mapping[str, str]] = {}
    #: the objective metric this backend reports at every segment end unless the study says otherwise
    default_objective: ClassVar[str] = "eval_accuracy"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = dict(options or {})

    def validate(self, space: SearchSpace, ladder: ModelLadder) -> None:
        """Raise BackendError if the space or the ladder cannot run on this backend.

        Called in the main process before a study folder is created; it must be cheap.
        """

    def prepare(self, ladder: ModelLadder, cache_dir: str, progress: Progress) -> None:
        """Make one-off artefacts (base models) ahead of time. Called by ``jfhpo prepare`` and
        by the tuner before the first segment; must be idempotent and safe to interrupt."""

    def setup_worker(self, threads: int) -> None:
        """Called once in each worker process before its first segment (thread counts, imports)."""

    @abc.abstractmethod
    def run_segment(self, task: SegmentTask, report: Reporter) -> SegmentOutcome:
        """Train ``task`` and return its outcome. Exceptions mark the segment failed."""

    @classmethod
    def recipe(cls) -> dict[str, Any]:
        """The configuration a practitioner would start from (the no-search baseline). The
        backend fills every key a configuration leaves out from here."""
        return {}

    @classmethod
    def example_study(cls) -> str:
        """A commented example study file for ``jfhpo init --workload NAME``."""
        raise NotImplementedError


_REGISTRY: dict[str, type[Backend]] = {}
#: built-in backends, imported only when named (the tiny workload pulls in torch and TRL)
_BUILTIN: dict[str, str] = {
    "synthetic": "jfhpo.backends.synthetic",
    "tiny": "jfhpo.backends.tiny",
    "replay": "jfhpo.backends.replay",
}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make ``cls`` available under ``cls.name`` in study files."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def backend_names() -> list[str]:
    return sorted(set(_REGISTRY) | set(_BUILTIN))


def get_backend(name: str) -> type[Backend]:
    """Look a backend up by name; the error lists the valid names."""
    if name not in _REGISTRY and name in _BUILTIN:
        import importlib

        importlib.import_module(_BUILTIN[name])
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BackendError(f"unknown backend '{name}'; valid names: {backend_names()}") from None
