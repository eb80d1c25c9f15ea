"""The synthetic backend: contract v2 (instance recipe, effective configuration, capabilities),
the conformance kit, and its test hooks."""

from __future__ import annotations

import json
from pathlib import Path

from jfhpo.backends.base import Capabilities, SegmentTask
from jfhpo.backends.synthetic import DEFAULTS, SyntheticBackend
from jfhpo.fidelity import ModelRung
from jfhpo.records import Verdict
from jfhpo.testing import check_backend


def test_contract_v2() -> None:
    b = SyntheticBackend({"bias": 0.2})
    assert b.recipe() == dict(DEFAULTS)
    assert b.effective_config({"learning_rate": 1e-2})["learning_rate"] == 1e-2
    assert b.effective_config({})["beta"] == DEFAULTS["beta"]
    assert b.capabilities() == Capabilities(checkpoint_every=0, resumable=True)


def test_conformance(tmp_path: Path) -> None:
    check_backend(SyntheticBackend({}), ModelRung("4m", 4e6, 10.0), {"learning_rate": 3e-4},
                  tmp_path, steps=8)


def test_record_env_writes_one_line_per_segment(tmp_path: Path, monkeypatch: object) -> None:
    import os

    os.environ["CUDA_VISIBLE_DEVICES"] = "3"
    try:
        b = SyntheticBackend({"record_env": str(tmp_path / "env")})
        task = SegmentTask(run_id=1, segment_id=5, config={}, model=ModelRung("m", 1e6),
                           start_step=0, target_step=3, max_steps=3, seed=1,
                           checkpoint_dir=str(tmp_path / "ck"), resources={"gpus": 1})
        b.run_segment(task, lambda s, m: Verdict.CONTINUE)
    finally:
        del os.environ["CUDA_VISIBLE_DEVICES"]
    (line,) = [json.loads(x) for p in (tmp_path / "env").glob("*.jsonl")
               for x in p.read_text().splitlines()]
    assert line["segment"] == 5 and line["cuda"] == "3" and line["resources"] == {"gpus": 1}
    assert line["start"] <= line["end"]
