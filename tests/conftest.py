"""Shared helpers: study files for the synthetic backend and a way to run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from jfhpo.backends.synthetic import SyntheticBackend


def synthetic_study(**changes: Any) -> dict[str, Any]:
    """The synthetic example study as a dict, with top-level keys replaced by ``changes``."""
    data = yaml.safe_load(SyntheticBackend.example_study())
    for key, value in changes.items():
        data[key] = value
    return data


def write_study(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m jfhpo ARGS`` in a fresh process, as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "jfhpo", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    return write_study(tmp_path / "study.yaml", synthetic_study())


def report_study_data() -> dict[str, Any]:
    """A synthetic study that exercises every part of a report in ten to thirty seconds: three
    models (so proxy-vs-target figures exist), a ``fixed`` key (so the effective configuration
    differs from the searched one), a run that a stopping rule ends (the best learning rate is
    set low, so high ones diverge) and a confirmation stage. One worker: the same study every
    time, so the stopped run is always there."""
    return synthetic_study(
        name="report-test", seed=3,
        backend={"name": "synthetic", "options": {"bias": 0.3, "step_seconds": 0.1,
                                                  "lr_opt_at_1m": -4.5}},
        models=[{"name": "50k", "params": 5.0e4, "cost": 1.0},
                {"name": "1m", "params": 1.0e6, "cost": 3.5},
                {"name": "4m", "params": 4.0e6, "cost": 10.0}],
        space={"learning_rate": {"type": "float", "low": 1.0e-5, "high": 3.0e-2, "log": True},
               "beta": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
               "num_generations": {"type": "categorical", "choices": [4, 8, 16]}},
        fixed={"epsilon": 0.25},
        # the ladder policy runs every rung (proxy-vs-target figures at every size)
        optimizer={"name": "jfhpo", "options": {"n_candidates": 64, "fit_maxiter": 20,
                                                 "min_transfer_configs": 3, "n_init": 4,
                                                 "policy": "ladder"}},
        budget={"seconds": 700}, workers=1, confirm={"top_k": 2})


@pytest.fixture(scope="session")
def report_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a finished ``report_study_data`` study, run once per test session with the
    real CLI (shared by the results, report and export tests)."""
    base = tmp_path_factory.mktemp("report-study")
    path = write_study(base / "study.yaml", report_study_data())
    r = cli("run", str(path), "--out", str(base / "S"), "--quiet", timeout=240)
    assert r.returncode == 0, r.stderr
    return base / "S"


@pytest.fixture(scope="session")
def failing_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study whose extensions fail (the backend raises at step 15): three 10-step runs
    complete, then three segments fail and the study aborts (exit code 1)."""
    base = tmp_path_factory.mktemp("failing-study")
    data = synthetic_study(budget={"seconds": 300}, workers=1)
    data["backend"]["options"]["fail_at_step"] = 15
    path = write_study(base / "study.yaml", data)
    r = cli("run", str(path), "--out", str(base / "F"), "--quiet", timeout=120)
    assert r.returncode == 1, r.stderr
    return base / "F"
