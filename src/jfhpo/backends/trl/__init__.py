"""The ``trl`` backend: GRPO with TRL on any ladder of local Hugging Face model folders.

Each rung names a model folder (``build: {model: PATH}``, the tokenizer saved beside the
weights); the dataset comes from local files with a prompt column; rewards are the user's
functions ``module:function`` (TRL's signature, several, with weights); the configuration's keys
are ``GRPOConfig`` fields. Each segment runs ``jfhpo.backends.trl.runner`` in its own process
through the command backend (so it inherits the process-group handling, live metrics, timeouts
and logs), under ``accelerate launch`` when the rung asks for more than one GPU. A STOP verdict
is graceful: SIGTERM makes the runner end after its current step, evaluate, save and exit.

The built-in ``tiny`` workload is a preset of this backend: it builds the same runner spec
(its task data as jsonl files, its reward and metric as ``module:function``, its base model
folder; see ``jfhpo.backends.tiny.grpo``) and runs it through ``runner.run_spec`` inside its
worker, without a process start per segment.

Importing this package imports neither torch nor TRL: the main process only validates.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from jfhpo.backends.base import BackendError, SegmentTask, check_option_keys, register_backend
from jfhpo.backends.command import Capabilities, CommandBackend, CommandOptions
from jfhpo.fidelity import ModelLadder
from jfhpo.metric_names import TRL_NAMES
from jfhpo.space import SearchSpace

#: backend options of the trl backend
TRL_OPTIONS: dict[str, str] = {
    "dataset": "a path (jsonl/json/parquet/csv file or save_to_disk folder) or a mapping "
               "{path, format, prompt_column, eval_path, eval_size, data_seed}",
    "rewards": "reward functions: 'module:function' or {function, weight}, one or more",
    "eval_metric": "'module:function' scoring held-out completions (default: mean reward)",
    "paths": "folders to import reward and metric modules from (default: the working folder)",
    "env": "extra environment variables of the segment processes",
    "timeout": "seconds a segment may run (default 86400)",
    "grace": "seconds a stopped segment has to evaluate and save before SIGKILL (default 120)",
    "accelerate_args": "extra arguments of `accelerate launch` for multi-GPU rungs",
    "evaluation": "sampling of the held-out evaluation: {temperature (default: training's), "
                  "max_new_tokens (default: max_completion_length), greedy: also score greedy "
                  "completions as eval_greedy_* (default false)}",
}
#: GRPOConfig fields whose TRL defaults make the recipe
RECIPE_KEYS = ("learning_rate", "beta", "epsilon", "epsilon_high", "temperature",
               "lr_scheduler_type", "warmup_steps", "weight_decay", "max_grad_norm", "loss_type",
               "scale_rewards", "entropy_coef", "num_iterations")
_DATASET_KEYS = {"path", "format", "prompt_column", "eval_path", "eval_size", "data_seed"}
_EVAL_KEYS = {"temperature", "max_new_tokens", "greedy"}


def parse_rewards(raw: Any) -> list[dict[str, Any]]:
    """``rewards`` -> [{function, weight}]; errors name the option."""
    items = raw if isinstance(raw, list) else [raw]
    out: list[dict[str, Any]] = []
    for i, r in enumerate(items):
        where = f"backend.options.rewards[{i}]"
        if isinstance(r, str):
            r = {"function": r}
        if not isinstance(r, Mapping) or not isinstance(r.get("function"), str) \
                or ":" not in r["function"] or set(r) - {"function", "weight"}:
            raise BackendError(f"{where}: expected 'module:function' or {{function: "
                               f"'module:function', weight: 1.0}}, got {r!r}")
        w = r.get("weight", 1.0)
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise BackendError(f"{where}.weight: expected a number, got {w!r}")
        out.append({"function": r["function"], "weight": float(w)})
    if not out:
        raise BackendError("backend.options.rewards: name at least one reward function")
    return out


def parse_evaluation(raw: Any) -> dict[str, Any]:
    """``evaluation`` -> {temperature, max_new_tokens, greedy} (each optional); errors name
    the option."""
    where = "backend.options.evaluation"
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise BackendError(f"{where}: expected a mapping with keys {sorted(_EVAL_KEYS)}, "
                           f"got {raw!r}")
    unknown = sorted(set(raw) - _EVAL_KEYS)
    if unknown:
        raise BackendError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(_EVAL_KEYS)}")
    t = raw.get("temperature")
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0):
        raise BackendError(f"{where}.temperature: expected a number > 0, got {t!r}")
    n = raw.get("max_new_tokens")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise BackendError(f"{where}.max_new_tokens: expected an integer >= 1, got {n!r}")
    g = raw.get("greedy", False)
    if not isinstance(g, bool):
        raise BackendError(f"{where}.greedy: expected true or false, got {g!r}")
    return dict(raw)


def parse_dataset(raw: Any) -> dict[str, Any]:
    data = {"path": raw} if isinstance(raw, str) else raw
    if not isinstance(data, Mapping) or not isinstance(data.get("path"), str):
        raise BackendError(f"backend.options.dataset: expected a path or a mapping with a "
                           f"path, got {raw!r}")
    unknown = sorted(set(data) - _DATASET_KEYS)
    if unknown:
        raise BackendError(f"backend.options.dataset: unknown key(s) {unknown}; valid keys: "
                           f"{sorted(_DATASET_KEYS)}")
    out = dict(data)
    for key in ("path", "eval_path"):
        if out.get(key):
            out[key] = os.path.abspath(str(out[key]))
    return out


@register_backend
class TrlBackend(CommandBackend):
    """GRPO with TRL on local model folders (see the package doc)."""

    name: ClassVar[str] = "trl"
    metric_names: ClassVar[Mapping[str, str]] = TRL_NAMES
    default_objective: ClassVar[str] = "eval_reward"

    def parse_options(self, options: Mapping[str, Any]) -> CommandOptions:
        check_option_keys(options, TRL_OPTIONS, "trl")
        if "dataset" not in options or "rewards" not in options:
            raise BackendError("backend.options: the trl backend needs `dataset` and `rewards`")
        self.dataset = parse_dataset(options["dataset"])
        self.rewards = parse_rewards(options["rewards"])
        metric = options.get("eval_metric")
        if metric is not None and (not isinstance(metric, str) or ":" not in metric):
            raise BackendError(f"backend.options.eval_metric: expected 'module:function', "
                               f"got {metric!r}")
        self.eval_metric = metric
        self.evaluation = parse_evaluation(options.get("evaluation"))
        paths = options.get("paths", ["."])
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise BackendError(f"backend.options.paths: expected a list of folders, got {paths!r}")
        self.paths = [os.path.abspath(p) for p in paths]
        acc = options.get("accelerate_args", [])
        if not isinstance(acc, list) or not all(isinstance(a, str) for a in acc):
            raise BackendError(f"backend.options.accelerate_args: expected a list of strings, "
                               f"got {acc!r}")
        self.accelerate_args = list(acc)
        return CommandOptions.parse({
            "command": ["{python}", "-m", "jfhpo.backends.trl.runner", "{log_dir}/segment.json"],
            "params": "none",
            "env": dict(options.get("env", {})),
            "metrics_format": "verl",
            "step_lines": "one",
            "metric_map": "trl",
            "checkpoint_pattern": "checkpoint-{step}",
            "checkpoint_every": 0,
            "timeout": options.get("timeout", 86400),
            "grace": options.get("grace", 120),
            "exit_wait": 60,
            "stop": "graceful",
        }, self.name)

    def capabilities(self) -> Capabilities:
        return Capabilities(checkpoint_every=0, resumable=True)

    def validate(self, space: SearchSpace, ladder: ModelLadder) -> None:
        for rung in ladder.rungs:
            model = rung.build.get("model")
            if not isinstance(model, str) or not model:
                raise BackendError(f"models.{rung.name}.build.model: the trl backend needs a "
                                   "local model folder for every rung")
        for key in ("path", "eval_path"):
            path = self.dataset.get(key)
            if path and not os.path.exists(path):
                raise BackendError(f"backend.options.dataset.{key}: {path} does not exist")
        keys = self.accepted_keys()
        unknown = sorted(set(space.names) - keys)
        if unknown:
            raise BackendError(f"space: {unknown} are not GRPOConfig fields the trl backend "
                               "accepts (jfhpo sets output_dir, max_steps, seed, logging and "
                               "saving itself)")

    def accepted_keys(self) -> set[str]:
        """``GRPOConfig`` fields a configuration may set (imports TRL: a few seconds)."""
        from trl import GRPOConfig

        from jfhpo.backends.trl.runner import PINNED

        return set(GRPOConfig.__dataclass_fields__) - PINNED

    def segment_argv(self, task: SegmentTask, fields: Mapping[str, Any],
                     config: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
        argv, env = super().segment_argv(task, fields, {})
        from jfhpo.backends.trl.runner import make_spec

        spec = make_spec(task, model=str(task.model.build["model"]), config=config,
                         rewards=self.rewards, eval_metric=self.eval_metric, paths=self.paths,
                         dataset=self.dataset, evaluation=self.evaluation,
                         resume_path=fields["resume_path"],
                         checkpoint_dir=fields["checkpoint_dir"],
                         metrics_file=fields["metrics_file"])
        with open(os.path.join(fields["log_dir"], "segment.json"), "w") as f:
            json.dump(spec, f, indent=1)
        gpus = int(fields["n_gpus"] or 0)
        if gpus > 1:  # one process per GPU; the runner's argument list follows
            i = argv.index("-m")
            argv = [argv[0], "-m", "accelerate.commands.launch", "--num_processes", str(gpus),
                    *self.accelerate_args, "-m", *argv[i + 1:]]
        pythonpath = os.pathsep.join([*self.paths, os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep)
        env["PYTHONPATH"] = pythonpath
        return argv, env

    @classmethod
    def recipe(cls) -> dict[str, Any]:
        """TRL's own GRPOConfig defaults of the usual search keys (the installed version's): what
        a practitioner gets without a search, run beside the winner at confirmation."""
        from trl import GRPOConfig

        fields = GRPOConfig.__dataclass_fields__
        return {name: fields[name].default for name in RECIPE_KEYS
                if name in fields and fields[name].default is not None}

    @classmethod
    def example_study(cls) -> str:
        from jfhpo.backends.trl.example import EXAMPLE_STUDY

        return EXAMPLE_STUDY
