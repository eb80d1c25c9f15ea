"""The model ladder of the tiny workload: Qwen2-architecture causal LMs of named sizes.

Every rung is the same family (Qwen2 blocks: RMSNorm, rotary attention with grouped KV heads,
SwiGLU MLP), so the ladder varies only width and depth, as a real proxy ladder does. Models are
built from a config with random weights (no hub download) and saved as ordinary HF model folders
with the tokenizer, so TRL can load them by path (it needs a path for the KL reference model).

A study's ``build`` mapping picks a size by name (``{size: 50k}``) or gives explicit dims
(``{hidden: 48, layers: 3, heads: 4, kv_heads: 2, intermediate: 144}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from jfhpo.backends.base import BackendError
from jfhpo.backends.tiny.tokenizer import BOS_ID, EOS_ID, PAD_ID, VOCAB

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

#: longest sequence any task needs (prompt + answer + eos) with room to spare
MAX_POSITIONS = 64


@dataclass(frozen=True)
class ModelDims:
    """Shape of one Qwen2 model. ``hidden`` must be divisible by ``heads``, and ``heads`` by
    ``kv_heads`` (grouped-query attention)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int

    def check(self) -> None:
        for k, v in asdict(self).items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise BackendError(f"model build: '{k}' must be a positive integer, got {v!r}")
        if self.hidden % self.heads:
            raise BackendError(
                f"model build: hidden ({self.hidden}) must be divisible by heads ({self.heads})"
            )
        if self.heads % self.kv_heads:
            raise BackendError(
                f"model build: heads ({self.heads}) must be divisible by kv_heads ({self.kv_heads})"
            )

    def key(self) -> dict[str, int]:
        return asdict(self)


#: named sizes; the names are the rounded parameter counts (``param_count`` gives the true ones)
SIZES: dict[str, ModelDims] = {
    "10k": ModelDims(hidden=20, layers=2, heads=2, kv_heads=1, intermediate=60),
    "50k": ModelDims(hidden=32, layers=4, heads=4, kv_heads=2, intermediate=96),
    "200k": ModelDims(hidden=64, layers=4, heads=4, kv_heads=2, intermediate=192),
    "1m": ModelDims(hidden=128, layers=5, heads=4, kv_heads=2, intermediate=384),
    "4m": ModelDims(hidden=256, layers=5, heads=8, kv_heads=4, intermediate=768),
}

_DIM_KEYS = ("hidden", "layers", "heads", "kv_heads", "intermediate")


def dims_from_build(build: Mapping[str, Any]) -> ModelDims:
    """The dims a rung's ``build`` mapping asks for; raises BackendError naming valid choices."""
    known = {"size", *_DIM_KEYS}
    unknown = sorted(set(build) - known)
    if unknown:
        raise BackendError(f"model build: unknown key(s) {unknown}; valid keys: {sorted(known)}")
    if "size" in build:
        extra = [k for k in _DIM_KEYS if k in build]
        if extra:
            raise BackendError(f"model build: give either 'size' or explicit dims, not both ({extra})")
        size = str(build["size"]).lower()
        if size not in SIZES:
            raise BackendError(f"unknown tiny model size '{build['size']}'; valid sizes: {list(SIZES)}")
        return SIZES[size]
    missing = [k for k in _DIM_KEYS if k not in build]
    if missing:
        raise BackendError(
            f"model build: give 'size' (one of {list(SIZES)}) or all of {list(_DIM_KEYS)}; "
            f"missing {missing}"
        )
    dims = ModelDims(**{k: build[k] for k in _DIM_KEYS})
    dims.check()
    return dims


def size_label(build: Mapping[str, Any]) -> str:
    """A short label for file names and messages: the size name, or the dims joined."""
    if "size" in build:
        return str(build["size"]).lower()
    d = dims_from_build(build)
    return f"h{d.hidden}l{d.layers}a{d.heads}kv{d.kv_heads}i{d.intermediate}"


def qwen2_config(dims: ModelDims) -> PretrainedConfig:
    """The Qwen2 config for ``dims`` over the character vocabulary (untied embeddings, no dropout)."""
    from transformers import Qwen2Config

    dims.check()
    return Qwen2Config(
        vocab_size=len(VOCAB),
        hidden_size=dims.hidden,
        num_hidden_layers=dims.layers,
        num_attention_heads=dims.heads,
        num_key_value_heads=dims.kv_heads,
        intermediate_size=dims.intermediate,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
        use_cache=True,
    )


def build_model(dims: ModelDims, seed: int) -> PreTrainedModel:
    """A randomly initialised model (float32) whose weights depend only on ``seed``."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(qwen2_config(dims), dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID, do_sample=False
    )
    return model


def param_count(dims: ModelDims) -> int:
    """The true number of parameters of a model of ``dims`` (built on the meta device: no memory,
    milliseconds)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(qwen2_config(dims))
    return int(sum(p.numel() for p in model.parameters()))


def ladder_params() -> dict[str, int]:
    """True parameter counts of every named size (the numbers behind the example study)."""
    return {name: param_count(d) for name, d in SIZES.items()}
