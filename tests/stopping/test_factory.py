"""The study file's ``stopping:`` section -> rules: shapes, overrides, switches and errors."""

from __future__ import annotations

import pytest

from jfhpo.stopping import (
    AnyRule,
    KLGrowth,
    RuleError,
    build_rules,
    default_rule_names,
    describe,
    rule_names,
)
from jfhpo.stopping.factory import rule_options


def _names(rule) -> list[str]:
    assert isinstance(rule, AnyRule)
    return [r.name for r in rule.rules]


@pytest.mark.parametrize("cfg", [None, {}, True])
def test_missing_or_empty_gives_defaults(cfg) -> None:
    assert _names(build_rules(cfg)) == default_rule_names()


def test_false_gives_no_rules() -> None:
    assert build_rules(False) is None
    assert build_rules({"defaults": False}) is None


def test_defaults_are_registered_rules() -> None:
    assert set(default_rule_names()) <= set(rule_names())
    assert "kl_growth" in default_rule_names()


def test_override_options() -> None:
    rule = build_rules({"kl_growth": {"tau": 0.2, "k": 4}})
    kl = next(r for r in rule.rules if r.name == "kl_growth")
    assert isinstance(kl, KLGrowth) and (kl.tau, kl.k) == (0.2, 4)
    assert _names(rule) == default_rule_names()


@pytest.mark.parametrize("name", sorted(rule_names()))
def test_every_rule_can_be_switched_off(name) -> None:
    rule = build_rules({name: False})
    assert rule is None or name not in _names(rule)


@pytest.mark.parametrize("name", sorted(rule_names()))
def test_every_rule_can_be_the_only_one(name) -> None:
    assert _names(build_rules({"defaults": False, name: {}})) == [name]
    assert _names(build_rules({"defaults": False, name: None})) == [name]


def test_extra_rule_added_to_defaults() -> None:
    extra = next(n for n in rule_names() if n not in default_rule_names())
    assert _names(build_rules({extra: True})) == [*default_rule_names(), extra]


@pytest.mark.parametrize(
    "cfg,words",
    [
        ({"kl_grwth": {}}, ["kl_grwth", "kl_growth", "valid names"]),
        ({"kl_growth": {"taux": 0.2}}, ["kl_growth.taux", "valid options", "'tau'", "'min_kl'"]),
        ({"kl_growth": {"tau": "big"}}, ["kl_growth.tau", "a number", "'big'"]),
        ({"kl_growth": {"k": 2.5}}, ["kl_growth.k", "an integer"]),
        ({"kl_growth": {"k": True}}, ["kl_growth.k", "an integer"]),
        ({"kl_growth": {"tau": -1}}, ["kl_growth.tau", "positive"]),
        (
            {"kl_runaway": {"with_reward_drop": "yes"}},
            ["kl_runaway.with_reward_drop", "true or false"],
        ),
        ({"non_finite": {"metrics": "kl"}}, ["non_finite.metrics", "list of strings"]),
        ({"kl_growth": 0.2}, ["stopping.kl_growth", "mapping of options"]),
        ({"defaults": "no"}, ["stopping.defaults", "true or false"]),
        (["kl_growth"], ["stopping", "mapping"]),
    ],
)
def test_errors_name_rule_and_key(cfg, words) -> None:
    with pytest.raises(RuleError) as err:
        build_rules(cfg)
    for w in words:
        assert w in str(err.value)


def test_ints_accepted_for_floats() -> None:
    rule = build_rules({"defaults": False, "kl_growth": {"tau": 1}})
    assert rule.rules[0].tau == 1.0


def test_describe_shows_effective_options() -> None:
    lines = describe({"defaults": False, "kl_growth": {"tau": 0.2}})
    assert lines == ["kl_growth: tau=0.2, k=5, min_kl=0.01, warmup=10"]
    assert len(describe(None)) == len(default_rule_names())
    assert describe(False) == []


@pytest.mark.parametrize("name", sorted(rule_names()))
def test_every_option_has_a_default_that_builds(name) -> None:
    opts = rule_options(name)
    assert all(v is not None for v in opts.values())
    # passing every default back explicitly builds the same rule without error
    assert _names(build_rules({"defaults": False, name: dict(opts)})) == [name]
