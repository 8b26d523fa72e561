"""What differs between model families, behind one small interface.

An adapter knows how to load a model + processor, where the vision tower, the projector and the
language model live (parameter-name prefixes, for freezing and per-group learning rates), which
modules LoRA targets by default (language model only), the media placeholder tokens, and how to
build a tiny random checkpoint of the family for tests and the quickstart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # keep `import vlmkit.models` free of torch for a fast CLI
    import torch

LM_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GROUPS = ("vision", "projector", "language_model")


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
    vision_module_path: str
    image_token: str
    video_token: str | None = None
    min_pixels: int | None = None  # family default when the user sets none (None: processor default)
    max_pixels: int | None = None
    stop_tokens: tuple[str, ...] = ()  # end-of-turn markers generation stops on
    append_eos_to_answers: bool = False  # template leaves the assistant turn open (LLaVA-1.5)
    extra: dict[str, Any] = field(default_factory=dict)

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

    def vision_lora_regex(self, modules: tuple[str, ...]) -> str:
        path = re.escape(self.vision_module_path)
        alt = "|".join(re.escape(m) for m in modules)
        return rf"(?:.*\.)?{path}\..*\.(?:{alt})"

    # --- processor settings ----------------------------------------------------------------
    def processor_kwargs(
        self, min_pixels: int | None = None, max_pixels: int | None = None, processor: Any = None
    ) -> dict[str, Any]:
        """Per-call processor kwargs for image resolution; empty for families with fixed-size inputs."""
        return {}

    def video_call_kwargs(self, processor: Any = None) -> dict[str, Any]:
        """Per-call processor kwargs for batches with videos (beyond the frames and their metadata)."""
        return {}

    @property
    def supports_video(self) -> bool:
        return self.video_token is not None

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
    def tiny_config(self, vocab_size: int, special_ids: dict[str, int]) -> Any:
        raise NotImplementedError

    def tiny_special_tokens(self) -> list[str]:
        """Special tokens the family's tokenizer must carry, in id order after the text vocab."""
        raise NotImplementedError

    def build_processor(self, tokenizer: Any, config: Any) -> Any:
        raise NotImplementedError

    chat_template: str = ""


def _strip_peft(name: str) -> str:
    for prefix in ("base_model.model.", "module."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name.replace(".base_layer.", ".")
