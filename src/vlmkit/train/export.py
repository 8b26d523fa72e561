"""`export_merged`: fold a run's LoRA adapter into its base weights and save a plain checkpoint.

The output loads with `AutoModelForImageTextToText.from_pretrained(DIR)` and `AutoProcessor.from_pretrained(DIR)`
(processor and chat template included), and in vLLM as saved: the weights take the family's released key layout
(`models.interop`). A QLoRA run is merged into the base loaded in full precision, never
into 4-bit weights: merging into NF4 would round the adapter's update away.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import VlmkitError
from ..io import check_output_dir, write_json
from ..models.interop import write_released_layout

EXPORT_DTYPES = ("float32", "bfloat16", "float16")


def export_merged(
    run_dir: str | os.PathLike, out_dir: str | os.PathLike, *, dtype: str | None = None, overwrite: bool = False
) -> Path:
    """Merge RUN_DIR/adapter into the run's base model (or re-save RUN_DIR/model of a full run) into OUT_DIR."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    check_output_dir(out_dir, {"RUN_DIR": run_dir})  # --overwrite must never delete the run it exports
    config = _run_config(run_dir)
    if dtype is not None and dtype not in EXPORT_DTYPES:
        raise VlmkitError(f"--dtype must be one of {', '.join(EXPORT_DTYPES)}, not '{dtype}'")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise VlmkitError(f"{out_dir} is not empty; choose another --out or pass --overwrite")

    adapter_dir, full_dir = run_dir / "adapter", run_dir / "model"
    if config["method"] == "full":
        if not full_dir.is_dir():
            raise VlmkitError(f"{run_dir}: the full fine-tune has no final model/ folder (did training finish?)")
        source, adapter = full_dir, None
    else:
        if not (adapter_dir / "adapter_config.json").is_file():
            raise VlmkitError(
                f"{run_dir}: no final adapter in adapter/ (did training finish? a checkpoint can be "
                "exported after `vlmkit train CONFIG --resume` completes the run)"
            )
        source, adapter = Path(config["model"]["path"]), adapter_dir
        check_output_dir(out_dir, {"the run's base model": source})
        _refuse_quantized_base(source)
    dtype = dtype or _stored_dtype(source)
    model, processor, family = _merge(source, adapter, dtype)
    _save_atomically(out_dir, model, processor, family)
    write_json(
        out_dir / "export.json",
        {
            "run_dir": str(run_dir.resolve()),
            "method": config["method"],
            "base": str(source),
            "adapter": str(adapter) if adapter else None,
            "dtype": dtype,
            "note": "QLoRA adapter merged into the full-precision base" if config["method"] == "qlora" else None,
        },
    )
    return out_dir


def _run_config(run_dir: Path) -> dict[str, Any]:
    import yaml

    path = run_dir / "config.yaml"
    if not path.is_file():
        raise VlmkitError(f"{run_dir}: not a vlmkit run directory (no config.yaml)")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _refuse_quantized_base(source: Path) -> None:
    config_file = source / "config.json"
    if config_file.is_file() and "quantization_config" in json.loads(config_file.read_text(encoding="utf-8")):
        raise VlmkitError(
            f"{source} is stored quantized; merging needs the base in full precision. Point "
            "model.path in RUN_DIR/config.yaml at the unquantized checkpoint, or serve the adapter "
            "on the base instead of merging"
        )


def _stored_dtype(model_dir: Path) -> str:
    """The dtype the checkpoint was saved in, so a bf16 base exports as bf16 (float32 when unknown)."""
    config_file = model_dir / "config.json"
    if config_file.is_file():
        data = json.loads(config_file.read_text(encoding="utf-8"))
        stored = data.get("dtype") or data.get("torch_dtype")
        if stored in EXPORT_DTYPES:
            return stored
    return "float32"


def _merge(source: Path, adapter: Path | None, dtype: str) -> tuple[Any, Any, Any]:
    from ..models.loading import load_model, load_processor

    loaded = load_model(source, dtype=dtype)  # never quantized: merging needs real weights
    model = loaded.model
    processor_source = adapter if adapter is not None else source
    if adapter is not None:
        from peft import PeftModel

        untied = _untie_adapted_embeddings(model, adapter)
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        if untied:
            _retie_if_equal(model)
    return model, load_processor(processor_source), loaded.family


def _untie_adapted_embeddings(model: Any, adapter: Path) -> bool:
    """Give lm_head its own copy of tied input embeddings when the adapter changes either of them.

    Merged into one shared matrix, the two updates would land on both sides (or one would be lost); untied,
    each side gets exactly its own update and the export computes what adapter-on-base computes.
    """
    import torch
    from safetensors import safe_open

    inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
    if outputs is None or outputs.weight is not inputs.weight:
        return False
    weights = adapter / "adapter_model.safetensors"
    if not weights.is_file():
        return False
    with safe_open(str(weights), framework="pt") as handle:
        touched = any(".lm_head." in k or ".embed_tokens." in k for k in handle.keys())
    if touched:
        outputs.weight = torch.nn.Parameter(inputs.weight.detach().clone())
        _set_tied(model, False)
    return touched


def _retie_if_equal(model: Any) -> None:
    """Tied-adapter training (peft's ensure_weight_tying) gives both sides the same update: store one matrix."""
    import torch

    inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
    if torch.equal(inputs.weight, outputs.weight):
        outputs.weight = inputs.weight
        _set_tied(model, True)


def _set_tied(model: Any, tied: bool) -> None:
    for config in {id(c): c for c in (model.config, model.config.get_text_config())}.values():
        if hasattr(config, "tie_word_embeddings"):
            config.tie_word_embeddings = tied


def _save_atomically(out_dir: Path, model: Any, processor: Any, family: Any) -> None:
    """Write into a sibling temp folder and rename, so OUT_DIR is either complete or absent."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        write_released_layout(tmp, family)  # e.g. LLaVA's vision_tower.vision_model.*, which vLLM expects
        processor.save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
