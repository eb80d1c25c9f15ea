"""The checkpoint store and registry: a shared path, and retention that spares queued work."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import cli, synthetic_study, write_study

from jfhpo.checkpoints import CheckpointRegistry, LocalStore
from jfhpo.records import Phase
from jfhpo.spec import parse_spec
from jfhpo.study import Study

CFG = {"learning_rate": 1e-3, "beta": 0.01, "epsilon": 0.2, "num_generations": 8}


def test_checkpoints_can_live_on_a_shared_path(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    data = synthetic_study(steps={"min": 3, "max": 27, "eta": 3}, stopping=False,
                           budget={"seconds": 60}, confirm={"top_k": 0}, workers=1,
                           checkpoints={"path": str(shared)})
    f = write_study(tmp_path / "s.yaml", data)
    out = tmp_path / "st"
    assert cli("run", str(f), "--out", str(out), "--quiet").returncode == 0
    st = Study.open(out)
    assert any(s.start_step > 0 for s in st.segments.values())  # extensions loaded them
    paths = [Path(p) for p, _ in st.checkpoints.values()]
    assert paths and all(p.is_absolute() and shared in p.parents for p in paths)
    assert not (out / "checkpoints").exists()
    st.close()


def test_retention_never_releases_what_a_queued_extension_loads(tmp_path: Path) -> None:
    st = Study.create(tmp_path / "st", parse_spec(synthetic_study()), "eval_accuracy")
    reg = CheckpointRegistry(st)
    assert isinstance(reg.store, LocalStore)
    for rid in (1, 2):
        sid = st.add_suggestion("start", 10, Phase.SEARCH, config=CFG,
                                model="50k")
        st.add_run(sid, CFG, "50k", Phase.SEARCH)
        seg = st.add_segment(rid, sid, 0, 10)
        (reg.staging(seg) / "state.json").write_text("x" * 1000)
        reg.commit(seg, rid, 10)
    # over the disk budget; run 1 is the worse one, but a queued extension loads its checkpoint
    released = reg.collect(keep={1, 2}, protected={(1, 10)}, busy={1}, budget_bytes=1000,
                           priority={1: 0.1, 2: 0.9})
    assert released == [(2, 10)]
    assert reg.lookup(1, 10) is not None and reg.lookup(2, 10) is None
    st.close()
