"""The fidelity words: a rung carries its resources; segment targets honour checkpoint saves."""

from __future__ import annotations

import pytest

from jfhpo.backends.base import Capabilities
from jfhpo.fidelity import ModelLadder, ModelRung
from jfhpo.wiring import segment_steps


def test_rungs_keep_their_resources() -> None:
    ladder = ModelLadder([ModelRung("a", 1e6), ModelRung("b", 1e8, 4.0, {}, {"gpus": 2})])
    assert ladder.target.resources == {"gpus": 2} and ladder["a"].resources == {}


@pytest.mark.parametrize(("steps", "every", "want"), [
    (7, 0, 7), (7, 5, 10), (10, 5, 10), (93, 5, 90), (0, 5, 5), (200, 0, 90),
])
def test_segment_targets_end_on_a_save(steps: int, every: int, want: int) -> None:
    assert segment_steps(steps, Capabilities(checkpoint_every=every), 90) == want
