"""Shared fixtures of the tiny-workload tests: one small base model cache per test session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

#: backend options of the tests: few eval problems and a short SFT keep every segment in seconds
OPTIONS: dict[str, Any] = {"task": "add2", "eval_problems": 100, "sft": {"steps": 150}}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A cache directory whose 10k base model is built once per session."""
    from jfhpo.backends.tiny import TinyGRPOBackend
    from jfhpo.fidelity import ModelLadder, ModelRung

    path = tmp_path_factory.mktemp("tiny-cache")
    backend = TinyGRPOBackend(OPTIONS)
    backend.setup_worker(1)
    ladder = ModelLadder([ModelRung("10k", 10420, build={"size": "10k"})])
    backend.prepare(ladder, str(path), lambda _m: None)
    return str(path)


@pytest.fixture()
def options() -> dict[str, Any]:
    return dict(OPTIONS)


@pytest.fixture()
def rung() -> Any:
    """The smallest rung of the ladder (the 10k model)."""
    from jfhpo.fidelity import ModelRung

    return ModelRung("10k", 10420, build={"size": "10k"})


@pytest.fixture()
def ckpt(tmp_path: Path) -> Path:
    out = tmp_path / "ckpt"
    out.mkdir()
    return out
