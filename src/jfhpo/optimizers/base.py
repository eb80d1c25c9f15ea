"""The optimizer contract: choose a configuration AND its fidelity, or extend a run.

Optimizers are pure decision logic over a ``StudyView``: no files, no processes, no clocks. They
keep no state between calls that storage could not rebuild; randomness comes from
``view.rng()``, which depends only on the study's seed and the number of decisions made.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

from jfhpo.records import RunRecord, Suggestion
from jfhpo.view import StudyView


class OptimizerError(ValueError):
    """Invalid optimizer options; a user error, the message names the option."""


class Optimizer(abc.ABC):
    """Base class. Subclasses register with ``@register_optimizer`` under ``name``."""

    name: ClassVar[str] = ""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = dict(options or {})

    @abc.abstractmethod
    def suggest(self, view: StudyView) -> Suggestion | None:
        """Called whenever a worker is free and search budget is left.

        Return ``Start`` (new run of a configuration on a model, to a step budget) or ``Extend``
        (continue an existing, idle, unstopped run from its checkpoint to more steps). Return None
        when nothing should start until a pending segment ends. Pending runs are in ``view``.
        """

    def _model(self, view: StudyView) -> str:
        """The ``model`` option of single-model optimizers (default: the target), checked."""
        model = str(self.options.get("model", view.ladder.target.name))
        if model not in view.ladder:
            raise OptimizerError(f"optimizer.options.model: unknown model {model!r}; "
                                 f"the ladder has {view.ladder.names}")
        return model

    def may_extend(self, view: StudyView, run: RunRecord) -> bool:
        """Whether ``run`` may still be extended; the checkpoint registry deletes the
        checkpoints of runs for which this is False. Default: any idle, unstopped run short of
        the full step budget."""
        return run.stopped is None and not run.failed and run.steps_done < view.steps.max_steps

    def confirm(self, view: StudyView, k: int) -> list[Mapping[str, Any]]:
        """The configurations to train on the target at the full budget, best first.

        Default: the best ``k`` distinct configurations, ranked by their score at the largest
        fidelity each reached (larger model first, then more steps).
        """
        best: dict[str, tuple[tuple[int, int, float], Mapping[str, Any]]] = {}
        for r in view.finished():
            key = view.space.key(r.config)
            assert r.score is not None
            rank = (view.ladder.index(r.model), r.steps_done, r.score)
            if key not in best or rank > best[key][0]:
                best[key] = (rank, r.config)
        ordered = sorted(best.values(), key=lambda t: t[0], reverse=True)
        return [cfg for _, cfg in ordered[:k]]


_REGISTRY: dict[str, type[Optimizer]] = {}
_BUILTIN: dict[str, str] = {
    "random": "jfhpo.optimizers.random",
    "hyperband": "jfhpo.optimizers.hyperband",
    "jfhpo": "jfhpo.optimizers.jfhpo",
}


def register_optimizer(cls: type[Optimizer]) -> type[Optimizer]:
    """Class decorator: make ``cls`` available under ``cls.name`` in study files."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    """Import every optimizer module of the package (peers' adapters import their libraries
    lazily, so this stays cheap)."""
    import importlib
    import pkgutil

    import jfhpo.optimizers as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name not in ("base", "surrogate"):
            importlib.import_module(f"jfhpo.optimizers.{info.name}")


def optimizer_names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_optimizer(name: str) -> type[Optimizer]:
    """Look an optimizer up by name; the error lists the valid names."""
    if name not in _REGISTRY and name in _BUILTIN:
        import importlib

        importlib.import_module(_BUILTIN[name])
    if name not in _REGISTRY:
        _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise OptimizerError(f"unknown optimizer '{name}'; valid names: {optimizer_names()}") from None
