"""The example study of the tiny workload (text of a commented YAML study file).

The numbers in it are measured, not guessed: ``params`` are the true parameter counts of the
named sizes (``models.ladder_params()``), ``cost`` the measured seconds per GRPO step relative to
the 50k model (``bench/tiny_workload/results/timing.md``).
"""

from __future__ import annotations

EXAMPLE_STUDY = """\
# jfhpo study: GRPO on the built-in tiny workload (2-digit addition, Qwen2 models 50k..4M).
# Runs on a laptop CPU: base models are prepared once (about 2 minutes, cached), then the
# search spends `budget.seconds` of compute on the proxies and confirms the best on the target.
name: tiny-add2
seed: 0
backend:
  name: tiny
  options:
    task: add2              # add2 | add3 | add2x3
    eval_problems: 500      # held-out problems scored at every evaluation
objective: {metric: eval_accuracy, mode: max}   # sampled (T=1) held-out accuracy
models:                     # smallest proxy first, the target last
  # params: true parameter counts; cost: measured CPU seconds per GRPO step relative to 50k
  # (0.085 s/step at 50k, 0.83 s/step at 4m; bench/tiny_workload/results/timing.md)
  - {name: 50k, params: 50720, cost: 1.0, build: {size: 50k}}
  - {name: 200k, params: 199744, cost: 1.4, build: {size: 200k}}
  - {name: 1m, params: 989824, cost: 3.4, build: {size: 1m}}
  - {name: 4m, params: 3945728, cost: 10.0, build: {size: 4m}}
steps: {min: 10, max: 90, eta: 3}   # RL step budgets: 10, 30, 90
eval_every: 0               # evaluate only at segment ends
space:                      # names are TRL GRPOConfig's
  learning_rate: {type: float, low: 1.0e-5, high: 3.0e-3, log: true}
  beta: {type: float, low: 1.0e-4, high: 0.1, log: true}
  loss_type: {type: categorical, choices: [dapo, grpo]}
fixed: {temperature: 1.0}   # passed to the backend, not searched; the rest comes from the recipe
optimizer: {name: jfhpo}
stopping: {}                # default rules
budget: {seconds: 480}      # compute-seconds (sum of segment costs): about 4 minutes on 2 workers
workers: 2
threads_per_worker: 1
confirm: {top_k: 2}
"""
