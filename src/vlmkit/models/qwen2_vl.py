"""Qwen2-VL (e.g. Qwen/Qwen2-VL-2B-Instruct): ViT with a patch merger, Qwen2 language model, M-RoPE."""

from __future__ import annotations

from typing import Any

from .base import TINY_TEXT_HIDDEN, tiny_text_dims
from .qwen_common import (
    QWEN2_VL_TEMPLATE,
    QWEN_LAYOUT,
    TINY_MAX_PIXELS,
    TINY_MIN_PIXELS,
    QwenFamily,
    mrope,
    text_token_ids,
    vision_token_ids,
)


class Qwen2VLFamily(QwenFamily):
    rope_model_class = "Qwen2VLModel"

    def tiny_config(self, vocab_size: int, ids: dict[str, int], text_hidden: int = TINY_TEXT_HIDDEN) -> Any:
        from transformers import Qwen2VLConfig

        text = tiny_text_dims(vocab_size, text_hidden)
        text["rope_parameters"] = mrope(text["hidden_size"] // text["num_attention_heads"])
        vision = dict(
            depth=2,
            embed_dim=64,
            hidden_size=text["hidden_size"],
            num_heads=4,
            mlp_ratio=2,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        )
        return Qwen2VLConfig(text_config={**text, **text_token_ids(ids)}, vision_config=vision, **vision_token_ids(ids))

    def widen_tiny_config(self, config: Any, vision_width: int) -> None:
        """Qwen2-VL names its vision width embed_dim (its hidden_size is the merger's output, the text width)."""
        config.vision_config.embed_dim = vision_width

    def build_processor(self, tokenizer: Any, config: Any) -> Any:
        from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

        return Qwen2VLProcessor(
            image_processor=Qwen2VLImageProcessor(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS),
            video_processor=Qwen2VLVideoProcessor(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS),
            tokenizer=tokenizer,
            chat_template=self.chat_template,
        )


ADAPTER = Qwen2VLFamily(
    name="qwen2_vl",
    model_types=("qwen2_vl",),
    hub_example="Qwen/Qwen2-VL-2B-Instruct",
    chat_template=QWEN2_VL_TEMPLATE,
    **QWEN_LAYOUT,
)
