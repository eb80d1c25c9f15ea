"""The example study of the ``trl`` backend (text of a commented YAML study file)."""

from __future__ import annotations

EXAMPLE_STUDY = """\
# jfhpo study: GRPO with TRL on your own ladder of local Hugging Face model folders.
# To try it as is, first write a small example project next to this file (three small Qwen2
# models built from configs, a jsonl dataset, a reward module; nothing is downloaded):
#     python -m jfhpo.examples.trl_project .
# then: jfhpo run trl.yaml   (CPU fp32 here; bf16 on CUDA when a GPU is present)
name: trl-grpo-add
seed: 0
backend:
  name: trl
  options:
    dataset:                  # jsonl, json, parquet, csv, or a save_to_disk folder
      path: data/add.jsonl
      prompt_column: prompt   # other columns (here: answer) reach the reward functions
      eval_size: 32           # held-out rows scored at every evaluation (or eval_path: FILE)
    rewards:                  # module:function with TRL's signature, from your project
      - user_rewards:correct
      - {function: user_rewards:short, weight: 0.1}
    eval_metric: user_rewards:exact_match   # reported as eval_exact_match (eval_reward always)
    # evaluation: {greedy: true, temperature: 1.0}   # also score greedy completions (eval_greedy_*)
    paths: ["."]              # where the reward module is imported from
    timeout: 900              # seconds a segment may run
objective: {metric: eval_reward, mode: max}   # the weighted mean reward on the held-out rows
models:                       # local model folders (tokenizer beside), smallest first
  - {name: s, params: 2896, cost: 1.0, build: {model: models/s}}
  - {name: m, params: 11352, cost: 1.2, build: {model: models/m}}
  - {name: l, params: 19744, cost: 1.4, build: {model: models/l}}
  # a rung on several GPUs runs under `accelerate launch`: add resources: {gpus: 4}
steps: {min: 2, max: 18, eta: 3}   # step budgets 2, 6, 18
eval_every: 0                 # evaluate at segment ends only (k: also every k steps)
space:                        # GRPOConfig field names
  learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
  beta: {type: float, low: 1.0e-4, high: 0.1, log: true}
fixed:                        # GRPOConfig fields passed to every run, not searched
  num_generations: 4
  per_device_train_batch_size: 8
  max_completion_length: 4
  temperature: 1.0
optimizer: {name: jfhpo}
stopping: {}
budget: {seconds: 600}        # compute-seconds (sum of segment wall times)
workers: 2
confirm: {top_k: 1}
"""
