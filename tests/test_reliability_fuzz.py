"""#15 fuzz test: a few thousand generated study files, valid and broken (wrong types, extreme
numbers, deep nesting, anchors and aliases, unicode, cut or garbled text, keys written twice),
go through the validator the CLI uses. Each ends in success or a clean user error within a
second - never another exception - and a sample through the real CLI gets exit 0 or 2, with no
folder for a broken one. A seeded generator (no extra dependency), so a failure replays."""

from __future__ import annotations

import copy
import math
import random
import time
from pathlib import Path
from typing import Any

import yaml
from tests.conftest import cli, synthetic_study

from jfhpo.cli import _check, _user_error_types
from jfhpo.spec import parse_spec
from jfhpo.yaml_load import YamlInputError, loads

N_DOCS = 2000
#: the generator's own YAML writer (libyaml's when present: faster; the reader under test is ours)
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
SEED = 15


def _nested(rng: random.Random) -> Any:
    v: Any = rng.choice([1, "x", None])
    for _ in range(rng.randint(5, 120)):
        v = [v] if rng.random() < 0.5 else {"k": v}
    return v


def _weird(rng: random.Random) -> Any:
    """A value of a wrong type or an extreme size."""
    pick = rng.randrange(22)
    return [
        None, True, False, 0, -1, 1, 2**31, 10**30, -(10**30), math.nan, math.inf, -math.inf,
        1e308, 5e-324, "", "x" * rng.randint(100, 20_000), "\u00e9\u2211\U0001f600\u202e\u0301",
        "a\x00b", [], {}, [rng.random() for _ in range(rng.randint(1, 50))], _nested(rng),
    ][pick]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(rng: random.Random, data: dict[str, Any]) -> None:
    path = rng.choice(_paths(data))
    parent: Any = data
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    action = rng.randrange(5)
    if action == 0 and isinstance(parent, dict):
        del parent[last]
    elif action == 1 and isinstance(parent, dict):
        key = rng.choice(["workerz", "\u00fcnknown", "x" * 300, "seed ", "a\x00", "7"])
        parent[key] = _weird(rng)
    elif action == 2 and isinstance(parent, dict) and isinstance(last, str) and last:
        i = rng.randrange(len(last))
        parent[last[:i] + last[i + 1:] or "z"] = parent.pop(last)  # a typo in a key
    elif action == 3 and isinstance(parent[last], (int, float)) and not isinstance(parent[last], bool):
        parent[last] = parent[last] * rng.choice([-1, 0, 1e6, 1e300, -1e-9, 10**20])
    else:
        parent[last] = _weird(rng)


def _bomb(rng: random.Random, levels: int) -> str:
    """A ``models:`` list whose first rung's ``build`` (free-form, ignored by the synthetic
    backend) holds anchors nested ``levels`` deep: a few levels are a fine (if odd) study file,
    many are a "billion laughs" bomb."""
    width = rng.randint(2, 12)
    parts = ["&a [" + ",".join(["x"] * width) + "]"]
    for i in range(1, levels + 1):
        prev = "a" if i == 1 else f"l{i - 1}"
        parts.append(f"&l{i} [" + ",".join([f"*{prev}"] * width) + "]")
    return ("models:\n- {name: 50k, params: 5.0e4, cost: 1.0, build: {junk: [" + ", ".join(parts)
            + "]}}\n- {name: 4m, params: 4.0e6, cost: 10.0}\n")


def _garble(rng: random.Random, text: str) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return text[: rng.randrange(len(text))]  # cut short
    if kind == 1:
        i = rng.randrange(len(text))
        return text[:i] + "".join(chr(rng.randrange(1, 0x3000)) for _ in range(8)) + text[i:]
    if kind == 2:  # a top-level key written twice
        lines = text.splitlines()
        tops = [ln for ln in lines if ln and not ln[0].isspace() and ":" in ln]
        return text + rng.choice(tops) + "\n"
    if kind == 3:
        return text.replace("\n", "\n\t", 1)
    if kind == 4:
        return rng.choice(["", "[]", "42", "~", "- a\n- b\n", "'just text'", "{{{"])
    return text.replace("  ", "    ", rng.randint(1, 5))


def generate(rng: random.Random) -> tuple[str, str]:
    """(kind, YAML text) of one generated study file."""
    base = synthetic_study(budget={"seconds": 20})
    roll = rng.random()
    if roll < 0.15:
        return "valid", yaml.dump(base, Dumper=_DUMPER, sort_keys=rng.random() < 0.5)
    if roll < 0.25:
        del base["models"]
        return "alias", yaml.dump(base, Dumper=_DUMPER, sort_keys=False) + _bomb(rng, rng.randint(1, 9))
    data = copy.deepcopy(base)
    for _ in range(rng.randint(1, 3)):
        _mutate(rng, data)
    text = yaml.dump(data, Dumper=_DUMPER, sort_keys=False, allow_unicode=rng.random() < 0.5,
                     width=10**6)
    if roll < 0.45:
        return "garbled", _garble(rng, text)
    return "mutated", text


def validate(text: str) -> None:
    """What ``jfhpo run`` does before it makes a folder."""
    _check(parse_spec(loads(text)))


def test_generated_study_files_end_cleanly() -> None:
    rng = random.Random(SEED)
    user_errors = (*_user_error_types(), YamlInputError)
    warm = synthetic_study()
    del warm["optimizer"]  # the default optimizer: import it once, outside the timed loop
    validate(yaml.safe_dump(warm))
    outcomes: dict[str, int] = {}
    slowest = 0.0
    for i in range(N_DOCS):
        kind, text = generate(rng)
        t0 = time.monotonic()
        try:
            validate(text)
            result = "ok"
        except user_errors as exc:
            result = "refused"
            assert len(str(exc)) < 20_000, (i, kind, len(str(exc)))
        except Exception as exc:  # pragma: no cover - the failure this test looks for
            raise AssertionError(f"document {i} ({kind}) raised {type(exc).__name__}: {exc}\n"
                                 f"{text[:2000]}") from exc
        dt = time.monotonic() - t0
        slowest = max(slowest, dt)
        assert dt < 1.0, (i, kind, dt)
        outcomes[f"{kind}:{result}"] = outcomes.get(f"{kind}:{result}", 0) + 1
    assert outcomes.get("valid:ok", 0) > 200, outcomes  # the generator makes real studies too
    assert outcomes.get("mutated:refused", 0) > 700, outcomes
    assert outcomes.get("alias:refused", 0) > 50, outcomes
    assert outcomes.get("alias:ok", 0) > 0, outcomes  # small anchors stay allowed


def test_sample_through_the_cli(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    broken, valid = 0, 0
    while broken < 6 or valid < 1:
        kind, text = generate(rng)
        try:
            validate(text)
            ok = True
        except Exception:
            ok = False
        if (ok and valid >= 1) or (not ok and broken >= 6):
            continue
        f = tmp_path / f"doc{broken + valid}.yaml"
        f.write_text(text)
        out = tmp_path / f"out{broken + valid}"
        r = cli("run", str(f), "--out", str(out), "--quiet", "--budget", "3", timeout=120)
        assert "Traceback" not in r.stderr, r.stderr
        if ok:
            assert r.returncode == 0, r.stderr
            assert (out / "study.sqlite").exists()
            valid += 1
        else:
            assert r.returncode == 2, (kind, r.returncode, r.stderr)
            assert not out.exists(), kind
            broken += 1
