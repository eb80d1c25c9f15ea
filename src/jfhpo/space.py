"""Search space: float (optionally log), int and categorical parameters.

A space samples configurations, validates them, and encodes them to the unit cube [0, 1]^d (the
representation the surrogate models and the distance-based rules work in). Categorical parameters
take one coordinate that holds the choice's index scaled to [0, 1]; this keeps the dimension equal
to the number of parameters, which the GP needs to stay cheap at the sizes jfhpo searches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


class SpaceError(ValueError):
    """A parameter declaration or a configuration is invalid; the message names the parameter."""


@dataclass(frozen=True)
class FloatParam:
    """A real-valued parameter in [low, high]; ``log`` samples and encodes in log space."""

    name: str
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise SpaceError(f"parameter '{self.name}': low and high must be finite numbers")
        if self.low >= self.high:
            raise SpaceError(
                f"parameter '{self.name}': low ({self.low}) must be smaller than high ({self.high})"
            )
        if self.log and self.low <= 0:
            raise SpaceError(
                f"parameter '{self.name}': a log-scale range needs low > 0, got low={self.low}"
            )

    def encode(self, value: Any) -> float:
        v = float(value)
        if self.log:
            return (math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (v - self.low) / (self.high - self.low)

    def decode(self, u: float) -> float:
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        return float(min(max(v, self.low), self.high))  # rounding must not leave the range

    def validate(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpaceError(f"parameter '{self.name}': expected a number, got {value!r}")
        v = float(value)
        if not (self.low <= v <= self.high):
            raise SpaceError(
                f"parameter '{self.name}': value {v} is outside [{self.low}, {self.high}]"
            )
        return v


@dataclass(frozen=True)
class IntParam:
    """An integer parameter in [low, high] (inclusive); ``log`` for ranges spanning decades."""

    name: str
    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        if self.low >= self.high:
            raise SpaceError(
                f"parameter '{self.name}': low ({self.low}) must be smaller than high ({self.high})"
            )
        if self.log and self.low <= 0:
            raise SpaceError(
                f"parameter '{self.name}': a log-scale range needs low > 0, got low={self.low}"
            )

    def _float(self) -> FloatParam:
        # Linear ranges widen by half a unit on each side so every integer is equally likely;
        # log ranges keep their ends (the end values are then half as likely, which is harmless).
        if self.log:
            return FloatParam(self.name, float(self.low), float(self.high), True)
        return FloatParam(self.name, self.low - 0.4999, self.high + 0.4999, False)

    def encode(self, value: Any) -> float:
        return self._float().encode(value)

    def decode(self, u: float) -> int:
        return int(min(max(round(self._float().decode(u)), self.low), self.high))

    def validate(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise SpaceError(f"parameter '{self.name}': expected an integer, got {value!r}")
        if not (self.low <= value <= self.high):
            raise SpaceError(
                f"parameter '{self.name}': value {value} is outside [{self.low}, {self.high}]"
            )
        return int(value)


@dataclass(frozen=True)
class CategoricalParam:
    """A parameter taking one of a fixed list of choices (strings, numbers or booleans)."""

    name: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        if len(self.choices) < 1:
            raise SpaceError(f"parameter '{self.name}': choices must not be empty")
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise SpaceError(f"parameter '{self.name}': choices contain duplicates")

    def encode(self, value: Any) -> float:
        idx = self._index(value)
        return 0.5 if len(self.choices) == 1 else idx / (len(self.choices) - 1)

    def decode(self, u: float) -> Any:
        n = len(self.choices)
        idx = int(min(max(round(float(u) * (n - 1)), 0), n - 1)) if n > 1 else 0
        return self.choices[idx]

    def _index(self, value: Any) -> int:
        for i, c in enumerate(self.choices):
            if (c == value and type(c) is type(value)) or repr(c) == repr(value):
                return i
        raise SpaceError(
            f"parameter '{self.name}': {value!r} is not one of {list(self.choices)}"
        )

    def validate(self, value: Any) -> Any:
        return self.choices[self._index(value)]


Param = FloatParam | IntParam | CategoricalParam


class SearchSpace:
    """An ordered set of parameters; configurations are plain dicts name -> value."""

    def __init__(self, params: Sequence[Param]):
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise SpaceError(f"duplicate parameter names in {names}")
        if not params:
            raise SpaceError("the search space has no parameters")
        self.params: tuple[Param, ...] = tuple(params)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def dim(self) -> int:
        return len(self.params)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw one configuration uniformly in the encoded (log where declared) space."""
        return self.decode(rng.random(self.dim))

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        return np.array([p.encode(config[p.name]) for p in self.params], dtype=float)

    def decode(self, u: Sequence[float] | np.ndarray) -> dict[str, Any]:
        return {p.name: p.decode(float(x)) for p, x in zip(self.params, u, strict=True)}

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Return a normalised copy of ``config`` or raise SpaceError naming the bad key."""
        unknown = set(config) - set(self.names)
        if unknown:
            raise SpaceError(f"unknown parameter(s) {sorted(unknown)}; the space has {self.names}")
        missing = [n for n in self.names if n not in config]
        if missing:
            raise SpaceError(f"configuration lacks parameter(s) {missing}")
        return {p.name: p.validate(config[p.name]) for p in self.params}

    def key(self, config: Mapping[str, Any]) -> str:
        """A stable text key for a configuration (used to group runs of the same configuration)."""
        return "|".join(f"{n}={config[n]!r}" for n in self.names)


#: names (or last dotted parts) under which trainers spell the learning rate
LEARNING_RATE_NAMES = ("learning_rate", "lr")


def learning_rate_param(space: SearchSpace) -> FloatParam | None:
    """The space's learning rate: a positive float parameter named ``learning_rate`` or ``lr``,
    or a dotted key ending in one of them (``actor_rollout_ref.actor.optim.lr``); None if none."""
    for p in space.params:
        if (isinstance(p, FloatParam) and p.low > 0
                and p.name.rsplit(".", 1)[-1] in LEARNING_RATE_NAMES):
            return p
    return None
