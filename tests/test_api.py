from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from jfhpo.api import AskStatus, AskTell, Trial
from jfhpo.backends.synthetic import SyntheticProblem, example_space
from jfhpo.records import Phase
from jfhpo.study import Study

MODELS = [{"name": "50k", "params": 5e4, "cost": 1.0}, {"name": "4m", "params": 4e6, "cost": 10.0}]


def test_ask_tell_any_objective_stored_in_a_real_study(tmp_path: Path) -> None:
    problem = SyntheticProblem(bias=0.0)
    at = AskTell(example_space(), MODELS, {"min": 10, "max": 90}, optimizer="hyperband",
                 optimizer_options={"model": "50k"}, budget=60.0, seed=5, folder=tmp_path / "s",
                 confirm={"top_k": 0})
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


TWO = [{"name": "s", "params": 1e6, "cost": 1.0}, {"name": "t", "params": 1e8, "cost": 20.0}]
X = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
FAST = {"n_init": 3, "n_candidates": 24, "fit_maxiter": 15, "min_transfer_configs": 3}


def run_loop(at: AskTell, noise_seed: int = 0) -> tuple[float, list[float], list[Trial]]:
    """A two-fidelity toy problem whose proxy prefers another x than the target; the cost is
    the cost hint per step (the budget's unit)."""
    rng = random.Random(noise_seed)
    spent, full, trials = 0.0, [], []
    while (t := at.ask()) is not None:
        hint = 20.0 if t.model == "t" else 1.0
        cost = hint * (t.steps - t.start_step)
        best_x = 0.3 if t.model == "t" else 0.6
        score = -((t.config["x"] - best_x) ** 2) * (t.steps / 90) + 0.01 * rng.random()
        spent += cost
        if t.model == "t" and t.steps == 90:
            full.append(score)
        trials.append(t)
        at.tell(t, score, cost)
    return spent, full, trials


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ask_tell_stays_in_budget_and_answers_at_least_the_best_full_target_score(
        seed: int) -> None:
    budget = 3 * 20 * 90
    at = AskTell(X, TWO, {"min": 10, "max": 90, "eta": 3}, optimizer="jfhpo",
                 optimizer_options=FAST, seed=seed, budget=budget)
    spent, full, trials = run_loop(at, seed)
    assert spent <= budget + 1e-9
    assert at.view().budget_spent == pytest.approx(spent)
    assert at.done and at.ask() is None and at.status is AskStatus.DONE
    confirm = [t for t in trials if t.phase is Phase.CONFIRM]
    assert confirm and all(t.model == "t" and t.steps == 90 for t in confirm)
    assert trials[-len(confirm):] == confirm  # confirmation comes after the search
    rec = at.recommend()
    assert rec is not None and rec.confirmed and rec.model == "t" and rec.steps == 90
    assert rec.score is not None and rec.score >= max(full) - 1e-12
    at.close()


def test_recommend_before_confirmation_predicts_the_target_score() -> None:
    # the proxy searched (target_below 0: a budget of 3 target runs would search the target)
    at = AskTell(X, TWO, {"min": 10, "max": 90}, optimizer="jfhpo",
                 optimizer_options={**FAST, "target_below": 0}, seed=0, budget=3 * 20 * 90)
    assert at.recommend() is None
    rng = random.Random(0)
    while at.study.phase is Phase.SEARCH and len(at.study.segments) < 6:
        t = at.ask()
        assert t is not None and t.model == "s"
        at.tell(t, -((t.config["x"] - 0.6) ** 2) * t.steps / 90 + 0.01 * rng.random(), t.steps)
    rec = at.recommend()
    assert rec is not None and not rec.confirmed and rec.score is None
    assert rec.predicted is not None and rec.std is not None and rec.std > 0
    assert rec.model == "s" and rec.run_id is not None
    assert at.view().run(rec.run_id).config == rec.config
    at.close()


def test_ask_says_when_it_waits_for_running_trials() -> None:
    at = AskTell(example_space(), MODELS, {"min": 10, "max": 90}, optimizer="random",
                 budget=10_000, workers=2, confirm={"top_k": 0})
    a, b = at.ask(), at.ask()
    assert a is not None and b is not None and at.status is AskStatus.TRIAL
    assert at.ask() is None and at.status is AskStatus.WAITING and not at.done
    at.tell(a, 0.5, 10.0)
    assert at.ask() is not None
    at.close()


def test_a_failed_confirmation_trial_is_handed_out_again() -> None:
    # the search stays on the proxy, so the top configuration has no full target run yet (one
    # that has is not trained again by confirmation)
    at = AskTell(X, TWO, {"min": 10, "max": 30}, optimizer="hyperband",
                 optimizer_options={"model": "s"}, budget=3000,
                 confirm={"top_k": 1, "fraction": 0.5})
    while (t := at.ask()) is not None and t.phase is Phase.SEARCH:
        at.tell(t, -t.config["x"], 1.0 * t.steps)
    assert t is not None and t.phase is Phase.CONFIRM and t.model == "t"
    at.tell(t, None, 5.0, failed=True)
    again = at.ask()
    assert again is not None and again.phase is Phase.CONFIRM
    assert again.config == t.config and again.run_id != t.run_id
    at.tell(again, -0.1, 600.0)
    assert at.ask() is None and at.done
    at.close()


def test_a_non_resumable_study_retrains_from_step_zero_and_pays_full_cost() -> None:
    problem = SyntheticProblem(bias=0.0)
    at = AskTell(example_space(), MODELS, {"min": 10, "max": 90}, optimizer="hyperband",
                 optimizer_options={"model": "50k"}, budget=400.0, seed=5, resumable=False,
                 confirm={"top_k": 0})
    longer = 0
    view = at.view()
    assert view.cost.between("50k", 10, 30) == view.cost.segment("50k", 30)
    while (t := at.ask()) is not None:
        assert t.start_step == 0  # never extends a run in place
        view = at.view()
        if view.run(t.run_id).steps_done > 0:
            longer += 1  # a longer run of a configuration: a fresh run to the new step count
            assert view.cost.between(t.model, view.run(t.run_id).steps_done, t.steps) == \
                pytest.approx(view.cost.segment(t.model, t.steps))
        score = problem.eval_score(t.config, 5e4, t.steps, seed=t.seed)
        at.tell(t, score, problem.cost(1.0, t.steps))
    assert longer >= 3  # hyperband promoted some configurations
    assert at.view().budget_spent <= 400.0
    at.close()


def test_resumable_extensions_are_priced_as_their_new_steps() -> None:
    at = AskTell(example_space(), MODELS, {"min": 10, "max": 90}, optimizer="hyperband",
                 optimizer_options={"model": "50k"}, budget=400.0, seed=5, confirm={"top_k": 0})
    starts = [t for t in iter(at.ask, None) if not at.tell(t, 0.1 * t.config["epsilon"],
                                                           0.1 * (t.steps - t.start_step))]
    assert any(t.start_step > 0 for t in starts)
    view = at.view()
    assert view.budget_spent <= 400.0
    assert view.cost.between("50k", 10, 30) == view.cost.segment("50k", 20, start=False)
    assert view.cost.between("50k", 10, 30) < view.cost.segment("50k", 30)
    at.close()


@pytest.mark.parametrize("steps", [[4, 9, 27], {"levels": [4, 9, 27]}])
def test_explicit_step_levels_run(steps: Any) -> None:
    at = AskTell(example_space(), MODELS, steps, optimizer="hyperband",
                 optimizer_options={"model": "50k"}, budget=200.0, seed=1, confirm={"top_k": 1})
    assert at.view().steps.rungs() == [4, 9, 27]
    seen = set()
    while (t := at.ask()) is not None:
        assert t.steps in (4, 9, 27)
        seen.add(t.steps)
        at.tell(t, 0.5 - abs(t.config["epsilon"] - 0.25), 0.1 * (t.steps - t.start_step))
    assert seen == {4, 9, 27}
    rec = at.recommend()
    assert rec is not None and rec.confirmed and rec.model == "4m" and rec.steps == 27
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
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(crash), "0.2"], env=env,
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


def test_a_configuration_already_trained_on_the_target_is_not_confirmed_again() -> None:
    # random search trains every configuration on the target at the full budget: its top one
    # has its target run already, so the confirmation stage adds nothing and the study ends
    at = AskTell(X, TWO, {"min": 10, "max": 30}, optimizer="random", budget=3000,
                 confirm={"top_k": 1, "fraction": 0.5})
    phases = []
    while (t := at.ask()) is not None:
        phases.append(t.phase)
        at.tell(t, -t.config["x"], 20.0 * t.steps)
    assert phases and set(phases) == {Phase.SEARCH} and at.done
    rec = at.recommend()
    assert rec is not None and rec.confirmed and rec.model == "t" and rec.steps == 30
    at.close()


def test_the_recipe_is_in_the_optimizers_view_from_the_first_ask(tmp_path: Path) -> None:
    from jfhpo.backends.synthetic import DEFAULTS

    space = example_space()
    recipe = {n: DEFAULTS[n] for n in space}
    at = AskTell(space, MODELS, {"min": 10, "max": 90}, optimizer="random", budget=50,
                 recipe=recipe, folder=tmp_path / "with")
    assert at.view().recipe == recipe
    at.close()
    again = AskTell.open(tmp_path / "with")  # stored in the study: a reopened driver sees it
    assert again.view().recipe == recipe
    again.close()
    plain = AskTell(space, MODELS, {"min": 10, "max": 90}, optimizer="random", budget=50)
    assert plain.view().recipe is None
    plain.close()


def test_the_recipe_trained_on_the_target_by_the_search_is_not_confirmed_again() -> None:
    # jfhpo (recipe_check) trains the recipe on the target at the full budget beside its first
    # verification; confirmation then skips it, and the recipe's figure comes from that run
    recipe = {"x": 0.25}
    at = AskTell(X, TWO, {"min": 10, "max": 30}, optimizer="jfhpo",
                 optimizer_options={**FAST, "check_after": 3}, budget=4000, recipe=recipe,
                 confirm={"top_k": 1, "fraction": 0.3})
    trials = []
    while (t := at.ask()) is not None:
        trials.append(t)
        at.tell(t, -abs(t.config["x"] - 0.6), (20.0 if t.model == "t" else 1.0) * (t.steps - t.start_step))
    on_target = [t for t in trials if t.model == "t" and t.steps == 30 and t.config == recipe]
    assert [t.phase for t in on_target] == [Phase.SEARCH]
    # the confirmation slot goes to the best configuration that has no full target run yet
    done = [t.config for t in trials if t.phase is Phase.SEARCH and t.model == "t" and t.steps == 30]
    confirmed = [t.config for t in trials if t.phase is Phase.CONFIRM]
    assert len(confirmed) == 1 and confirmed[0] not in done
    best = at.study.best()
    assert best is not None and best["recipe_score"] == -abs(0.25 - 0.6)
    assert at.study.n_confirm_runs() == 1  # the recipe's share of the reserve went to the search
    at.close()


def test_confirmation_tops_up_when_the_target_costs_less_than_predicted() -> None:
    # the cost hints price a target run at 20 x 30 = 600; it costs 200: the plan made before it
    # was measured pays for one run, and the budget it leaves pays for the second of top_k 2
    at = AskTell(X, TWO, {"min": 10, "max": 30}, optimizer="hyperband",
                 optimizer_options={"model": "s"}, budget=3000,
                 confirm={"top_k": 2, "fraction": 0.2})
    trials = []
    while (t := at.ask()) is not None:
        trials.append(t)
        at.tell(t, -abs(t.config["x"] - 0.6), 200.0 if t.model == "t" else 1.0 * t.steps)
    confirmed = [t for t in trials if t.phase is Phase.CONFIRM]
    assert len(confirmed) == 2 and confirmed[0].config != confirmed[1].config
    assert any("skipped" in w for w in at.study.warnings)  # what the first plan said
    assert at.view().budget_spent <= 3000 and at.done
    at.close()


def test_one_worker_plans_the_next_confirmation_with_the_last_ones_outcome() -> None:
    """Confirmation runs are planned no more at a time than the workers train: with one, the
    second is decided after the first is told (so a first that diverged can steer it)."""
    at = AskTell(X, TWO, {"min": 10, "max": 30}, optimizer="hyperband",
                 optimizer_options={"model": "s"}, budget=3000,
                 confirm={"top_k": 2, "fraction": 0.5})
    confirmed = []
    while (t := at.ask()) is not None:
        decided = [s for s in at.study.suggestions if s.phase is Phase.CONFIRM]
        if t.phase is Phase.CONFIRM:
            assert len(decided) == len(confirmed) + 1  # this one, none ahead of it
            confirmed.append(t)
        at.tell(t, -abs(t.config["x"] - 0.6), 20.0 * t.steps if t.model == "t" else 1.0 * t.steps)
    assert len(confirmed) == 2 and confirmed[0].config != confirmed[1].config
    assert at.done
    at.close()
