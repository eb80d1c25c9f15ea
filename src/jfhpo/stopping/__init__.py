"""Early stopping from RL training dynamics: the paper's rules, failure guards, peer comparison.

``build_rules`` turns a study file's ``stopping:`` section into one rule; the rule classes are
re-exported for users who compose rules in Python. Importing this package pulls in numpy only.
"""

from __future__ import annotations

from jfhpo.stopping.base import AnyRule, RuleError, RunHistory, StoppingRule, get_rule, rule_names
from jfhpo.stopping.compare import PeerGap
from jfhpo.stopping.factory import build_rules, default_rule_names, describe, rule_options
from jfhpo.stopping.guards import (
    DeadSignal,
    EntropyCollapse,
    EntropyExplosion,
    EvalDrop,
    KLRunaway,
    NonFinite,
    Truncation,
)
from jfhpo.stopping.paper import KLGrowth, RewardDrop, ZeroReward

__all__ = [
    "AnyRule",
    "DeadSignal",
    "EntropyCollapse",
    "EntropyExplosion",
    "EvalDrop",
    "KLGrowth",
    "KLRunaway",
    "NonFinite",
    "PeerGap",
    "RewardDrop",
    "RuleError",
    "RunHistory",
    "StoppingRule",
    "Truncation",
    "ZeroReward",
    "build_rules",
    "default_rule_names",
    "describe",
    "get_rule",
    "rule_names",
    "rule_options",
]
