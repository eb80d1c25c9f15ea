"""An evaluation's sampling leaves the training's random streams as they were."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from jfhpo.backends.rng import isolated_rng  # noqa: E402


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA device (bench/device/run.sh)"))],
)
def test_sampling_inside_is_seeded_and_the_stream_outside_goes_on(device: str) -> None:
    torch.manual_seed(0)
    torch.rand(3, device=device)
    expected = torch.rand(5, device=device)  # what training draws next without an evaluation

    torch.manual_seed(0)
    torch.rand(3, device=device)
    with isolated_rng(device, 1234):
        first = torch.rand(4, device=device)
    with isolated_rng(torch.device(device), 1234):
        second = torch.rand(4, device=device)
    assert torch.equal(first, second), "the evaluation's own seed gives the same samples"
    assert torch.equal(torch.rand(5, device=device), expected), "training's stream moved"
