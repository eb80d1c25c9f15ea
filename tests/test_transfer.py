"""Tests of ``measure_transfer``: rank agreement between model sizes, read at shared steps."""

from __future__ import annotations

from typing import Any

import pytest

from jfhpo.fidelity import ModelLadder, ModelRung
from jfhpo.records import Phase, RunRecord, StopReason
from jfhpo.space import FloatParam, SearchSpace
from jfhpo.transfer import config_curves, measure_transfer

SPACE = SearchSpace([FloatParam("lr", 0.0, 1.0)])
LADDER = ModelLadder(
    [ModelRung("50k", 5e4), ModelRung("1m", 1e6, cost=4.0), ModelRung("7b", 7e9, cost=50.0)]
)


def run(rid: int, lr: float, model: str, curve: list[tuple[int, float]], **kw: Any) -> RunRecord:
    return RunRecord(
        run_id=rid,
        config={"lr": lr},
        model=model,
        phase=Phase.SEARCH,
        steps_done=curve[-1][0],
        score=curve[-1][1],
        curve=tuple(curve),
        **kw,
    )


def paired(small_scores: list[float], large_scores: list[float], steps: int = 10) -> list[RunRecord]:
    out = []
    for i, (a, b) in enumerate(zip(small_scores, large_scores)):
        out.append(run(2 * i, i / 10, "50k", [(steps, a)]))
        out.append(run(2 * i + 1, i / 10, "1m", [(steps, b)]))
    return out


def test_same_ranking_gives_one() -> None:
    [rec] = measure_transfer(paired([0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.9]), LADDER, SPACE)
    assert (rec.small, rec.large) == ("50k", "1m")
    assert rec.spearman == pytest.approx(1.0) and rec.kendall == pytest.approx(1.0)
    assert (rec.n_configs, rec.n_pairs) == (4, 6)


def test_reversed_ranking_gives_minus_one() -> None:
    [rec] = measure_transfer(paired([0.1, 0.2, 0.3, 0.4], [0.9, 0.7, 0.6, 0.5]), LADDER, SPACE)
    assert rec.spearman == pytest.approx(-1.0) and rec.kendall == pytest.approx(-1.0)


def test_too_few_common_configurations_give_no_record() -> None:
    runs = paired([0.1, 0.2], [0.3, 0.4])
    assert measure_transfer(runs, LADDER, SPACE) == ()
    assert len(measure_transfer(runs, LADDER, SPACE, min_configs=2)) == 1
    with pytest.raises(ValueError, match="min_configs"):
        measure_transfer(runs, LADDER, SPACE, min_configs=1)


def test_constant_scores_give_no_record() -> None:
    assert measure_transfer(paired([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]), LADDER, SPACE) == ()


def test_scores_are_compared_at_the_largest_shared_step() -> None:
    # On 1m, config 0 only looks best because it trained longer; at step 10 the order agrees.
    runs = [
        run(0, 0.0, "50k", [(10, 0.1)]),
        run(1, 0.1, "50k", [(10, 0.2)]),
        run(2, 0.2, "50k", [(10, 0.3)]),
        run(3, 0.0, "1m", [(10, 0.2), (30, 0.95)]),
        run(4, 0.1, "1m", [(10, 0.3)]),
        run(5, 0.2, "1m", [(5, 0.1), (10, 0.4)]),
    ]
    [rec] = measure_transfer(runs, LADDER, SPACE)
    assert rec.spearman == pytest.approx(1.0)


def test_every_pair_of_sizes_is_measured_in_ladder_order() -> None:
    runs = paired([0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
    runs += [run(100 + i, i / 10, "7b", [(10, 0.1 * i)]) for i in range(3)]
    recs = measure_transfer(runs, LADDER, SPACE)
    assert [(r.small, r.large) for r in recs] == [("50k", "1m"), ("50k", "7b"), ("1m", "7b")]
    assert [round(r.spearman) for r in recs] == [-1, 1, -1]


def test_failed_runs_are_left_out_and_stopped_runs_count() -> None:
    runs = paired([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    runs[1] = run(1, 0.0, "1m", [(10, 0.9)], failed=True)
    assert measure_transfer(runs, LADDER, SPACE) == ()
    runs[1] = run(1, 0.0, "1m", [(10, 0.1)], stopped=StopReason("kl", "KL grew"))
    assert len(measure_transfer(runs, LADDER, SPACE)) == 1


def test_repeated_runs_of_a_configuration_are_averaged() -> None:
    runs = [run(0, 0.0, "50k", [(10, 0.2)]), run(1, 0.0, "50k", [(5, 0.1), (10, 0.4)])]
    curves = config_curves(runs, SPACE)
    assert curves["50k"][SPACE.key({"lr": 0.0})] == {5: 0.1, 10: pytest.approx(0.3)}
