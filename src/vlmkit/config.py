"""The run configuration: one validated YAML file per training run, plus dotted command-line overrides.

Every section forbids unknown keys, and every error names the key (`lora.rank: ...`). Relative input paths
(model.path, model.processor, data.train, data.eval, distributed.deepspeed) are resolved against the config
file's folder when they come from the file, and against the working directory when they come from an
override; `output_dir` is relative to the working directory (where runs are started from).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .io import read_yaml_mapping

Method = Literal["lora", "qlora", "full"]
INPUT_PATH_KEYS = ("model.path", "model.processor", "data.train", "data.eval", "distributed.deepspeed")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSection(Section):
    path: str = Field(description="Hub id or local checkpoint folder (relative to the config file).")
    family: str | None = Field(None, description="Expected family; checked against the checkpoint's model_type.")
    processor: str | None = Field(None, description="Processor folder or hub id, if not the model's own.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    attn_implementation: str | None = Field(None, description="eager | sdpa | flash_attention_2 | ...")

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str | None) -> str | None:
        from .models.registry import FAMILIES

        if value is not None and value not in FAMILIES:
            raise ValueError(f"unknown family '{value}'; supported: {', '.join(FAMILIES)}")
        return value


class AugmentSection(Section):
    """Train-time image augmentation (data/augment.py). Every range is bounded so the answer stays true; the
    transforms that can change an answer (flips, large rotations) are refused where they would (preflight)."""

    p: float = Field(0.5, ge=0, le=1, description="Chance each configured transform is applied to an image or video.")
    brightness: float = Field(0.0, ge=0, le=0.5, description="Colour jitter: brightness factor in [1-b, 1+b].")
    contrast: float = Field(0.0, ge=0, le=0.5, description="Colour jitter: contrast factor in [1-c, 1+c].")
    saturation: float = Field(0.0, ge=0, le=0.5, description="Colour jitter: saturation factor in [1-s, 1+s].")
    hue: float = Field(0.0, ge=0, le=0.1, description="Colour jitter: hue shift in [-h, h] (fraction of the wheel).")
    crop_scale: float = Field(
        1.0, ge=0.5, le=1, description="Crop keeping at least this share of the area, resized back (1: off)."
    )
    rotation: float = Field(0.0, ge=0, le=30, description="Rotation in [-r, r] degrees (over 10: not for text).")
    jpeg_quality: tuple[int, int] | None = Field(
        None, description="JPEG re-compression quality range, within [20, 100]."
    )
    blur_sigma: tuple[float, float] | None = Field(None, description="Gaussian blur sigma range in pixels, (0, 3].")
    hflip: float = Field(0.0, ge=0, le=1, description="Chance of a horizontal flip (refused for text, left/right).")
    vflip: float = Field(0.0, ge=0, le=1, description="Chance of a vertical flip (refused for text, above/below).")
    text_reading: Literal["auto"] | bool = Field(
        "auto", description="Whether answers depend on reading text in the image; auto: from the dataset's names."
    )

    @field_validator("jpeg_quality")
    @classmethod
    def _quality(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 20 <= value[0] <= value[1] <= 100:
            raise ValueError(f"needs [low, high] with 20 <= low <= high <= 100, got {list(value)}")
        return value

    @field_validator("blur_sigma")
    @classmethod
    def _sigma(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 < value[0] <= value[1] <= 3:
            raise ValueError(f"needs [low, high] with 0 < low <= high <= 3 pixels, got {list(value)}")
        return value


class DataSection(Section):
    train: str = Field(description="Dataset folder with samples.jsonl (or the samples.jsonl file itself).")
    eval: str | None = Field(None, description="Held-out dataset folder for periodic evaluation.")
    eval_limit: int | None = Field(None, ge=1, description="Use at most this many eval samples.")
    min_pixels: int | None = Field(None, ge=1)
    max_pixels: int | None = Field(None, ge=1)
    nframes: int | None = Field(None, ge=1, description="Frames sampled per video (exclusive with fps).")
    fps: float | None = Field(None, gt=0, description="Video sampling rate (exclusive with nframes).")
    max_frames: int = Field(64, ge=1)
    max_length: int | None = Field(None, ge=8, description="Longest sequence in tokens, media included.")
    on_overflow: Literal["error", "drop"] = "error"
    packing: bool = Field(
        True,  # padded, length-grouped batches with false (docs/training.md, Packing)
        description="Pack whole samples end to end, each attending only to itself, into rows of up to max_length "
        "tokens (default: room for train.batch_size samples of mean length); a micro-batch takes as many rows as "
        "hold train.batch_size samples on average.",
    )
    augment: AugmentSection | None = Field(
        None, description="Train-time image augmentation, seeded per (train.seed, epoch, sample id); null: off."
    )

    @model_validator(mode="after")
    def _consistent(self) -> DataSection:
        from .data.media_settings import media_problem  # the one media rule, shared with inference

        problem = media_problem(self.min_pixels, self.max_pixels, self.nframes, self.fps, self.max_frames)
        if problem:
            raise ValueError(problem)
        return self


class LoraSection(Section):
    rank: int = Field(16, ge=1)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    targets: Literal["default", "all-linear"] | list[str] = Field(
        "default",
        description="'default' (the family's attention + MLP projections), 'all-linear' (every linear "
        "layer of the language model) or a list of module names (e.g. [q_proj, v_proj]).",
    )
    targets_extra: list[str] = Field(
        default_factory=list, description="More LoRA targets outside the decoder layers, e.g. [lm_head, embed_tokens]."
    )
    modules_to_save: list[str] = Field(
        default_factory=list, description="Modules trained fully and saved with the adapter, e.g. [lm_head]."
    )
    vision: bool = Field(False, description="Also put LoRA on the vision tower's linear layers.")
    vision_targets: list[str] | None = Field(None, description="Vision module names for LoRA (default: all linear).")
    bias: Literal["none", "all", "lora_only"] = "none"
    use_rslora: bool = False

    @field_validator("targets")
    @classmethod
    def _nonempty(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("an empty list targets nothing; use 'default', 'all-linear' or name modules")
        return value


class FreezeSection(Section):
    """Which base weights stay fixed. None means the method's default (see `resolved`)."""

    vision: bool = True
    projector: bool | None = None
    language_model: bool | None = None

    def resolved(self, method: str) -> dict[str, bool]:
        full = method == "full"
        return {
            "vision": self.vision,
            "projector": (not full) if self.projector is None else self.projector,
            "language_model": (not full) if self.language_model is None else self.language_model,
        }


class OptimSection(Section):
    name: Literal["adamw", "adamw_8bit"] = "adamw"
    lr: float = Field(2e-4, gt=0, description="Learning rate of the language model (and its LoRA adapters).")
    vision_lr: float | None = Field(None, gt=0, description="Vision tower learning rate (default: lr).")
    projector_lr: float | None = Field(None, gt=0, description="Projector learning rate (default: lr).")
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    warmup_steps: int = Field(0, ge=0, description="Overrides warmup_ratio when > 0.")

    @field_validator("betas")
    @classmethod
    def _betas(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in value):
            raise ValueError(f"both betas must be in [0, 1), got {list(value)}")
        return value


class TrainSection(Section):
    batch_size: int = Field(1, ge=1, description="Samples per device per micro-step.")
    grad_accum: int = Field(1, ge=1, description="Micro-steps per optimiser step.")
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="Optimiser steps; overrides epochs.")
    gradient_checkpointing: bool = False
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    seed: int = 42
    group_by_length: bool = Field(
        True, description="Batch samples of similar prompt length (media + question) to waste little padding."
    )
    logging_steps: int = Field(1, ge=1)
    stall_steps: int | None = Field(
        10,
        ge=1,
        description="Stop when the gradient norm is 0 or the loss is unchanged for this many logged steps in a row "
        "(a dead model); a warning comes after 3. null: warn only.",
    )
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes that build batches.")
    prefetch_batches: int = Field(
        1,
        ge=0,
        description="With num_workers 0: micro-batches built ahead on a background thread while the model trains "
        "(same batches, same results): on a GPU (each waits there for its step), and on a CPU when torch's threads "
        "leave a core free. 0 builds each batch on the training thread between steps.",
    )


class EvalSection(Section):
    every: int | None = Field(None, ge=1, description="Evaluate on data.eval every N optimiser steps.")
    batch_size: int | None = Field(None, ge=1, description="Default: train.batch_size.")


class SaveSection(Section):
    every: int = Field(500, ge=1, description="Save a checkpoint every N optimiser steps.")
    keep_last: int | None = Field(2, ge=1, description="Checkpoints kept (older ones deleted); null keeps all.")


class TrackingSection(Section):
    backends: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(default_factory=lambda: ["tensorboard"])
    project: str | None = None
    run_name: str | None = None
    log_model: bool = Field(
        True, description="Upload the final adapter/ or model/ folder to W&B / MLflow as an artifact at the end."
    )


class DistributedSection(Section):
    """How a multi-process run (torchrun / accelerate launch) shares the work. Plain DDP needs nothing here."""

    deepspeed: str | None = Field(
        None, description="DeepSpeed JSON config (configs/deepspeed/zero2.json, zero3.json, zero3_offload.json)."
    )
    fsdp: bool = Field(False, description="Shard parameters, gradients and optimiser state with FSDP.")
    fsdp_config: dict[str, Any] | None = Field(
        None,
        description="FSDP options as transformers reads them (version: 2 is FSDP2, the default; "
        "reshard_after_forward, cpu_offload, state_dict_type, transformer_layer_cls_to_wrap, ...).",
    )
    ddp_backend: Literal["nccl", "gloo", "mpi", "ccl", "hccl"] | None = None
    find_unused_parameters: bool = False

    @field_validator("fsdp", mode="before")
    @classmethod
    def _fsdp_switch(cls, value: Any) -> Any:
        if isinstance(value, str | list):
            raise ValueError(
                "the string form ('full_shard auto_wrap') is gone: set fsdp: true and put options in "
                "fsdp_config (e.g. reshard_after_forward: false for shard_grad_op, cpu_offload: true for offload)"
            )
        return False if value is None else value  # config.yaml files of earlier runs say fsdp: null

    @field_validator("fsdp_config")
    @classmethod
    def _fsdp_version(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        version = (value or {}).get("version", (value or {}).get("fsdp_version", 2))
        if str(version) not in ("1", "2"):
            raise ValueError(f"version: FSDP version must be 1 or 2 (2, FSDP2, is the default), got {version!r}")
        return value

    @model_validator(mode="after")
    def _one_engine(self) -> DistributedSection:
        if self.deepspeed and self.fsdp:
            raise ValueError("choose DeepSpeed or FSDP, not both")
        if self.fsdp_config and not self.fsdp:
            raise ValueError("fsdp_config: set fsdp: true to use FSDP")
        return self


def _fsdp_checkpointing_rule(config: RunConfig) -> None:
    options = config.distributed.fsdp_config or {}
    if config.method != "full" and str(options.get("activation_checkpointing", False)).lower() == "true":
        raise ValueError(
            "distributed.fsdp_config.activation_checkpointing: FSDP's checkpoint wrapper renames the layers and PEFT "
            "then saves an empty adapter; use train.gradient_checkpointing: true instead"
        )


class RunConfig(Section):
    name: str | None = Field(None, description="Run name (default: the config file's stem).")
    output_dir: str | None = Field(None, description="Run directory (default: runs/<name>).")
    model: ModelSection
    data: DataSection
    method: Method = "lora"
    lora: LoraSection = Field(default_factory=LoraSection)
    freeze: FreezeSection = Field(default_factory=FreezeSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    save: SaveSection = Field(default_factory=SaveSection)
    tracking: TrackingSection = Field(default_factory=TrackingSection)
    distributed: DistributedSection = Field(default_factory=DistributedSection)
    _source: str | None = PrivateAttr(None)  # the YAML file this came from, if any

    @model_validator(mode="after")
    def _method_rules(self) -> RunConfig:
        freeze = self.freeze.resolved(self.method)
        if self.method in ("lora", "qlora") and not freeze["language_model"]:
            raise ValueError(
                "freeze.language_model: false trains the whole language model; with LoRA the "
                "language model learns through its adapters. Use method: full, or name modules in "
                "lora.modules_to_save"
            )
        if self.method == "full" and self.lora.vision:
            raise ValueError("lora.vision: LoRA options do not apply to method: full")
        if self.method != "full" and self.lora.vision and not freeze["vision"]:
            raise ValueError(
                "lora.vision: LoRA on the vision tower and freeze.vision: false (train it fully) exclude each other"
            )
        if self.method == "full" and all(freeze.values()):
            raise ValueError("freeze: with method full and every group frozen nothing would train")
        if self.eval.every is not None and self.data.eval is None:
            raise ValueError("eval.every: needs a held-out set in data.eval")
        _fsdp_checkpointing_rule(self)
        return self

    # --- derived values ----------------------------------------------------------------------
    @property
    def source(self) -> Path | None:
        return Path(self._source) if self._source else None

    def run_name(self) -> str:
        return self.name or "run"

    def run_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path("runs") / self.run_name()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


# --- loading -------------------------------------------------------------------------------------


def load_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML run config, apply `key.sub=value` overrides, resolve paths and validate."""
    path = Path(path)
    raw = read_yaml_mapping(path, "config file")
    raw.setdefault("name", path.stem)
    _resolve_paths(raw, path.parent.resolve())
    return config_from_dict(raw, overrides=overrides, source=str(path))


def config_from_dict(
    raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = (), source: str = "config"
) -> RunConfig:
    """Validate a config mapping (paths as given; override paths resolved against the working directory)."""
    data = _deep_copy(raw)
    patch = parse_overrides(overrides)
    _resolve_paths(patch, Path.cwd())
    _merge(data, patch)
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from None
    if Path(source).is_file():
        config._source = str(Path(source).resolve())
    return config


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`lora.rank=16 data.train=x` -> nested dict; values are parsed as YAML (16 -> int, [a, b] -> list)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override '{item}': expected dotted.key=value (e.g. lora.rank=16)")
        parsed = _parse_value(value)
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            existing = node.setdefault(part, {})
            if not isinstance(existing, dict):
                raise ConfigError(f"override '{item}': '{part}' is set to a value earlier and cannot have sub-keys")
            node = existing
        node[parts[-1]] = parsed
    return out


_EXPONENT_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _parse_value(text: str) -> Any:
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return text  # a plain string that happens to look like bad YAML
    if isinstance(value, str) and _EXPONENT_NUMBER.match(value):
        return float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
    return value


def format_validation_error(exc: ValidationError) -> str:
    """The first problem as 'key.path: reason', with a spelling suggestion for unknown keys."""
    messages = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"]]
        key = ".".join(loc)
        where = f"{key}: " if key else ""
        if err["type"] == "extra_forbidden":
            messages.append(f"{key}: unknown key{_suggest(loc)}")
        elif err["type"] == "missing":
            messages.append(f"{key}: required key is missing")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            shown = repr(err.get("input")) if not isinstance(err.get("input"), dict) else None
            messages.append(f"{where}{msg}" + (f" (got {shown})" if shown is not None and key else ""))
    first, rest = messages[0], len(messages) - 1
    return first + (f" (and {rest} more problem{'s' * (rest > 1)}: {'; '.join(messages[1:4])})" if rest else "")


def _suggest(loc: list[str]) -> str:
    """'did you mean ...' from the fields of the section that holds the unknown key."""
    model: Any = RunConfig
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        # an optional section (data.augment: AugmentSection | None) suggests from its section's keys
        annotation = next((a for a in getattr(annotation, "__args__", ()) if isinstance(a, type)), annotation)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
    if close:
        return f" (did you mean '{'.'.join([*loc[:-1], close[0]])}'?)"
    return f"; known keys here: {', '.join(model.model_fields)}"


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    for dotted in INPUT_PATH_KEYS:
        section, key = dotted.split(".")
        node = data.get(section)
        if not isinstance(node, dict) or not isinstance(node.get(key), str):
            continue
        value = node[key]
        if dotted in ("model.path", "model.processor"):
            node[key] = resolve_model_ref(value, base)
        else:
            node[key] = str((base / os.path.expanduser(value)).resolve())


def resolve_model_ref(value: str, base: Path) -> str:
    """A local folder relative to `base` if one exists there (or the value looks like a path), else a hub id."""
    expanded = os.path.expanduser(value)
    candidate = (base / expanded).resolve()
    if os.path.isabs(expanded):
        return expanded
    if candidate.exists() or value.startswith((".", "~")) or value.count("/") != 1:
        return str(candidate)
    return value  # org/name: a hub id


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def dotted_items(data: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config dict as {"lora.rank": 16, ...}: the keys the command-line overrides use."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(dotted_items(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out
