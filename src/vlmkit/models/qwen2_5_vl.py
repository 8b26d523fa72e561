"""Qwen2.5-VL (e.g. Qwen/Qwen2.5-VL-3B-Instruct): window-attention ViT with a SwiGLU vision MLP."""

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


class Qwen25VLFamily(QwenFamily):
    rope_model_class = "Qwen2_5_VLModel"

    def tiny_config(self, vocab_size: int, ids: dict[str, int], text_hidden: int = TINY_TEXT_HIDDEN) -> Any:
        from transformers import Qwen2_5_VLConfig

        text = tiny_text_dims(vocab_size, text_hidden)
        text["rope_parameters"] = mrope(text["hidden_size"] // text["num_attention_heads"])
        vision = dict(
            depth=2,
            hidden_size=64,
            intermediate_size=128,
            num_heads=4,
            out_hidden_size=text["hidden_size"],
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=112,
            fullatt_block_indexes=[1],
        )
        return Qwen2_5_VLConfig(
            text_config={**text, **text_token_ids(ids)}, vision_config=vision, **vision_token_ids(ids)
        )

    def build_processor(self, tokenizer: Any, config: Any) -> Any:
        from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

        return Qwen2_5_VLProcessor(
            image_processor=Qwen2VLImageProcessor(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS),
            video_processor=Qwen2VLVideoProcessor(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS),
            tokenizer=tokenizer,
            chat_template=self.chat_template,
        )


ADAPTER = Qwen25VLFamily(
    name="qwen2_5_vl",
    model_types=("qwen2_5_vl",),
    hub_example="Qwen/Qwen2.5-VL-3B-Instruct",
    chat_template=QWEN2_VL_TEMPLATE,
    **QWEN_LAYOUT,
)
