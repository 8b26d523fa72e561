"""What the Qwen VL families share: special tokens, the ChatML-style template, pixel settings, and the media
token rule (dynamic resolution: an image is resized to multiples of patch x merge within the processor's
pixel bounds, and costs (h / patch) * (w / patch) / merge^2 tokens; a video costs that per pair of frames)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

from .base import FamilyAdapter, MediaTokens

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

    # --- media contract ------------------------------------------------------------------------
    def image_tokens(self, processor: Any, width: int, height: int, media: Any = None) -> MediaTokens:
        """transformers' own resize rule (the image processor's `get_number_of_image_patches`, which vLLM
        relies on too) under the same size bounds `processor_kwargs` passes the processor."""
        image_processor = processor.image_processor
        bounds = self.processor_kwargs(
            getattr(media, "min_pixels", None), getattr(media, "max_pixels", None), processor
        ).get("images_kwargs", {})
        patches = image_processor.get_number_of_image_patches(height, width, bounds)
        features = patches // image_processor.merge_size**2
        return MediaTokens(features, features)

    def video_tokens(
        self, processor: Any, frame_indices: Sequence[int], fps: float, width: int, height: int
    ) -> MediaTokens:
        """Each frame resized by the image rule within the video processor's own bounds; frames grouped in
        temporal patches (a short or odd clip padded by repeating its last frame)."""
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        video_processor = processor.video_processor
        patch, merge, temporal = (
            video_processor.patch_size,
            video_processor.merge_size,
            video_processor.temporal_patch_size,
        )
        size = video_processor.size
        resized_h, resized_w = smart_resize(
            height, width, factor=patch * merge, min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"]
        )
        steps = math.ceil(max(len(frame_indices), temporal) / temporal)
        features = steps * (resized_h // patch) * (resized_w // patch) // merge**2
        return MediaTokens(features, features)

    def batch_features(self, batch: Any, kind: str, processor: Any) -> list[int] | None:
        """t * h * w / merge^2 per item, from the processor's `image_grid_thw` / `video_grid_thw`."""
        grid = batch.get(f"{kind}_grid_thw") if hasattr(batch, "get") else None
        if grid is None:
            return None
        merge = getattr(processor, f"{kind}_processor").merge_size
        return (grid.prod(-1) // merge**2).tolist()

    # --- tiny checkpoints -----------------------------------------------------------------------
    def tiny_special_tokens(self) -> list[str]:
        return list(QWEN_SPECIAL_TOKENS)

    def tiny_vocab_size(self, tokenizer: Any, vocab: str) -> int:
        """The released checkpoints' 151,936 rows with the real vocabulary, so ids and shapes match them."""
        return 151936 if vocab == "qwen" else super().tiny_vocab_size(tokenizer, vocab)

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


def mrope(head_dim: int, theta: float = 1_000_000.0, **extra: Any) -> dict[str, Any]:
    """Multimodal RoPE parameters: the t/h/w sections must sum to head_dim / 2."""
    half = head_dim // 2
    t = half // 4  # head_dim 128 -> [16, 24, 24], the released Qwen2-VL split
    hw = (half - t) // 2
    return {"rope_type": "default", "rope_theta": theta, "mrope_section": [t, hw, half - t - hw], **extra}


def text_token_ids(ids: dict[str, int]) -> dict[str, int]:
    """The language model's bos/eos/pad ids (its text_config)."""
    return {k: ids[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")}


def vision_token_ids(ids: dict[str, int]) -> dict[str, int]:
    """The media token ids the top-level config carries."""
    return {k: ids[k] for k in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")}


# Where the parts of every Qwen VL model live, and its media / end-of-turn tokens.
QWEN_LAYOUT = dict(
    vision_prefixes=("model.visual.",),
    projector_prefixes=("model.visual.merger.",),
    language_prefixes=("model.language_model.", "lm_head."),
    language_module_path="language_model",
    image_token="<|image_pad|>",
    video_token="<|video_pad|>",
    stop_tokens=("<|im_end|>", "<|endoftext|>"),
)
