"""validate(), option and config checks, the model ladder, and the lazy import promise."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from jfhpo.backends.base import BackendError, get_backend
from jfhpo.backends.tiny import RECIPE, TinyGRPOBackend
from jfhpo.backends.tiny.models import SIZES, ModelDims, dims_from_build, param_count
from jfhpo.fidelity import ModelLadder, ModelRung
from jfhpo.space import CategoricalParam, FloatParam, IntParam, SearchSpace


def ladder(*builds: dict[str, Any]) -> ModelLadder:
    return ModelLadder([ModelRung(f"m{i}", 10.0 * (i + 1), build=b) for i, b in enumerate(builds)])


GOOD = SearchSpace(
    [
        FloatParam("learning_rate", 1e-5, 3e-3, log=True),
        FloatParam("beta", 1e-4, 0.1, log=True),
        CategoricalParam("loss_type", ("dapo", "grpo")),
        IntParam("num_generations", 2, 16),
    ]
)


def test_registered_and_valid_study_passes() -> None:
    assert get_backend("tiny") is TinyGRPOBackend
    TinyGRPOBackend({"task": "add3"}).validate(GOOD, ladder({"size": "10k"}, {"size": "1m"}))


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (SearchSpace([FloatParam("lr", 1e-5, 1e-3)]), "unknown hyperparameter 'lr'"),
        (SearchSpace([IntParam("num_generations", 1, 8)]), "num_generations"),
        (SearchSpace([FloatParam("learning_rate", -1.0, 1e-3)]), "learning_rate"),
        (SearchSpace([CategoricalParam("loss_type", ("dapo", "ppo"))]), "loss_type"),
        (SearchSpace([FloatParam("warmup_steps", 0.0, 2.5)]), "warmup_steps"),
    ],
)
def test_validate_rejects_bad_spaces(space: SearchSpace, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        TinyGRPOBackend().validate(space, ladder({"size": "50k"}))


def test_validate_rejects_unknown_size_and_bad_dims() -> None:
    with pytest.raises(BackendError, match="valid sizes"):
        TinyGRPOBackend().validate(GOOD, ladder({"size": "7b"}))
    with pytest.raises(BackendError, match="divisible"):
        dims_from_build({"hidden": 30, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 8})
    with pytest.raises(BackendError, match="missing"):
        dims_from_build({"hidden": 32})
    with pytest.raises(BackendError, match="unknown key"):
        dims_from_build({"size": "50k", "depth": 3})


def test_unknown_option_and_task() -> None:
    with pytest.raises(BackendError, match="valid keys"):
        TinyGRPOBackend({"tsk": "add2"})
    with pytest.raises(BackendError, match="valid tasks"):
        TinyGRPOBackend({"task": "mul"})
    with pytest.raises(BackendError, match="sft"):
        TinyGRPOBackend({"sft": {"epochs": 3}})


def test_resolve_config_fills_recipe_and_checks() -> None:
    b = TinyGRPOBackend()
    cfg = b.resolve_config({"learning_rate": 3e-4})
    assert set(cfg) == set(RECIPE) and cfg["learning_rate"] == 3e-4
    assert cfg["max_completion_length"] == 5  # the task's own
    with pytest.raises(BackendError, match="max_completion_length"):
        b.resolve_config({"max_completion_length": 2})
    with pytest.raises(BackendError, match="temperature"):
        b.resolve_config({"temperature": 0.0})
    assert TinyGRPOBackend().recipe()["beta"] == 0.001
    assert b.resolve_config({"epsilon": 0.3})["epsilon_high"] == 0.3
    assert b.resolve_config({"epsilon": 0.3, "epsilon_high": 0.4})["epsilon_high"] == 0.4


def test_explicit_dims_and_true_param_counts() -> None:
    d = dims_from_build({"hidden": 32, "layers": 4, "heads": 4, "kv_heads": 2, "intermediate": 96})
    assert d == SIZES["50k"] == dims_from_build({"size": "50K"})
    assert param_count(ModelDims(20, 2, 2, 1, 60)) == 10420
    assert param_count(SIZES["50k"]) == 50720


def test_example_study_names_real_sizes() -> None:
    import yaml

    study = yaml.safe_load(TinyGRPOBackend.example_study())
    assert study["backend"]["name"] == "tiny"
    models = study["models"]
    assert [m["name"] for m in models] == ["50k", "200k", "1m", "4m"]
    for m in models:  # the params are true counts, so the size feature is right
        assert m["params"] == param_count(dims_from_build(m["build"]))
    space = SearchSpace([FloatParam(n, p["low"], p["high"]) for n, p in study["space"].items()
                         if p["type"] == "float"])
    TinyGRPOBackend(study["backend"]["options"]).validate(space, ladder(*[m["build"] for m in models]))


def test_import_does_not_load_torch() -> None:
    code = (
        "import sys, jfhpo.backends.tiny\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_recipe_option_replaces_keys_of_the_built_in_recipe() -> None:
    backend = TinyGRPOBackend({"recipe": {"learning_rate": 1e-6}})
    assert backend.recipe()["learning_rate"] == 1e-6
    assert backend.recipe()["beta"] == TinyGRPOBackend().recipe()["beta"]
    # keys a configuration leaves out come from the study's recipe too
    assert backend.resolve_config({"beta": 0.01})["learning_rate"] == 1e-6


@pytest.mark.parametrize("recipe, words", [
    ({"learning_rat": 1e-6}, "learning_rat"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ([1e-6], "mapping"),
])
def test_a_bad_recipe_option_names_the_field(recipe: object, words: str) -> None:
    with pytest.raises(BackendError, match=words):
        TinyGRPOBackend({"recipe": recipe})
