"""Resource-aware slots of the local executor: a 1-GPU proxy and a 2-GPU target share a pool of 2
GPUs without ever over-committing it (no GPU needed: the synthetic backend records the
CUDA_VISIBLE_DEVICES each segment was handed, and its start and end times)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import cli, synthetic_study, write_study

from jfhpo.backends.synthetic import SyntheticBackend
from jfhpo.executors.local import LocalExecutor
from jfhpo.optimizers.base import Optimizer
from jfhpo.records import RunRecord, Start, Suggestion
from jfhpo.spec import parse_spec
from jfhpo.study import Study
from jfhpo.tuner import Tuner
from jfhpo.view import StudyView


class Alternate(Optimizer):
    """Starts random configurations on the 1-GPU proxy and the 2-GPU target in turn."""

    name = "alternate-test"

    def suggest(self, view: StudyView) -> Suggestion | None:
        proxy, target = view.ladder.names
        model = target if view.n_suggestions % 3 == 2 else proxy  # P P T P P T ...
        return Start(view.space.sample(view.rng()), model, view.steps.max_steps)

    def may_extend(self, view: StudyView, run: RunRecord) -> bool:
        return False


def gpu_study(record: Path, **changes: Any) -> dict[str, Any]:
    data = synthetic_study(
        backend={"name": "synthetic", "options": {"sleep": 0.03, "record_env": str(record)}},
        models=[{"name": "50k", "params": 5e4, "cost": 1.0, "resources": {"gpus": 1}},
                {"name": "4m", "params": 4e6, "cost": 4.0, "resources": {"gpus": 2}}],
        steps={"min": 3, "max": 9, "eta": 3}, workers=2, budget={"seconds": 40},
        confirm={"top_k": 1, "fraction": 0.3}, stopping=False,
        optimizer={"name": "random"}, executor={"name": "local", "gpus": 2})
    data.update(changes)
    return data


def test_rungs_asking_1_and_2_gpus_never_overcommit_a_pool_of_2(tmp_path: Path) -> None:
    record = tmp_path / "env"
    spec = parse_spec(gpu_study(record, confirm={"top_k": 0}))
    study = Study.create(tmp_path / "st", spec, "eval_accuracy")
    ex = LocalExecutor(spec.backend.name, spec.backend.options, 2, 1, gpus=2)
    try:
        Tuner(study, ex, Alternate(), None, SyntheticBackend, workers=2, cache_dir="").run()
    finally:
        ex.shutdown()
        study.close()
    segs = [json.loads(line) for p in record.glob("*.jsonl") for line in p.read_text().splitlines()]
    assert len(segs) >= 4
    for s in segs:
        ids = s["cuda"].split(",") if s["cuda"] else []
        assert len(ids) == int(s["resources"]["gpus"]), s  # each got exactly what it asked
        assert set(ids) <= {"0", "1"}
        s["ids"] = set(ids)
    two = [s for s in segs if len(s["ids"]) == 2]
    one = [s for s in segs if len(s["ids"]) == 1]
    assert two and one
    overlapping = 0
    for i, a in enumerate(segs):
        for b in segs[i + 1:]:
            if a["start"] < b["end"] and b["start"] < a["end"]:  # ran at the same time
                overlapping += 1
                assert not (a["ids"] & b["ids"]), (a, b)  # never the same GPU twice
                assert len(a["ids"]) + len(b["ids"]) <= 2
    assert overlapping >= 1  # the two workers did run 1-GPU segments side by side
    # a 2-GPU segment waited for both GPUs: it started after a 1-GPU one that ran before it ended
    assert any(a["end"] <= b["start"] for a in one for b in two)


def test_a_rung_asking_more_than_the_pool_is_refused_before_anything_runs(tmp_path: Path) -> None:
    data = gpu_study(tmp_path / "env")
    data["models"][1]["resources"] = {"gpus": 3}
    f = write_study(tmp_path / "s.yaml", data)
    out = tmp_path / "st"
    r = cli("run", str(f), "--out", str(out), "--quiet")
    assert r.returncode == 2
    assert "models.4m.resources.gpus" in r.stderr and "has 2" in r.stderr
    assert not out.exists()
    data["executor"] = {"name": "local", "gpus": 2, "bogus": 1}
    write_study(f, data)
    r = cli("run", str(f), "--out", str(out), "--quiet")
    assert r.returncode == 2 and "bogus" in r.stderr and not out.exists()
