"""Saved checkpoints that other loaders read as saved: vLLM as well as transformers.

transformers saves a model in the key layout it builds in memory, which can differ from the layout the released
checkpoints use and other loaders expect: a LLaVA built from a config (a tiny checkpoint, or an export from one)
is saved with `vision_tower.embeddings.*`, while the llava-hf releases and vLLM use
`vision_tower.vision_model.embeddings.*`. A family lists the renames that restore the released layout as
`FamilyAdapter.saved_key_renames`; `write_released_layout` applies them to a saved folder's safetensors files
(sharded or not). transformers maps the released layout back on load, so both loaders accept the result.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .base import FamilyAdapter

INDEX = "model.safetensors.index.json"


def released_key(name: str, renames: tuple[tuple[str, str], ...]) -> str:
    """The key `name` takes in the released layout (renames are (regex, replacement), applied in order)."""
    for pattern, replacement in renames:
        name = re.sub(pattern, replacement, name)
    return name


def write_released_layout(folder: str | os.PathLike, family: FamilyAdapter) -> int:
    """Rename the weights of the checkpoint saved in `folder` to the family's released layout, in place.

    Returns how many keys changed (0 for families without renames, and for a folder already in that layout).
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    renames = family.saved_key_renames
    if not renames:
        return 0
    folder = Path(folder)
    changed = 0
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
            names = list(handle.keys())
            new_names = {name: released_key(name, renames) for name in names}
            if all(new == old for old, new in new_names.items()):
                continue
            tensors = {new_names[name]: handle.get_tensor(name) for name in names}
        changed += sum(new != old for old, new in new_names.items())
        tmp = path.with_name(f".{path.name}.tmp")
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)  # a kill mid-write leaves the old file, never half of one
    index = folder / INDEX
    if changed and index.is_file():
        data = json.loads(index.read_text(encoding="utf-8"))
        data["weight_map"] = {released_key(k, renames): v for k, v in data["weight_map"].items()}
        index.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return changed


def adapter_modules(adapter_dir: str | os.PathLike) -> list[str]:
    """The module names a saved PEFT adapter adapts, as in the model (`base_model.model.` and `.lora_A.weight`
    removed), in file order without repeats; fully trained modules (modules_to_save) are listed too."""
    from safetensors import safe_open

    weights = Path(adapter_dir) / "adapter_model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{adapter_dir}: no adapter_model.safetensors")
    names: dict[str, None] = {}
    with safe_open(str(weights), framework="pt") as handle:
        for key in handle.keys():
            name = key.removeprefix("base_model.model.")
            # LoRA factors end in .lora_A.weight / .lora_B.weight (embeddings: .lora_embedding_A), fully trained
            # modules in their own parameter names (.weight, .bias)
            name = re.sub(r"\.lora_[AB]\.weight$|\.lora_embedding_[AB]$|\.[^.]+$", "", name)
            names[name] = None
    return list(names)


def vllm_lora_problems(adapter_dir: str | os.PathLike, family: FamilyAdapter) -> list[str]:
    """Why vLLM cannot serve this adapter as a LoRA module on the family's base model; empty when it can.

    vLLM applies LoRA to the language model's linear layers (attention and MLP projections) and loads neither
    DoRA, a bias, nor fully trained modules (modules_to_save): such an adapter is served as `vlmkit export`'s
    merged checkpoint instead. vlmkit's default adapter (language-model linears only) has no problems.
    """
    from .base import LM_LINEAR

    config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))
    problems = []
    if config.get("use_dora"):
        problems.append("it is a DoRA adapter (use_dora), which vLLM does not load")
    if config.get("bias", "none") != "none" or config.get("lora_bias"):
        problems.append(f"it trains biases (bias={config.get('bias')!r}), which vLLM does not load")
    if config.get("modules_to_save"):
        problems.append(f"it trains {', '.join(config['modules_to_save'])} fully (modules_to_save)")
    outside = []
    for name in adapter_modules(adapter_dir):
        leaf = name.rsplit(".", 1)[-1]
        in_language_model = any(name.startswith(p) for p in family.language_prefixes if p != "lm_head.")
        if config.get("modules_to_save") and any(f".{m}" in f".{name}" for m in config["modules_to_save"]):
            continue  # reported above
        if not (in_language_model and leaf in LM_LINEAR):
            outside.append(name)
    if outside:
        shown = ", ".join(outside[:3]) + (f" and {len(outside) - 3} more" if len(outside) > 3 else "")
        problems.append(f"it adapts {shown}: vLLM applies LoRA to the language model's {'/'.join(LM_LINEAR)} only")
    return problems
