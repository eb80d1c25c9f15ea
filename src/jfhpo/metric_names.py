"""Metric-name maps: canonical jfhpo names <- each trainer's native names.

Stopping rules, optimizers and reports speak only canonical names (see ``records.CANONICAL_METRICS``
and ``eval_*`` for validation). Each backend translates its trainer's log dict with
``to_canonical`` and the table for that trainer, so the same rules run on every backend. Names come
from the trainers' own logging code (TRL's GRPOTrainer.log and transformers' Trainer; VeRL's
metric_utils and dp_actor), as listed in the project's trainer notes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

#: canonical -> TRL GRPOTrainer / transformers Trainer log keys
TRL_NAMES: Mapping[str, str] = {
    "reward": "reward",
    "kl": "kl",
    "entropy": "entropy",
    "grad_norm": "grad_norm",
    "response_length": "completions/mean_length",
    "truncation": "completions/clipped_ratio",
    "zero_std_frac": "frac_reward_zero_std",
    "clip_frac": "clip_ratio/region_mean",
    "lr": "learning_rate",
    "loss": "loss",
}

#: canonical -> VeRL (>= 0.4) metric keys; VeRL logs no zero-std fraction directly.
VERL_NAMES: Mapping[str, str] = {
    "reward": "critic/score/mean",
    "kl": "actor/kl_loss",
    "entropy": "actor/entropy",
    "grad_norm": "actor/grad_norm",
    "response_length": "response_length/mean",
    "truncation": "response_length/clip_ratio",
    "clip_frac": "actor/pg_clipfrac",
    "lr": "actor/lr",
    "loss": "actor/pg_loss",
}

#: VeRL validation keys look like val-core/<data_source>/<reward|acc>/mean@N
_VERL_VAL = re.compile(r"^val-(?:core|aux)/[^/]+(?:/[^/]+)*/(?:acc|reward)/mean@(\d+)$")
#: VeRL <= 0.3 named validation val/test_score/<data_source>
_VERL_OLD_VAL = re.compile(r"^val/test_score/.+$")

TABLES: Mapping[str, Mapping[str, str]] = {"trl": TRL_NAMES, "verl": VERL_NAMES}


def to_canonical(native: Mapping[str, object], table: Mapping[str, str]) -> dict[str, float]:
    """Translate one native log dict to canonical names; keeps numeric values only.

    Non-finite numbers are kept (as float nan/inf) on purpose: the non-finite guard must see them.
    Keys already canonical (or ``eval_*``) pass through, so a backend may report them directly.
    """
    out: dict[str, float] = {}
    for canon, key in table.items():
        v = native.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[canon] = float(v)
    for key, v in native.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if key.startswith("eval_") or key in table:
            out.setdefault(key, float(v))
        elif _VERL_VAL.match(key) or _VERL_OLD_VAL.match(key):
            out.setdefault("eval_accuracy", float(v))
    return out


def is_finite(value: float) -> bool:
    return math.isfinite(value)
