"""The study file: YAML -> a validated ``StudySpec``.

Validation happens before anything is written, so a bad study file creates no study folder. Every
error names the key path and the offending value (``StudyFileError``; the CLI exits with code 2).
"""

from __future__ import annotations

import difflib
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
from jfhpo.yaml_load import YamlInputError, excerpt, load_file


class StudyFileError(ValueError):
    """The study file is malformed; the message names the key and the value."""


#: bounds every numeric input is checked against (misuse limits, far beyond real studies)
MAX_WORKERS = 256
MAX_STEPS = 10_000_000
MAX_SEED = 2**63 - 1
MAX_NAME = 128
MAX_SECONDS = 1e18  # AskTell's default budget (no budget) is 1e18


def _finite_number(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackendSpec(_Strict):
    name: str = Field(max_length=200)
    options: dict[str, Any] = Field(default_factory=dict)


class ObjectiveSpec(_Strict):
    metric: str | None = None  # None: the backend's default objective
    mode: Literal["max", "min"] = "max"


class ModelSpec(_Strict):
    name: str = Field(max_length=200)
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

    @field_validator("params", "cost")
    @classmethod
    def _finite(cls, v: float) -> float:
        return _finite_number(v)


class StepsSpec(_Strict):
    """``steps: {min, max, eta}`` (geometric rungs) or ``steps: {levels: [19, 53, 93]}`` (or the
    plain list ``steps: [19, 53, 93]``): the step counts themselves."""

    min: int | None = Field(default=None, ge=1, le=MAX_STEPS)
    max: int | None = Field(default=None, ge=1, le=MAX_STEPS)
    eta: int = Field(default=3, ge=2, le=1000)
    levels: list[int] | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _either(self) -> StepsSpec:
        if self.levels is None and (self.min is None or self.max is None):
            raise ValueError("give min and max, or levels: [n1, n2, ...]")
        if self.levels is not None and (self.min is not None or self.max is not None):
            raise ValueError("give either levels or min/max, not both")
        if self.levels is not None and any(n > MAX_STEPS for n in self.levels):
            raise ValueError(f"levels: step counts are at most {MAX_STEPS}")
        return self


class OptimizerSpec(_Strict):
    name: str = Field(default="jfhpo", max_length=200)
    options: dict[str, Any] = Field(default_factory=dict)


class BudgetSpec(_Strict):
    seconds: float = Field(gt=0, le=MAX_SECONDS)
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
    top_k: int = Field(default=2, ge=0, le=1000)
    #: share of the budget reserved for confirmation on the target until the target's cost is
    #: measured, then replaced by what the confirmation runs will cost (0: confirm after the
    #: search whatever it costs; the cost is still reported)
    fraction: float = Field(default=0.25, ge=0.0, lt=1.0)
    include_recipe: bool = True


class CheckpointSpec(_Strict):
    disk_budget_mb: float = Field(default=2048.0, gt=0, le=1e12)
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
    name: str = Field(default="study", min_length=1, max_length=MAX_NAME)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    backend: BackendSpec
    objective: ObjectiveSpec = ObjectiveSpec()
    models: list[ModelSpec] = Field(min_length=1)
    steps: StepsSpec
    eval_every: int = Field(default=0, ge=0, le=MAX_STEPS)
    space: dict[str, dict[str, Any]]
    fixed: dict[str, Any] = Field(default_factory=dict)
    optimizer: OptimizerSpec = OptimizerSpec()
    stopping: bool | dict[str, Any] = Field(default_factory=dict)
    budget: BudgetSpec
    workers: int = Field(default=1, ge=1, le=MAX_WORKERS)
    threads_per_worker: int = Field(default=1, ge=1, le=1024)
    confirm: ConfirmSpec = ConfirmSpec()
    checkpoints: CheckpointSpec = CheckpointSpec()
    cache_dir: str | None = None
    executor: ExecutorSpec = ExecutorSpec()

    @field_validator("cache_dir")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and (not v or "\x00" in v or len(v) > 4096):
            raise ValueError("must be a folder path (not empty, no NUL, at most 4096 characters)")
        return v

    @field_validator("name")
    @classmethod
    def _printable(cls, v: str) -> str:
        if not v.isprintable():
            raise ValueError("must be printable text (no NUL, newline or other control character)")
        return v

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
        where = f"space.{str(name)[:60]}"
        if not isinstance(decl, Mapping):
            raise StudyFileError(f"{where}: expected a mapping like {{type: float, low: .., high: ..}}")
        kind = decl.get("type")
        if not isinstance(kind, str) or kind not in _PARAM_KEYS:
            raise StudyFileError(
                f"{where}.type: unknown type {excerpt(kind)}; valid types: {sorted(_PARAM_KEYS)}"
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
                    raise StudyFileError(
                        f"{where}.choices: expected a non-empty list, got {excerpt(choices)}")
                params.append(CategoricalParam(str(name), tuple(choices)))
            else:
                for key in ("low", "high"):
                    if key not in decl:
                        raise StudyFileError(f"{where}.{key}: missing")
                    v = decl[key]
                    if isinstance(v, bool) or not isinstance(v, (int, float)):
                        raise StudyFileError(f"{where}.{key}: expected a number, got {excerpt(v)}")
                log = decl.get("log", False)
                if not isinstance(log, bool):
                    raise StudyFileError(f"{where}.log: expected true or false, got {excerpt(log)}")
                if kind == "float":
                    params.append(FloatParam(str(name), float(decl["low"]), float(decl["high"]), log))
                else:
                    lo, hi = decl["low"], decl["high"]
                    if not (float(lo).is_integer() and float(hi).is_integer()):
                        raise StudyFileError(
                            f"{where}: int bounds must be integers, got {excerpt(lo)}, {excerpt(hi)}")
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
        loc = ".".join(str(p) for p in err["loc"])[:100]
        value: Any = data
        for p in err["loc"]:
            value = _child(value, p)
            if value is None:
                break
        if err["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key (value {excerpt(value)}); check its spelling")
        elif err["type"] == "missing":
            lines.append(f"{loc}: required key is missing")
        else:
            lines.append(f"{loc}: {err['msg']} (got {excerpt(value)})")
        if len(lines) >= 20:
            lines.append(f"... and {len(exc.errors()) - 20} more")
            break
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
        raise StudyFileError(f"study file {excerpt(str(p))} does not exist")
    try:
        data = load_file(p)
    except YamlInputError as exc:
        raise StudyFileError(f"{p}: {exc}") from None
    return parse_spec(data)


def _closest(word: str, valid: set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(valid), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def check_against_backend(spec: StudySpec, backend: Any) -> None:
    """Refuse an objective metric or a ``fixed:`` key the backend does not know, before anything
    runs (a typo would otherwise cost the whole budget). ``backend.known_metrics()`` and
    ``backend.accepted_keys()`` return None when the backend cannot tell; the check is skipped."""
    metrics = backend.known_metrics()
    objective = spec.objective_metric(backend.default_objective)
    if metrics is not None and objective not in metrics:
        raise StudyFileError(
            f"objective.metric: the {spec.backend.name} backend reports no metric "
            f"{excerpt(objective)}; {_closest(objective, metrics)}valid: {sorted(metrics)}"
        )
    keys = backend.accepted_keys()
    if keys is not None:
        for key in spec.fixed:
            if key not in keys:
                raise StudyFileError(
                    f"fixed.{str(key)[:60]}: unknown key for the {spec.backend.name} backend; "
                    f"{_closest(str(key), keys)}valid: {sorted(keys)}"
                )
    if not spec.fixed:
        return
    recipe = backend.recipe()
    for key, value in spec.fixed.items():
        ref = recipe.get(key)
        wrong = (
            (isinstance(ref, bool) and not isinstance(value, bool))
            or (isinstance(ref, (int, float)) and not isinstance(ref, bool) and (
                isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value)))
            or (isinstance(ref, str) and not isinstance(value, str))
        )
        if wrong:
            raise StudyFileError(f"fixed.{str(key)[:60]}: expected a value like the recipe's "
                                 f"{ref!r}, got {excerpt(value)}")
    # the backend checks fixed values the way it checks the ends of searched ranges
    try:
        fixed_space = SearchSpace([CategoricalParam(str(k), (v,)) for k, v in spec.fixed.items()])
    except SpaceError as exc:
        raise StudyFileError(f"fixed: {exc}") from None
    backend.validate(fixed_space, spec.ladder())
