"""The example study of the ``verl`` preset (text of a commented YAML study file)."""

from __future__ import annotations

EXAMPLE_STUDY = """\
# jfhpo study: GRPO with VeRL (python3 -m verl.trainer.main_ppo), VeRL 0.9.x, on a GPU machine
# with vLLM. jfhpo writes every VeRL override itself (steps, save/test frequency, the sync
# trainer, the file logger, checkpoint folder, resume); you give the data, the rollout engine
# and the model ladder. Each segment's full command is saved in <study>/logs/segment-N/.
name: verl-grpo-gsm8k
seed: 0
backend:
  name: verl
  options:
    save_freq: 10             # runs are extended only from saved steps: make it divide the budgets
    overrides:                # any VeRL override, passed to every segment
      - data.train_files=/data/gsm8k/train.parquet
      - data.val_files=/data/gsm8k/test.parquet
      - data.max_prompt_length=512
      - actor_rollout_ref.rollout.name=vllm
      - actor_rollout_ref.rollout.tensor_model_parallel_size=1
      - actor_rollout_ref.rollout.gpu_memory_utilization=0.5
      - actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8
      - actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8
      - actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8
      - trainer.project_name=jfhpo
    grace: 60                 # seconds between SIGTERM and SIGKILL (Ray shuts down slowly)
objective: {metric: eval_accuracy, mode: max}   # val-core/<data_source>/acc/mean@N
models:                       # local model folders, smallest first, the target last
  - {name: 0.5b, params: 0.5e9, cost: 1.0, build: {model: /models/Qwen2.5-0.5B-Instruct, n_gpus_per_node: 1}}
  - {name: 1.5b, params: 1.5e9, cost: 2.5, build: {model: /models/Qwen2.5-1.5B-Instruct, n_gpus_per_node: 1}}
  - {name: 7b, params: 7.6e9, cost: 6.0, build: {model: /models/Qwen2.5-7B-Instruct, n_gpus_per_node: 4}}
steps: {min: 10, max: 90, eta: 3}   # step budgets 10, 30, 90
eval_every: 10                # trainer.test_freq
space:                        # study names map to VeRL keys (jfhpo.backends.verl.VERL_KEYS);
  learning_rate: {type: float, low: 1.0e-7, high: 1.0e-5, log: true}   # dotted keys pass as-is
  beta: {type: float, low: 1.0e-4, high: 0.1, log: true}               # kl_loss_coef (+ use_kl_loss)
  clip_ratio_high: {type: float, low: 0.2, high: 0.3}
  entropy_coeff: {type: categorical, choices: [0.0, 0.001]}
fixed:
  rollout_n: 5                # actor_rollout_ref.rollout.n
  train_batch_size: 256       # data.train_batch_size (prompts)
  ppo_mini_batch_size: 64     # prompts per mini-batch (times rollout_n responses)
  max_response_length: 1024
optimizer: {name: jfhpo}
stopping: {}
budget: {seconds: 86400, measure: wall}
workers: 1                    # one VeRL run at a time on this machine
confirm: {top_k: 2}
"""
