"""A whole trl study through the real CLI, on the example project (three model folders built
from Qwen2 configs, a jsonl dataset, a reward module outside the package), with 2 workers:
runs promoted by extending their checkpoints, a run stopped early by a rule, confirmation on
the target. Every segment is a TRL subprocess, so this is slow: run with JFHPO_SLOW=1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from tests.conftest import cli

from jfhpo.backends.command_proc import group_alive
from jfhpo.records import Phase, SegmentStatus
from jfhpo.study import Study


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("JFHPO_SLOW") != "1", reason="slow: set JFHPO_SLOW=1")
def test_trl_example_study_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    from jfhpo.examples.trl_project import build_project

    build_project(tmp_path)
    assert cli("init", "--workload", "trl", "trl.yaml", cwd=tmp_path).returncode == 0
    study = yaml.safe_load((tmp_path / "trl.yaml").read_text())
    study.update({
        "steps": {"min": 2, "max": 6, "eta": 3},
        "optimizer": {"name": "hyperband", "options": {"model": "s"}},
        # random models truncate most answers: this rule stops every run that reaches step 3
        "stopping": {"defaults": False, "truncation": {"threshold": 0.0, "k": 3}},
        "budget": {"seconds": 300},
        "confirm": {"top_k": 1, "fraction": 0.2},
    })
    (tmp_path / "trl.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    r = cli("run", "trl.yaml", "--out", "st", "--quiet", cwd=tmp_path, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    st = Study.open(tmp_path / "st")
    segs = list(st.segments.values())
    extended = [s for s in segs if s.start_step > 0]
    assert extended, "no run was extended from its checkpoint"
    assert any(s.status is SegmentStatus.STOPPED for s in segs), "no run was stopped early"
    confirm = [r for r in st.runs.values() if r.phase is Phase.CONFIRM]
    assert confirm and all(r.model == "l" for r in confirm)
    st.close()
    best = json.loads(cli("best", "st", "--json", cwd=tmp_path).stdout)
    assert best["model"] == "l" and best["steps"] == 6
    for pgid in (tmp_path / "st" / "logs").glob("segment-*/pgid"):
        assert not group_alive(int(pgid.read_text()))
