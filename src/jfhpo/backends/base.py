"""The trainer-backend contract (v2): run one segment of one run inside a worker process.

A backend knows trainers, not search. The executor's worker calls ``run_segment`` once per
segment; the backend trains from ``task.start_step`` (resuming ``task.resume_from`` when it is
set) towards ``task.target_step``, calls ``report`` after every step with canonical metric names,
stops when ``report`` answers ``Verdict.STOP`` (at once, or at its next save: see
``Capabilities``), evaluates, and writes a checkpoint into ``task.checkpoint_dir``, telling in
``SegmentOutcome.checkpoint_step`` which step it holds. The engine extends a run only from a step
that has a checkpoint.

Instance methods describe the training as the backend will do it, so they may depend on the
backend's options: ``recipe()`` (the no-search baseline), ``effective_config()`` (what a run is
really trained with), ``capabilities()`` (checkpoint granularity). A user's backend is named in the
study file as ``module:Class`` (a module importable from the study file's folder or ``sys.path``)
or registered under the entry-point group ``jfhpo.backends``; both resolve in spawned workers too.
"""

from __future__ import annotations

import abc
import importlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
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
    resources: Mapping[str, float] = field(default_factory=dict)  # the rung's, e.g. {gpus: 2}


@dataclass(frozen=True)
class SegmentOutcome:
    """What a backend returns when a segment ends (completed or stopped on request)."""

    end_step: int
    cost: float  # seconds this segment cost (simulated seconds for the synthetic backend)
    checkpoint: bool = True  # whether checkpoint_dir now holds a checkpoint
    final_metrics: Mapping[str, float] = field(default_factory=dict)
    #: the step the checkpoint holds (None: end_step, when ``checkpoint`` is True). A trainer that
    #: saves every k steps and was stopped in between leaves an earlier one.
    checkpoint_step: int | None = None

    @property
    def saved_step(self) -> int | None:
        """The step of the checkpoint this segment left, or None when it left none."""
        if not self.checkpoint:
            return None
        return self.end_step if self.checkpoint_step is None else int(self.checkpoint_step)


@dataclass(frozen=True)
class Capabilities:
    """What a backend's trainer can do, so the engine plans segments it can honour.

    ``checkpoint_every``: 0 = a checkpoint only at the segment's end (a stop takes effect at once
    and is saved there); k = the trainer saves every k steps (segment targets are rounded up to a
    multiple of k, and a stop takes effect at the next save). ``resumable``: False when the trainer
    cannot continue from a checkpoint (every extension then retrains from step 0 as a new run).
    """

    checkpoint_every: int = 0
    resumable: bool = True


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

    def recipe(self) -> dict[str, Any]:
        """The configuration a practitioner would start from (the no-search baseline). The
        backend fills every key a configuration leaves out from here. An instance method, so it
        may depend on the backend's options (a classmethod still works for old backends)."""
        return {}

    def effective_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The configuration a run is really trained with: the recipe, then ``config`` (the
        study's fixed keys and the searched ones, merged by the engine) on top. Stored with
        every run so the winner can be exported as the trainer takes it."""
        return {**self.recipe(), **dict(config)}

    def capabilities(self) -> Capabilities:
        """Checkpoint granularity and resumability (see ``Capabilities``)."""
        return Capabilities()

    def known_metrics(self) -> set[str] | None:
        """Every metric name this backend can report (canonical and ``eval_*``), so a study's
        objective metric can be checked before anything runs; None when it cannot tell."""
        return None

    def accepted_keys(self) -> set[str] | None:
        """Every configuration key this backend understands (for the study's ``fixed:`` keys);
        None when it cannot tell."""
        return None

    @classmethod
    def example_study(cls) -> str:
        """A commented example study file for ``jfhpo init --workload NAME``."""
        raise NotImplementedError


_REGISTRY: dict[str, type[Backend]] = {}
#: built-in backends, imported only when named (the tiny workload pulls in torch and TRL)
_BUILTIN: dict[str, str] = {
    "synthetic": "jfhpo.backends.synthetic",
    "tiny": "jfhpo.backends.tiny",
    "command": "jfhpo.backends.command",
    "verl": "jfhpo.backends.verl",
    "trl": "jfhpo.backends.trl",
    "replay": "jfhpo.backends.replay",
}


def check_option_keys(options: Mapping[str, Any], valid: Iterable[str], backend: str) -> None:
    """Raise ``BackendError`` naming every key of ``backend.options`` that ``backend`` does not
    know, with the valid ones (the one message every built-in backend gives)."""
    known = set(valid)
    unknown = sorted(set(options) - known)
    if unknown:
        raise BackendError(f"backend.options: unknown key(s) {unknown} for the {backend} backend; "
                           f"valid keys: {sorted(known)}")


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make ``cls`` available under ``cls.name`` in study files."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def backend_names() -> list[str]:
    return sorted(set(_REGISTRY) | set(_BUILTIN))


#: folders searched for a user's ``module:Class`` backend (the study file's folder); kept in the
#: environment so that spawned worker processes, which inherit it, find the module too
PATH_ENV = "JFHPO_BACKEND_PATH"
ENTRY_POINT_GROUP = "jfhpo.backends"


def add_backend_path(folder: str | os.PathLike[str]) -> None:
    """Let ``module:Class`` backends be found in ``folder`` (here and in workers spawned later)."""
    path = os.path.abspath(os.fspath(folder))
    parts = [p for p in os.environ.get(PATH_ENV, "").split(os.pathsep) if p]
    if path not in parts:
        os.environ[PATH_ENV] = os.pathsep.join([*parts, path])


def _entry_point(name: str) -> type[Backend] | None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            cls = ep.load()
            return _checked(cls, f"entry point {ENTRY_POINT_GROUP}:{name}")
    return None


def _checked(cls: Any, where: str) -> type[Backend]:
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise BackendError(f"backend.name: {where} is not a subclass of jfhpo.backends.base.Backend")
    return cls


def _import_user_backend(name: str) -> type[Backend]:
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise BackendError(f"backend.name: '{name}' should read module:Class")
    for p in os.environ.get(PATH_ENV, "").split(os.pathsep):
        if p and p not in sys.path:
            sys.path.append(p)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(
            f"backend.name: cannot import module '{module_name}' ({exc}); put it next to the "
            "study file or on PYTHONPATH") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise BackendError(f"backend.name: module '{module_name}' has no class '{attr}'")
    return _checked(cls, f"'{name}'")


def get_backend(name: str) -> type[Backend]:
    """Look a backend up: a built-in or registered name, ``module:Class``, or an entry point of
    the group ``jfhpo.backends``; the error lists the valid names."""
    if name not in _REGISTRY and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return _import_user_backend(name)
    found = _entry_point(name)
    if found is not None:
        return found
    raise BackendError(f"unknown backend '{name}'; valid names: {backend_names()}, "
                       "module:Class, or an entry point of the group 'jfhpo.backends'")
