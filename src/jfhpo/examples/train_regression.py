"""A plain PyTorch training script, tunable by jfhpo's ``command`` backend.

It knows nothing of jfhpo: it takes its hyperparameters as ``--name value`` flags, writes one
JSON line per step (VeRL's file-logger shape ``{"step": N, "data": {...}}``) to ``--metrics``,
saves a checkpoint folder ``global_step_N`` under ``--save-dir`` every ``--save-every`` steps
and at ``--end-step`` (always before it logs that step), and continues from ``--resume PATH``.

The task: fit y = sin(3 x1) + x2^2 - x1 x2 + noise with an MLP of ``--width`` hidden units.
Training batches come from a generator seeded by (seed, step), and the cosine learning-rate
schedule spans ``--total-steps``, so 0 -> 40 and 0 -> 20 -> 40 (resumed in another process)
give the same weights.

    python -m jfhpo.examples.train_regression --end-step 50 --total-steps 100 \\
        --save-dir ckpt --metrics metrics.jsonl --learning_rate 0.05
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence

import torch


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--total-steps", type=int, required=True, help="length of the LR schedule")
    p.add_argument("--end-step", type=int, required=True, help="stop after this step")
    p.add_argument("--save-dir", required=True)
    p.add_argument("--save-every", type=int, default=10)
    p.add_argument("--resume", default="", help="a global_step_N folder to continue from")
    p.add_argument("--metrics", required=True, help="JSONL file to append metrics to")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=32, help="hidden units (the model size)")
    p.add_argument("--learning_rate", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight_decay", type=float, default=0.0)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--warmup_steps", type=int, default=0)
    p.add_argument("--max_grad_norm", type=float, default=1.0)
    return p.parse_args(argv)


def data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g) * 4 - 2
    y = torch.sin(3 * x[:, 0]) + x[:, 1] ** 2 - x[:, 0] * x[:, 1]
    return x, (y + 0.1 * torch.randn(n, generator=g)).unsqueeze(1)


def lr_at(step: int, a: argparse.Namespace) -> float:
    """Linear warmup, then cosine decay to 0 over the whole ``--total-steps``."""
    if step < a.warmup_steps:
        return a.learning_rate * (step + 1) / a.warmup_steps
    frac = (step - a.warmup_steps) / max(1, a.total_steps - a.warmup_steps)
    return a.learning_rate * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def main(argv: Sequence[str] | None = None) -> int:
    a = parse(argv)
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, a.width), torch.nn.Tanh(),
        torch.nn.Linear(a.width, a.width), torch.nn.Tanh(),
        torch.nn.Linear(a.width, 1))
    opt = torch.optim.SGD(model.parameters(), lr=a.learning_rate, momentum=a.momentum,
                          weight_decay=a.weight_decay)
    step = 0
    if a.resume:
        state = torch.load(os.path.join(a.resume, "state.pt"))
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
    x_train, y_train = data(4096, 0)
    x_val, y_val = data(1024, 1)
    os.makedirs(a.save_dir, exist_ok=True)
    with open(a.metrics, "a") as log:
        while step < a.end_step:
            g = torch.Generator().manual_seed(a.seed * 1_000_003 + step)
            idx = torch.randint(0, len(x_train), (a.batch_size,), generator=g)
            lr = lr_at(step, a)
            for group in opt.param_groups:
                group["lr"] = lr
            loss = torch.nn.functional.mse_loss(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), a.max_grad_norm))
            opt.step()
            step += 1
            if step % a.save_every == 0 or step == a.end_step:
                folder = os.path.join(a.save_dir, f"global_step_{step}")
                os.makedirs(folder, exist_ok=True)
                tmp = os.path.join(folder, "state.pt.tmp")
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                            "step": step}, tmp)
                os.replace(tmp, os.path.join(folder, "state.pt"))
            with torch.no_grad():
                eval_loss = float(torch.nn.functional.mse_loss(model(x_val), y_val))
            row = {"loss": float(loss), "grad_norm": grad_norm, "lr": lr, "eval_loss": eval_loss}
            log.write(json.dumps({"step": step, "data": row}) + "\n")
            log.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
