"""SmolVLM (Idefics3 architecture, e.g. HuggingFaceTB/SmolVLM-256M-Instruct): SigLIP tower, pixel-shuffle connector.

Media: an image is split into a grid of tiles plus one global view, each `image_seq_len` image tokens, wrapped in
`<fake_token_around_image>` and `<row_r_col_c>` / `<global-img>` markers with a newline after each row; the
processor takes the images nested per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import TINY_TEXT_HIDDEN, FamilyAdapter, MediaTokens, tiny_text_dims

# SmolVLM-Instruct's chat template:
# "<|im_start|>User:<image>question<end_of_utterance>\nAssistant: answer<end_of_utterance>\n".
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

TILE = 32  # vision image_size: each tile is one 32x32 crop
PATCH = 8
SCALE = 2  # pixel-shuffle factor: (32/8)^2 / 2^2 = 4 tokens per tile


def smolvlm_special_tokens() -> list[str]:
    rows = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    return [
        "<|endoftext|>",
        "<|im_start|>",
        "<end_of_utterance>",
        "<fake_token_around_image>",
        "<image>",
        "<global-img>",
        *rows,
    ]


class SmolVLMFamily(FamilyAdapter):
    def processor_images(self, images: Sequence[Sequence[Any]]) -> Any:
        return [list(row) for row in images]

    def image_tokens(self, processor: Any, width: int, height: int, media: Any = None) -> MediaTokens:
        """The tile grid from the image processor's `get_number_of_image_patches`, the prompt from transformers'
        `get_image_prompt_string`, counted with the processor's tokenizer (the row newlines are text)."""
        from transformers.models.smolvlm.processing_smolvlm import get_image_prompt_string

        _, rows, cols = processor.image_processor.get_number_of_image_patches(height, width, {})
        seq = processor.image_seq_len
        global_token = getattr(processor, "global_image_token", None) or processor.global_image_tag  # Idefics3
        prompt = get_image_prompt_string(
            rows, cols, seq, processor.fake_image_token, processor.image_token, global_token
        )
        tokens = len(processor.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return MediaTokens(tokens, seq * (rows * cols + 1))

    # pixel_values is (samples, images per sample, 3, H, W): the packer regroups it by row
    per_sample_media_keys = ("pixel_values", "pixel_attention_mask")

    def tiny_special_tokens(self) -> list[str]:
        return smolvlm_special_tokens()

    def tiny_tokenizer_kwargs(self) -> dict[str, str]:
        return {"eos": "<end_of_utterance>", "pad": "<|endoftext|>"}

    def tiny_token_ids(self, tokenizer: Any) -> dict[str, int]:
        get = tokenizer.convert_tokens_to_ids
        return {
            "image_token_id": get("<image>"),
            "bos_token_id": get("<|im_start|>"),
            "eos_token_id": get("<end_of_utterance>"),
            "pad_token_id": get("<|endoftext|>"),
        }

    def tiny_config(self, vocab_size: int, ids: dict[str, int], text_hidden: int = TINY_TEXT_HIDDEN) -> Any:
        from transformers import LlamaConfig, SmolVLMConfig

        text = LlamaConfig(
            **tiny_text_dims(vocab_size, text_hidden),
            bos_token_id=ids["bos_token_id"],
            eos_token_id=ids["eos_token_id"],
            pad_token_id=ids["pad_token_id"],
        )
        vision = dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=TILE,
            patch_size=PATCH,
        )
        return SmolVLMConfig(
            vision_config=vision,
            text_config=text.to_dict(),
            scale_factor=SCALE,
            image_token_id=ids["image_token_id"],
            pad_token_id=ids["pad_token_id"],
        )

    def build_processor(self, tokenizer: Any, config: Any) -> Any:
        from transformers import SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

        image_processor = SmolVLMImageProcessor(
            size={"longest_edge": 2 * TILE}, max_image_size={"longest_edge": TILE}, do_image_splitting=True
        )
        video_processor = SmolVLMVideoProcessor(size={"longest_edge": TILE}, max_image_size={"longest_edge": TILE})
        seq = (TILE // PATCH) ** 2 // SCALE**2
        return SmolVLMProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=video_processor,
            image_seq_len=seq,
            chat_template=self.chat_template,
        )


ADAPTER = SmolVLMFamily(
    name="smolvlm",
    model_types=("smolvlm", "idefics3"),
    hub_example="HuggingFaceTB/SmolVLM-256M-Instruct",
    vision_prefixes=("model.vision_model.",),
    projector_prefixes=("model.connector.",),
    language_prefixes=("model.text_model.", "lm_head."),
    language_module_path="text_model",
    image_token="<image>",
    stop_tokens=("<end_of_utterance>",),
    chat_template=SMOLVLM_TEMPLATE,
)
