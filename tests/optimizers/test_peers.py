"""Peer adapters (Optuna, SMAC3, DEHB) driven through jfhpo's ask/tell API on synthetic curves."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

import jfhpo.optimizers.peers as peers
from jfhpo.api import AskTell
from jfhpo.backends.synthetic import SyntheticProblem, example_space
from jfhpo.optimizers.base import OptimizerError, get_optimizer

MODELS = [{"name": "50k", "params": 5e4, "cost": 1.0}, {"name": "4m", "params": 4e6, "cost": 10.0}]
RUNGS = (10, 30, 90)


def _has(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


NAMES = [
    pytest.param("optuna_tpe_hyperband", marks=pytest.mark.skipif(not _has("optuna"), reason="optuna")),
    pytest.param("optuna_asha", marks=pytest.mark.skipif(not _has("optuna"), reason="optuna")),
    pytest.param("smac_mf", marks=pytest.mark.skipif(not _has("smac"), reason="smac")),
    pytest.param("dehb", marks=pytest.mark.skipif(not _has("dehb"), reason="dehb")),
]


def drive(name: str, n_asks: int, seed: int = 0, **opts: Any) -> AskTell:
    problem = SyntheticProblem()
    at = AskTell(example_space(), MODELS, {"min": 10, "max": 90}, optimizer=name,
                 optimizer_options=opts, seed=seed, confirm={"top_k": 0})
    for _ in range(n_asks):
        t = at.ask()
        assert t is not None
        params = 5e4 if t.model == "50k" else 4e6
        score = problem.eval_score(t.config, params, t.steps, seed=t.run_id)
        cost = problem.cost(1.0 if t.model == "50k" else 10.0, t.steps - t.start_step)
        curve = [(s, problem.eval_score(t.config, params, s, seed=t.run_id))
                 for s in RUNGS if t.start_step < s < t.steps]
        at.tell(t, score, cost, [*curve, (t.steps, score)])
    return at


@pytest.mark.parametrize("name", NAMES)
def test_registered_and_configs_inside_the_space(name: str) -> None:
    assert get_optimizer(name).name == name
    at = drive(name, 30)
    view = at.view()
    for r in view.runs:
        assert view.space.validate(r.config) == dict(r.config)
        assert r.model == "4m"  # the peers search steps on the target only
        assert 1 <= r.steps_done <= 90
    at.close()


@pytest.mark.parametrize("name", NAMES)
def test_budgets_map_onto_step_rungs(name: str) -> None:
    at = drive(name, 40)
    targets = {s.steps for s in at.study.suggestions}
    assert targets <= set(RUNGS)
    assert min(targets) == 10
    at.close()


@pytest.mark.parametrize("name", NAMES)
def test_seeded(name: str) -> None:
    a, b, c = drive(name, 15, seed=2), drive(name, 15, seed=2), drive(name, 15, seed=3)
    ca = [dict(r.config) for r in a.view().runs]
    assert ca == [dict(r.config) for r in b.view().runs]
    assert ca != [dict(r.config) for r in c.view().runs]
    for at in (a, b, c):
        at.close()


@pytest.mark.parametrize("name", [p for p in NAMES if "optuna" in str(p.values[0])])
def test_optuna_prunes_or_extends_at_rungs(name: str) -> None:
    at = drive(name, 60)
    view = at.view()
    opt = at.optimizer
    assert isinstance(opt, peers.PeerAdapter)
    extended = [r for r in view.runs if r.steps_done > 10]
    assert extended, "some trials continue past the first rung"
    # a continuing trial is an extension of its run: segments chain rung to rung
    for r in extended:
        segs = sorted((s for s in at.study.segments.values() if s.run_id == r.run_id),
                      key=lambda s: s.segment_id)
        assert [s.start_step for s in segs] == [0, *[s.target_step for s in segs[:-1]]]
        assert all(s.target_step in RUNGS for s in segs)
    # pruned trials are final: they stay at their rung and may no longer be extended
    pruned = [r for r in view.runs if r.run_id in opt._closed and r.steps_done < 90]
    assert pruned and not any(opt.may_extend(view, r) for r in pruned)
    at.close()


@pytest.mark.skipif(not _has("optuna"), reason="optuna")
def test_optuna_trials_are_the_runs() -> None:
    at = drive("optuna_asha", 30)
    assert isinstance(at.optimizer, peers.PeerAdapter)
    study = at.optimizer._peer
    states = [t.state.name for t in study.trials]
    view = at.view()
    assert len(study.trials) == len(view.runs)
    full = sum(1 for r in view.runs if r.steps_done == 90)
    assert states.count("COMPLETE") == full
    assert states.count("PRUNED") >= 1
    at.close()


@pytest.mark.parametrize("name", [p for p in NAMES if "optuna" not in str(p.values[0])])
def test_promotions_reuse_runs_of_the_same_configuration(name: str) -> None:
    at = drive(name, 40 if name == "smac_mf" else 60)
    exts = [s for s in at.study.suggestions if s.kind == "extend"]
    assert exts, f"{name} promoted no configuration"
    view = at.view()
    for s in exts:
        assert s.run_id is not None and view.run(s.run_id).steps_done >= s.steps
    at.close()


def test_missing_peer_says_install_bench(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real = builtins.__import__

    def fake(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] in {"optuna", "smac", "dehb", "ConfigSpace"}:
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    for cls in (peers.OptunaTPEHyperband, peers.OptunaASHA, peers.SMACMultiFidelity,
                peers.DEHBAdapter):
        at = AskTell(example_space(), MODELS, {"min": 10, "max": 90}, optimizer=cls())
        with pytest.raises(OptimizerError, match=r"jfhpo\[bench\]"):
            at.ask()
        at.close()


def test_bad_options() -> None:
    with pytest.raises(OptimizerError, match="etta"):
        peers.OptunaASHA({"etta": 3})
