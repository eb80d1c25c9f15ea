"""Every bad study file is refused with exit code 2, a message naming the key and the value,
and no study folder written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.conftest import cli, synthetic_study, write_study


def _mutate(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    keys = path.split(".")
    node: Any = data
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return data


_DELETE = object()

CASES = [
    ("space.learning_rate.low", 1.0, ["space.learning_rate", "low (1.0) must be smaller than high"]),
    ("space.beta.type", "floaty", ["space.beta.type", "'floaty'"]),
    ("space.beta.hihg", 3, ["space.beta", "hihg"]),
    ("space.learning_rate.log", "yes", ["space.learning_rate.log", "'yes'"]),
    ("space.epsilon.low", "a", ["space.epsilon.low", "'a'"]),
    ("space.learning_rate.low", -1.0, ["space.learning_rate", "log-scale range needs low > 0"]),
    ("workerz", 3, ["workerz", "unknown key"]),
    ("budget.seconds", -5, ["budget.seconds", "-5"]),
    ("budget", _DELETE, ["budget", "missing"]),
    ("steps.min", 100, ["steps.max (90) must be at least steps.min (100)"]),
    ("models.1.params", -3, ["models.200k.params", "-3"]),
    ("optimizer.name", "tpe2", ["unknown optimizer 'tpe2'", "hyperband"]),
    ("backend.name", "verl9", ["unknown backend 'verl9'", "synthetic"]),
    ("backend.options.biass", 1, ["biass", "backend.options"]),
    ("stopping.kl_growht", {}, ["kl_growht"]),
    ("fixed", {"learning_rate": 1e-3}, ["fixed", "learning_rate"]),
]


@pytest.mark.parametrize(("path", "value", "needles"), CASES, ids=[c[0] for c in CASES])
def test_bad_study_file(tmp_path: Path, path: str, value: Any, needles: list[str]) -> None:
    data = _mutate(synthetic_study(), path, value)
    f = write_study(tmp_path / "bad.yaml", data)
    out = tmp_path / "out"
    r = cli("run", str(f), "--out", str(out))
    assert r.returncode == 2, r.stderr
    for needle in needles:
        assert needle in r.stderr, (needle, r.stderr)
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_not_yaml(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("name: [unclosed\n")
    r = cli("run", str(f), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "not valid YAML" in r.stderr
    assert not (tmp_path / "out").exists()


def test_missing_file_and_folder(tmp_path: Path) -> None:
    r = cli("run", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "does not exist" in r.stderr
    for cmd in ("status", "best", "resume"):
        r = cli(cmd, str(tmp_path / "nofolder"))
        assert r.returncode == 2 and "not a study folder" in r.stderr, (cmd, r.stderr)


def test_existing_study_is_not_overwritten(tmp_path: Path, study_file: Path) -> None:
    out = tmp_path / "s"
    r = cli("run", str(study_file), "--out", str(out), "--budget", "30")
    assert r.returncode == 0, r.stderr
    before = (out / "study.sqlite").stat().st_size
    r = cli("run", str(study_file), "--out", str(out))
    assert r.returncode == 2 and "already holds a study" in r.stderr
    assert (out / "study.sqlite").stat().st_size == before
