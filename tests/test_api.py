from __future__ import annotations

from pathlib import Path
from typing import Any

from jfhpo.api import AskTell
from jfhpo.backends.synthetic import SyntheticProblem, example_space
from jfhpo.study import Study

MODELS = [{"name": "50k", "params": 5e4, "cost": 1.0}, {"name": "4m", "params": 4e6, "cost": 10.0}]


def test_ask_tell_any_objective_stored_in_a_real_study(tmp_path: Path) -> None:
    problem = SyntheticProblem(bias=0.0)
    at = AskTell(example_space(), MODELS, {"min": 10, "max": 90}, optimizer="hyperband",
                 optimizer_options={"model": "50k"}, budget=60.0, seed=5, folder=tmp_path / "s")
    told = 0
    while (t := at.ask()) is not None:
        assert t.model == "50k" and 0 <= t.start_step < t.steps <= 90
        score, _, curve = problem.objective(t.config, 5e4, t.steps, seed=t.run_id)
        at.tell(t, score, problem.cost(1.0, t.steps - t.start_step), curve)
        told += 1
    best = at.best()
    assert best is not None and best["model"] == "50k"
    at.close()
    st = Study.open(tmp_path / "s")
    # the budget is a cap: asks stop once the next trial cannot be paid for
    assert 60.0 - 9.0 <= st.budget_spent() <= 60.0
    assert len(st.segments) == told
    st.close()


def test_failed_trials_are_recorded() -> None:
    at = AskTell(example_space(), MODELS, {"min": 10, "max": 90}, optimizer="random", budget=50)
    t = at.ask()
    assert t is not None
    at.tell(t, None, cost=30.0, failed=True)
    r = at.view().run(t.run_id)
    assert r.failed and r.score is None
    assert at.view().budget_spent == 30.0
    at.close()


DRIVER = """
import sys, time
from jfhpo.api import AskTell
from jfhpo.backends.synthetic import SyntheticProblem, example_space
models = [{"name": "50k", "params": 5e4, "cost": 1.0}, {"name": "4m", "params": 4e6, "cost": 10.0}]
problem = SyntheticProblem()
at = AskTell(example_space(), models, {"min": 10, "max": 90}, optimizer="hyperband",
             budget=150.0, seed=11, folder=sys.argv[1])
print("ready", flush=True)
while (t := at.ask()) is not None:
    params = 5e4 if t.model == "50k" else 4e6
    score, _, curve = problem.objective(t.config, params, t.steps, seed=t.run_id)
    time.sleep(float(sys.argv[2]))
    at.tell(t, score, problem.cost(1.0 if t.model == "50k" else 10.0, t.steps - t.start_step),
            curve)
at.close()
"""


def _told(folder: Path) -> tuple[list[Any], list[Any], list[Any]]:
    import sqlite3

    db = sqlite3.connect(folder / "study.sqlite")
    live = [r for r in db.execute(
        "SELECT id, run_id, start_step, target_step, status, end_step, cost FROM segments "
        "ORDER BY id") if r[4] != 5]  # 5: interrupted
    ids = {r[0] for r in live}
    obs = [(r[1], r[2], r[3]) for r in db.execute(
        "SELECT segment_id, run_id, step, metrics FROM observations ORDER BY id") if r[0] in ids]
    sugg = list(db.execute("SELECT kind, run_id, config, model, steps FROM suggestions ORDER BY id"))
    db.close()
    return [r[1:] for r in live], obs, sugg


def test_an_ask_tell_driver_killed_with_sigkill_reopens_and_continues(tmp_path: Path) -> None:
    import os
    import random
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, "-c", DRIVER, str(ref), "0"], env=env, check=True,
                   timeout=120)
    crash = tmp_path / "crash"
    rng = random.Random(7)
    kills = 0
    while True:
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(crash), "0.05"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready": imports done, the study (re)opened
        try:
            # at random moments: between an ask and its tell, or inside a tell
            proc.wait(timeout=rng.uniform(0.02, 0.4) if kills < 4 else 120)
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
            break
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
    assert kills >= 3
    segs, obs, sugg = _told(crash)
    want_segs, want_obs, want_sugg = _told(ref)
    assert sugg == want_sugg  # every decision once, as uninterrupted
    assert segs == want_segs
    assert obs == want_obs  # no observation lost or duplicated
    assert len({(r, s) for r, s, _ in obs}) == len(obs)
    st = Study.open(crash)
    assert any(s.status.name == "INTERRUPTED" for s in st.segments.values())
    st.close()
