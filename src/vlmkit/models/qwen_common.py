"""What the Qwen VL families share: special tokens, the ChatML-style template, pixel settings."""

from __future__ import annotations

from typing import Any, ClassVar

from .base import FamilyAdapter

# Added tokens in Qwen2-VL / Qwen2.5-VL / Qwen3-VL order; with the real vocabulary they start at 151643,
# so <|image_pad|> = 151655 and <|video_pad|> = 151656 exactly as in the released checkpoints.
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
]

# The chat template released with Qwen2-VL-*-Instruct and Qwen2.5-VL-*-Instruct (default system prompt).
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen3-VL's template (tool-calling branches omitted): no default system prompt, text parts of
# list-form system/assistant content rendered, same vision markers.
QWEN3_VL_TEMPLATE = (
    "{%- set image_count = namespace(value=0) %}{%- set video_count = namespace(value=0) %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for content in message['content'] %}"
    "{%- if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{%- set image_count.value = image_count.value + 1 %}{%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}"  # noqa: E501 (template text)
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif content['type'] == 'video' or 'video' in content %}{%- set video_count.value = video_count.value + 1 %}"
    "{%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif 'text' in content %}{{- content['text'] }}{%- endif %}{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)

# Tiny-model resolution: small images stay a handful of vision tokens.
TINY_MIN_PIXELS = 28 * 28 * 4
TINY_MAX_PIXELS = 28 * 28 * 64


class QwenFamily(FamilyAdapter):
    """Shared behaviour of the Qwen VL families (processor pixel bounds, tokenizer specials)."""

    def processor_kwargs(
        self, min_pixels: int | None = None, max_pixels: int | None = None, processor: Any = None
    ) -> dict[str, Any]:
        """`size={"shortest_edge": min_pixels, "longest_edge": max_pixels}` (the processor's own bound fills a
        missing side); images only: a video's pixel budget stays the video processor's."""
        if min_pixels is None and max_pixels is None:
            return {}
        default = dict(getattr(getattr(processor, "image_processor", None), "size", None) or {})
        size = {
            "shortest_edge": int(min_pixels) if min_pixels is not None else default.get("shortest_edge"),
            "longest_edge": int(max_pixels) if max_pixels is not None else default.get("longest_edge"),
        }
        if None in size.values():
            raise ValueError("set both min_pixels and max_pixels for a processor without defaults")
        return {"images_kwargs": {"size": size}}

    def tiny_special_tokens(self) -> list[str]:
        return list(QWEN_SPECIAL_TOKENS)

    # --- packing ---------------------------------------------------------------------------
    rope_model_class: ClassVar[str] = ""  # the transformers class whose get_rope_index computes M-RoPE ids

    def packed_position_ids(self, batch: Any, model_config: Any) -> Any:
        """(4, samples, L): row 0 the plain text positions (transformers reads it to find the packed samples and
        build the block-diagonal mask or the varlen cu_seqlens), rows 1-3 the M-RoPE t/h/w ids that the model's own
        `get_rope_index` computes for each sample alone, image and video grids included."""
        import torch

        text = super().packed_position_ids(batch, model_config)
        rope, _ = _rope_indexer(self.rope_model_class, model_config).get_rope_index(
            **{k: batch[k] for k in _ROPE_INPUTS if batch.get(k) is not None}
        )
        return torch.cat([text[None], rope.to(text.dtype)], dim=0)

    def tiny_tokenizer_kwargs(self) -> dict[str, str]:
        return {"eos": "<|im_end|>", "pad": "<|endoftext|>"}

    def tiny_token_ids(self, tokenizer: Any) -> dict[str, int]:
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
        return {
            "image_token_id": ids["<|image_pad|>"],
            "video_token_id": ids["<|video_pad|>"],
            "vision_start_token_id": ids["<|vision_start|>"],
            "vision_end_token_id": ids["<|vision_end|>"],
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        }


_ROPE_INPUTS = (
    "input_ids",
    "mm_token_type_ids",
    "image_grid_thw",
    "video_grid_thw",
    "second_per_grid_ts",
    "attention_mask",
)


def _rope_indexer(class_name: str, model_config: Any) -> Any:
    """An instance of the model class holding only its config: get_rope_index reads nothing else, so the collator
    (and its dataloader workers) run transformers' own M-RoPE code without holding the model's weights."""
    import transformers
    from torch import nn

    cls = getattr(transformers, class_name)
    shell = cls.__new__(cls)
    nn.Module.__init__(shell)
    shell.config = model_config
    shell.rope_deltas = None
    return shell


def tiny_text_dims(
    vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2
) -> dict[str, Any]:
    return dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
    )


def mrope(head_dim: int, theta: float = 1_000_000.0, **extra: Any) -> dict[str, Any]:
    """Multimodal RoPE parameters: the t/h/w sections must sum to head_dim / 2."""
    half = head_dim // 2
    t = half // 4  # head_dim 128 -> [16, 24, 24], the released Qwen2-VL split
    hw = (half - t) // 2
    return {"rope_type": "default", "rope_theta": theta, "mrope_section": [t, hw, half - t - hw], **extra}
