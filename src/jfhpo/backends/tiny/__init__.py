"""The built-in tiny LLM-RL workload (backend name ``tiny``).

Real causal LMs (Qwen2 architecture, 10k to 4M parameters) trained with TRL's GRPOTrainer on a
verifiable arithmetic task, small enough to tune on a laptop CPU in minutes. Importing this
package registers the backend and imports neither torch nor transformers nor TRL; those load
lazily inside the worker that trains.
"""

from __future__ import annotations

from jfhpo.backends.tiny.grpo import TinyGRPOBackend
from jfhpo.backends.tiny.hparams import RECIPE

__all__ = ["RECIPE", "TinyGRPOBackend"]
