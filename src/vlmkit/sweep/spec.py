"""The sweep file: a base training config, a search space over its dotted keys, the objective(s), the sampler,
the trial budget and pruning. Validated up front (every key and every choice against the run config schema),
so a typo fails before the first trial trains.

    base: train.yaml
    space:
      lora.rank: [8, 16, 32, 64]                  # a list: categorical choices (the grid for sampler: grid)
      optim.lr: {log_uniform: [1.0e-5, 1.0e-3]}   # also uniform / int_uniform
    objective:                                    # or a list of objectives (a multi-objective study)
      task: docvqa
      data: ../data/docvqa/val
      metric: anls                                # default: the task's primary metric
      direction: maximize
    sampler: grid                                 # grid | tpe | random
    trials: 16
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..config import RunConfig, _resolve_paths, config_from_dict, format_validation_error, parse_overrides
from ..errors import ConfigError
from ..io import read_yaml_mapping

# Objectives measured by the training run itself rather than by an eval task.
RUN_METRICS = {
    "trainable_params": "trainable parameters (all groups)",
    "s_per_step": "training seconds per optimiser step",
    "peak_memory_mb": "peak resident memory of the trial, MB",
    "eval_loss": "the trainer's final eval loss on data.eval",
}
RANGE_KINDS = ("log_uniform", "uniform", "int_uniform")


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str | None = Field(None, description="Task name or task YAML (relative to the sweep file).")
    data: str | None = Field(None, description="Eval dataset folder (relative to the sweep file).")
    metric: str | None = Field(None, description="Score key (default: the task's primary) or a run metric.")
    direction: Literal["maximize", "minimize"] = "maximize"
    slice: str | None = Field(None, description="Evaluate only this slice of the data, e.g. 0:200.")
    batch_size: int = Field(8, ge=1)


class Pruning(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pruner: Literal["median", "percentile", "successive_halving", "hyperband", "none"] = "median"
    startup_trials: int = Field(1, ge=0, description="Trials that finish before any is pruned.")
    warmup_steps: int = Field(0, ge=0, description="Steps of a trial before it may be pruned.")
    percentile: float = Field(25.0, gt=0, lt=100, description="For pruner: percentile.")


class Worker(BaseModel):
    model_config = ConfigDict(extra="forbid")
    heartbeat_s: int = Field(30, ge=1, description="How often a running trial proves its worker is alive.")
    grace_s: int = Field(120, ge=2, description="A running trial silent this long is failed and retried.")
    max_retries: int = Field(1, ge=0, description="Retries of a trial whose worker died.")


class SweepFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, description="Study name (default: the sweep file's stem).")
    base: str = Field(description="The vlmkit training config every trial starts from, relative to this file.")
    space: dict[str, Any] = Field(min_length=1)
    objective: Objective | list[Objective]
    sampler: Literal["grid", "tpe", "random"] = "tpe"
    trials: int | None = Field(None, ge=1, description="Trial budget (grid: at most the grid size).")
    seed: int = 0
    overrides: dict[str, Any] = Field(default_factory=dict, description="Fixed config keys for every trial.")
    pruning: Pruning | None = None
    worker: Worker = Field(default_factory=Worker)

    @field_validator("space")
    @classmethod
    def _space(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, spec in value.items():
            if isinstance(spec, list):
                if not spec:
                    raise ValueError(f"'{key}': an empty list of choices")
            elif isinstance(spec, dict):
                kinds = [k for k in spec if k in RANGE_KINDS]
                extra = [k for k in spec if k not in (*RANGE_KINDS, "step")]
                if len(kinds) != 1 or extra:
                    raise ValueError(f"'{key}': give a list of choices or one of {', '.join(RANGE_KINDS)}")
                low_high = spec[kinds[0]]
                if not (isinstance(low_high, list) and len(low_high) == 2 and low_high[0] < low_high[1]):
                    raise ValueError(f"'{key}': {kinds[0]} takes [low, high] with low < high")
                if kinds[0] == "log_uniform" and low_high[0] <= 0:
                    raise ValueError(f"'{key}': log_uniform needs a positive low bound")
            else:
                raise ValueError(f"'{key}': give a list of choices or a range such as {{log_uniform: [1e-5, 1e-3]}}")
        return value


@dataclass
class Sweep:
    """A validated sweep: the parsed file, where it lives, the base config as a mapping with absolute paths."""

    spec: SweepFile
    path: Path
    base_raw: dict[str, Any]
    objectives: list[Objective]

    @property
    def name(self) -> str:
        return self.spec.name or self.path.stem

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the categorical choices, in file order (sampler: grid)."""
        keys = list(self.spec.space)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(self.spec.space[k] for k in keys))]

    @property
    def budget(self) -> int:
        if self.spec.sampler == "grid":
            return min(len(self.grid), self.spec.trials or len(self.grid))
        return self.spec.trials or 10

    def fingerprint(self) -> str:
        """Equal for the same search (base config, space, objectives, sampler): a study refuses another one."""
        data = self.spec.model_dump(exclude={"trials", "worker", "name"})
        data["base"] = self.base_raw
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def trial_config(self, params: dict[str, Any], out_dir: Path) -> RunConfig:
        """The base config with the fixed overrides and this trial's parameters, written to `out_dir`."""
        raw = json.loads(json.dumps(self.base_raw))
        patch = _nested({**self.spec.overrides, **params})
        _merge_into(raw, patch)
        raw["output_dir"] = str(out_dir)
        raw["name"] = f"{self.name}-{out_dir.name}"
        return config_from_dict(raw, source=str(Path(self.spec.base)))


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    return parse_overrides([f"{k}={json.dumps(v)}" for k, v in flat.items()])


def _merge_into(base: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge_into(base[key], value)
        else:
            base[key] = value


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read and check a sweep file; ConfigError names the file and the key."""
    path = Path(path)
    raw = read_yaml_mapping(path, "sweep file")
    try:
        spec = SweepFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {format_validation_error(exc)}") from None
    here = path.parent.resolve()
    base_path = (here / spec.base).resolve()
    if not base_path.is_file():
        raise ConfigError(f"{path}: key 'base': training config {base_path} does not exist")
    base_raw = read_yaml_mapping(base_path, "config file")
    base_raw.setdefault("name", base_path.stem)
    _resolve_paths(base_raw, base_path.parent)
    spec.base = str(base_path)
    objectives = spec.objective if isinstance(spec.objective, list) else [spec.objective]
    for i, objective in enumerate(objectives):
        where = f"{path}: objective" + (f"[{i}]" if len(objectives) > 1 else "")
        if objective.metric in RUN_METRICS:
            continue
        if objective.task is None or objective.data is None:
            raise ConfigError(
                f"{where}: give task and data (or a run metric: {', '.join(RUN_METRICS)}) to score trials by"
            )
        task_path = here / objective.task
        if task_path.suffix in (".yaml", ".yml") and task_path.is_file():
            objective.task = str(task_path)
        objective.data = str((here / objective.data).resolve())
        if not Path(objective.data).exists():
            raise ConfigError(f"{where}.data: {objective.data} does not exist")
        _check_metric(objective, where)
    if spec.sampler == "grid":
        ranges = [k for k, v in spec.space.items() if not isinstance(v, list)]
        if ranges:
            raise ConfigError(f"{path}: sampler 'grid' needs lists of choices; '{ranges[0]}' is a range")
    if spec.pruning and spec.pruning.pruner != "none" and len(objectives) > 1:
        raise ConfigError(f"{path}: pruning works on one objective; this sweep has {len(objectives)}")
    sweep = Sweep(spec, path.resolve(), base_raw, objectives)
    _check_space_against_config(sweep)
    if spec.pruning and spec.pruning.pruner != "none":
        probe = sweep.trial_config(_first_choice(spec.space), Path("/tmp/probe"))
        if not (probe.eval.every and probe.data.eval):
            raise ConfigError(
                f"{path}: pruning is fed by the trainer's periodic eval: set eval.every and data.eval in the "
                "base config (or in overrides)"
            )
    return sweep


def _check_metric(objective: Objective, where: str) -> None:
    from ..eval.tasks import get_task

    try:
        task = get_task(objective.task)
    except Exception as exc:  # an unknown task or a bad task file
        raise ConfigError(f"{where}.task: {exc}") from None
    if objective.metric is not None and objective.metric not in task.score_keys:
        raise ConfigError(
            f"{where}.metric: '{objective.metric}' is not a score of task '{task.name}' "
            f"(it has {', '.join(task.score_keys)}; run metrics: {', '.join(RUN_METRICS)})"
        )
    objective.metric = objective.metric or task.primary


def _first_choice(space: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, spec in space.items():
        if isinstance(spec, list):
            out[key] = spec[0]
        else:
            kind = next(k for k in spec if k in RANGE_KINDS)
            out[key] = spec[kind][0]
    return out


def _check_space_against_config(sweep: Sweep) -> None:
    """Every choice (and both ends of every range) must make a valid run config."""
    for key, spec in sweep.spec.space.items():
        if isinstance(spec, list):
            values = spec
        else:
            kind = next(k for k in spec if k in RANGE_KINDS)
            values = spec[kind]
        for value in values:
            params = {**_first_choice(sweep.spec.space), key: value}
            try:
                sweep.trial_config(params, Path("/tmp/probe"))
            except ConfigError as exc:
                raise ConfigError(f"{sweep.path}: space '{key}' = {value!r}: {exc}") from None
