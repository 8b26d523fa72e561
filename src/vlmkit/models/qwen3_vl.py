"""Qwen3-VL (e.g. Qwen/Qwen3-VL-8B-Instruct): 16-px patches, DeepStack features, interleaved M-RoPE."""

from __future__ import annotations

from typing import Any

from .qwen2_vl import QWEN_LAYOUT, _text_ids, _top_ids
from .qwen_common import QWEN3_VL_TEMPLATE, QwenFamily, mrope, tiny_text_dims

# Qwen3-VL merges 2x2 patches of 16 px: the resize factor is 32, not 28.
TINY3_MIN_PIXELS = 32 * 32 * 4
TINY3_MAX_PIXELS = 32 * 32 * 64


class Qwen3VLFamily(QwenFamily):
    rope_model_class = "Qwen3VLModel"

    def tiny_config(self, vocab_size: int, ids: dict[str, int]) -> Any:
        from transformers import Qwen3VLConfig

        text = tiny_text_dims(vocab_size)
        text["head_dim"] = text["hidden_size"] // text["num_attention_heads"]
        text["rope_parameters"] = mrope(text["head_dim"], theta=5_000_000.0, mrope_interleaved=True)
        vision = dict(
            depth=2,
            hidden_size=64,
            intermediate_size=128,
            num_heads=4,
            out_hidden_size=text["hidden_size"],
            patch_size=16,
            spatial_merge_size=2,
            temporal_patch_size=2,
            num_position_embeddings=64,
            deepstack_visual_indexes=[0],
        )
        return Qwen3VLConfig(text_config={**text, **_text_ids(ids)}, vision_config=vision, **_top_ids(ids))

    def build_processor(self, tokenizer: Any, config: Any) -> Any:
        from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

        return Qwen3VLProcessor(
            image_processor=Qwen2VLImageProcessor(
                min_pixels=TINY3_MIN_PIXELS, max_pixels=TINY3_MAX_PIXELS, patch_size=16, merge_size=2
            ),
            video_processor=Qwen3VLVideoProcessor(
                size={"shortest_edge": TINY3_MIN_PIXELS, "longest_edge": TINY3_MAX_PIXELS}, patch_size=16, merge_size=2
            ),
            tokenizer=tokenizer,
            chat_template=self.chat_template,
        )

    def video_call_kwargs(self, processor: Any = None) -> dict[str, Any]:
        """Cap each frame's pixels as qwen-vl-utils (the reference Qwen3-VL was trained with) does, so a short
        clip does not spend the whole video budget on a few near-native frames. transformers warns while the
        choice is left unset; versions without the switch already cap."""
        video_processor = getattr(processor, "video_processor", None)
        return {"cap_pixels_per_frame": True} if hasattr(video_processor, "cap_pixels_per_frame") else {}


ADAPTER = Qwen3VLFamily(
    name="qwen3_vl",
    model_types=("qwen3_vl",),
    hub_example="Qwen/Qwen3-VL-8B-Instruct",
    chat_template=QWEN3_VL_TEMPLATE,
    **QWEN_LAYOUT,
)
