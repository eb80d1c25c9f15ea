"""A whole study on the tiny workload through the real CLI: base models prepared in the workers,
real TRL GRPO segments in worker processes, promotions that resume checkpoints, confirmation on
the target with the recipe beside the winner."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from tests.conftest import cli

from jfhpo.records import SegmentStatus
from jfhpo.study import Study


def test_tiny_study_end_to_end(tmp_path: Path) -> None:
    study = {
        "name": "tiny-e2e", "seed": 0,
        "backend": {"name": "tiny", "options": {"task": "add2", "eval_problems": 50,
                                                "sft": {"steps": 150}}},
        "models": [
            {"name": "10k", "params": 10420, "cost": 1.0, "build": {"size": "10k"}},
            {"name": "t2", "params": 20000, "cost": 1.3,
             "build": {"hidden": 24, "layers": 2, "heads": 2, "kv_heads": 1, "intermediate": 72}},
        ],
        "steps": {"min": 2, "max": 6, "eta": 3},
        "space": {"learning_rate": {"type": "float", "low": 1e-5, "high": 3e-3, "log": True}},
        "optimizer": {"name": "hyperband", "options": {"model": "10k"}},
        "budget": {"seconds": 50},  # the budget is a cap: it must pay for 2 target runs
        "workers": 1,
        "confirm": {"top_k": 1, "fraction": 0.6},
        "cache_dir": str(tmp_path / "cache"),
    }
    f = tmp_path / "tiny.yaml"
    f.write_text(yaml.safe_dump(study))
    out = tmp_path / "st"
    r = cli("run", str(f), "--out", str(out), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "recipe (no search) on the target" in r.stdout
    st = Study.open(out)
    segs = list(st.segments.values())
    assert all(s.status in (SegmentStatus.COMPLETED, SegmentStatus.STOPPED) for s in segs)
    assert any(s.start_step > 0 for s in segs), "no promotion resumed a checkpoint"
    obs = [o for run_obs in st.obs.values() for o in run_obs]
    names = set().union(*(o.metrics for o in obs))
    assert {"reward", "grad_norm", "entropy", "eval_accuracy", "eval_greedy_accuracy"} <= names
    st.close()
    best = json.loads(cli("best", str(out), "--json").stdout)
    assert best["model"] == "t2" and best["steps"] == 6
    assert 0.0 <= best["score"] <= 1.0
