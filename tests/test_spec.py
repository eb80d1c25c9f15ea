"""The study file's engine sections: rung resources, executor, checkpoint path."""

from __future__ import annotations

import pytest
from tests.conftest import synthetic_study

from jfhpo.spec import StudyFileError, parse_spec


def test_resources_and_executor_sections() -> None:
    data = synthetic_study(executor={"name": "local", "gpus": 2, "cpus": 8})
    data["models"][3]["resources"] = {"gpus": 2, "cpus": 4, "licence": 1}
    spec = parse_spec(data)
    assert spec.ladder().target.resources == {"gpus": 2, "cpus": 4, "licence": 1}
    assert spec.ladder().rungs[0].resources == {}
    assert spec.executor.name == "local" and spec.executor.options() == {"gpus": 2, "cpus": 8}
    assert parse_spec(synthetic_study()).executor.name == "local"  # the default
    # what is stored in the study folder parses back the same
    import yaml

    assert parse_spec(yaml.safe_load(spec.to_yaml())) == spec


@pytest.mark.parametrize("bad", [{"gpus": -1}, {"gpus": "two"}, {"gpus": float("nan")}])
def test_bad_resources_name_the_key(bad: dict[str, object]) -> None:
    data = synthetic_study()
    data["models"][0]["resources"] = bad
    with pytest.raises(StudyFileError, match="resources"):
        parse_spec(data)
