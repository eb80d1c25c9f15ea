"""#15 findings 3 to 7: every bad input is refused before anything runs - exit code 2, the key or
the cause named, no traceback, no study folder - and study folders stay where the user said."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import cli, synthetic_study, write_study

from jfhpo.cli import main


def _run_in_process(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own refusals
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def _bomb() -> str:
    lines = ["a: &a [x,x,x,x,x,x,x,x,x,x]"]
    for i in range(1, 9):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*{'a' if i == 1 else f'l{i - 1}'}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def _study_text(**changes: Any) -> str:
    return yaml.safe_dump(synthetic_study(**changes), sort_keys=False)


def _options(**opts: Any) -> dict[str, Any]:
    return {"name": "synthetic", "options": {"bias": 0.5, "step_seconds": 0.1, **opts}}


#: (study file text, extra argv, words the error must contain)
CASES: dict[str, tuple[str | bytes, list[str], list[str]]] = {
    "negative seed": (_study_text(seed=-1), [], ["seed", "greater than or equal to 0"]),
    "negative --seed": (_study_text(), ["--seed", "-3"], ["seed", "-3"]),
    "huge seed": (_study_text(seed=2**70), [], ["seed"]),
    "binary file": (bytes(range(256)) * 8, [], ["binary file"]),
    "latin-1 file": ("name: caf\xe9\n".encode("latin-1"), [], ["not UTF-8"]),
    "non-number backend option": (_study_text(backend=_options(step_seconds="fast")), [],
                                  ["backend.options.step_seconds", "'fast'"]),
    "step_seconds 0": (_study_text(backend=_options(step_seconds=0)), [],
                       ["backend.options.step_seconds", "must be > 0"]),
    "step_seconds negative": (_study_text(backend=_options(step_seconds=-0.1)), [],
                              ["backend.options.step_seconds"]),
    "negative sleep": (_study_text(backend=_options(sleep=-1)), [], ["backend.options.sleep"]),
    "300-character name": (_study_text(name="n" * 300), [], ["name", "at most 128 characters"]),
    "NUL in name": (_study_text(name="a\x00b"), [], ["name", "printable"]),
    "newline in name": (_study_text(name="a\nb"), [], ["name", "printable"]),
    "key written twice": (_study_text() + "seed: 4\n", [], ["'seed' is written twice"]),
    "steps.max 1e12": (_study_text(steps={"min": 10, "max": 1e12, "eta": 3}), [], ["steps.max"]),
    "budget inf": (_study_text().replace("seconds: 600", "seconds: .inf"), [], ["budget.seconds"]),
    "budget nan": (_study_text().replace("seconds: 600", "seconds: .nan"), [], ["budget.seconds"]),
    "--budget -1": (_study_text(), ["--budget", "-1"], ["budget.seconds"]),
    "workers 0": (_study_text(workers=0), [], ["workers"]),
    "workers 10000": (_study_text(workers=10_000), [], ["workers"]),
    "--workers -1": (_study_text(), ["--workers", "-1"], ["--workers", "between 1 and 256"]),
    "model cost nan": (_study_text(models=[{"name": "a", "params": 5e4, "cost": float("nan")},
                                           {"name": "b", "params": 4e6}]), [], ["models", "cost"]),
    "model params inf": (_study_text(models=[{"name": "a", "params": float("inf")}]), [],
                         ["models", "params"]),
    "objective typo": (_study_text(objective={"metric": "eval_acuracy", "mode": "max"}), [],
                       ["objective.metric", "'eval_acuracy'", "did you mean 'eval_accuracy'"]),
    "fixed typo": (_study_text(fixed={"temprature": 0.9}), [],
                   ["fixed.temprature", "did you mean 'temperature'"]),
    "alias bomb": (_bomb(), [], ["expands to more than"]),
    "alias bomb under fixed": (
        "fixed:\n  x: " + _bomb().replace("\n", "\n  ").replace("a: &a", "&a", 1), [],
        ["YAML"]),
    "deep nesting": (_study_text() + "fixed: {x: " + "[" * 200 + "]" * 200 + "}\n", [], ["nests"]),
    "file over 1 MiB": (_study_text() + "# " + "x" * (1 << 20) + "\n", [], ["larger than 1024 KiB"]),
    "long value is quoted short": (_study_text(optimizer={"name": "h" * 100_000}), [],
                                   ["optimizer.name", "(100002 chars)"]),
    "long value in space": (_study_text(space={"learning_rate": {"type": "t" * 50_000}}), [],
                            ["space.learning_rate.type", "chars)"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_a_clean_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         case: str) -> None:
    text, argv, needles = CASES[case]
    f = tmp_path / "s.yaml"
    if isinstance(text, bytes):
        f.write_bytes(text)
    else:
        f.write_text(text)
    out = tmp_path / "out"
    t0 = time.monotonic()
    code, err = _run_in_process(capsys, "run", str(f), "--out", str(out), *argv)
    assert time.monotonic() - t0 < 5.0
    assert code == 2, err
    for needle in needles:
        assert needle in err, (needle, err[:2000])
    assert len(err) < 3000, len(err)
    assert not out.exists()


def test_cache_pointing_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cache").write_text("not a folder")
    monkeypatch.setenv("JFHPO_CACHE", str(tmp_path / "cache"))
    f = write_study(tmp_path / "s.yaml", synthetic_study())
    code, err = _run_in_process(capsys, "run", str(f), "--out", str(tmp_path / "out"))
    assert code == 2 and "JFHPO_CACHE" in err and "is a file" in err
    assert not (tmp_path / "out").exists()


def test_bad_inputs_through_the_real_cli(tmp_path: Path) -> None:
    """The same refusals from a spawned ``jfhpo``: no traceback reaches the user."""
    for name in ("binary file", "alias bomb", "NUL in name", "step_seconds 0"):
        text, argv, needles = CASES[name]
        f = tmp_path / f"{name.replace(' ', '_')}.yaml"
        f.write_bytes(text if isinstance(text, bytes) else text.encode())
        r = cli("run", str(f), "--out", str(tmp_path / "out"), *argv, timeout=60)
        assert r.returncode == 2, (name, r.stderr)
        assert "Traceback" not in r.stderr and needles[0] in r.stderr
        assert not (tmp_path / "out").exists()


def test_default_folder_stays_under_studies(tmp_path: Path) -> None:
    """Finding 3: ``name: ../../escaped`` or an absolute name without --out lands in studies/."""
    work = tmp_path / "deep" / "a" / "b"
    work.mkdir(parents=True)
    for i, name in enumerate(("../../escaped", str(tmp_path / "abs"))):
        f = write_study(tmp_path / f"esc{i}.yaml", synthetic_study(name=name))
        r = cli("run", str(f), "--quiet", "--budget", "5", cwd=work, timeout=120)
        assert r.returncode == 0, r.stderr
    made = sorted(p.name for p in (work / "studies").iterdir())
    assert len(made) == 2 and made[0].startswith("escaped-") and "abs" in made[1], made
    assert not (tmp_path / "deep" / "escaped").exists() and not (tmp_path / "abs").exists()
    assert not any(p.name.startswith("escaped") for p in tmp_path.rglob("*")
                   if p.parent != work / "studies")


def test_out_refuses_a_foreign_non_empty_folder(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 3: --out into a folder holding other files is refused; nothing there is touched."""
    out = tmp_path / "out"
    ck = out / "checkpoints" / "run-1" / "step-10"
    ck.mkdir(parents=True)
    (ck / "state.json").write_text("{}")
    f = write_study(tmp_path / "s.yaml", synthetic_study())
    code, err = _run_in_process(capsys, "run", str(f), "--out", str(out), "--budget", "5")
    assert code == 2 and "other files in it" in err, err
    assert (ck / "state.json").read_text() == "{}"
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints"]
    (tmp_path / "afile").write_text("x")
    code, err = _run_in_process(capsys, "run", str(f), "--out", str(tmp_path / "afile"))
    assert code == 2 and "not a folder" in err


def test_resume_workers_has_the_run_bounds(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 4: resume --workers -1 hung and --workers 20 skipped run's cap; both are checked
    against the same bound as the study file's ``workers``."""
    for value in ("-1", "0", "257", "x"):
        code, err = _run_in_process(capsys, "resume", str(tmp_path), "--workers", value)
        assert code == 2 and "--workers" in err, (value, err)
