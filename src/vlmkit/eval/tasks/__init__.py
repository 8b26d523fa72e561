"""Task registry: built-in tasks by name, custom tasks from YAML files.

get_task("docvqa")              -> Task
get_task("my_tasks/foo.yaml")   -> Task loaded from YAML (validated)
register_task(task)             -> add a task (e.g. from a plugin or a test)
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from pydantic import ValidationError

from ...errors import ConfigError, VlmkitError
from ...io import read_yaml_mapping
from .builtin import BUILTIN_TASKS
from .postprocess import STEPS
from .spec import GenerationSettings, Task, TaskFile

__all__ = [
    "Task",
    "GenerationSettings",
    "TaskFile",
    "TASKS",
    "register_task",
    "get_task",
    "list_tasks",
    "load_task_file",
    "task_from_dict",
    "STEPS",
]

TASKS: dict[str, Task] = {}


def register_task(task: Task, *, replace: bool = False) -> Task:
    if task.name in TASKS and not replace:
        raise VlmkitError(f"task '{task.name}' is already registered")
    TASKS[task.name] = task
    return task


for _task in BUILTIN_TASKS:
    register_task(_task)


def list_tasks() -> list[str]:
    return sorted(TASKS)


def _looks_like_file(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or os.sep in name or "/" in name


def get_task(name_or_path: str | os.PathLike | Task) -> Task:
    """A registered task by name, or a custom task from a YAML file path."""
    if isinstance(name_or_path, Task):
        return name_or_path
    name = str(name_or_path)
    if name in TASKS:
        return TASKS[name]
    if _looks_like_file(name):
        return load_task_file(name)
    raise VlmkitError(f"unknown task '{name}' (known: {', '.join(list_tasks())}; or give a task YAML file)")


def load_task_file(path: str | os.PathLike) -> Task:
    return task_from_dict(read_yaml_mapping(path, "task file"), source=str(path))


def task_from_dict(data: Any, *, source: str = "task") -> Task:
    """Validate a custom task definition; ConfigError names the source and the bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a task file must be a mapping of keys, got {type(data).__name__}")
    try:
        spec = TaskFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key (allowed: {', '.join(TaskFile.model_fields)})"
        raise ConfigError(f"{source}: key '{key}': {msg}") from None
    values = spec.model_dump(exclude_unset=True, exclude={"extends"})
    if spec.extends:
        if spec.extends not in TASKS:
            raise ConfigError(
                f"{source}: key 'extends': unknown task '{spec.extends}' (known: {', '.join(list_tasks())})"
            )
        base = dataclasses.asdict(TASKS[spec.extends])
        base["generation"] = TASKS[spec.extends].generation.to_dict()
        base.update(values)
        values = base
    if "metrics" not in values:
        raise ConfigError(f"{source}: key 'metrics': required (or use 'extends' to start from a built-in task)")
    values["generation"] = GenerationSettings(**(values.get("generation") or {}))
    values = {
        k: v
        for k, v in values.items()
        if v is not None or k in ("system_prompt", "failure_threshold", "submission_format")
    }
    for key in ("metrics", "postprocess", "group_by"):
        if key in values:
            values[key] = tuple(values[key])
    try:
        return Task(**values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
