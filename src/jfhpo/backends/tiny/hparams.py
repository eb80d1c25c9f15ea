"""The tiny workload's hyperparameters: names (TRL's where TRL has one), checks, and the recipe.

``RECIPE`` is the practitioner's starting configuration, shaped like VeRL's GRPO example scripts
(``examples/grpo_trainer/run_qwen2-7b*.sh``): constant LR with no warmup, KL loss coefficient 0.001
with the k3 ("low_var_kl") estimator, PPO clip 0.2/0.2, no entropy bonus, a fixed group size,
token-mean loss aggregation, group-normalised advantages, gradient clipping at 1.0 and AdamW
weight decay 0.01. Only two values are scaled to this workload: the learning rate (VeRL's 1e-6 is
for 7B models; these 10k-4M models are SFT-trained at 1e-3..5e-3 and a practitioner would start RL
an order of magnitude lower, 1e-4) and the batch (VeRL's 1024 prompts x 5 would take minutes per
step on a CPU; 16 prompts x 8 completions is TRL's default group size at a CPU-sized batch).
``docs/tiny-workload.md`` lists each value with its source.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from jfhpo.backends.base import BackendError

#: the no-search baseline; every key a configuration leaves out is filled from here
RECIPE: dict[str, Any] = {
    "learning_rate": 1e-4,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
    "weight_decay": 0.01,
    "beta": 0.001,
    "epsilon": 0.2,
    "epsilon_high": 0.2,
    "entropy_coef": 0.0,
    "loss_type": "dapo",
    "scale_rewards": "group",
    "num_generations": 8,
    "prompts_per_step": 16,
    "temperature": 1.0,
    "max_grad_norm": 1.0,
    "max_completion_length": 0,  # 0: the task's own (answer digits + eos + 1)
}

LR_SCHEDULES = ("constant", "constant_with_warmup", "linear", "cosine")
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo")
SCALE_REWARDS = ("group", "batch", "none")


def _number(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise BackendError(f"tiny backend: '{name}' must be a finite number, got {v!r}")
    return float(v)


def _positive(name: str, v: Any) -> None:
    if _number(name, v) <= 0:
        raise BackendError(f"tiny backend: '{name}' must be > 0, got {v!r}")


def _nonneg(name: str, v: Any) -> None:
    if _number(name, v) < 0:
        raise BackendError(f"tiny backend: '{name}' must be >= 0, got {v!r}")


def _int_at_least(low: int) -> Callable[[str, Any], None]:
    def check(name: str, v: Any) -> None:
        x = _number(name, v)
        if x != int(x) or x < low:
            raise BackendError(f"tiny backend: '{name}' must be an integer >= {low}, got {v!r}")

    return check


def _one_of(choices: tuple[str, ...]) -> Callable[[str, Any], None]:
    def check(name: str, v: Any) -> None:
        if v not in choices:
            raise BackendError(f"tiny backend: '{name}' must be one of {list(choices)}, got {v!r}")

    return check


def _warmup(name: str, v: Any) -> None:
    x = _number(name, v)
    if x < 0 or (x >= 1 and x != int(x)):
        raise BackendError(
            f"tiny backend: '{name}' must be a step count (integer >= 0) or a ratio in [0, 1), "
            f"got {v!r}"
        )


#: name -> check(name, value); raising BackendError for an impossible value
CHECKS: dict[str, Callable[[str, Any], None]] = {
    "learning_rate": _positive,
    "lr_scheduler_type": _one_of(LR_SCHEDULES),
    "warmup_steps": _warmup,
    "weight_decay": _nonneg,
    "beta": _nonneg,
    "epsilon": _positive,
    "epsilon_high": _positive,
    "entropy_coef": _nonneg,
    "loss_type": _one_of(LOSS_TYPES),
    "scale_rewards": _one_of(SCALE_REWARDS),
    "num_generations": _int_at_least(2),
    "prompts_per_step": _int_at_least(1),
    "temperature": _positive,
    "max_grad_norm": _nonneg,
    "max_completion_length": _int_at_least(0),
}
assert set(CHECKS) == set(RECIPE)


def check_value(name: str, value: Any) -> None:
    """Raise BackendError unless ``name`` is a known hyperparameter and ``value`` is possible."""
    if name not in CHECKS:
        raise BackendError(
            f"tiny backend: unknown hyperparameter '{name}'; valid names: {sorted(CHECKS)}"
        )
    CHECKS[name](name, value)


def resolve(config: Mapping[str, Any]) -> dict[str, Any]:
    """The full configuration: ``config`` over the recipe, every value checked."""
    out = dict(RECIPE)
    for name, value in config.items():
        check_value(name, value)
        out[name] = value
    if "epsilon" in config and "epsilon_high" not in config:
        out["epsilon_high"] = out["epsilon"]  # a searched clip range stays symmetric
    for name in ("num_generations", "prompts_per_step", "max_completion_length"):
        out[name] = int(out[name])
    return out
