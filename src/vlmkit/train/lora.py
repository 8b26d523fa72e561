"""Translate the `lora` and `freeze` config sections into a PEFT LoraConfig for one model.

Targets are anchored on the language model (the family's regex), so the vision tower is only adapted when
`lora.vision` asks for it, and then by exact module names, so the projector is never caught by a shared
leaf name (Qwen3-VL's merger and vision MLP both use linear_fc1/linear_fc2). Groups that `freeze` leaves
trainable under LoRA are trained fully through `modules_to_save`, so they are saved with the adapter.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ..config import RunConfig
from ..errors import ConfigError
from ..models.base import LM_LINEAR, FamilyAdapter


def linear_modules(model: torch.nn.Module, family: FamilyAdapter, group: str) -> dict[str, str]:
    """{full module name: leaf name} of the linear layers (quantized ones included) in one group."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name and _group(family, name) == group:
            out[name] = name.rsplit(".", 1)[-1]
    return out


def _group(family: FamilyAdapter, module_name: str) -> str | None:
    try:
        return family.group_of(module_name + ".weight")
    except ValueError:
        return None


def target_regex(config: RunConfig, model: torch.nn.Module, family: FamilyAdapter) -> str:
    lora = config.lora
    lm_linear = linear_modules(model, family, "language_model")
    lm_leaves = sorted({leaf for name, leaf in lm_linear.items() if not name.endswith("lm_head")})
    if lora.targets == "default":
        modules: tuple[str, ...] = LM_LINEAR
    elif lora.targets == "all-linear":
        modules = tuple(lm_leaves)
    else:
        unknown = [m for m in lora.targets if m not in lm_leaves]
        if unknown:
            raise ConfigError(
                f"lora.targets: no linear layer named {', '.join(map(repr, unknown))} in the "
                f"language model of this {family.name} checkpoint; its linear layers are: "
                f"{', '.join(lm_leaves)}"
            )
        modules = tuple(lora.targets)
    parts = [family.lora_target_regex(modules)]
    if lora.targets_extra:
        all_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = [m for m in lora.targets_extra if m not in all_names]
        if missing:
            raise ConfigError(
                f"lora.targets_extra: no module named {', '.join(map(repr, missing))} in this {family.name} checkpoint"
            )
        parts.append(rf"(?:.*\.)?(?:{'|'.join(re.escape(m) for m in lora.targets_extra)})")
    if lora.vision:
        vision = linear_modules(model, family, "vision")
        wanted = set(lora.vision_targets) if lora.vision_targets else set(vision.values())
        unknown = wanted - set(vision.values())
        if unknown:
            raise ConfigError(
                f"lora.vision_targets: no linear layer named {', '.join(sorted(unknown))} in the "
                f"vision tower; its linear layers are: {', '.join(sorted(set(vision.values())))}"
            )
        names = [re.escape(n) for n, leaf in vision.items() if leaf in wanted]
        parts.append(rf"(?:.*\.)?(?:{'|'.join(names)})")
    return "|".join(f"(?:{p})" for p in parts) if len(parts) > 1 else parts[0]


def fully_trained_modules(model: torch.nn.Module, family: FamilyAdapter, groups: list[str]) -> list[str]:
    """The fewest module names that cover exactly the parameters of `groups` (e.g. the Qwen vision tower minus
    its merger when only the tower is unfrozen)."""
    chosen: list[str] = []

    def visit(prefix: str, module: torch.nn.Module) -> None:
        names = [f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters()]
        if not names:
            return
        member = [family.group_of(n) in groups for n in names]
        containers = (torch.nn.ModuleList, torch.nn.ModuleDict)  # no forward of their own: PEFT wraps children
        if all(member) and prefix and not isinstance(module, containers):
            chosen.append(prefix)
            return
        if not any(member):
            return
        for child_name, child in module.named_children():
            visit(f"{prefix}.{child_name}" if prefix else child_name, child)

    visit("", model)
    return chosen


def lora_config(config: RunConfig, model: torch.nn.Module, family: FamilyAdapter) -> Any:
    from peft import LoraConfig

    freeze = config.freeze.resolved(config.method)
    unfrozen = [g for g in ("vision", "projector") if not freeze[g]]
    modules_to_save = fully_trained_modules(model, family, unfrozen) + list(config.lora.modules_to_save)
    overlap = set(config.lora.modules_to_save) & set(config.lora.targets_extra)
    if overlap:
        raise ConfigError(
            f"lora.modules_to_save and lora.targets_extra both name {', '.join(sorted(overlap))}; "
            "a module is either trained fully or through LoRA"
        )
    tied = bool(
        getattr(model.config.get_text_config(), "tie_word_embeddings", False)
        or getattr(model.config, "tie_word_embeddings", False)
    )
    extras = set(config.lora.targets_extra) | set(config.lora.modules_to_save)
    # Tied input/output embeddings must stay tied when either side is adapted or trained (peft >= 0.18).
    tying = {"ensure_weight_tying": True} if tied and extras & {"lm_head", "embed_tokens"} else {}
    return LoraConfig(
        r=config.lora.rank,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=target_regex(config, model, family),
        modules_to_save=modules_to_save or None,
        bias=config.lora.bias,
        use_rslora=config.lora.use_rslora,
        task_type="CAUSAL_LM",
        **tying,
    )
