"""The replay backend through the whole engine, on the packaged recording (real recorded curves).

The central check: a study replays recorded runs with the default stopping rules, and every run's
stop step, stop rule and score equal what those rules do on the recorded curve, computed here
independently of the engine (the rules applied step by step to the recorded metrics, with the
earlier runs as peers, as one worker sees them).
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from tests.conftest import cli, write_study

from jfhpo.backends.base import BackendError, SegmentTask, get_backend
from jfhpo.backends.replay import ReplayBackend, load_recording
from jfhpo.fidelity import ModelLadder, ModelRung
from jfhpo.records import Observation, Phase, RunRecord, Verdict
from jfhpo.stopping.base import RunHistory
from jfhpo.stopping.factory import build_rules
from jfhpo.view import StudyView

REC = load_recording(None)


def replay_study(**changes: Any) -> dict[str, Any]:
    data = yaml.safe_load(ReplayBackend.example_study())
    data.update(changes)
    return data


def full_cost(model: str) -> float:
    b = ReplayBackend({})
    return float(np.mean([b.segment_cost(REC.run(c, model, 0), 0, REC.max_steps, 9)
                          for c in REC.complete]))


def stored_runs(folder: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(folder / "study.sqlite")
    runs = db.execute("SELECT id, config, model FROM runs ORDER BY id").fetchall()
    out = []
    for rid, config, model in runs:
        segs = db.execute("SELECT start_step, end_step, score, cost, reason_rule, status FROM segments "
                          "WHERE run_id = ? ORDER BY id", (rid,)).fetchall()
        obs = db.execute("SELECT step, metrics FROM observations WHERE run_id = ? ORDER BY id",
                         (rid,)).fetchall()
        out.append({"id": rid, "config": json.loads(config), "model": model, "segments": segs,
                    "obs": [(s, json.loads(m)) for s, m in obs]})
    db.close()
    return out


def nearest_by_hand(config: dict[str, Any]) -> int:
    """The recorded configuration nearest in the recording's unit cube, computed here."""
    best, arg = math.inf, -1
    for c in REC.complete:
        d = sum((min(max(p.encode(config[p.name]), 0.0), 1.0) - p.encode(REC.configs[c][p.name])) ** 2
                for p in REC.space.params)
        if d < best:
            best, arg = d, c
    return arg


def expected_run(run_id: int, cid: int, model: str, eval_every: int, peers: list[RunRecord],
                 peer_obs: dict[int, list[Observation]]) -> tuple[int, float, str | None, list[Observation]]:
    """What the default rules do on the recorded seed-0 curve: (stop step, score, rule, observations)."""
    rec = REC.run(cid, model, 0)
    rules = build_rules({})
    assert rules is not None
    view = StudyView(space=REC.space, ladder=ModelLadder([ModelRung(model, 1.0)]), steps=None,  # type: ignore[arg-type]
                     seed=0, objective="eval_accuracy", runs=tuple(peers),
                     observations={k: tuple(v) for k, v in peer_obs.items()})
    obs: list[Observation] = []
    evals = dict(rec.evals)  # recorded evaluations: every 10 steps and the last
    last = rec.evals[0][1]
    for step in range(1, REC.max_steps + 1):
        last = evals.get(step, last)
        m = dict(rec.metrics_at(step))
        if step % eval_every == 0 or step == REC.max_steps:
            m.update(last)
        obs.append(Observation(run_id, 0, step, m))
        reason = rules.check(RunHistory(run_id, model, {}, tuple(obs), REC.max_steps, REC.max_steps), view)
        if reason is not None:
            if "eval_accuracy" not in m:  # a stopped segment ends with an evaluation
                obs.append(Observation(run_id, 0, step, dict(last)))
            return step, float(last["eval_accuracy"]), reason.rule, obs
    return REC.max_steps, float(last["eval_accuracy"]), None, obs


def test_study_stops_and_scores_as_the_rules_do_on_the_recorded_curves(tmp_path: Path) -> None:
    model = "1m"
    spec = replay_study(optimizer={"name": "random", "options": {"model": model}}, workers=1,
                        stopping={}, budget={"seconds": 6 * full_cost(model)},
                        confirm={"top_k": 0, "fraction": 0.0, "include_recipe": False})
    f = write_study(tmp_path / "s.yaml", spec)
    r = cli("run", str(f), "--out", str(tmp_path / "S"), "--quiet")
    assert r.returncode == 0, r.stderr
    runs = stored_runs(tmp_path / "S")
    assert len(runs) >= 3
    peers: list[RunRecord] = []
    peer_obs: dict[int, list[Observation]] = {}
    backend = ReplayBackend({})
    for run in runs:
        assert run["model"] == model
        cid = nearest_by_hand(run["config"])
        assert backend.config_id(run["config"]) == cid
        stop, score, rule, obs = expected_run(run["id"], cid, model, 10, peers, peer_obs)
        ((start, end, got_score, cost, got_rule, _status),) = run["segments"]
        assert (start, end, got_rule) == (0, stop, rule), run
        assert got_score == pytest.approx(score, abs=1e-12)
        # the engine stored exactly the recorded metrics, step by step
        assert [(o.step, dict(o.metrics)) for o in obs] == [
            (s, {k: v for k, v in m.items()}) for s, m in run["obs"]]
        # the clock: recorded CPU seconds of the steps run, plus setup and evaluations
        n_evals = sum(1 for o in obs if "eval_accuracy" in o.metrics)
        want = backend.segment_cost(REC.run(cid, model, 0), 0, stop, n_evals)
        assert cost == pytest.approx(want, rel=1e-9)
        peers.append(RunRecord(run["id"], run["config"], model, Phase.SEARCH))
        peer_obs[run["id"]] = obs


def test_extensions_continue_the_recorded_curve(tmp_path: Path) -> None:
    spec = replay_study(optimizer={"name": "hyperband", "options": {"model": "200k"}}, workers=2,
                        stopping=False, budget={"seconds": 4 * full_cost("200k")},
                        confirm={"top_k": 0, "fraction": 0.0, "include_recipe": False})
    f = write_study(tmp_path / "s.yaml", spec)
    r = cli("run", str(f), "--out", str(tmp_path / "S"), "--quiet")
    assert r.returncode == 0, r.stderr
    extended = 0
    for run in stored_runs(tmp_path / "S"):
        cid = nearest_by_hand(run["config"])
        rec = REC.run(cid, "200k", 0)
        steps = [s for s, _ in run["obs"]]
        assert steps == list(range(1, steps[-1] + 1))  # no step lost or repeated across segments
        for s, m in run["obs"]:
            for k, v in rec.metrics_at(s).items():
                assert m[k] == v
        for start, end, score, cost, _rule, _st in run["segments"]:
            assert score == rec.eval_at(end)["eval_accuracy"]
            if start > 0:
                extended += 1
                # a resume pays only its own steps, not a retraining from step 0
                assert cost < ReplayBackend({}).segment_cost(rec, 0, end, 1)
    assert extended >= 1


def test_init_and_run_the_example_in_seconds(tmp_path: Path) -> None:
    r = cli("init", "--workload", "replay", "r.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # how long it takes is a benchmark's business (bench/replay/README.md), not a test's
    r = cli("run", "r.yaml", "--out", "R", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    b = cli("best", "R", "--json", cwd=tmp_path)
    assert b.returncode == 0, b.stderr
    best = json.loads(b.stdout)
    assert 0.0 <= best["score"] <= 1.0


def test_segment_in_process_reports_recorded_metrics_and_stops_on_request(tmp_path: Path) -> None:
    backend = get_backend("replay")({})
    cid = REC.complete[0]
    cfg = dict(REC.configs[cid])
    rung = ModelRung("4m", REC.rung_params["4m"])
    seen: list[int] = []

    def report(step: int, metrics: Any) -> Verdict:
        seen.append(step)
        assert {k: v for k, v in metrics.items() if not k.startswith("eval_")} == REC.run(
            cid, "4m", 0).metrics_at(step)
        return Verdict.STOP if step == 17 else Verdict.CONTINUE

    task = SegmentTask(run_id=0, segment_id=0, config=cfg, model=rung, start_step=0, target_step=30,
                       max_steps=90, seed=5, checkpoint_dir=str(tmp_path / "c"), eval_every=10)
    out = backend.run_segment(task, report)
    assert out.end_step == 17 and seen == list(range(1, 18))
    # the stop's evaluation holds the latest recorded one (step 10), never an invented value
    assert out.final_metrics["eval_accuracy"] == REC.run(cid, "4m", 0).eval_at(10)["eval_accuracy"]
    resumed = SegmentTask(run_id=0, segment_id=1, config=cfg, model=rung, start_step=17,
                          target_step=30, max_steps=90, seed=5, checkpoint_dir=str(tmp_path / "d"),
                          resume_from=str(tmp_path / "c"), eval_every=10)
    seen.clear()
    out2 = backend.run_segment(resumed, lambda s, m: Verdict.CONTINUE)
    assert out2.end_step == 30 and out2.cost > 0


def test_bad_studies_fail_with_the_field_named(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="unknown key"):
        ReplayBackend({"speed": 2})
    with pytest.raises(BackendError, match=r"backend\.options\.cost"):
        ReplayBackend({"cost": "gpu"})
    b = ReplayBackend({})
    with pytest.raises(BackendError, match=r"models\.huge"):
        b.recorded_rung(ModelRung("huge", 1e9))
    task = SegmentTask(run_id=0, segment_id=0, config={}, model=ModelRung("4m", 4e6), start_step=0,
                       target_step=10, max_steps=200, seed=0, checkpoint_dir=str(tmp_path / "c"))
    with pytest.raises(BackendError, match=r"steps\.max"):
        b.run_segment(task, lambda s, m: Verdict.CONTINUE)
    with pytest.raises(BackendError, match="loss_type"):
        b.config_id({"loss_type": "grpo"})
    spec = replay_study(space={"loss_type": {"type": "categorical", "choices": ["dapo", "grpo"]}})
    f = write_study(tmp_path / "bad.yaml", spec)
    r = cli("run", str(f), "--out", str(tmp_path / "B"))
    assert r.returncode == 2 and "loss_type" in r.stderr


def test_scaled_cost_follows_the_stated_power() -> None:
    cid = REC.complete[0]
    b = ReplayBackend({"cost": "scaled", "cost_power": 1.0, "target_step_seconds": 10.0})
    small = b.segment_cost(REC.run(cid, "50k", 0), 0, 10)
    big = b.segment_cost(REC.run(cid, "4m", 0), 0, 10)
    assert big == pytest.approx(100.0)
    assert small == pytest.approx(100.0 * REC.rung_params["50k"] / REC.rung_params["4m"])
