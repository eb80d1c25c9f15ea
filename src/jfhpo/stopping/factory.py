"""Turn a study file's ``stopping:`` section into one rule (an ``AnyRule``), or none.

Accepted shapes::

    stopping:                 # missing, {} or true: the default rule set
    stopping: false           # no early stopping at all
    stopping:                 # defaults, with one rule re-tuned and one switched off
      kl_growth: {tau: 0.2, k: 4}
      entropy_collapse: false
    stopping:                 # only the rules listed
      defaults: false
      kl_growth: {}

A rule's value is a mapping of options (``{}``, null or true: its own defaults) or false (off).
Mistakes raise ``RuleError`` naming the rule and the option, with the valid choices, because a
typo in a threshold would otherwise silently leave a rule at its default.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from jfhpo.stopping.base import AnyRule, RuleError, StoppingRule, get_rule, rule_names

#: rules on when the study file says nothing; chosen from bench/stopping/results.md
DEFAULT_RULES: tuple[str, ...] = (
    "non_finite",
    "kl_growth",
    "reward_drop",
    "zero_reward",
    "dead_signal",
    "truncation",
    "kl_runaway",
    "entropy_explosion",
    "eval_drop",
    "peer_gap",
)


def default_rule_names() -> list[str]:
    """Names of the rules a study gets when its ``stopping:`` section is missing or empty."""
    return list(DEFAULT_RULES)


def rule_options(name: str) -> dict[str, Any]:
    """A rule's options and their default values (the keyword arguments of its constructor)."""
    cls = get_rule(name)
    out: dict[str, Any] = {}
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[p.name] = None if p.default is inspect.Parameter.empty else p.default
    return out


def _check_type(name: str, key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of the option's default; ints are accepted for floats."""
    ok: bool
    if isinstance(default, bool):
        ok = isinstance(value, bool)
        kind = "true or false"
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        kind = "an integer"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        kind = "a number"
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
        kind = "a string"
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        kind = "a list of strings"
        value = tuple(value) if ok else value
    else:
        return value
    if not ok:
        raise RuleError(f"stopping.{name}.{key}: must be {kind}, got {value!r}")
    return value


def _normalise(cfg: Any) -> tuple[bool, dict[str, Any]]:
    """(use defaults, {rule: options or False}) from the raw section."""
    if cfg is None or cfg is True:
        return True, {}
    if cfg is False:
        return False, {}
    if not isinstance(cfg, Mapping):
        raise RuleError(
            f"stopping: must be a mapping of rule names, true or false, got {cfg!r}; "
            f"valid rule names: {rule_names()}"
        )
    entries = dict(cfg)
    use_defaults = entries.pop("defaults", True)
    if not isinstance(use_defaults, bool):
        raise RuleError(f"stopping.defaults: must be true or false, got {use_defaults!r}")
    valid = rule_names()
    out: dict[str, Any] = {}
    for name, opts in entries.items():
        if name not in valid:
            raise RuleError(
                f"stopping.{name}: unknown stopping rule '{name}'; valid names: {[*valid, 'defaults']}"
            )
        if opts is None or opts is True:
            out[name] = {}
        elif opts is False:
            out[name] = False
        elif isinstance(opts, Mapping):
            out[name] = dict(opts)
        else:
            raise RuleError(f"stopping.{name}: must be a mapping of options, true or false, got {opts!r}")
    return use_defaults, out


def _selected(cfg: Any) -> list[tuple[str, dict[str, Any]]]:
    """The enabled rules in order (defaults first, then extra ones as listed) with options."""
    use_defaults, entries = _normalise(cfg)
    names = [n for n in DEFAULT_RULES if use_defaults]
    names += [n for n in entries if n not in names]
    chosen = []
    for name in names:
        opts = entries.get(name, {})
        if opts is False:
            continue
        valid = rule_options(name)
        checked: dict[str, Any] = {}
        for key, value in opts.items():
            if key not in valid:
                raise RuleError(
                    f"stopping.{name}.{key}: unknown option '{key}' of rule '{name}'; "
                    f"valid options: {sorted(valid)}"
                )
            checked[key] = _check_type(name, key, value, valid[key])
        chosen.append((name, checked))
    return chosen


def build_rules(cfg: Any) -> StoppingRule | None:
    """The study's stopping rule: an ``AnyRule`` over the enabled rules, or None when none are.

    ``cfg`` is the parsed ``stopping:`` value (None when the section is missing).
    """
    rules = [get_rule(name)(**opts) for name, opts in _selected(cfg)]
    return AnyRule(rules) if rules else None


def describe(cfg: Any) -> list[str]:
    """One line per enabled rule with its effective options, for docs and ``jfhpo status``."""
    lines = []
    for name, opts in _selected(cfg):
        full = {**rule_options(name), **opts}
        shown = ", ".join(f"{k}={v!r}" for k, v in full.items())
        lines.append(f"{name}: {shown}")
    return lines
