"""Family name -> adapter. Dispatch is on the checkpoint's `config.model_type`, never on a name substring."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import VlmkitError
from . import internvl, llava, qwen2_5_vl, qwen2_vl, qwen3_vl, smolvlm
from .base import FamilyAdapter

FAMILIES: dict[str, FamilyAdapter] = {
    adapter.name: adapter
    for adapter in (
        qwen2_vl.ADAPTER,
        qwen2_5_vl.ADAPTER,
        qwen3_vl.ADAPTER,
        llava.ADAPTER,
        smolvlm.ADAPTER,
        internvl.ADAPTER,
    )
}
_BY_MODEL_TYPE = {mt: a for a in FAMILIES.values() for mt in a.model_types}


def family_names() -> list[str]:
    return list(FAMILIES)


def get_family(name: str) -> FamilyAdapter:
    try:
        return FAMILIES[name]
    except KeyError:
        raise VlmkitError(f"unknown model family '{name}'; supported: {', '.join(FAMILIES)}") from None


def family_for_model_type(model_type: str, source: object = None) -> FamilyAdapter:
    adapter = _BY_MODEL_TYPE.get(model_type)
    if adapter is None:
        where = f"{source}: " if source else ""
        raise VlmkitError(
            f"{where}model_type '{model_type}' is not supported; supported: {', '.join(sorted(_BY_MODEL_TYPE))}"
        )
    return adapter


def read_model_type(model: str | os.PathLike) -> str:
    """config.model_type of a local checkpoint folder or a hub id (hub ids go through transformers' cache)."""
    path = Path(model)
    if path.is_dir():
        config_file = path / "config.json"
        if not config_file.exists():
            raise VlmkitError(f"{path}: not a model folder (no config.json)")
        try:
            return json.loads(config_file.read_text(encoding="utf-8"))["model_type"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise VlmkitError(f"{config_file}: unreadable model config ({exc})") from None
    if path.exists():
        raise VlmkitError(f"{path}: expected a model folder or a hub id, got a file")
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(model)).model_type
    except OSError as exc:
        raise VlmkitError(
            f"cannot find model '{model}': not a local folder, and the hub lookup failed ({str(exc).splitlines()[0]})"
        ) from None


def detect_family(model: str | os.PathLike) -> FamilyAdapter:
    return family_for_model_type(read_model_type(model), source=model)
