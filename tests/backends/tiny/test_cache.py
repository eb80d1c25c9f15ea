"""The base-model cache: built once, reused, and rebuilt when an entry is damaged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jfhpo.backends.tiny.base_models import (
    MANIFEST,
    BaseModelSpec,
    SftRecipe,
    ensure_base_model,
    read_manifest,
)
from jfhpo.backends.tiny.models import SIZES
from jfhpo.backends.tiny.tasks import get_task, make_splits


@pytest.fixture()
def spec() -> BaseModelSpec:
    return BaseModelSpec(
        label="10k",
        dims=SIZES["10k"],
        task=get_task("add2"),
        data_seed=0,
        n_validation=50,
        n_test=50,
        seed=0,
        sft=SftRecipe(steps=3),
    )


def build(spec: BaseModelSpec, cache: str, messages: list[str]) -> str:
    splits = make_splits(spec.task, n_validation=50, n_test=50)
    folder, manifest = ensure_base_model(spec, splits, cache, messages.append)
    assert manifest["key"] == spec.key() and manifest["params"] == 10420
    return folder


def test_entry_is_built_once_then_reused(spec: BaseModelSpec, tmp_path: Path) -> None:
    msgs: list[str] = []
    folder = build(spec, str(tmp_path), msgs)
    assert any("SFT" in m for m in msgs) and any("ready" in m for m in msgs)
    assert {"model.safetensors", "config.json", "tokenizer.json", MANIFEST} <= set(
        os.listdir(folder)
    )
    assert not [n for n in os.listdir(os.path.dirname(folder)) if n.startswith(".tmp-")]
    msgs.clear()
    mtime = os.path.getmtime(os.path.join(folder, "model.safetensors"))
    assert build(spec, str(tmp_path), msgs) == folder and msgs == []
    assert os.path.getmtime(os.path.join(folder, "model.safetensors")) == mtime


@pytest.mark.parametrize("damage", ["truncate_weights", "delete_weights", "no_manifest", "key"])
def test_damaged_entry_is_detected_and_rebuilt(
    spec: BaseModelSpec, tmp_path: Path, damage: str
) -> None:
    folder = build(spec, str(tmp_path), [])
    weights = os.path.join(folder, "model.safetensors")
    manifest = os.path.join(folder, MANIFEST)
    if damage == "truncate_weights":
        with open(weights, "r+b") as f:
            f.truncate(os.path.getsize(weights) // 2)
    elif damage == "delete_weights":
        os.remove(weights)
    elif damage == "no_manifest":  # an interrupted copy: files present, manifest never written
        os.remove(manifest)
    else:
        with open(manifest) as f:
            data = json.load(f)
        data["key"] = "0" * 16
        with open(manifest, "w") as f:
            json.dump(data, f)
    assert read_manifest(folder, spec.key()) is None
    msgs: list[str] = []
    assert build(spec, str(tmp_path), msgs) == folder
    assert any("damaged" in m for m in msgs)
    assert read_manifest(folder, spec.key()) is not None


def test_key_depends_on_what_determines_the_weights(spec: BaseModelSpec) -> None:
    from dataclasses import replace

    assert spec.key() == replace(spec).key()
    assert spec.key() != replace(spec, seed=1).key()
    assert spec.key() != replace(spec, sft=SftRecipe(steps=4)).key()
    assert spec.key() != replace(spec, task=get_task("add3")).key()
    assert spec.key() != replace(spec, dims=SIZES["50k"]).key()
