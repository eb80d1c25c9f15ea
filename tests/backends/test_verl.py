"""The verl preset against VeRL's own configuration, and its runtime path against a stand-in
launcher.

VeRL cannot train here (no GPU, no vLLM), but its package ships the Hydra configuration that
``main_ppo`` composes. The tests compose that configuration with every override the preset
generates, so a renamed or mistyped key fails here exactly as it would fail ``main_ppo``. The
runtime test runs the preset with a stand-in for ``main_ppo`` that writes what VeRL writes (file
logger lines, ``global_step_N`` folders, ``latest_checkpointed_iteration.txt``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf

from jfhpo.backends.base import BackendError, SegmentTask, get_backend
from jfhpo.backends.verl import LAUNCHER, VERL_KEYS, VerlBackend, verl_command, verl_overrides
from jfhpo.fidelity import ModelRung
from jfhpo.records import Verdict


def verl_config_dir() -> str:
    spec = importlib.util.find_spec("verl")
    assert spec is not None and spec.submodule_search_locations, (
        "the verl package is missing: `pip install --no-deps verl==0.9.1` (make install does)")
    return os.path.join(next(iter(spec.submodule_search_locations)), "trainer", "config")


def test_supported_verl_version_is_installed() -> None:
    version = (Path(verl_config_dir()).parents[1] / "version" / "version").read_text().strip()
    assert version.startswith("0.9."), version


@pytest.fixture(scope="module")
def composer() -> Iterator[Any]:
    with initialize_config_dir(config_dir=verl_config_dir(), version_base=None):
        yield lambda overrides: compose("ppo_trainer", overrides=list(overrides))


def get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, throw_on_missing=False)


def test_a_mistyped_key_fails_to_compose(composer: Any) -> None:
    with pytest.raises(ConfigCompositionException):
        composer(["actor_rollout_ref.actor.optim.lrr=1e-6"])


def test_every_study_name_composes_to_its_verl_key(composer: Any) -> None:
    base = composer([])
    config: dict[str, Any] = {}
    expect: dict[str, Any] = {}
    for name, native in VERL_KEYS.items():
        default = get(base, native)
        if isinstance(default, bool):
            value: Any = not default
        elif isinstance(default, int):
            value = default + 3
        elif isinstance(default, float):
            value = default * 0.5 + 0.125
        elif native.endswith("kl_penalty") or native.endswith("kl_ctrl.type"):
            value = "mse" if native.endswith("kl_penalty") else "adaptive"
        elif native.endswith("kl_loss_type"):
            value = "k1"
        elif native.endswith("loss_agg_mode"):
            value = "seq-mean-token-mean"
        elif native.endswith("lr_scheduler_type"):
            value = "cosine"
        elif native.endswith("adv_estimator"):
            value = "rloo"
        elif default is None:
            value = 4
        else:
            raise AssertionError(f"no test value for {native} (default {default!r})")
        config[name] = value
        expect[native] = value
    cfg = composer(verl_overrides(config))
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation still resolves
    for native, value in expect.items():
        assert get(cfg, native) == pytest.approx(value), native


def test_kl_loss_switch_follows_beta() -> None:
    on = verl_overrides({"beta": 0.01})
    assert "actor_rollout_ref.actor.use_kl_loss=true" in on
    assert "actor_rollout_ref.actor.use_kl_loss=false" in verl_overrides({"beta": 0.0})
    with pytest.raises(BackendError, match=r"trainer\.save_freq"):
        verl_overrides({"trainer.save_freq": 3})
    with pytest.raises(BackendError, match="not a VeRL key"):
        verl_overrides({"learnig_rate": 1e-6})


def test_recipe_composes_to_verl_grpo_example_values(composer: Any) -> None:
    cfg = composer(verl_overrides(VerlBackend.recipe()))
    assert get(cfg, "actor_rollout_ref.actor.optim.lr") == 1e-6
    assert get(cfg, "actor_rollout_ref.actor.use_kl_loss") is True
    assert get(cfg, "actor_rollout_ref.actor.kl_loss_coef") == 0.001
    assert get(cfg, "actor_rollout_ref.rollout.n") == 5
    assert get(cfg, "algorithm.adv_estimator") == "grpo"


def test_verl_command_composes(composer: Any) -> None:
    argv = verl_command({"learning_rate": 3e-6, "beta": 0.002, "rollout_n": 8},
                        total_steps=120, n_gpus_per_node=4, nnodes=2,
                        extra=["actor_rollout_ref.model.path=/models/q"])
    assert argv[:3] == list(LAUNCHER)
    cfg = composer(argv[3:])
    assert get(cfg, "actor_rollout_ref.actor.optim.lr") == 3e-6
    assert get(cfg, "actor_rollout_ref.actor.use_kl_loss") is True
    assert get(cfg, "actor_rollout_ref.rollout.n") == 8
    assert get(cfg, "trainer.total_training_steps") == 120
    assert get(cfg, "trainer.n_gpus_per_node") == 4 and get(cfg, "trainer.nnodes") == 2
    assert get(cfg, "trainer.v1.trainer_mode") == "sync" and get(cfg, "trainer.use_v1") is True
    assert list(get(cfg, "trainer.logger")) == ["console", "file"]


def segment(tmp: Path, seg: int, start: int, target: int, resume: str | None = None,
            eval_every: int = 0) -> SegmentTask:
    ck = tmp / "checkpoints" / "staging" / f"segment-{seg}"
    ck.mkdir(parents=True, exist_ok=True)
    rung = ModelRung("0.5b", 5e8, 1.0, {"model": str(tmp / "model"), "n_gpus_per_node": 2})
    return SegmentTask(run_id=1, segment_id=seg, config={"learning_rate": 1e-6, "beta": 0.001,
                                                         "rollout_n": 5, "clip_ratio_high": 0.28},
                       model=rung, start_step=start, target_step=target, max_steps=30, seed=0,
                       checkpoint_dir=str(ck), resume_from=resume, eval_every=eval_every)


def test_segment_overrides_compose_fresh_and_resumed(tmp_path: Path, composer: Any) -> None:
    example = get_backend("verl").example_study()
    import yaml

    options = yaml.safe_load(example)["backend"]["options"]
    b = VerlBackend(options)
    ck = tmp_path / "prev"
    (ck / "global_step_10").mkdir(parents=True)
    for t, resumed in ((segment(tmp_path, 1, 0, 10), False),
                       (segment(tmp_path, 2, 10, 20, resume=str(ck), eval_every=5), True)):
        fields = b.segment_fields(t, str(tmp_path / "logs"))
        argv, env = b.segment_argv(t, fields, t.config)
        assert argv[:3] == list(LAUNCHER)
        assert env["VERL_FILE_LOGGER_PATH"] == fields["metrics_file"]
        cfg = composer(argv[3:])
        OmegaConf.to_container(cfg, resolve=True)
        assert get(cfg, "trainer.default_local_dir") == os.path.abspath(t.checkpoint_dir)
        assert get(cfg, "trainer.total_training_steps") == 30
        assert get(cfg, "trainer.save_freq") == 10
        assert get(cfg, "trainer.test_freq") == (5 if resumed else 10)
        assert get(cfg, "trainer.n_gpus_per_node") == 2
        assert get(cfg, "actor_rollout_ref.model.path") == str(tmp_path / "model")
        assert get(cfg, "actor_rollout_ref.actor.clip_ratio_high") == 0.28
        assert get(cfg, "actor_rollout_ref.rollout.name") == "vllm"
        if resumed:
            assert get(cfg, "trainer.resume_mode") == "resume_path"
            assert get(cfg, "trainer.resume_from_path") == str(ck / "global_step_10")
        else:
            assert get(cfg, "trainer.resume_mode") == "disable"


#: a stand-in for main_ppo: parses the overrides and writes VeRL's artefacts in VeRL's order
#: (validate, save, then one file-logger line per step; the logger truncates its file)
FAKE_MAIN_PPO = r'''
import json, os, sys, time
kv = dict(a.split("=", 1) for a in sys.argv[1:])
total = int(kv["trainer.total_training_steps"]); save = int(kv["trainer.save_freq"])
test = int(kv["trainer.test_freq"]); root = kv["trainer.default_local_dir"]
assert kv["trainer.v1.trainer_mode"] == "sync" and kv["trainer.logger"] == "[console,file]"
step = 0
if kv["trainer.resume_mode"] == "resume_path":
    path = kv["trainer.resume_from_path"]
    step = int(open(os.path.join(path, "actor", "step")).read())
    assert os.path.basename(path) == f"global_step_{step}"
log = open(os.environ["VERL_FILE_LOGGER_PATH"], "w")
lr = float(kv["actor_rollout_ref.actor.optim.lr"])
while step < total:
    step += 1
    time.sleep(0.05)
    m = {"critic/score/mean": min(1.0, step * lr * 1e4), "actor/kl_loss": 0.001 * step,
         "actor/entropy": 1.0, "actor/grad_norm": 0.5, "response_length/mean": 100.0,
         "response_length/clip_ratio": 0.0, "actor/pg_clipfrac": 0.01}
    if step % test == 0:
        m["val-core/openai/gsm8k/acc/mean@1"] = step / 100.0
    if step % save == 0:
        d = os.path.join(root, f"global_step_{step}", "actor")
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "step"), "w").write(str(step))
        open(os.path.join(root, "latest_checkpointed_iteration.txt"), "w").write(str(step))
    log.write(json.dumps({"step": step, "data": m}) + "\n"); log.flush()
'''


def test_preset_runs_and_resumes_with_a_stand_in_main_ppo(tmp_path: Path) -> None:
    fake = tmp_path / "fake_main_ppo.py"
    fake.write_text(FAKE_MAIN_PPO)
    b = VerlBackend({"launcher": [sys.executable, str(fake)], "save_freq": 10, "grace": 2,
                     "timeout": 60})
    assert b.capabilities().checkpoint_every == 10
    seen: dict[int, Mapping[str, float]] = {}

    def report(step: int, metrics: Mapping[str, float]) -> Verdict:
        seen[step] = dict(metrics)
        return Verdict.CONTINUE

    t1 = segment(tmp_path, 1, 0, 10)
    out = b.run_segment(t1, report)
    assert out.end_step == 10 and out.checkpoint
    assert sorted(seen) == list(range(1, 11))
    assert {"reward", "kl", "entropy", "grad_norm", "response_length", "truncation",
            "clip_frac", "eval_accuracy"} <= set(seen[10])
    assert seen[10]["eval_accuracy"] == pytest.approx(0.10)
    assert sorted(os.listdir(t1.checkpoint_dir)) == [
        "global_step_10", "latest_checkpointed_iteration.txt"]
    assert (Path(t1.checkpoint_dir) / "latest_checkpointed_iteration.txt").read_text() == "10"

    seen.clear()
    t2 = segment(tmp_path, 2, 10, 20, resume=t1.checkpoint_dir)
    out2 = b.run_segment(t2, report)
    assert out2.end_step == 20 and sorted(seen) == list(range(11, 21))
    assert (Path(t2.checkpoint_dir) / "global_step_20" / "actor" / "step").read_text() == "20"
    assert not (Path(t2.checkpoint_dir) / "global_step_30").exists()
