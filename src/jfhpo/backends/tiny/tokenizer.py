"""A character tokenizer for the arithmetic tasks, built locally (no hub download).

Sixteen symbols: four specials (pad, bos, eos, unk), the ten digits, ``+`` and ``=``. Every
character is one token, so the model sees digits one by one and an answer's length in tokens is
its number of digits. The tokenizer prepends ``<bos>`` itself (a post-processor), because TRL's
GRPOTrainer tokenizes prompt strings with the default ``add_special_tokens=True``; prompts are
therefore plain text like ``"57+68="``. Padding is on the left, as generation needs.

The module imports ``tokenizers``/``transformers`` only inside functions, so importing
``jfhpo.backends.tiny`` stays cheap in the main process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
#: the vocabulary in id order; ids are positions in this tuple
VOCAB: tuple[str, ...] = (PAD, BOS, EOS, UNK, *"0123456789", "+", "=")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
DIGIT_IDS: frozenset[int] = frozenset(range(4, 14))
_CHAR_OF_ID: dict[int, str] = {i: t for i, t in enumerate(VOCAB) if i >= 4}


def encode_text(text: str) -> list[int]:
    """Ids of ``text`` without specials (fast path for SFT data; same result as the tokenizer)."""
    index = {t: i for i, t in enumerate(VOCAB)}
    return [index.get(ch, UNK_ID) for ch in text]


def decode_answer(ids: list[int] | tuple[int, ...]) -> str | None:
    """The digits a completion emitted before its first ``<eos>``; None when it never ended or
    emitted anything but digits before ending (a malformed answer is simply wrong)."""
    out: list[str] = []
    for i in ids:
        if i == EOS_ID:
            return "".join(out)
        if i not in DIGIT_IDS:
            return None
        out.append(_CHAR_OF_ID[i])
    return None


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Build the character tokenizer as a ``PreTrainedTokenizerFast`` (saveable with
    ``save_pretrained`` and loadable with ``AutoTokenizer.from_pretrained``)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({t: i for i, t in enumerate(VOCAB)}, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, BOS_ID)]
    )
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="left",
        model_max_length=64,
    )
