"""``jfhpo export``: every format round-trips into the tool that takes it."""

from __future__ import annotations

import importlib.util
import json
import shlex
import sqlite3
from pathlib import Path

import pytest
import yaml
from tests.conftest import cli

from jfhpo.backends.synthetic import SyntheticBackend


def _best(folder: Path) -> dict:
    r = cli("best", str(folder), "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_yaml_and_json_hold_the_effective_configuration(report_study: Path, tmp_path: Path) -> None:
    best = _best(report_study)
    r = cli("export", str(report_study), "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["run_id"] == best["run_id"] and doc["score"] == best["score"]
    assert doc["searched"] == best["config"]
    assert doc["fixed"] == {"epsilon": 0.25}
    assert doc["effective_config"] == {**SyntheticBackend.recipe(), "epsilon": 0.25,
                                       **best["config"]}
    out = tmp_path / "w.yaml"
    r = cli("export", str(report_study), "--format", "yaml", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(out.read_text()) == doc


def test_trl_config_loads_the_way_trl_grpo_loads_it(report_study: Path, tmp_path: Path) -> None:
    """``trl grpo --config FILE`` builds its dataclasses with TRL's own parser: the same call."""
    pytest.importorskip("trl")
    from trl import GRPOConfig
    from trl.scripts.grpo import make_parser

    out = tmp_path / "grpo.yaml"
    r = cli("export", str(report_study), "--format", "trl", "--out", str(out))
    assert r.returncode == 0, r.stderr
    # --use_cpu: this machine has no GPU, and GRPOConfig's bf16 default refuses a CPU otherwise
    _, training, _, _ = make_parser().parse_args_and_config(
        ["--config", str(out), "--use_cpu", "true"])
    assert isinstance(training, GRPOConfig)
    best = _best(report_study)
    assert training.learning_rate == pytest.approx(best["config"]["learning_rate"])
    assert training.beta == pytest.approx(best["config"]["beta"])
    assert training.num_generations == best["config"]["num_generations"]
    assert training.epsilon == 0.25  # the study's fixed key
    assert training.max_steps == 90
    data = yaml.safe_load(out.read_text())
    assert GRPOConfig(**data, use_cpu=True).learning_rate == training.learning_rate


def test_optuna_journal_has_one_trial_per_run(report_study: Path, tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    out = tmp_path / "journal.log"
    for _ in range(2):  # regenerating replaces the file instead of appending a second study
        r = cli("export", str(report_study), "--format", "optuna", "--out", str(out))
        assert r.returncode == 0, r.stderr
    storage = JournalStorage(JournalFileBackend(str(out)))
    summaries = optuna.get_all_study_summaries(storage)
    assert [s.study_name for s in summaries] == ["report-test"]
    study = optuna.load_study(study_name="report-test", storage=storage)
    status = json.loads(cli("status", str(report_study), "--json").stdout)
    runs = {r["run_id"]: r for r in status["runs"]}
    assert len(study.trials) == len(runs)
    curves = {}
    db = report_study / "study.sqlite"
    conn = sqlite3.connect(db)
    for run_id, step, metrics in conn.execute("SELECT run_id, step, metrics FROM observations"):
        value = json.loads(metrics).get("eval_accuracy")
        if value is not None:
            curves.setdefault(run_id, {})[step] = value
    conn.close()
    for trial in study.trials:
        run = runs[trial.user_attrs["jfhpo_run_id"]]
        assert trial.params == run["config"]
        assert trial.user_attrs["model"] == run["model"]
        assert trial.intermediate_values == curves[run["run_id"]]
        if run["stop_reason"]:
            assert trial.state == optuna.trial.TrialState.PRUNED
            assert trial.user_attrs["stop_rule"] == run["stop_reason"]["rule"]
        else:
            assert trial.state == optuna.trial.TrialState.COMPLETE
            assert trial.value == run["score"]
    best = _best(report_study)
    assert study.user_attrs["winner_run_id"] == best["run_id"]
    _open_in_optuna_dashboard(out, len(runs))


def _open_in_optuna_dashboard(journal: Path, n_trials: int) -> None:
    """optuna-dashboard's own web application serves the journal: its study API lists the
    study with every trial and the curves (requests go to the WSGI app, no server needed)."""
    dashboard = pytest.importorskip("optuna_dashboard")
    from wsgiref.util import setup_testing_defaults

    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    app = dashboard.wsgi(JournalStorage(JournalFileBackend(str(journal))))

    def get(path: str) -> dict:
        env: dict = {}
        setup_testing_defaults(env)
        env["PATH_INFO"] = path
        status: list[str] = []
        body = b"".join(app(env, lambda s, h, exc_info=None: status.append(s)))
        assert status == ["200 OK"], body[:500]
        return json.loads(body)

    (summary,) = get("/api/studies")["study_summaries"]
    assert summary["study_name"] == "report-test"
    detail = get(f"/api/studies/{summary['study_id']}")
    assert len(detail["trials"]) == n_trials
    assert detail["has_intermediate_values"]
    assert {t["state"] for t in detail["trials"]} <= {"Complete", "Pruned", "Fail"}


def test_verl_command(report_study: Path) -> None:
    if importlib.util.find_spec("jfhpo.backends.verl") is None:
        pytest.skip("verl preset not on this branch")
    r = cli("export", str(report_study), "--format", "verl", "--extra", "trainer.project_name=x")
    assert r.returncode == 0, r.stderr
    text = r.stdout.replace("\\\n", " ")
    argv = shlex.split(text, comments=True)
    assert argv[:3] == ["python3", "-m", "verl.trainer.main_ppo"]
    assert "trainer.project_name=x" in argv
    assert any(a.startswith("trainer.total_training_steps=90") for a in argv)
    # VeRL's package ships the Hydra configuration main_ppo composes (the verl extra installs it)
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("composing against VeRL's configuration needs the verl package (verl extra)")
    from hydra import compose, initialize_config_dir

    config_dir = Path(next(iter(spec.submodule_search_locations))) / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=argv[3:])
    best = _best(report_study)
    assert cfg.actor_rollout_ref.actor.optim.lr == pytest.approx(best["config"]["learning_rate"])
    assert cfg.actor_rollout_ref.rollout.n == best["config"]["num_generations"]
    assert cfg.trainer.total_training_steps == 90


def test_errors(report_study: Path, tmp_path: Path) -> None:
    r = cli("export", str(tmp_path), "--format", "json")
    assert r.returncode == 2 and "not a study folder" in r.stderr
    r = cli("export", str(report_study), "--format", "csv")
    assert r.returncode == 2 and "--format" in r.stderr
