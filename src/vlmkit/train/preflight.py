"""Everything that can be checked before a model is loaded: data, model family, processor, optional packages,
the run directory. A bad run fails here in seconds with a message naming the key, file or record."""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from ..data.schema import SAMPLES_FILE, Sample, read_samples, samples_path
from ..errors import ConfigError, DataError, VlmkitError
from ..io import check_output_dir
from ..models.base import FamilyAdapter
from ..models.registry import detect_family

log = logging.getLogger("vlmkit.train")

CHECKPOINTS_DIR = "checkpoints"
FINAL_DIRS = ("adapter", "model")
# Everything a run writes into its run directory: what --overwrite removes (nothing else in the folder is touched).
RUN_ENTRIES = ("config.yaml", "manifest.json", "log_history.json", "logs", CHECKPOINTS_DIR, *FINAL_DIRS)


@dataclass
class Checked:
    family: FamilyAdapter
    train_samples: list[Sample]
    eval_samples: list[Sample]
    run_dir: Path
    resume_from: str | None


def preflight(config: RunConfig, *, resume: bool = False, overwrite: bool = False) -> Checked:
    if resume and overwrite:
        raise ConfigError("--resume continues the run in the run directory and --overwrite discards it: pick one")
    train_samples = _read_dataset(config.data.train, "data.train")
    eval_samples = _read_dataset(config.data.eval, "data.eval") if config.data.eval else []
    if config.data.eval_limit:
        eval_samples = eval_samples[: config.data.eval_limit]
    family = _check_model(config)
    _check_media(family, train_samples, config.data.train)
    _check_media(family, eval_samples, config.data.eval)
    _check_packages(config)
    # a flip that would change answers fails here, with the reason
    from ..data.image_augment_safety import check_augment

    check_augment(config.data.augment, train_samples, config.data.train)
    run_dir = check_output_dir(
        config.run_dir(),
        {
            "data.train": config.data.train,
            "data.eval": config.data.eval,
            "model.path": config.model.path,
            "model.processor": config.model.processor,
        },
        option="run directory (--out / output_dir)",
    )
    return Checked(family, train_samples, eval_samples, run_dir, _check_run_dir(run_dir, resume, overwrite))


def _read_dataset(folder: str, key: str) -> list[Sample]:
    path = Path(folder)
    if not path.exists():
        raise ConfigError(f"{key}: {path} does not exist")
    if not samples_path(path).exists():
        raise ConfigError(f"{key}: {path} has no {SAMPLES_FILE} (expected a vlmkit dataset folder)")
    samples = read_samples(path)
    if not samples:
        raise DataError("no samples to train on" if key == "data.train" else "no samples", path=samples_path(path))
    from ..data.missing_media import find_missing

    missing = find_missing(samples)  # paths are already resolved against the dataset folder
    if missing.files:
        raise DataError(f"{key}: {missing.sentence()}", path=samples_path(path))
    return samples


def _check_model(config: RunConfig) -> FamilyAdapter:
    try:
        family = detect_family(config.model.path)
    except VlmkitError as exc:  # missing folder, unreadable config.json, unsupported model_type
        raise ConfigError(f"model.path: {exc}") from None
    if config.model.family and config.model.family != family.name:
        raise ConfigError(
            f"model.family: the config says '{config.model.family}' but {config.model.path} is a "
            f"{family.name} checkpoint (config.json model_type)"
        )
    processor_source = config.model.processor or config.model.path
    found = processor_class(processor_source)
    expected = expected_processor_classes(family)
    if found and expected and found not in expected:
        key = "model.processor" if config.model.processor else "model.path"
        raise ConfigError(
            f"{key}: the processor at {processor_source} is a {found}, which does not belong to the "
            f"{family.name} family (expected {' or '.join(sorted(expected))})"
        )
    return family


def processor_class(source: str) -> str | None:
    """processor_class recorded in a local processor/tokenizer config; None when unknown (e.g. a hub id)."""
    folder = Path(source)
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        file = folder / name
        if file.is_file():
            try:
                value = json.loads(file.read_text(encoding="utf-8")).get("processor_class")
            except (json.JSONDecodeError, AttributeError):
                continue
            if value:
                return value
    return None


def expected_processor_classes(family: FamilyAdapter) -> set[str]:
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    return {PROCESSOR_MAPPING_NAMES[t] for t in family.model_types if PROCESSOR_MAPPING_NAMES.get(t)}


def _check_media(family: FamilyAdapter, samples: list[Sample], source: str | None) -> None:
    if family.supports_video:
        return
    for sample in samples:
        if sample.media("video"):
            raise DataError(
                f"sample '{sample.id}' has a video, and {family.name} models take images only",
                path=samples_path(source) if source else None,
            )


def _check_packages(config: RunConfig) -> None:
    needs = []
    if config.method == "qlora":
        needs.append(("bitsandbytes", "method: qlora", "vlmkit[qlora]"))
    if config.optim.name == "adamw_8bit":
        needs.append(("bitsandbytes", "optim.name: adamw_8bit", "vlmkit[qlora]"))
    for backend in config.tracking.backends:
        if backend != "tensorboard":
            needs.append((backend, f"tracking.backends: {backend}", f"vlmkit[{backend}]"))
    if config.distributed.deepspeed:
        needs.append(("deepspeed", "distributed.deepspeed", "vlmkit[deepspeed]"))
        if not Path(config.distributed.deepspeed).is_file():
            raise ConfigError(f"distributed.deepspeed: {config.distributed.deepspeed} does not exist")
    for module, key, extra in needs:
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"{key} needs the '{module}' package, which is not installed: pip install '{extra}'")


def _check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> str | None:
    checkpoints = run_dir / CHECKPOINTS_DIR
    last = last_checkpoint(checkpoints)
    if resume:
        if last is None:
            raise ConfigError(f"--resume: no checkpoint to resume from in {checkpoints}")
        return last
    if overwrite:  # the previous run is removed once training starts (clear_run_dir)
        return None
    if last is not None or any((run_dir / d).exists() for d in FINAL_DIRS):
        raise ConfigError(
            f"{run_dir} already holds a run; pass --resume to continue it, --overwrite to start it again, "
            "or choose another output directory (--out or output_dir)"
        )
    return None


def clear_run_dir(run_dir: Path) -> None:
    """Remove what a previous run wrote into run_dir (see RUN_ENTRIES), for --overwrite; other files stay."""
    import shutil

    for name in RUN_ENTRIES:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def last_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint; incomplete ones (a save cut short by a full disk or a kill) are skipped
    with a warning naming them."""
    from .checkpoints import last_complete

    found, skipped = last_complete(folder)
    for path in skipped:
        log.warning("skipping incomplete checkpoint %s (no readable trainer_state.json)", path)
    return str(found) if found else None
