"""Warm-start base models: a short SFT per (size, task, seed, recipe), cached on disk.

Why SFT: a randomly initialised model never answers correctly, so GRPO's rewards are all zero and
there is no gradient. Why a *carry-less* mix: SFT on correct sums alone makes models that are
either right or hopelessly wrong, and GRPO then gains little. Half of the demonstrations answer with
the digit-wise sum without carries (57+68 -> "15"); the model learns both modes, and sampling then
produces correct and carry-less answers for the same prompt, which is exactly the within-group
reward variance GRPO learns from (it must learn to prefer carrying).

The cache entry for a base model lives under ``<cache_dir>/tiny/base/<label>-<task>-<key>`` where
``key`` hashes everything that determines the weights (dims, task, split sizes, seed, SFT recipe,
library versions). It is built in a temporary folder and renamed into place, and carries a
``manifest.json`` written last with the size and SHA-256 of every file; an entry whose manifest is
missing, whose key differs or whose files do not match is rebuilt. A file lock makes concurrent
workers build an entry once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from jfhpo.backends.base import BackendError, Progress
from jfhpo.backends.tiny.models import ModelDims, build_model, size_label
from jfhpo.backends.tiny.tasks import ArithmeticTask, Splits
from jfhpo.backends.tiny.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, VOCAB, build_tokenizer

MANIFEST = "manifest.json"
#: bump when the SFT code changes in a way that changes weights (invalidates old cache entries)
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SftRecipe:
    """The warm-start SFT. ``steps``, ``lr`` and ``batch_size`` of 0 mean "the default for this
    model width" (``_DEFAULTS_BY_WIDTH``)."""

    steps: int = 0
    lr: float = 0.0
    batch_size: int = 0
    carryless_frac: float = 0.5
    warmup_frac: float = 0.05
    weight_decay: float = 0.0

    def resolved(self, dims: ModelDims) -> SftRecipe:
        """Fill width-dependent defaults: wider models take a lower LR and fewer, smaller
        batches (they learn more per example, and each example costs more)."""
        steps, lr, batch = _DEFAULTS_BY_WIDTH[-1][1:]
        for width, s, r, b in _DEFAULTS_BY_WIDTH:
            if dims.hidden <= width:
                steps, lr, batch = s, r, b
                break
        return replace(
            self,
            steps=self.steps or steps,
            lr=self.lr or lr,
            batch_size=self.batch_size or batch,
        )


#: (max hidden width, SFT steps, peak LR, batch), measured in bench/tiny_workload (see docs)
_DEFAULTS_BY_WIDTH: tuple[tuple[int, int, float, int], ...] = (
    (24, 800, 5e-3, 128),
    (32, 1000, 3e-3, 128),
    (64, 500, 3e-3, 128),
    (128, 400, 1e-3, 128),
    (10**9, 600, 1e-3, 32),
)


def sft_recipe_from_options(options: Mapping[str, Any]) -> SftRecipe:
    """The SFT recipe a study's ``backend.options.sft`` mapping asks for (keys of SftRecipe)."""
    raw = options.get("sft") or {}
    if not isinstance(raw, Mapping):
        raise BackendError("backend.options.sft: expected a mapping of SFT settings")
    valid = set(asdict(SftRecipe()))
    unknown = sorted(set(raw) - valid)
    if unknown:
        raise BackendError(f"backend.options.sft: unknown key(s) {unknown}; valid: {sorted(valid)}")
    recipe = SftRecipe(**dict(raw))
    if not 0.0 <= recipe.carryless_frac <= 1.0:
        raise BackendError("backend.options.sft.carryless_frac: must be in [0, 1]")
    if recipe.steps < 0 or recipe.lr < 0 or recipe.batch_size < 0:
        raise BackendError(
            "backend.options.sft: steps, lr and batch_size must be >= 0 (0: the default)"
        )
    return recipe


@dataclass(frozen=True)
class BaseModelSpec:
    """Everything that determines a base model's weights."""

    label: str
    dims: ModelDims
    task: ArithmeticTask
    data_seed: int
    n_validation: int
    n_test: int
    seed: int
    sft: SftRecipe

    def key(self) -> str:
        from importlib.metadata import version

        blob = json.dumps(
            {
                "format": FORMAT_VERSION,
                "dims": self.dims.key(),
                "task": asdict(self.task),
                "data": [self.data_seed, self.n_validation, self.n_test],
                "seed": self.seed,
                "sft": asdict(self.sft.resolved(self.dims)),
                "torch": version("torch").split("+")[0],
                "transformers": version("transformers"),
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def folder(self, cache_dir: str) -> str:
        return os.path.join(cache_dir, "tiny", "base", f"{self.label}-{self.task.name}-{self.key()}")


def sft_train(spec: BaseModelSpec, splits: Splits) -> Any:
    """Train the warm start and return the model (float32, in train mode)."""
    import torch

    recipe = spec.sft.resolved(spec.dims)
    task = spec.task
    model = build_model(spec.dims, seed=spec.seed)
    model.train()
    pool = splits.train
    prompt_len = 1 + len(task.prompt(pool[0]))
    width = prompt_len + task.answer_digits + 1

    def rows(answer_of: Any) -> torch.Tensor:
        texts = [task.prompt(ops) + answer_of(ops) for ops in pool]
        return torch.from_numpy(sequences_to_ids(texts, width))

    right = rows(task.answer)
    wrong = rows(task.carryless)
    gen = torch.Generator().manual_seed(spec.seed + 101)
    opt = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, betas=(0.9, 0.98), weight_decay=recipe.weight_decay
    )
    warm = max(1, int(recipe.warmup_frac * recipe.steps))

    def lr_at(step: int) -> float:  # linear warmup, cosine decay to 10 %
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, recipe.steps - warm)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    for _ in range(recipe.steps):
        idx = torch.randint(len(pool), (recipe.batch_size,), generator=gen)
        flip = torch.rand(recipe.batch_size, generator=gen) < recipe.carryless_frac
        batch = torch.where(flip[:, None], wrong[idx], right[idx])
        inputs, targets = batch[:, :-1], batch[:, 1:].clone()
        targets[:, : prompt_len - 1] = -100
        targets[targets == PAD_ID] = -100
        logits = model(input_ids=inputs).logits
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    return model


def sequences_to_ids(texts: list[str], width: int) -> Any:
    """``[bos] + text + [eos]`` for each text, right-padded to ``width`` ids (a numpy int64
    array). Vectorised through a byte lookup table: SFT data for 50k problems in milliseconds."""
    import numpy as np

    table = np.full(256, UNK_ID, dtype=np.int64)
    for i, tok in enumerate(VOCAB):
        if len(tok) == 1:
            table[ord(tok)] = i
    table[ord("$")] = EOS_ID
    table[ord("#")] = PAD_ID
    body = "".join((t + "$").ljust(width - 1, "#") for t in texts).encode("ascii")
    ids = table[np.frombuffer(body, dtype=np.uint8)].reshape(len(texts), width - 1)
    return np.concatenate([np.full((len(texts), 1), BOS_ID, dtype=np.int64), ids], axis=1)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _file_table(folder: str) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name != MANIFEST and os.path.isfile(path):
            table[name] = {"bytes": os.path.getsize(path), "sha256": _sha256(path)}
    return table


def read_manifest(folder: str, key: str) -> dict[str, Any] | None:
    """The manifest of a complete, intact entry; None when the entry is missing or damaged
    (no manifest, another key, a listed file missing or changed, or no weights file)."""
    try:
        with open(os.path.join(folder, MANIFEST)) as f:
            manifest = json.load(f)
        if not isinstance(manifest, dict) or manifest.get("key") != key:
            return None
        files = manifest["files"]
        if "model.safetensors" not in files or "config.json" not in files:
            return None
        for name, meta in files.items():
            path = os.path.join(folder, name)
            if os.path.getsize(path) != meta["bytes"] or _sha256(path) != meta["sha256"]:
                return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _lock(path: str) -> Iterator[None]:
    """An exclusive inter-process lock on ``path`` (POSIX flock; no lock where unavailable)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - non-POSIX
            pass
        yield


def ensure_base_model(
    spec: BaseModelSpec, splits: Splits, cache_dir: str, progress: Progress | None = None
) -> tuple[str, dict[str, Any]]:
    """Path and manifest of the base model for ``spec``, training and caching it when absent or
    damaged. Safe to call from several processes at once (one builds, the others wait)."""
    from jfhpo.backends.tiny.evaluation import accuracy

    say = progress or (lambda _msg: None)
    if not cache_dir:
        raise BackendError("the tiny backend needs a cache directory for its base models")
    key = spec.key()
    final = spec.folder(cache_dir)
    manifest = read_manifest(final, key)
    if manifest is not None:
        return final, manifest
    with _lock(final + ".lock"):
        manifest = read_manifest(final, key)  # another process may have built it meanwhile
        if manifest is not None:
            return final, manifest
        if os.path.exists(final):
            say(f"base model {spec.label}/{spec.task.name}: cache entry damaged, rebuilding")
            trash = tempfile.mkdtemp(prefix=".trash-", dir=os.path.dirname(final))
            os.replace(final, os.path.join(trash, "old"))
            shutil.rmtree(trash, ignore_errors=True)
        recipe = spec.sft.resolved(spec.dims)
        say(f"base model {spec.label}/{spec.task.name}: SFT warm start ({recipe.steps} steps)")
        t0, c0 = time.perf_counter(), time.process_time()
        model = sft_train(spec, splits)
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
        greedy = accuracy(model, spec.task, splits.validation, sample=False)
        sampled = accuracy(model, spec.task, splits.validation, sample=True)
        tmp = tempfile.mkdtemp(prefix=".tmp-", dir=os.path.dirname(final))
        try:
            model.save_pretrained(tmp)
            build_tokenizer().save_pretrained(tmp)
            manifest = {
                "key": key,
                "label": spec.label,
                "task": spec.task.name,
                "dims": spec.dims.key(),
                "seed": spec.seed,
                "sft": asdict(recipe),
                "sft_seconds": round(seconds, 2),
                "sft_cpu_seconds": round(cpu_seconds, 2),
                "params": int(sum(p.numel() for p in model.parameters())),
                "greedy_accuracy": greedy,
                "sampled_accuracy": sampled,
                "files": _file_table(tmp),
            }
            with open(os.path.join(tmp, MANIFEST), "w") as f:
                json.dump(manifest, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        say(
            f"base model {spec.label}/{spec.task.name}: ready in {seconds:.0f} s, "
            f"greedy accuracy {greedy:.0%}, sampled {sampled:.0%}"
        )
        return final, manifest


def spec_for(
    build: Mapping[str, Any],
    dims: ModelDims,
    task: ArithmeticTask,
    options: Mapping[str, Any],
) -> BaseModelSpec:
    """The base-model spec of a ladder rung under the backend's options."""
    return BaseModelSpec(
        label=size_label(build),
        dims=dims,
        task=task,
        data_seed=int(options.get("data_seed", 0)),
        n_validation=int(options.get("eval_problems", 500)),
        n_test=int(options.get("test_problems", 1000)),
        seed=int(options.get("base_seed", 0)),
        sft=sft_recipe_from_options(options),
    )
