"""The guarded YAML reader: duplicate keys, alias bombs, deep nesting, size and binary limits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jfhpo.yaml_load import MAX_ALIASES, MAX_BYTES, YamlInputError, excerpt, load_file, loads


def _bomb(levels: int, width: int = 10) -> str:
    lines = ["a: &a [" + ",".join(["x"] * width) + "]"]
    prev = "a"
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ",".join(["*" + prev] * width) + "]")
        prev = f"l{i}"
    return "\n".join(lines) + "\n"


def test_plain_documents_and_merge_keys_load() -> None:
    assert loads("a: 1\nb: [1, 2]\n") == {"a": 1, "b": [1, 2]}
    text = "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n"
    assert loads(text)["other"] == {"x": 1, "y": 3}
    assert loads("") is None


def test_duplicate_key_is_refused_with_both_lines() -> None:
    with pytest.raises(YamlInputError, match=r"key 'seed' is written twice .*lines 2 and 4"):
        loads("name: a\nseed: 1\nbudget: {seconds: 3}\nseed: 2\n")
    with pytest.raises(YamlInputError, match="'lr' is written twice"):
        loads("space:\n  lr: {type: float}\n  lr: {type: int}\n")


def test_alias_bomb_is_refused_fast_with_a_short_message() -> None:
    t0 = time.monotonic()
    with pytest.raises(YamlInputError, match="expands to more than") as info:
        loads(_bomb(8))
    assert time.monotonic() - t0 < 1.0
    assert len(str(info.value)) < 300
    # a modest use of anchors stays allowed
    assert len(loads(_bomb(2))["l2"]) == 10


def test_too_many_aliases_and_recursive_anchor() -> None:
    many = "a: &a 1\nb: [" + ",".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(YamlInputError, match="more than 100 YAML aliases"):
        loads(many)
    with pytest.raises(YamlInputError, match="refers to itself"):
        loads("a: &a [1, *a]\n")


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(YamlInputError, match="nests"):
        loads("a: " + "[" * 60 + "]" * 60 + "\n")
    with pytest.raises(YamlInputError, match="nests"):
        loads("a: " + "[" * 5000 + "]" * 5000 + "\n")


def test_file_limits(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("a: '" + "x" * (MAX_BYTES + 10) + "'\n")
    with pytest.raises(YamlInputError, match="larger than 1024 KiB"):
        load_file(big)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(YamlInputError, match="binary file"):
        load_file(binary)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(YamlInputError, match="not UTF-8"):
        load_file(latin)
    with pytest.raises(YamlInputError, match="folder"):
        load_file(tmp_path)


def test_syntax_error_message_is_cut() -> None:
    with pytest.raises(YamlInputError) as info:
        loads("a: [" + "x" * 100_000 + "\n")
    assert len(str(info.value)) < 1200


def test_excerpt_is_bounded() -> None:
    assert excerpt("abc") == "'abc'"
    assert len(excerpt("x" * 10_000)) <= 200
    assert excerpt(list(range(10_000))).startswith("<list of 10000")
    nested: list[object] = []
    for _ in range(100):
        nested = [nested]
    assert len(excerpt(nested)) <= 200
