"""Load the base model for a run and make exactly the configured parts trainable.

- full: the base weights of every group not frozen by `freeze` train.
- lora: PEFT adapters on the configured targets; unfrozen vision/projector groups train fully via
  modules_to_save (saved with the adapter).
- qlora: the language model is loaded in 4-bit NF4 (bitsandbytes), then as lora.
"""

from __future__ import annotations

from typing import Any

from ..config import RunConfig
from ..models.base import FamilyAdapter
from ..models.loading import LoadedModel, load_model
from .lora import lora_config


def load_for_training(config: RunConfig) -> LoadedModel:
    """The base model, with patch embeddings computed as matmuls (models/patch_matmul.py: same values, several times
    faster than torch's convolution on the Qwen vision towers)."""
    from ..models.patch_matmul import patches_as_matmul

    quantization = "4bit" if config.method == "qlora" else None
    loaded = load_model(
        config.model.path,
        dtype=config.model.dtype,
        attn_implementation=config.model.attn_implementation,
        quantization=quantization,
    )
    patches_as_matmul(loaded.model)
    if config.model.processor:
        from ..models.loading import load_processor

        loaded.processor = load_processor(config.model.processor, loaded.family)
    return loaded


def make_trainable(config: RunConfig, model: Any, family: FamilyAdapter) -> Any:
    """Return the model to train (a PeftModel for lora/qlora) with requires_grad set per the config."""
    if config.method == "full":
        freeze = config.freeze.resolved("full")
        for name, param in model.named_parameters():
            param.requires_grad_(not freeze[family.group_of(name)])
        return model

    from peft import get_peft_model, prepare_model_for_kbit_training

    if config.method == "qlora":
        # Casts the non-quantized weights to fp32 for stable training and freezes the base.
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=config.train.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    for param in model.parameters():
        param.requires_grad_(False)
    return get_peft_model(model, lora_config(config, model, family))
