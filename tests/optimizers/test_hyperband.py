from __future__ import annotations

import pytest
from tests.optimizers.drive import drive

from jfhpo.optimizers.base import OptimizerError
from jfhpo.optimizers.hyperband import Hyperband, bracket_plan


@pytest.mark.parametrize(
    ("rungs", "eta", "expected"),
    [
        # n_s = ceil((s_max + 1) / (s + 1) * eta^s), as in Li et al.
        ([10, 30, 90], 3, [[(9, 10), (3, 30), (1, 90)], [(5, 30), (1, 90)], [(3, 90)]]),
        ([27, 81], 3, [[(3, 27), (1, 81)], [(2, 81)]]),
        ([100], 3, [[(1, 100)]]),
    ],
)
def test_bracket_plan(rungs: list[int], eta: int, expected: list[list[tuple[int, int]]]) -> None:
    assert bracket_plan(rungs, eta) == expected


def test_hyperband_promotes_the_best_by_extending_their_runs() -> None:
    at = drive("hyperband", budget=450.0)
    view = at.view()
    first = [r for r in view.runs][:9]
    assert all(r.model == "4m" for r in view.runs)  # default: steps only, on the target
    promoted = [r for r in first if r.steps_done >= 30]
    assert len(promoted) == 3
    # the promoted ones were the best three at 10 steps
    at10 = sorted(first, key=lambda r: dict(r.curve)[10], reverse=True)
    assert {r.run_id for r in at10[:3]} == {r.run_id for r in promoted}
    # extensions reuse the run: segments start where the run stopped
    segs = [s for s in at.study.segments.values() if s.run_id == promoted[0].run_id]
    assert [(s.start_step, s.target_step) for s in sorted(segs, key=lambda s: s.segment_id)][:2] == [
        (0, 10), (10, 30)]
    # runs not promoted can no longer be extended
    hb = Hyperband()
    losers = [r for r in first if r.steps_done == 10]
    assert losers and not any(hb.may_extend(view, r) for r in losers)
    at.close()


def test_hyperband_on_a_proxy_model() -> None:
    at = drive("hyperband", budget=100.0, model="50k")
    assert {r.model for r in at.view().runs} == {"50k"}
    at.close()


def test_random_search_uses_full_fidelity_and_is_seeded() -> None:
    a = drive("random", budget=2000.0, seed=3)
    b = drive("random", budget=2000.0, seed=3)
    ra, rb = a.view().runs, b.view().runs
    assert [r.config for r in ra] == [r.config for r in rb]
    assert all(r.model == "4m" and r.steps_done == 90 for r in ra)
    assert len(ra) == 22  # 90 s per run: a run starts only when the budget can pay for it
    a.close()
    b.close()


def test_bad_options() -> None:
    with pytest.raises(OptimizerError, match="etta"):
        Hyperband({"etta": 3})
    with pytest.raises(OptimizerError, match="unknown model 'nope'"):
        drive("hyperband", budget=10.0, model="nope")
