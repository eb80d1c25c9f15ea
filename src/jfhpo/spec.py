"""The study file: YAML -> a validated ``StudySpec``.

Validation happens before anything is written, so a bad study file creates no study folder. Every
error names the key path and the offending value (``StudyFileError``; the CLI exits with code 2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from jfhpo.fidelity import LadderError, ModelLadder, ModelRung, StepBudget
from jfhpo.space import CategoricalParam, FloatParam, IntParam, Param, SearchSpace, SpaceError


class StudyFileError(ValueError):
    """The study file is malformed; the message names the key and the value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackendSpec(_Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class ObjectiveSpec(_Strict):
    metric: str | None = None  # None: the backend's default objective
    mode: Literal["max", "min"] = "max"


class ModelSpec(_Strict):
    name: str
    params: float
    cost: float = 1.0
    build: dict[str, Any] = Field(default_factory=dict)
    #: what one segment on this rung needs from the executor's pool, e.g. {gpus: 2, cpus: 4}
    resources: dict[str, float] = Field(default_factory=dict)

    @field_validator("resources")
    @classmethod
    def _amounts(cls, v: dict[str, float]) -> dict[str, float]:
        for key, amount in v.items():
            if not (math.isfinite(amount) and amount >= 0):
                raise ValueError(f"resources.{key} must be a finite number >= 0")
        return v


class StepsSpec(_Strict):
    """``steps: {min, max, eta}`` (geometric rungs) or ``steps: {levels: [19, 53, 93]}`` (or the
    plain list ``steps: [19, 53, 93]``): the step counts themselves."""

    min: int | None = Field(default=None, ge=1)
    max: int | None = Field(default=None, ge=1)
    eta: int = Field(default=3, ge=2)
    levels: list[int] | None = None

    @model_validator(mode="after")
    def _either(self) -> StepsSpec:
        if self.levels is None and (self.min is None or self.max is None):
            raise ValueError("give min and max, or levels: [n1, n2, ...]")
        if self.levels is not None and (self.min is not None or self.max is not None):
            raise ValueError("give either levels or min/max, not both")
        return self


class OptimizerSpec(_Strict):
    name: str = "jfhpo"
    options: dict[str, Any] = Field(default_factory=dict)


class BudgetSpec(_Strict):
    seconds: float = Field(gt=0)
    #: compute: the sum of segment costs (deterministic for the synthetic backend);
    #: wall: wall-clock seconds the study has been running
    measure: Literal["compute", "wall"] = "compute"

    @field_validator("seconds")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number of seconds")
        return v


class ConfirmSpec(_Strict):
    top_k: int = Field(default=2, ge=0)
    #: share of the budget reserved for confirmation on the target (0: confirm after the search
    #: whatever it costs; the cost is still reported)
    fraction: float = Field(default=0.25, ge=0.0, lt=1.0)
    include_recipe: bool = True


class CheckpointSpec(_Strict):
    disk_budget_mb: float = Field(default=2048.0, gt=0)
    #: false: an extension retrains its run from step 0 (the ablation "without checkpoint
    #: reuse"); it then costs the full step count
    reuse: bool = True
    #: where checkpoints live (default: the study folder's checkpoints/); a shared filesystem
    #: path when workers run on other machines
    path: str | None = None


class ExecutorSpec(BaseModel):
    """``executor: {name: local | inline | ray, ...}``; the other keys go to the executor."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = "local"

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class StudySpec(_Strict):
    name: str = "study"
    seed: int = 0
    backend: BackendSpec
    objective: ObjectiveSpec = ObjectiveSpec()
    models: list[ModelSpec] = Field(min_length=1)
    steps: StepsSpec
    eval_every: int = Field(default=0, ge=0)
    space: dict[str, dict[str, Any]]
    fixed: dict[str, Any] = Field(default_factory=dict)
    optimizer: OptimizerSpec = OptimizerSpec()
    stopping: bool | dict[str, Any] = Field(default_factory=dict)
    budget: BudgetSpec
    workers: int = Field(default=1, ge=1, le=256)
    threads_per_worker: int = Field(default=1, ge=1)
    confirm: ConfirmSpec = ConfirmSpec()
    checkpoints: CheckpointSpec = CheckpointSpec()
    cache_dir: str | None = None
    executor: ExecutorSpec = ExecutorSpec()

    @field_validator("steps", mode="before")
    @classmethod
    def _steps_list(cls, v: Any) -> Any:
        return {"levels": v} if isinstance(v, list) else v  # steps: [19, 53, 93]

    # ---- derived objects -------------------------------------------------------------------
    def search_space(self) -> SearchSpace:
        return build_space(self.space)

    def ladder(self) -> ModelLadder:
        return ModelLadder(
            [ModelRung(m.name, m.params, m.cost, dict(m.build), dict(m.resources))
             for m in self.models]
        )

    def step_budget(self) -> StepBudget:
        if self.steps.levels is not None:
            return StepBudget.from_levels(self.steps.levels, self.steps.eta)
        assert self.steps.min is not None and self.steps.max is not None
        return StepBudget(self.steps.min, self.steps.max, self.steps.eta)

    def objective_metric(self, default: str) -> str:
        return self.objective.metric or default

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


_PARAM_KEYS = {
    "float": {"type", "low", "high", "log"},
    "int": {"type", "low", "high", "log"},
    "categorical": {"type", "choices"},
}


def build_space(space: Mapping[str, Mapping[str, Any]]) -> SearchSpace:
    """Turn the ``space:`` mapping into a SearchSpace; errors name ``space.<param>.<key>``."""
    if not isinstance(space, Mapping) or not space:
        raise StudyFileError("space: must map parameter names to declarations, and not be empty")
    params: list[Param] = []
    for name, decl in space.items():
        where = f"space.{name}"
        if not isinstance(decl, Mapping):
            raise StudyFileError(f"{where}: expected a mapping like {{type: float, low: .., high: ..}}")
        kind = decl.get("type")
        if kind not in _PARAM_KEYS:
            raise StudyFileError(
                f"{where}.type: unknown type {kind!r}; valid types: {sorted(_PARAM_KEYS)}"
            )
        extra = set(decl) - _PARAM_KEYS[kind]
        if extra:
            raise StudyFileError(
                f"{where}: unknown key(s) {sorted(extra)} for type {kind}; "
                f"valid keys: {sorted(_PARAM_KEYS[kind])}"
            )
        try:
            if kind == "categorical":
                choices = decl.get("choices")
                if not isinstance(choices, list) or not choices:
                    raise StudyFileError(f"{where}.choices: expected a non-empty list, got {choices!r}")
                params.append(CategoricalParam(str(name), tuple(choices)))
            else:
                for key in ("low", "high"):
                    if key not in decl:
                        raise StudyFileError(f"{where}.{key}: missing")
                    v = decl[key]
                    if isinstance(v, bool) or not isinstance(v, (int, float)):
                        raise StudyFileError(f"{where}.{key}: expected a number, got {v!r}")
                log = decl.get("log", False)
                if not isinstance(log, bool):
                    raise StudyFileError(f"{where}.log: expected true or false, got {log!r}")
                if kind == "float":
                    params.append(FloatParam(str(name), float(decl["low"]), float(decl["high"]), log))
                else:
                    lo, hi = decl["low"], decl["high"]
                    if not (float(lo).is_integer() and float(hi).is_integer()):
                        raise StudyFileError(f"{where}: int bounds must be integers, got {lo!r}, {hi!r}")
                    params.append(IntParam(str(name), int(lo), int(hi), log))
        except SpaceError as exc:
            raise StudyFileError(f"{where}: {exc}") from None
    return SearchSpace(params)


def _child(value: Any, key: int | str) -> Any:
    if isinstance(value, Mapping):
        return value.get(key)
    if isinstance(value, list) and isinstance(key, int) and key < len(value):
        return value[key]
    return None


def _format_validation(exc: ValidationError, data: Mapping[str, Any]) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        value: Any = data
        for p in err["loc"]:
            value = _child(value, p)
            if value is None:
                break
        if err["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key (value {value!r}); check its spelling")
        elif err["type"] == "missing":
            lines.append(f"{loc}: required key is missing")
        else:
            lines.append(f"{loc}: {err['msg']} (got {value!r})")
    return "invalid study file:\n  " + "\n  ".join(lines)


def parse_spec(data: Any) -> StudySpec:
    """Validate a parsed YAML document; raise StudyFileError naming every bad key."""
    if not isinstance(data, Mapping):
        raise StudyFileError("the study file must be a YAML mapping of keys to values")
    try:
        spec = StudySpec.model_validate(dict(data))
    except ValidationError as exc:
        raise StudyFileError(_format_validation(exc, data)) from None
    try:
        space = spec.search_space()
        spec.ladder()
        spec.step_budget()
    except LadderError as exc:
        raise StudyFileError(str(exc)) from None
    overlap = set(spec.fixed) & set(space.names)
    if overlap:
        raise StudyFileError(f"fixed: key(s) {sorted(overlap)} are also in space; keep one")
    return spec


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study file."""
    p = Path(path)
    if not p.is_file():
        raise StudyFileError(f"study file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise StudyFileError(f"{p}: not valid YAML: {exc}") from None
    return parse_spec(data)
