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
