"""Qwen2-VL (e.g. Qwen/Qwen2-VL-2B-Instruct): ViT with a patch merger, Qwen2 language model, M-RoPE."""

from __future__ import annotations

from typing import Any

from .qwen_common import QWEN2_VL_TEMPLATE, TINY_MAX_PIXELS, TINY_MIN_PIXELS, QwenFamily, mrope, tiny_text_dims


class Qwen2VLFamily(QwenFamily):
    rope_model_class = "Qwen2VLModel"

    def tiny_config(self, vocab_size: int, ids: dict[str, int]) -> Any:
        from transformers import Qwen2VLConfig

        text = tiny_text_dims(vocab_size)
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
        return Qwen2VLConfig(text_config={**text, **_text_ids(ids)}, vision_config=vision, **_top_ids(ids))

    def build_processor(self, tokenizer: Any, config: Any) -> Any:
        from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

        return Qwen2VLProcessor(
            image_processor=Qwen2VLImageProcessor(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS),
            video_processor=Qwen2VLVideoProcessor(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS),
            tokenizer=tokenizer,
            chat_template=self.chat_template,
        )


def _text_ids(ids: dict[str, int]) -> dict[str, int]:
    return {k: ids[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")}


def _top_ids(ids: dict[str, int]) -> dict[str, int]:
    return {k: ids[k] for k in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")}


QWEN_LAYOUT = dict(
    vision_prefixes=("model.visual.",),
    projector_prefixes=("model.visual.merger.",),
    language_prefixes=("model.language_model.", "lm_head."),
    language_module_path="language_model",
    vision_module_path="visual",
    image_token="<|image_pad|>",
    video_token="<|video_pad|>",
    stop_tokens=("<|im_end|>", "<|endoftext|>"),
)

ADAPTER = Qwen2VLFamily(
    name="qwen2_vl",
    model_types=("qwen2_vl",),
    hub_example="Qwen/Qwen2-VL-2B-Instruct",
    chat_template=QWEN2_VL_TEMPLATE,
    **QWEN_LAYOUT,
)
