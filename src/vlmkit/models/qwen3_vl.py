"""Qwen3-VL (e.g. Qwen/Qwen3-VL-8B-Instruct): 16-px patches, DeepStack features, interleaved M-RoPE."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import TINY_TEXT_HIDDEN, MediaTokens, tiny_text_dims
from .qwen_common import (
    QWEN3_VL_TEMPLATE,
    QWEN_LAYOUT,
    QwenFamily,
    mrope,
    text_token_ids,
    vision_token_ids,
)

# Qwen3-VL merges 2x2 patches of 16 px: the resize factor is 32, not 28.
TINY3_MIN_PIXELS = 32 * 32 * 4
TINY3_MAX_PIXELS = 32 * 32 * 64


class Qwen3VLFamily(QwenFamily):
    rope_model_class = "Qwen3VLModel"

    def tiny_config(self, vocab_size: int, ids: dict[str, int], text_hidden: int = TINY_TEXT_HIDDEN) -> Any:
        from transformers import Qwen3VLConfig

        text = tiny_text_dims(vocab_size, text_hidden)
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
        return Qwen3VLConfig(text_config={**text, **text_token_ids(ids)}, vision_config=vision, **vision_token_ids(ids))

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

    def video_tokens(
        self, processor: Any, frame_indices: Sequence[int], fps: float, width: int, height: int
    ) -> MediaTokens:
        """The video processor's `get_num_of_video_patches` (with the per-frame cap `video_call_kwargs` turns on),
        and per temporal patch a `<t seconds>` text timestamp plus vision start / end tokens around its run."""
        video_processor = processor.video_processor
        temporal, merge = video_processor.temporal_patch_size, video_processor.merge_size
        indices = list(frame_indices) or [0]
        indices += [indices[-1]] * (-len(indices) % temporal)  # padded like the processor pads the frames
        patches = video_processor.get_num_of_video_patches(
            len(indices), height, width, self.video_call_kwargs(processor)
        )
        steps = len(indices) // temporal
        per_step = patches // steps // merge**2
        rate = fps or 24.0  # the processor's own fallback when the source states no frame rate
        stamps = [
            f"<{(indices[i] + indices[i + temporal - 1]) / 2 / rate:.1f} seconds>"
            for i in range(0, len(indices), temporal)
        ]
        stamp_tokens = sum(len(ids) for ids in processor.tokenizer(stamps, add_special_tokens=False)["input_ids"])
        # The template's <|vision_start|><|video_pad|><|vision_end|> becomes, per step: stamp, start, run, end.
        return MediaTokens(stamp_tokens + steps * (per_step + 2) - 2, steps * per_step)

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
