"""A small GRPO project on disk for the ``trl`` example study and the trl-backend tests.

``python -m jfhpo.examples.trl_project DIR`` writes what a user of the trl backend brings, built
locally (nothing is downloaded): three small Qwen2 models saved with ``save_pretrained``
(random weights, one folder each, the tokenizer saved beside), a jsonl dataset of one-digit
addition prompts with an ``answer`` column, and a reward module ``user_rewards.py`` in DIR
(outside the jfhpo package). ``jfhpo init --workload trl`` writes a study that uses it.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

#: (name, hidden, layers, heads, kv_heads, intermediate) of the ladder
LADDER = (("s", 16, 1, 2, 1, 32), ("m", 24, 2, 2, 1, 48), ("l", 32, 2, 4, 2, 64))

REWARDS = '''
"""The user's reward functions (TRL's signature: lists in, one float per completion out)."""


def correct(prompts, completions, answer, **kwargs):
    return [1.0 if c.strip() == str(a) else 0.0 for c, a in zip(completions, answer)]


def short(prompts, completions, **kwargs):
    return [1.0 / (1.0 + len(c)) for c in completions]


def exact_match(prompts, completions, answer, **kwargs):
    hits = [c.strip() == str(a) for c, a in zip(completions, answer)]
    return sum(hits) / len(hits)
'''


def build_project(root: Path) -> dict[str, Any]:
    """Write models, data and rewards under ``root``; returns paths and parameter counts."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config
    from transformers.utils import logging as hf_logging

    from jfhpo.backends.tiny.tokenizer import BOS_ID, EOS_ID, PAD_ID, VOCAB, build_tokenizer

    hf_logging.disable_progress_bar()
    tok = build_tokenizer()
    models: dict[str, tuple[str, int]] = {}
    for name, hidden, layers, heads, kv, inter in LADDER:
        cfg = Qwen2Config(vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=layers,
                          num_attention_heads=heads, num_key_value_heads=kv,
                          intermediate_size=inter, max_position_embeddings=64,
                          tie_word_embeddings=False, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
                          pad_token_id=PAD_ID)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        model.generation_config = GenerationConfig(bos_token_id=BOS_ID, eos_token_id=EOS_ID,
                                                   pad_token_id=PAD_ID)
        folder = root / "models" / name
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        models[name] = (str(folder), int(sum(p.numel() for p in model.parameters())))
    rng = random.Random(0)
    data = root / "data" / "add.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    with open(data, "w") as f:
        for _ in range(300):
            a, b = rng.randrange(10), rng.randrange(10)
            f.write(json.dumps({"prompt": f"{a}+{b}=", "answer": str(a + b)}) + "\n")
    (root / "user_rewards.py").write_text(REWARDS)
    return {"models": models, "data": str(data), "project": str(root)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0] if args else ".")
    root.mkdir(parents=True, exist_ok=True)
    made = build_project(root)
    for name, (path, params) in made["models"].items():
        print(f"model {name}: {path} ({params} parameters)")
    print(f"data: {made['data']}\nrewards: {root / 'user_rewards.py'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
