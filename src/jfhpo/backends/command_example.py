"""The example study of the ``command`` backend (text of a commented YAML study file)."""

from __future__ import annotations

EXAMPLE_STUDY = """\
# jfhpo study: tune any training command. This one runs a plain PyTorch script shipped with
# jfhpo (python -m jfhpo.examples.train_regression; read it to see what a trainer must do:
# take its hyperparameters on the command line, log one JSON line per step, save checkpoint
# folders, resume from one). It runs on a CPU in about a minute.
name: regression-command
seed: 0
backend:
  name: command
  options:
    # the command as an argument list; {placeholders} are filled per segment:
    # {start_step} {end_step} {max_steps} {checkpoint_dir} {resume_path} {metrics_file} {seed}
    # {gpus} {n_gpus} {model} {build[KEY]} {run_id} {segment_id} {log_dir} {python}
    command: ["{python}", "-m", "jfhpo.examples.train_regression",
              "--total-steps", "{max_steps}", "--end-step", "{end_step}",
              "--save-dir", "{checkpoint_dir}", "--save-every", "20",
              "--metrics", "{metrics_file}", "--seed", "{seed}", "--width", "{build[width]}"]
    resume_args: ["--resume", "{resume_path}"]   # added only when a segment resumes
    params: flags             # hyperparameters as --name value (or: hydra key=value, env)
    metrics_format: verl      # lines {"step": N, "data": {...}} (or: flat {"step": N, ...})
    metric_map: {}            # canonical name -> the trainer's name; `verl` or `trl` for theirs
    checkpoint_pattern: "global_step_{step}"   # folders the trainer saves under {checkpoint_dir}
    checkpoint_every: 20      # the trainer's save interval: runs are extended from saved steps
    timeout: 120              # seconds a segment may run
    grace: 5                  # seconds between SIGTERM and SIGKILL when a segment is stopped
objective: {metric: eval_loss, mode: min}
models:                       # the model ladder: MLP widths, the target last
  - {name: w8, params: 105, cost: 1.0, build: {width: 8}}
  - {name: w32, params: 1185, cost: 1.1, build: {width: 32}}
  - {name: w128, params: 17025, cost: 1.5, build: {width: 128}}
steps: {min: 20, max: 180, eta: 3}   # step budgets 20, 60, 180
space:                        # names as the script's flags
  learning_rate: {type: float, low: 1.0e-3, high: 0.3, log: true}
  momentum: {type: float, low: 0.0, high: 0.95}
  batch_size: {type: categorical, choices: [16, 64]}
fixed: {weight_decay: 0.0}    # passed to the command as well, not searched
optimizer: {name: jfhpo}
stopping: {}
budget: {seconds: 60}         # compute-seconds (the sum of segment wall times)
workers: 2
confirm: {top_k: 2}
"""
