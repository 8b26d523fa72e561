"""LLaVA, llava-hf style (e.g. llava-hf/llava-1.5-7b-hf): CLIP vision tower, MLP projector, Llama LM.

Media: every image is resized and centre-cropped to the vision tower's input size, so it costs the same
(crop / patch)^2 tokens (+ the CLS token unless the feature strategy is "default") whatever its size.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import TINY_TEXT_HIDDEN, FamilyAdapter, MediaTokens, tiny_text_dims

# llava-hf/llava-1.5 chat template: images first, then text; "USER: ... ASSISTANT:". The assistant turn
# is left open (no EOS), so the collator appends EOS to answers for training (append_eos_to_answers).
LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}"  # noqa: E501 (template text)
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

LLAVA_SPECIAL_TOKENS = ["<s>", "</s>", "<pad>", "<image>"]
TINY_IMAGE_SIZE = 32
TINY_PATCH = 8


class LlavaFamily(FamilyAdapter):
    # transformers 5 saves a LLaVA built from a config with the CLIP tower's `vision_model.` level dropped
    # (`vision_tower.embeddings.*`); the llava-hf releases and vLLM have it (`vision_tower.vision_model.*`), and
    # transformers' CLIPVisionModel strips it again on load.
    saved_key_renames: ClassVar[tuple[tuple[str, str], ...]] = (
        (r"^((?:model\.)?vision_tower\.)(?!vision_model\.)", r"\1vision_model."),
    )

    def image_tokens(self, processor: Any, width: int, height: int, media: Any = None) -> MediaTokens:
        image_processor = processor.image_processor
        crop, size = image_processor.crop_size or {}, image_processor.size or {}
        if image_processor.do_center_crop and "height" in crop:
            height, width = crop["height"], crop["width"]
        elif "height" in size:
            height, width = size["height"], size["width"]
        elif "shortest_edge" in size:  # shortest side scaled to the size, aspect ratio kept
            short, long = sorted((height, width))
            scaled = (size["shortest_edge"], int(size["shortest_edge"] * long / short))
            height, width = scaled if height <= width else scaled[::-1]
        patch = processor.patch_size
        n = (height // patch) * (width // patch) + processor.num_additional_image_tokens
        n -= processor.vision_feature_select_strategy == "default"  # the CLS feature is dropped
        return MediaTokens(n, n)

    def tiny_special_tokens(self) -> list[str]:
        return list(LLAVA_SPECIAL_TOKENS)

    def tiny_tokenizer_kwargs(self) -> dict[str, str]:
        return {"eos": "</s>", "pad": "<pad>"}

    def tiny_token_ids(self, tokenizer: Any) -> dict[str, int]:
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in LLAVA_SPECIAL_TOKENS}
        return {
            "image_token_id": ids["<image>"],
            "bos_token_id": ids["<s>"],
            "eos_token_id": ids["</s>"],
            "pad_token_id": ids["<pad>"],
        }

    def tiny_config(self, vocab_size: int, ids: dict[str, int], text_hidden: int = TINY_TEXT_HIDDEN) -> Any:
        from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

        vision = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=TINY_IMAGE_SIZE,
            patch_size=TINY_PATCH,
            projection_dim=32,
        )
        text = LlamaConfig(
            **tiny_text_dims(vocab_size, text_hidden, max_positions=2048),
            bos_token_id=ids["bos_token_id"],
            eos_token_id=ids["eos_token_id"],
            pad_token_id=ids["pad_token_id"],
        )
        return LlavaConfig(
            vision_config=vision,
            text_config=text,
            image_token_index=ids["image_token_id"],
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
            projector_hidden_act="gelu",
            pad_token_id=ids["pad_token_id"],
        )

    def build_processor(self, tokenizer: Any, config: Any) -> Any:
        from transformers import CLIPImageProcessor, LlavaProcessor

        size = TINY_IMAGE_SIZE
        image_processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
        return LlavaProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=TINY_PATCH,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,
            chat_template=self.chat_template,
        )


ADAPTER = LlavaFamily(
    name="llava",
    model_types=("llava",),
    hub_example="llava-hf/llava-1.5-7b-hf",
    vision_prefixes=("model.vision_tower.",),
    projector_prefixes=("model.multi_modal_projector.",),
    language_prefixes=("model.language_model.", "lm_head."),
    language_module_path="language_model",
    image_token="<image>",
    stop_tokens=("</s>",),
    append_eos_to_answers=True,
    chat_template=LLAVA_TEMPLATE,
)
