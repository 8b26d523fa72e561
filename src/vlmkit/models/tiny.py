"""Tiny random-weight checkpoints of every family, built offline for tests and the quickstart.

Each is a real `save_pretrained` folder (config, safetensors, tokenizer, processor, chat template) that the
ordinary `from_pretrained(path)` path loads with HF_HUB_OFFLINE=1; users point the same code at real weights.
Weights are saved in the family's released key layout, so vLLM loads them as well.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .base import TINY_TEXT_HIDDEN
from .interop import write_released_layout
from .registry import get_family


def build_tiny(
    family: str,
    out_dir: str | os.PathLike,
    *,
    vocab: str = "small",
    seed: int = 0,
    corpus: Iterable[str] | None = None,
    text_hidden: int | None = None,
    vision_width: int | None = None,
) -> Path:
    """Build, save and return the folder of a tiny `family` checkpoint.

    vocab: "small" trains a ~1k-token byte-level BPE (fast); "qwen" uses the real Qwen vocabulary so
    special-token ids match the released checkpoints (<|image_pad|> = 151655).
    text_hidden: the language model's width (default 64, head size 16; vLLM's CPU attention needs 128 or more);
    vision_width: the vision tower's.
    """
    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig

    from .tokenizers import build_tokenizer

    adapter = get_family(family)
    tokenizer = build_tokenizer(vocab, adapter.tiny_special_tokens(), corpus=corpus, **adapter.tiny_tokenizer_kwargs())
    ids = adapter.tiny_token_ids(tokenizer)
    config = adapter.tiny_config(adapter.tiny_vocab_size(tokenizer, vocab), ids, text_hidden or TINY_TEXT_HIDDEN)
    if vision_width:
        adapter.widen_tiny_config(config, vision_width)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    processor = adapter.build_processor(tokenizer, config)
    stop_ids = [tokenizer.convert_tokens_to_ids(t) for t in adapter.stop_tokens]
    model.generation_config = GenerationConfig(
        eos_token_id=stop_ids, pad_token_id=ids["pad_token_id"], bos_token_id=ids.get("bos_token_id"), do_sample=False
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    write_released_layout(out, adapter)  # the key layout vLLM loads too
    processor.save_pretrained(out)
    return out
