"""Sampling for an evaluation without touching the training's random streams.

An evaluation samples completions with its own fixed seed (the same weights give the same score),
and training must go on exactly as if it had not happened: whether a run is evaluated every 10
steps, only at its end, or stopped, evaluated and resumed, its training steps stay the same. That
needs the generator of the device the model samples on to be saved and restored too, not only
the CPU's: ``torch.manual_seed`` reseeds every CUDA device, and a CUDA stream left reseeded moved
every later training sample (found on a GPU machine: a resumed trl segment left the uninterrupted
one at its fourth step after the resume; bench/device/README.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def isolated_rng(device: Any, seed: int) -> Iterator[None]:
    """Inside: every torch generator the evaluation may touch is seeded with ``seed``; after:
    the CPU generator and, when ``device`` is a CUDA device, every CUDA device's generator are
    as they were before."""
    import torch

    cuda = torch.device(device).type == "cuda" and torch.cuda.is_available()
    devices = list(range(torch.cuda.device_count())) if cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
