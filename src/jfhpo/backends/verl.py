"""The ``verl`` preset of the command backend: GRPO/PPO with VeRL's ``main_ppo`` launcher.

Supported VeRL version: 0.9.x (override keys, defaults and config layout read from verl 0.9.1,
whose packaged Hydra configuration the tests compose every generated override against).

A segment runs ``python3 -m verl.trainer.main_ppo key=value ...`` with

* the configuration's keys mapped to VeRL's (``VERL_KEYS``; a key that already is a dotted VeRL
  key passes through unchanged, so anything in VeRL's config can be searched or fixed);
* ``trainer.total_training_steps`` pinned to the study's maximum (schedules with warmup ratios
  or cosine decay do not depend on where a segment ends; the segment is ended after its end step
  is logged, and VeRL saves a step before it logs it), a large ``trainer.total_epochs`` so the
  epoch count never ends a run early, ``trainer.save_freq``/``test_freq``, the synchronous V1
  trainer (``trainer.use_v1=true trainer.v1.trainer_mode=sync``: one step is one optimizer update
  on fresh rollouts, as the study's step budgets assume);
* ``trainer.default_local_dir`` = the segment's checkpoint folder, ``trainer.resume_mode``
  ``disable`` for a fresh run and ``resume_path`` with ``trainer.resume_from_path`` =
  ``<checkpoint>/global_step_N`` for a resumed one;
* ``trainer.logger=[console,file]`` and a fresh ``VERL_FILE_LOGGER_PATH`` per segment (VeRL's
  file logger truncates its file when it opens it), tailed live;
* the rung's model folder (``build: {model: PATH}``) and its GPUs (``build.n_gpus_per_node`` /
  ``build.nnodes``, else the rung's ``resources.gpus``, else 1).

No GPU here: VeRL trains only with vLLM/SGLang on a GPU, so this machine composes VeRL's own
configuration with the generated overrides (tests/backends/test_verl.py) and runs the preset
against a stand-in launcher that writes VeRL's artefacts; it never trains with VeRL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from jfhpo.backends.base import BackendError, SegmentTask, check_option_keys, register_backend
from jfhpo.backends.command import Capabilities, CommandBackend, CommandOptions, format_value
from jfhpo.fidelity import ModelLadder
from jfhpo.metric_names import VERL_NAMES
from jfhpo.space import SearchSpace

SUPPORTED_VERSION = "0.9.x"
LAUNCHER: tuple[str, ...] = ("python3", "-m", "verl.trainer.main_ppo")
_ACTOR = "actor_rollout_ref.actor"
_ROLLOUT = "actor_rollout_ref.rollout"

#: study names (GRPOConfig-like and VeRL's short names) -> VeRL override keys
VERL_KEYS: Mapping[str, str] = {
    "learning_rate": f"{_ACTOR}.optim.lr",
    "lr": f"{_ACTOR}.optim.lr",
    "warmup_steps": f"{_ACTOR}.optim.lr_warmup_steps",
    "lr_warmup_steps": f"{_ACTOR}.optim.lr_warmup_steps",
    "lr_scheduler_type": f"{_ACTOR}.optim.lr_scheduler_type",
    "weight_decay": f"{_ACTOR}.optim.weight_decay",
    "max_grad_norm": f"{_ACTOR}.grad_clip",
    "grad_clip": f"{_ACTOR}.grad_clip",
    # KL as a loss term (GRPO): beta is TRL's name of the coefficient
    "beta": f"{_ACTOR}.kl_loss_coef",
    "kl_loss_coef": f"{_ACTOR}.kl_loss_coef",
    "kl_loss_type": f"{_ACTOR}.kl_loss_type",
    "use_kl_loss": f"{_ACTOR}.use_kl_loss",
    # KL in the reward (PPO style)
    "kl_coef": "algorithm.kl_ctrl.kl_coef",
    "use_kl_in_reward": "algorithm.use_kl_in_reward",
    "kl_penalty": "algorithm.kl_penalty",
    "kl_ctrl_type": "algorithm.kl_ctrl.type",
    # clipping, entropy, loss
    "epsilon": f"{_ACTOR}.clip_ratio_low",
    "clip_ratio_low": f"{_ACTOR}.clip_ratio_low",
    "epsilon_high": f"{_ACTOR}.clip_ratio_high",
    "clip_ratio_high": f"{_ACTOR}.clip_ratio_high",
    "clip_ratio_c": f"{_ACTOR}.clip_ratio_c",
    "entropy_coef": f"{_ACTOR}.entropy_coeff",
    "entropy_coeff": f"{_ACTOR}.entropy_coeff",
    "loss_agg_mode": f"{_ACTOR}.loss_agg_mode",
    "num_iterations": f"{_ACTOR}.ppo_epochs",
    "ppo_epochs": f"{_ACTOR}.ppo_epochs",
    # batch sizes and sampling
    "num_generations": f"{_ROLLOUT}.n",
    "rollout_n": f"{_ROLLOUT}.n",
    "train_batch_size": "data.train_batch_size",
    "prompts_per_step": "data.train_batch_size",
    "ppo_mini_batch_size": f"{_ACTOR}.ppo_mini_batch_size",
    "ppo_micro_batch_size_per_gpu": f"{_ACTOR}.ppo_micro_batch_size_per_gpu",
    "temperature": f"{_ROLLOUT}.temperature",
    "top_p": f"{_ROLLOUT}.top_p",
    "max_completion_length": "data.max_response_length",
    "max_response_length": "data.max_response_length",
    "max_prompt_length": "data.max_prompt_length",
    "adv_estimator": "algorithm.adv_estimator",
    "scale_rewards": "algorithm.norm_adv_by_std_in_grpo",
    "norm_adv_by_std_in_grpo": "algorithm.norm_adv_by_std_in_grpo",
}

#: the no-search baseline in study names (one name per VeRL key)
RECIPE: Mapping[str, Any] = {
    "learning_rate": 1e-6, "beta": 0.001, "kl_loss_type": "low_var_kl", "clip_ratio_low": 0.2,
    "clip_ratio_high": 0.2, "entropy_coeff": 0.0, "rollout_n": 5,
}

#: keys the launcher owns (set per segment); a configuration may not set them
PINNED = frozenset({
    "trainer.total_training_steps", "trainer.total_epochs", "trainer.save_freq",
    "trainer.test_freq", "trainer.default_local_dir", "trainer.resume_mode",
    "trainer.resume_from_path", "trainer.logger", "trainer.use_v1", "trainer.v1.trainer_mode",
    "trainer.n_gpus_per_node", "trainer.nnodes", "actor_rollout_ref.model.path",
})


def verl_overrides(config: Mapping[str, Any]) -> list[str]:
    """``key=value`` overrides of a configuration in VeRL's keys (sorted by key).

    GRPO is the default advantage estimator; a positive ``beta``/``kl_loss_coef`` switches the KL
    loss on unless ``use_kl_loss`` is given (VeRL ignores the coefficient otherwise)."""
    out: dict[str, Any] = {"algorithm.adv_estimator": "grpo"}
    for key, value in config.items():
        native = VERL_KEYS.get(key, key)
        if "." not in native:
            raise BackendError(f"configuration key {key!r} is not a VeRL key; use one of "
                               f"{sorted(VERL_KEYS)} or a dotted VeRL key")
        if native in PINNED:
            raise BackendError(f"configuration key {key!r} sets {native}, which jfhpo sets "
                               "per segment; remove it")
        out[native] = value
    coef = out.get(f"{_ACTOR}.kl_loss_coef")
    if f"{_ACTOR}.use_kl_loss" not in out and isinstance(coef, (int, float)):
        out[f"{_ACTOR}.use_kl_loss"] = coef > 0
    return [f"{k}={format_value(v)}" for k, v in sorted(out.items())]


def schedule_overrides(total_steps: int, *, n_gpus_per_node: int, nnodes: int, save_freq: int,
                       test_freq: int) -> list[str]:
    """The launcher's own overrides: steps, frequencies, sync trainer, loggers, GPUs."""
    return [
        f"trainer.total_training_steps={total_steps}",
        "trainer.total_epochs=1000000",
        f"trainer.save_freq={save_freq}",
        f"trainer.test_freq={test_freq}",
        "trainer.use_v1=true",
        "trainer.v1.trainer_mode=sync",
        "trainer.logger=[console,file]",
        f"trainer.n_gpus_per_node={n_gpus_per_node}",
        f"trainer.nnodes={nnodes}",
    ]


def verl_command(config: Mapping[str, Any], *, total_steps: int, n_gpus_per_node: int = 1,
                 nnodes: int = 1, extra: Sequence[str] = ()) -> list[str]:
    """The argv of one VeRL run of ``config`` for ``total_steps`` steps (for export): the
    launcher, the configuration's overrides, the schedule (saving every ``total_steps``, testing
    at the end) and ``extra`` overrides (model path, data files...) last."""
    if total_steps < 1:
        raise BackendError(f"total_steps must be >= 1, got {total_steps}")
    return [*LAUNCHER, *verl_overrides(config),
            *schedule_overrides(total_steps, n_gpus_per_node=n_gpus_per_node, nnodes=nnodes,
                                save_freq=total_steps, test_freq=total_steps), *extra]


#: backend options of the verl preset
VERL_OPTIONS: dict[str, str] = {
    "launcher": "argv before the overrides (default [python3, -m, verl.trainer.main_ppo])",
    "overrides": "extra VeRL overrides for every segment (data files, rollout engine, ...)",
    "save_freq": "VeRL's trainer.save_freq: the steps runs can be extended from (default 10)",
    "test_freq": "VeRL's trainer.test_freq when the study's eval_every is 0 (default save_freq)",
    "env": "extra environment variables (placeholders allowed)",
    "cwd": "working folder of the launcher",
    "timeout": "seconds a segment may run (default 86400)",
    "grace": "seconds between SIGTERM and SIGKILL (default 60: Ray needs time to shut down)",
    "exit_wait": "seconds VeRL may take to exit after logging its end step (default 0)",
}


@register_backend
class VerlBackend(CommandBackend):
    """VeRL ``main_ppo`` runs as command-backend segments (see the module doc)."""

    name: ClassVar[str] = "verl"
    metric_names: ClassVar[Mapping[str, str]] = VERL_NAMES
    default_objective: ClassVar[str] = "eval_accuracy"

    def parse_options(self, options: Mapping[str, Any]) -> CommandOptions:
        check_option_keys(options, VERL_OPTIONS, "verl")
        for key in ("launcher", "overrides"):
            v = options.get(key, [])
            if not isinstance(v, list) or not all(isinstance(a, str) for a in v):
                raise BackendError(f"backend.options.{key}: expected a list of strings, got {v!r}")
        for key in ("save_freq", "test_freq"):
            v = options.get(key, 10)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise BackendError(f"backend.options.{key}: expected an integer >= 1, got {v!r}")
        self.save_freq = int(options.get("save_freq", 10))
        self.test_freq = int(options.get("test_freq", self.save_freq))
        self.launcher = list(options.get("launcher") or LAUNCHER)
        self.extra = list(options.get("overrides", []))
        for o in self.extra:
            if o.split("=", 1)[0].lstrip("+~") in PINNED:
                raise BackendError(f"backend.options.overrides: {o!r} sets a key jfhpo sets "
                                   "per segment")
        return CommandOptions.parse({
            "command": [*self.launcher, *self.extra],
            "params": "none",
            "env": {"VERL_FILE_LOGGER_PATH": "{metrics_file}", **options.get("env", {})},
            **({"cwd": options["cwd"]} if "cwd" in options else {}),
            "metrics_format": "verl",
            "step_lines": "one",
            "metric_map": "verl",
            "checkpoint_pattern": "global_step_{step}",
            "checkpoint_every": self.save_freq,
            "latest_file": "latest_checkpointed_iteration.txt",
            "timeout": options.get("timeout", 86400),
            "grace": options.get("grace", 60),
            "exit_wait": options.get("exit_wait", 0),
        }, self.name)

    def capabilities(self) -> Capabilities:
        return Capabilities(checkpoint_every=self.save_freq, resumable=True)

    def validate(self, space: SearchSpace, ladder: ModelLadder) -> None:
        super().validate(space, ladder)
        for rung in ladder.rungs:
            if not rung.build.get("model"):
                raise BackendError(f"models.{rung.name}.build.model: the verl backend needs the "
                                   "model folder (actor_rollout_ref.model.path) of every rung")
        verl_overrides({p.name: 0.5 for p in space.params})  # key names only

    def segment_argv(self, task: SegmentTask, fields: Mapping[str, Any],
                     config: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
        argv, env = super().segment_argv(task, fields, {})
        rung = task.model
        resources = getattr(rung, "resources", None) or {}
        gpus = int(rung.build.get("n_gpus_per_node", resources.get("gpus", 1)) or 1)
        nnodes = int(rung.build.get("nnodes", 1))
        test_freq = task.eval_every or self.test_freq
        argv += verl_overrides(config)
        argv += schedule_overrides(task.max_steps, n_gpus_per_node=gpus, nnodes=nnodes,
                                   save_freq=self.save_freq, test_freq=test_freq)
        argv += [f"actor_rollout_ref.model.path={rung.build['model']}",
                 f"trainer.default_local_dir={fields['checkpoint_dir']}"]
        if task.resume_from is None:
            argv.append("trainer.resume_mode=disable")
        else:
            argv += ["trainer.resume_mode=resume_path",
                     f"trainer.resume_from_path={fields['resume_path']}"]
        return argv, env

    @classmethod
    def recipe(cls) -> dict[str, Any]:
        """VeRL's GRPO example settings (``examples/grpo_trainer``): lr 1e-6, KL loss 0.001
        (low_var_kl), clip 0.2/0.2, no entropy bonus, 5 responses per prompt."""
        return dict(RECIPE)

    @classmethod
    def example_study(cls) -> str:
        from jfhpo.backends.verl_example import EXAMPLE_STUDY

        return EXAMPLE_STUDY
