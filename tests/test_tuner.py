"""The engine end to end on the synthetic backend: real worker processes, a real SQLite file."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import cli, synthetic_study, write_study

from jfhpo.records import SegmentStatus
from jfhpo.study import Study


def small_study(**changes: Any) -> dict[str, Any]:
    base = synthetic_study(
        steps={"min": 3, "max": 27, "eta": 3}, eval_every=3, workers=1,
        budget={"seconds": 120}, confirm={"top_k": 1, "fraction": 0.2},
        models=[{"name": "50k", "params": 5e4, "cost": 1.0},
                {"name": "4m", "params": 4e6, "cost": 4.0}],
    )
    base.update(changes)
    return base


def contents(folder: Path) -> dict[str, Any]:
    """What a study computed, independent of row ids and timestamps."""
    db = sqlite3.connect(folder / "study.sqlite")
    segs = db.execute(
        "SELECT id, run_id, start_step, target_step, status, end_step, score, cost, reason_rule "
        "FROM segments ORDER BY id").fetchall()
    live = [s for s in segs if s[4] != int(SegmentStatus.INTERRUPTED)]
    live_ids = {s[0] for s in live}
    obs = db.execute("SELECT segment_id, run_id, step, metrics FROM observations ORDER BY id").fetchall()
    kept = [(o[1], o[2], json.loads(o[3])) for o in obs if o[0] in live_ids]
    sugg = db.execute(
        "SELECT kind, run_id, config, model, steps, phase FROM suggestions ORDER BY id").fetchall()
    runs = db.execute("SELECT config, model, phase, seed FROM runs ORDER BY id").fetchall()
    db.close()
    return {"segments": [s[1:] for s in live], "observations": kept, "suggestions": sugg,
            "runs": runs}


def test_run_then_best_and_status(tmp_path: Path) -> None:
    f = write_study(tmp_path / "s.yaml", small_study(workers=2))
    out = tmp_path / "st"
    r = cli("run", str(f), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout
    st = Study.open(out)
    spent = st.budget_spent()
    st.close()
    # the search stops starting segments once its share is spent; in-flight ones finish
    assert spent <= 120 + 27 * 0.1 * 4 * 2
    r = cli("best", str(out), "--json")
    assert r.returncode == 0, r.stderr
    best = json.loads(r.stdout)
    assert {"config", "score", "model", "steps"} <= set(best)
    assert best["model"] == "4m" and best["steps"] == 27
    r = cli("status", str(out))
    assert r.returncode == 0 and "confirmation on the target" in r.stdout
    assert "of 120 compute-seconds spent" in r.stdout
    r = cli("status", str(out), "--json")
    assert json.loads(r.stdout)["budget"]["total"] == 120


def test_status_of_a_wall_clock_budget_speaks_of_wall_clock_seconds(tmp_path: Path) -> None:
    f = write_study(tmp_path / "s.yaml", small_study(budget={"seconds": 4, "measure": "wall"},
                                                     confirm={"top_k": 0}))
    out = tmp_path / "st"
    assert cli("run", str(f), "--out", str(out), "--quiet").returncode == 0
    r = cli("status", str(out))
    assert r.returncode == 0
    assert "of 4 wall-clock seconds used (compute spent" in r.stdout


def test_same_seed_two_processes_identical(tmp_path: Path) -> None:
    f = write_study(tmp_path / "s.yaml", small_study())
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli("run", str(f), "--out", str(a), "--quiet").returncode == 0
    assert cli("run", str(f), "--out", str(b), "--quiet").returncode == 0
    ca, cb = contents(a), contents(b)
    assert ca == cb
    assert len(ca["suggestions"]) > 5
    c = tmp_path / "c"
    assert cli("run", str(f), "--out", str(c), "--quiet", "--seed", "7").returncode == 0
    assert contents(c)["suggestions"] != ca["suggestions"]


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    data = small_study(backend={"name": "synthetic", "options": {"sleep": 0.01}},
                       budget={"seconds": 200})
    f = write_study(tmp_path / "s.yaml", data)
    ref = tmp_path / "ref"
    t0 = time.monotonic()
    assert cli("run", str(f), "--out", str(ref), "--quiet").returncode == 0
    span = time.monotonic() - t0

    crash = tmp_path / "crash"
    rng = random.Random(1234)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kills = 0
    args = ["run", str(f), "--out", str(crash), "--quiet"]
    while True:
        proc = subprocess.Popen([sys.executable, "-m", "jfhpo", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        args = ["resume", str(crash), "--quiet"]
        delay = rng.uniform(0.2, 0.6) * span
        try:
            proc.wait(timeout=delay)
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
            break
        except subprocess.TimeoutExpired:
            if kills >= 4:
                proc.wait(timeout=300)
                assert proc.returncode == 0
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            time.sleep(0.2)
    assert kills >= 2
    got, want = contents(crash), contents(ref)
    assert got["suggestions"] == want["suggestions"]
    assert got["runs"] == want["runs"]
    assert got["segments"] == want["segments"]
    assert got["observations"] == want["observations"]
    # nothing duplicated: each (run, step, metric) appears once among kept observations
    seen = set()
    for run, step, metrics in got["observations"]:
        for k in metrics:
            assert (run, step, k) not in seen
            seen.add((run, step, k))
    # the crashed study really was interrupted (and the lost segments were re-run)
    db = sqlite3.connect(crash / "study.sqlite")
    n_int = db.execute("SELECT COUNT(*) FROM segments WHERE status = ?",
                       (int(SegmentStatus.INTERRUPTED),)).fetchone()[0]
    db.close()
    assert n_int >= 1


def test_extended_run_continues_exactly_where_its_checkpoint_left(tmp_path: Path) -> None:
    """Hyperband promotions resume checkpoints; the resumed metrics equal an unbroken run's."""
    f = write_study(tmp_path / "s.yaml", small_study(stopping=False))
    out = tmp_path / "st"
    assert cli("run", str(f), "--out", str(out), "--quiet").returncode == 0
    st = Study.open(out)
    extended = [s for s in st.segments.values() if s.start_step > 0]
    assert extended, "no promotion happened"
    seg = extended[0]
    run = st.runs[seg.run_id]
    # replay the same run unbroken in this process with the backend itself
    from jfhpo.backends.base import SegmentTask
    from jfhpo.backends.synthetic import SyntheticBackend
    from jfhpo.records import Verdict

    got: dict[int, dict[str, float]] = {}

    def report(step: int, metrics: Any) -> Verdict:
        got.setdefault(step, {}).update(metrics)
        return Verdict.CONTINUE

    SyntheticBackend({}).run_segment(SegmentTask(
        run_id=run.run_id, segment_id=0, config=run.config, model=st.ladder[run.model],
        start_step=0, target_step=seg.end_step or 0, max_steps=27, seed=run.seed,
        checkpoint_dir=str(tmp_path / "ck"), eval_every=3), report)
    stored: dict[int, dict[str, float]] = {}
    for ob in st.obs[run.run_id]:
        stored.setdefault(ob.step, {}).update(ob.metrics)
    for step in range(seg.start_step + 1, (seg.end_step or 0) + 1):
        assert stored[step]["reward"] == got[step]["reward"]
        assert stored[step]["reward_avg"] == got[step]["reward_avg"]  # state from the checkpoint
    st.close()


def test_trainer_error_and_worker_death_fail_the_segment_not_the_study(tmp_path: Path) -> None:
    for hook in ("fail_at_step", "crash_at_step"):
        data = small_study(backend={"name": "synthetic", "options": {hook: 5}}, workers=2,
                           budget={"seconds": 60})
        f = write_study(tmp_path / f"{hook}.yaml", data)
        out = tmp_path / hook
        r = cli("run", str(f), "--out", str(out))
        st = Study.open(out)
        failed = [s for s in st.segments.values() if s.status is SegmentStatus.FAILED]
        done = [s for s in st.segments.values() if s.status is SegmentStatus.COMPLETED]
        assert failed, hook
        assert done, hook  # segments that never reach step 5 complete
        errors = " ".join(s.error or "" for s in failed)
        if hook == "fail_at_step":
            assert "synthetic failure at step 5" in errors
        else:
            assert "died (exit code 3)" in errors
        assert "failed" in r.stdout
        st.close()


def test_checkpoints_of_runs_that_cannot_be_promoted_are_deleted(tmp_path: Path) -> None:
    f = write_study(tmp_path / "s.yaml", small_study(stopping=False, confirm={"top_k": 0}))
    out = tmp_path / "st"
    assert cli("run", str(f), "--out", str(out), "--quiet").returncode == 0
    st = Study.open(out)
    from jfhpo.optimizers.hyperband import Hyperband

    view = st.view()
    hb = Hyperband()
    live = {rid for (rid, _) in st.checkpoints}
    dirs = {p.parent.name for p in (out / "checkpoints").glob("run-*/step-*")}
    assert dirs == {f"run-{r}" for r in live}
    for r in view.runs:
        if r.run_id in live:
            assert hb.may_extend(view, r) or r.busy
    assert len(live) < len(view.runs)
    st.close()


def test_disk_budget_is_respected(tmp_path: Path) -> None:
    f = write_study(tmp_path / "s.yaml", small_study(
        stopping=False, confirm={"top_k": 0}, checkpoints={"disk_budget_mb": 0.0015}))
    out = tmp_path / "st"
    assert cli("run", str(f), "--out", str(out), "--quiet").returncode == 0
    total = sum(p.stat().st_size for p in (out / "checkpoints").rglob("*") if p.is_file())
    assert total <= 1500


def test_the_backends_recipe_is_in_the_view_before_the_first_decision(tmp_path: Path) -> None:
    from jfhpo.backends.synthetic import SyntheticBackend
    from jfhpo.spec import parse_spec
    from jfhpo.wiring import remember_recipe

    for include, folder in ((True, "with"), (False, "without")):
        spec = parse_spec(small_study(confirm={"top_k": 1, "include_recipe": include}))
        st = Study.create(tmp_path / folder, spec, spec.objective.metric)
        assert st.view().recipe is None
        backend = SyntheticBackend(spec.backend.options)
        got = remember_recipe(st, backend)
        want = {n: v for n, v in backend.recipe().items() if n in st.space.names}
        assert got == (want if include else None)
        assert st.view().recipe == got
        st.close()
        reopened = Study.open(tmp_path / folder)
        assert reopened.view().recipe == got
        reopened.close()
