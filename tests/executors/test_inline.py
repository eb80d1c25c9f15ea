"""The inline executor and the executor registry."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from tests.conftest import cli, synthetic_study, write_study

from jfhpo.executors import get_executor
from jfhpo.executors.base import ExecutorError
from jfhpo.executors.inline import InlineExecutor
from jfhpo.executors.local import LocalExecutor
from jfhpo.study import Study


def test_registry_names_and_errors() -> None:
    assert get_executor("inline") is InlineExecutor
    assert get_executor("local") is LocalExecutor
    assert get_executor("jfhpo.executors.inline:InlineExecutor") is InlineExecutor
    with pytest.raises(ExecutorError, match="valid names"):
        get_executor("nope")


def test_inline_study_runs_segments_in_this_process(tmp_path: Path) -> None:
    record = tmp_path / "env"
    data = synthetic_study(
        backend={"name": "synthetic", "options": {"record_env": str(record)}},
        steps={"min": 3, "max": 27, "eta": 3}, budget={"seconds": 60}, workers=2,
        confirm={"top_k": 1}, executor={"name": "inline"})
    f = write_study(tmp_path / "s.yaml", data)
    r = cli("run", str(f), "--out", str(tmp_path / "st"), "--quiet")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for p in record.glob("*.jsonl") for x in p.read_text().splitlines()]
    assert len({x["pid"] for x in lines}) == 1  # one process: the study's own
    ivals = sorted((x["start"], x["end"]) for x in lines)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ivals))  # one at a time
    st = Study.open(tmp_path / "st")
    assert st.best() is not None
    assert len(lines) == sum(1 for s in st.segments.values() if s.end_step)
    st.close()


def test_inline_and_local_give_the_same_study(tmp_path: Path) -> None:
    """Same seed, same decisions, whichever executor carries them out (workers: 1)."""
    base = synthetic_study(steps={"min": 3, "max": 27, "eta": 3}, budget={"seconds": 150},
                           workers=1, confirm={"top_k": 1})
    outs = []
    for name in ("inline", "local"):
        f = write_study(tmp_path / f"{name}.yaml", {**base, "executor": {"name": name}})
        out = tmp_path / name
        assert cli("run", str(f), "--out", str(out), "--quiet").returncode == 0
        st = Study.open(out)
        outs.append([(s.run_id, s.start_step, s.end_step, s.score) for s in
                     sorted(st.segments.values(), key=lambda s: s.segment_id)])
        st.close()
    assert outs[0] == outs[1] and len(outs[0]) > 3
