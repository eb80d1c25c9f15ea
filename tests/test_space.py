from __future__ import annotations

import numpy as np
import pytest

from jfhpo.space import CategoricalParam, FloatParam, IntParam, SearchSpace, SpaceError


def space() -> SearchSpace:
    return SearchSpace([
        FloatParam("lr", 1e-6, 1e-2, log=True),
        FloatParam("clip", 0.1, 0.4),
        IntParam("n", 2, 16),
        CategoricalParam("loss", ("dapo", "grpo", "dr_grpo")),
    ])


def test_sample_validates_and_round_trips() -> None:
    sp = space()
    rng = np.random.default_rng(0)
    for _ in range(200):
        c = sp.sample(rng)
        assert sp.validate(c) == c
        u = sp.encode(c)
        assert np.all((u >= -1e-9) & (u <= 1 + 1e-9))
        back = sp.decode(u)
        assert back["n"] == c["n"] and back["loss"] == c["loss"]
        assert back["lr"] == pytest.approx(c["lr"], rel=1e-9)


def test_log_sampling_covers_decades() -> None:
    sp = space()
    rng = np.random.default_rng(1)
    lrs = np.array([sp.sample(rng)["lr"] for _ in range(2000)])
    # uniform in log space: about a quarter of draws below 1e-5 (one decade of four)
    assert 0.2 < np.mean(lrs < 1e-5) < 0.3


def test_int_params_hit_both_ends() -> None:
    p = IntParam("n", 2, 4)
    values = {p.decode(u) for u in np.linspace(0, 1, 50)}
    assert values == {2, 3, 4}


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: FloatParam("lr", 1e-2, 1e-6), "low (0.01) must be smaller than high"),
        (lambda: FloatParam("lr", 0.0, 1.0, log=True), "log-scale range needs low > 0"),
        (lambda: FloatParam("lr", float("nan"), 1.0), "finite"),
        (lambda: IntParam("n", 5, 5), "low (5) must be smaller than high (5)"),
        (lambda: CategoricalParam("c", ()), "choices must not be empty"),
        (lambda: CategoricalParam("c", ("a", "a")), "duplicates"),
    ],
)
def test_bad_declarations_name_the_parameter(make, needle: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpaceError) as exc:
        make()
    assert needle in str(exc.value)
    assert "parameter '" in str(exc.value)


def test_validate_names_bad_keys() -> None:
    sp = space()
    good = {"lr": 1e-4, "clip": 0.2, "n": 4, "loss": "grpo"}
    with pytest.raises(SpaceError, match="unknown parameter"):
        sp.validate({**good, "lrr": 1})
    with pytest.raises(SpaceError, match=r"outside \[0.1, 0.4\]"):
        sp.validate({**good, "clip": 0.9})
    with pytest.raises(SpaceError, match="not one of"):
        sp.validate({**good, "loss": "ppo"})
    with pytest.raises(SpaceError, match="lacks parameter"):
        sp.validate({"lr": 1e-4})
