"""Executors by name: ``executor: {name: local | inline | ray, ...}`` in the study file.

Built-ins are imported only when named (Ray is an optional dependency). A third-party executor
registers itself with ``register_executor`` or is named ``module:Class``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jfhpo.executors.base import Executor

__all__ = ["executor_names", "get_executor", "register_executor", "validate_executor"]

_REGISTRY: dict[str, type[Executor]] = {}
_BUILTIN: dict[str, str] = {
    "local": "jfhpo.executors.local",
    "inline": "jfhpo.executors.inline",
    "ray": "jfhpo.executors.ray",
}


def register_executor(name: str) -> Callable[[type[Executor]], type[Executor]]:
    """Class decorator: make an executor available under ``name`` in study files."""

    def deco(cls: type[Executor]) -> type[Executor]:
        _REGISTRY[name] = cls
        return cls

    return deco


def executor_names() -> list[str]:
    return sorted(set(_REGISTRY) | set(_BUILTIN))


def _only_executor_in(module: Any) -> type[Executor] | None:
    from jfhpo.executors.base import Executor

    found = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Executor)
             and v is not Executor and v.__module__ == module.__name__]
    return found[0] if len(found) == 1 else None


def get_executor(name: str) -> type[Executor]:
    """The executor class called ``name``; the error lists the valid names."""
    from jfhpo.executors.base import ExecutorError

    if name in _REGISTRY:
        return _REGISTRY[name]
    target = _BUILTIN.get(name, name if ":" in name else None)
    if target is None:
        raise ExecutorError(f"executor.name: unknown executor '{name}'; valid names: "
                            f"{executor_names()} or module:Class")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ExecutorError(f"executor.name: '{name}' cannot be loaded ({exc})") from None
    if name in _REGISTRY:
        return _REGISTRY[name]
    cls = getattr(module, attr, None) if attr else _only_executor_in(module)
    if cls is None:
        raise ExecutorError(f"executor.name: '{name}' names no executor class in {module_name}")
    _REGISTRY[name] = cls
    return cls


def validate_executor(spec: Any) -> None:
    """Check a study's ``executor:`` section against its ladder without starting anything."""
    get_executor(spec.executor.name).validate(spec.executor.options(), spec.ladder().rungs)
