"""InternVL 3, transformers-native "-hf" checkpoints (e.g. OpenGVLab/InternVL3-1B-hf): InternViT, pixel-shuffle MLP
projector, Qwen2 language model, ChatML template.

Media: an image is cut into up to `max_patches` tiles of the vision input size on the grid closest to its aspect
ratio (plus a thumbnail when there is more than one tile); each tile costs `image_seq_length` `<IMG_CONTEXT>`
tokens, and the whole run is wrapped in `<img>` ... `</img>`. Image input only here.
"""

from __future__ import annotations

from typing import Any

from .base import TINY_TEXT_HIDDEN, FamilyAdapter, MediaTokens, tiny_text_dims

# ChatML as in OpenGVLab/InternVL3-*-hf (no default system prompt); an image is its placeholder and a newline.
INTERNVL_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

INTERNVL_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]
# The processor finds its media tokens by these names on the tokenizer.
NAMED_TOKENS = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}
TILE = 32  # vision input size of the tiny checkpoint
PATCH = 8
DOWNSAMPLE = 0.5  # pixel shuffle: (32 / 8)^2 * 0.5^2 = 4 tokens per tile


class InternVLFamily(FamilyAdapter):
    # --- media contract ------------------------------------------------------------------------
    def image_tokens(self, processor: Any, width: int, height: int, media: Any = None) -> MediaTokens:
        """Tiles from the image processor's own `get_number_of_image_patches`, each `image_seq_length` tokens,
        plus `<img>` and `</img>`."""
        tiles = processor.image_processor.get_number_of_image_patches(height, width, {})
        features = tiles * processor.image_seq_length
        return MediaTokens(features + 2, features)

    # --- tiny checkpoints -----------------------------------------------------------------------
    def tiny_special_tokens(self) -> list[str]:
        return list(INTERNVL_SPECIAL_TOKENS)

    def tiny_tokenizer_kwargs(self) -> dict[str, Any]:
        return {"eos": "<|im_end|>", "pad": "<|endoftext|>", "extra_attrs": {"extra_special_tokens": NAMED_TOKENS}}

    def tiny_token_ids(self, tokenizer: Any) -> dict[str, int]:
        get = tokenizer.convert_tokens_to_ids
        return {
            "image_token_id": get("<IMG_CONTEXT>"),
            "bos_token_id": get("<|endoftext|>"),
            "eos_token_id": get("<|im_end|>"),
            "pad_token_id": get("<|endoftext|>"),
        }

    def tiny_config(self, vocab_size: int, ids: dict[str, int], text_hidden: int = TINY_TEXT_HIDDEN) -> Any:
        from transformers import InternVLConfig, Qwen2Config

        text = Qwen2Config(
            **tiny_text_dims(vocab_size, text_hidden),
            bos_token_id=ids["bos_token_id"],
            eos_token_id=ids["eos_token_id"],
            pad_token_id=ids["pad_token_id"],
            tie_word_embeddings=False,
        )
        vision = dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=[TILE, TILE],
            patch_size=[PATCH, PATCH],
        )
        return InternVLConfig(
            vision_config=vision,
            text_config=text.to_dict(),
            image_token_id=ids["image_token_id"],
            image_seq_length=int((TILE // PATCH) ** 2 * DOWNSAMPLE**2),
            downsample_ratio=DOWNSAMPLE,
            tie_word_embeddings=False,
        )

    def build_processor(self, tokenizer: Any, config: Any) -> Any:
        from transformers import GotOcr2ImageProcessor, InternVLProcessor, InternVLVideoProcessor

        image_processor = GotOcr2ImageProcessor(
            size={"height": TILE, "width": TILE}, crop_to_patches=True, min_patches=1, max_patches=6
        )
        return InternVLProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=InternVLVideoProcessor(size={"height": TILE, "width": TILE}),
            image_seq_length=config.image_seq_length,
            chat_template=self.chat_template,
        )


ADAPTER = InternVLFamily(
    name="internvl",
    model_types=("internvl",),
    hub_example="OpenGVLab/InternVL3-1B-hf",
    vision_prefixes=("model.vision_tower.",),
    projector_prefixes=("model.multi_modal_projector.",),
    language_prefixes=("model.language_model.", "lm_head."),
    language_module_path="language_model",
    image_token="<IMG_CONTEXT>",
    stop_tokens=("<|im_end|>", "<|endoftext|>"),
    chat_template=INTERNVL_TEMPLATE,
)
