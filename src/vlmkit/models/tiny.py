"""Tiny random-weight checkpoints of every family, built offline for tests and the quickstart.

Each is a real `save_pretrained` folder (config, safetensors, tokenizer, processor, chat template) that the
ordinary `from_pretrained(path)` path loads with HF_HUB_OFFLINE=1; users point the same code at real weights.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

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
    """
    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig

    from .tokenizers import build_tokenizer

    adapter = get_family(family)
    tokenizer = build_tokenizer(vocab, adapter.tiny_special_tokens(), corpus=corpus, **adapter.tiny_tokenizer_kwargs())
    ids = adapter.tiny_token_ids(tokenizer)
    vocab_size = 151936 if vocab == "qwen" and family.startswith("qwen") else _round_up(len(tokenizer), 64)
    config = adapter.tiny_config(vocab_size, ids)
    if text_hidden:
        _set_text_hidden(config, text_hidden)
    if vision_width:
        _set_vision_width(config, vision_width)
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
    processor.save_pretrained(out)
    return out


def _round_up(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


def _set_text_hidden(config, hidden: int) -> None:
    from .qwen_common import mrope

    text = config.get_text_config()
    text.hidden_size = hidden
    text.intermediate_size = hidden * 2
    head_dim = hidden // text.num_attention_heads
    if getattr(text, "head_dim", None):
        text.head_dim = head_dim
    rope = dict(getattr(text, "rope_parameters", None) or {})
    if "mrope_section" in rope:  # M-RoPE sections must sum to head_dim / 2
        text.rope_parameters = {**rope, "mrope_section": mrope(head_dim)["mrope_section"]}
    # The vision projector's output must match the new language-model width.
    vision = getattr(config, "vision_config", None)
    if vision is not None and hasattr(vision, "out_hidden_size"):
        vision.out_hidden_size = hidden
    elif vision is not None and config.model_type == "qwen2_vl":
        vision.hidden_size = hidden  # Qwen2-VL names the merger output hidden_size (width is embed_dim)


def _set_vision_width(config, width: int) -> None:
    vision = config.vision_config
    if config.model_type == "qwen2_vl":
        vision.embed_dim = width
    else:
        vision.hidden_size = width
        if hasattr(vision, "intermediate_size"):
            vision.intermediate_size = width * 2
