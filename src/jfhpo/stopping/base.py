"""The stopping-rule contract: look at a run's observations, let it continue or stop it.

Rules are pure decision logic: they see the run's own observations so far (``RunHistory``) and,
read-only, the rest of the study (``StudyView``). A rule returns None to let the run continue, or a
``StopReason`` naming itself and saying why in plain words. Rules compose with ``AnyRule``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from jfhpo.records import Observation, StopReason
from jfhpo.view import StudyView


class RuleError(ValueError):
    """Invalid rule options in the study file; the message names the rule and the option."""


@dataclass(frozen=True)
class RunHistory:
    """One run's observations in step order, with what the rule needs to judge them."""

    run_id: int
    model: str
    config: Mapping[str, Any]
    observations: tuple[Observation, ...]
    target_step: int  # where the current segment is headed
    max_steps: int  # the study's full step budget

    def series(self, metric: str) -> list[tuple[int, float]]:
        """(step, value) for every observation that has ``metric``."""
        return [(o.step, float(o.metrics[metric])) for o in self.observations if metric in o.metrics]


class StoppingRule(abc.ABC):
    """Base class. Subclasses register with ``@register_rule`` under ``name``; their options
    are keyword arguments of ``__init__`` and appear under ``stopping.<name>`` in study files."""

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def check(self, run: RunHistory, view: StudyView) -> StopReason | None:
        """Called after every new observation of a running segment."""


class AnyRule(StoppingRule):
    """Stops when any of its rules stops (the first one, in order, gives the reason)."""

    name = "any"

    def __init__(self, rules: Sequence[StoppingRule]) -> None:
        self.rules = tuple(rules)

    def check(self, run: RunHistory, view: StudyView) -> StopReason | None:
        for rule in self.rules:
            reason = rule.check(run, view)
            if reason is not None:
                return reason
        return None


_REGISTRY: dict[str, type[StoppingRule]] = {}


def register_rule(cls: type[StoppingRule]) -> type[StoppingRule]:
    """Class decorator: make ``cls`` available under ``cls.name`` in study files."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def rule_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_rule(name: str) -> type[StoppingRule]:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RuleError(f"unknown stopping rule '{name}'; valid names: {sorted(_REGISTRY)}") from None


def _load_builtin() -> None:
    import importlib
    import pkgutil

    import jfhpo.stopping as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "base":
            importlib.import_module(f"jfhpo.stopping.{info.name}")
