"""What differs between model families, behind one small interface.

An adapter knows how to load a model + processor, where the vision tower, the projector and the
language model live (parameter-name prefixes, for freezing and per-group learning rates), which
modules LoRA targets by default (language model only), the media placeholder tokens, and how to
build a tiny random checkpoint of the family for tests and the quickstart.

It also holds the family's media contract: how a batch's images and videos are handed to the processor
(`processor_images`, `processor_kwargs`, `video_call_kwargs`) and exactly how many tokens each costs
(`image_tokens`, `video_tokens`), plus how many vision features each item of a processed batch carries
(`batch_features`). Training-length estimation, the collator's exact sequence length, the inference media
check and the docs all use these; no other layer knows a family's resize or token rule.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # keep `import vlmkit.models` free of torch for a fast CLI
    import torch

LM_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GROUPS = ("vision", "projector", "language_model")

TINY_TEXT_HIDDEN = 64  # the default tiny language model's width: head size 16
TINY_TEXT_HEADS = 4


def tiny_text_dims(vocab_size: int, hidden: int = TINY_TEXT_HIDDEN, *, max_positions: int = 4096) -> dict[str, Any]:
    """The language-model sizes every family's tiny checkpoint shares: 2 layers, 4 query and 2 key-value heads
    (head size hidden / 4), MLP 2x wide. vLLM's CPU attention needs a head size of at least 32, so a tiny checkpoint
    meant for vLLM takes hidden >= 128 (`vlmkit models tiny --text-hidden 128`)."""
    if hidden % (2 * TINY_TEXT_HEADS):
        raise ValueError(f"tiny text hidden size {hidden} must be a multiple of {2 * TINY_TEXT_HEADS}")
    return dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=TINY_TEXT_HEADS,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
    )


@dataclass(frozen=True)
class MediaTokens:
    """What one image or video costs in the model's input sequence.

    `tokens`: how many tokens the processor puts where the chat template wrote the item's one placeholder
    token, so a rendered prompt of n tokens holding items m1..mk becomes n + sum(m.tokens - 1) tokens long
    (wrapper tokens the template writes around the placeholder are part of the n). `features`: how many of
    those the model fills with vision features (occurrences of the family's image / video token).
    """

    tokens: int
    features: int


@dataclass(frozen=True)
class FamilyAdapter:
    name: str  # registry key and the checkpoint's config.model_type
    model_types: tuple[str, ...]  # every config.model_type this adapter serves
    hub_example: str  # a real checkpoint of this family, for docs and configs
    # Parameter-name prefixes (as in model.named_parameters()) of the three groups. The projector is
    # listed before the vision tower because in Qwen it lives inside it (visual.merger).
    vision_prefixes: tuple[str, ...]
    projector_prefixes: tuple[str, ...]
    language_prefixes: tuple[str, ...]
    language_module_path: str  # dotted path used to anchor LoRA regexes on the language model
    image_token: str
    video_token: str | None = None
    stop_tokens: tuple[str, ...] = ()  # end-of-turn markers generation stops on
    append_eos_to_answers: bool = False  # template leaves the assistant turn open (LLaVA-1.5)

    # --- parameter groups ------------------------------------------------------------------
    def group_of(self, param_name: str) -> str:
        """'vision' | 'projector' | 'language_model' for a parameter name (PEFT prefixes tolerated)."""
        name = _strip_peft(param_name)
        if any(name.startswith(p) for p in self.projector_prefixes):
            return "projector"
        if any(name.startswith(p) for p in self.vision_prefixes):
            return "vision"
        if any(name.startswith(p) for p in self.language_prefixes):
            return "language_model"
        raise ValueError(f"{self.name}: parameter '{param_name}' belongs to no known group")

    def parameter_groups(self, model: torch.nn.Module) -> dict[str, list[tuple[str, torch.nn.Parameter]]]:
        groups: dict[str, list] = {g: [] for g in GROUPS}
        for name, param in model.named_parameters():
            groups[self.group_of(name)].append((name, param))
        return groups

    # --- LoRA ------------------------------------------------------------------------------
    def lora_target_regex(self, modules: tuple[str, ...] = LM_LINEAR, *, include_lm_head: bool = False) -> str:
        """A PEFT `target_modules` regex (full match) on the language model's linear layers only.

        Anchoring on the language-model path means the vision MLP (Qwen2.5-VL also names its vision
        MLP gate/up/down_proj) can never be caught.
        """
        path = re.escape(self.language_module_path)
        alt = "|".join(re.escape(m) for m in modules)
        regex = rf"(?:.*\.)?{path}\..*\.(?:{alt})"
        if include_lm_head:
            regex = rf"(?:{regex}|(?:.*\.)?lm_head)"
        return regex

    # --- processor settings ----------------------------------------------------------------
    def processor_kwargs(
        self, min_pixels: int | None = None, max_pixels: int | None = None, processor: Any = None
    ) -> dict[str, Any]:
        """Per-call processor kwargs for image resolution; empty for families with fixed-size inputs."""
        return {}

    def video_call_kwargs(self, processor: Any = None) -> dict[str, Any]:
        """Per-call processor kwargs for batches with videos (beyond the frames and their metadata)."""
        return {}

    def processor_images(self, images: Sequence[Sequence[Any]]) -> Any:
        """The processor's `images` argument for a batch, given each sample's images: flat by default."""
        return [image for row in images for image in row]

    # --- media token costs (implemented per family; exact, tested against the real processor) -----------
    def image_tokens(self, processor: Any, width: int, height: int, media: Any = None) -> MediaTokens:
        """What a width x height image costs with this processor, under `media` (MediaSettings: min/max
        pixels) when given."""
        raise NotImplementedError(f"{self.name}: image_tokens is not implemented")

    def video_tokens(
        self, processor: Any, frame_indices: Sequence[int], fps: float, width: int, height: int
    ) -> MediaTokens:
        """What a video costs whose sampled frames (`frame_indices` of a source at `fps` frames per second)
        are width x height, as `data.media.load_video` hands them to the processor."""
        raise NotImplementedError(f"{self.name}: video_tokens is not implemented")

    def batch_features(self, batch: Any, kind: str, processor: Any) -> list[int] | None:
        """Vision features each image (`kind`="image") or video of a processed batch will produce, in order,
        read from the processor's output; None when the output does not say per item (the processor then
        checks the count itself while it expands the placeholders)."""
        return None

    @property
    def supports_video(self) -> bool:
        return self.video_token is not None

    # --- saved checkpoints -----------------------------------------------------------------
    # (regex, replacement) renames of saved weight keys into the family's released layout, which vLLM loads and
    # transformers maps back on load; applied by `models.interop.write_released_layout` to what vlmkit saves.
    saved_key_renames: ClassVar[tuple[tuple[str, str], ...]] = ()

    # --- packing ---------------------------------------------------------------------------
    # Keys of a processed batch whose first dimension is the sample (not the token, the image or the patch):
    # the packer regroups them by row. Empty where media tensors are flat over all images (Qwen, LLaVA).
    per_sample_media_keys: ClassVar[tuple[str, ...]] = ()

    def packed_position_ids(self, batch: Any, model_config: Any) -> torch.Tensor:
        """Position ids of every sample of a right-padded processed batch as the model computes them for the sample
        alone (each restarting at 0); the packer concatenates them per row. Plain 1-D language models: (samples, L)."""
        mask = batch["attention_mask"]
        return (mask.long().cumsum(-1) - 1).clamp(min=0)

    # --- tiny checkpoints (implemented per family) -----------------------------------------
    def tiny_config(self, vocab_size: int, special_ids: dict[str, int], text_hidden: int = TINY_TEXT_HIDDEN) -> Any:
        """The tiny checkpoint's config, its language model `text_hidden` wide (`tiny_text_dims`); wherever the
        vision side outputs the text width (projector, merger), it follows."""
        raise NotImplementedError

    def tiny_special_tokens(self) -> list[str]:
        """Special tokens the family's tokenizer must carry, in id order after the text vocab."""
        raise NotImplementedError

    def build_processor(self, tokenizer: Any, config: Any) -> Any:
        raise NotImplementedError

    def tiny_vocab_size(self, tokenizer: Any, vocab: str) -> int:
        """The embedding rows of a tiny checkpoint: the tokenizer's size rounded up to a multiple of 64."""
        return (len(tokenizer) + 63) // 64 * 64

    def widen_tiny_config(self, config: Any, vision_width: int) -> None:
        """Set the vision tower's width (MLP 2x), in place; families whose configs name it differently override it."""
        vision = config.vision_config
        vision.hidden_size = vision_width
        if hasattr(vision, "intermediate_size"):
            vision.intermediate_size = vision_width * 2

    chat_template: str = ""


def _strip_peft(name: str) -> str:
    for prefix in ("base_model.model.", "module."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name.replace(".base_layer.", ".")
