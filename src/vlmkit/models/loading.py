"""Load a model + processor from a hub id or a local folder, for any registered family."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..errors import VlmkitError
from .base import FamilyAdapter
from .registry import detect_family

DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZATION = (None, "4bit", "8bit")


@dataclass
class LoadedModel:
    model: Any
    processor: Any
    family: FamilyAdapter
    source: str
    adapter: str | None = None

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer


def resolve_dtype(name: str):
    import torch

    if name == "auto":
        return torch.float32  # CPU default; GPUs users pass bfloat16 explicitly or through the config
    if name not in DTYPES:
        raise VlmkitError(f"dtype must be one of {', '.join(DTYPES)}, not '{name}'")
    return getattr(torch, name)


def quantization_config(kind: str | None, family: FamilyAdapter, compute_dtype: str = "float32"):
    """bitsandbytes config that quantizes the language model only (vision tower, projector and head stay full)."""
    if kind is None:
        return None
    if kind not in QUANTIZATION:
        raise VlmkitError(f"quantization must be one of 4bit, 8bit, not '{kind}'")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise VlmkitError("quantization needs bitsandbytes: pip install 'vlmkit[qlora]'") from None
    from transformers import BitsAndBytesConfig

    skip = [p.rstrip(".").split(".")[-1] for p in family.vision_prefixes + family.projector_prefixes] + ["lm_head"]
    # transformers 5 matches skip patterns from the start of the module name or as a suffix, so the bare
    # last component ("visual") no longer covers "model.visual.blocks.0.attn.qkv"; the full prefixes do.
    skip += [p.rstrip(".") for p in family.vision_prefixes + family.projector_prefixes]
    if kind == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=resolve_dtype(compute_dtype),
            llm_int8_skip_modules=skip,
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)


def load_processor(model: str | os.PathLike, family: FamilyAdapter | None = None):
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(str(model))
    except (OSError, ValueError) as exc:
        raise VlmkitError(f"cannot load the processor of '{model}': {str(exc).splitlines()[0]}") from None


def load_model(
    model: str | os.PathLike,
    *,
    adapter: str | os.PathLike | None = None,
    dtype: str = "auto",
    attn_implementation: str | None = None,
    quantization: str | None = None,
    device: str | None = None,
) -> LoadedModel:
    """Load base weights (optionally quantized) plus an optional LoRA adapter, in eval mode."""
    import torch
    from transformers import AutoModelForImageTextToText

    family = detect_family(model)
    kwargs: dict[str, Any] = {"dtype": resolve_dtype(dtype)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    qconfig = quantization_config(quantization, family, dtype if dtype != "auto" else "float32")
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
        if device:  # bitsandbytes places the weights while loading (default: the current GPU); no .to() after
            kwargs["device_map"] = {"": device}
    try:
        net = AutoModelForImageTextToText.from_pretrained(str(model), **kwargs)
    except (OSError, ValueError) as exc:
        raise VlmkitError(f"cannot load model '{model}': {str(exc).splitlines()[0]}") from None
    if adapter is not None:
        net = attach_adapter(net, adapter)
    if device and qconfig is None:
        net = net.to(torch.device(device))
    net.eval()
    return LoadedModel(net, load_processor(model, family), family, str(model), str(adapter) if adapter else None)


def attach_adapter(net: Any, adapter: str | os.PathLike) -> Any:
    from peft import PeftModel

    if not os.path.isdir(adapter) or not os.path.exists(os.path.join(adapter, "adapter_config.json")):
        raise VlmkitError(f"{adapter}: not a LoRA adapter folder (no adapter_config.json)")
    return PeftModel.from_pretrained(net, str(adapter), is_trainable=False)
