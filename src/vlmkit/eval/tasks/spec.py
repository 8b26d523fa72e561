"""A task is data: prompt template, metrics, answer post-processing, generation settings, grouping keys.

Built-in tasks live in `builtin.py`; custom ones come from YAML (validated by `TaskFile`, errors name the
key). `Task.build_messages` turns a Sample into the chat messages the engine receives.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...errors import ConfigError, VlmkitError
from ...metrics.registry import get_metric, score_key_names
from .choice_prompt import choice_content, choice_question
from .postprocess import build_pipeline, check_step

SUBMISSION_FORMATS = ("vizwiz", "docvqa", "vqa")
PROMPT_STYLES = ("template", "choice")


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 32
    greedy: bool = True  # greedy decoding, as published evaluations use
    temperature: float = 0.0  # only read when greedy is False
    top_p: float = 1.0
    num_beams: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Task:
    name: str
    metrics: tuple[str, ...]
    prompt: str = "{question}"
    system_prompt: str | None = None
    postprocess: tuple[Any, ...] = ("strip",)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    group_by: tuple[str, ...] = ()  # meta keys always broken down (others are detected automatically)
    failure_threshold: float | None = 1.0  # primary score below this counts as wrong; None: no failure analysis
    submission_format: str | None = None
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False, compare=False)
    description: str = ""
    # "choice": the question is first laid out as the leaderboards do (hint, question, lettered options from
    # meta.options; images at <image N> placeholders), then put into `prompt`
    prompt_style: str = "template"
    suite: str | None = None  # a benchmark's own aggregate scores (suites.py): "mmbench", "pope", "mme"

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ConfigError(f"task '{self.name}': needs at least one metric")
        for name in self.metrics:
            get_metric(name)
        _check_template(self.prompt, self.name)
        for step in self.postprocess:
            check_step(step)
        for metric, options in self.metric_options.items():
            if metric not in self.metrics:
                raise ConfigError(f"task '{self.name}': metric_options for '{metric}', which is not in metrics")
            allowed = get_metric(metric).options
            for key in options:
                if key not in allowed:
                    raise ConfigError(
                        f"task '{self.name}': metric_options.{metric}.{key}: unknown option "
                        f"(allowed: {', '.join(allowed) or 'none'})"
                    )
        if "similarity" in self.metrics and "model" not in self.metric_options.get("similarity", {}):
            raise ConfigError(
                f"task '{self.name}': the similarity metric needs metric_options.similarity.model "
                "(path of a sentence-transformers model folder)"
            )
        if self.prompt_style not in PROMPT_STYLES:
            raise ConfigError(
                f"task '{self.name}': unknown prompt_style '{self.prompt_style}' (known: {', '.join(PROMPT_STYLES)})"
            )
        if self.suite is not None:
            from .suites import SUITES

            if self.suite not in SUITES:
                raise ConfigError(f"task '{self.name}': unknown suite '{self.suite}' (known: {', '.join(SUITES)})")
        if self.submission_format not in (None, *SUBMISSION_FORMATS):
            raise ConfigError(
                f"task '{self.name}': unknown submission_format '{self.submission_format}' "
                f"(known: {', '.join(SUBMISSION_FORMATS)})"
            )

    # --- views -------------------------------------------------------------------------------------
    @property
    def score_keys(self) -> list[str]:
        return score_key_names(self.metrics)

    @property
    def primary(self) -> str:
        """The headline score: the first key of the first metric."""
        return self.score_keys[0]

    @cached_property
    def _pipeline(self) -> Callable[[str], str]:
        return build_pipeline(self.postprocess)

    def postprocess_answer(self, text: str) -> str:
        return self._pipeline(text)

    def render_prompt(self, question: str) -> str:
        return self.prompt.format(question=question)

    def build_messages(self, sample: Any) -> list[dict[str, Any]]:
        """Chat messages (HF format) for a Sample: the last user turn's text becomes the rendered prompt,
        its images/videos stay where they were; a trailing assistant turn (the target) is dropped."""
        messages = [m.model_dump() for m in sample.prompt_messages()]
        last = max(i for i, m in enumerate(messages) if m["role"] == "user")
        question = sample.question()
        if self.prompt_style == "choice":
            text = self.render_prompt(choice_question(question, sample.meta))
            messages[last] = {"role": "user", "content": choice_content(messages[last]["content"], text)}
            return self._with_system(messages)
        content, placed = [], False
        for part in messages[last]["content"]:
            if part["type"] != "text":
                content.append(part)
            elif not placed:
                content.append({"type": "text", "text": self.render_prompt(question)})
                placed = True
        if not placed:
            content.append({"type": "text", "text": self.render_prompt(question)})
        messages[last] = {"role": "user", "content": content}
        return self._with_system(messages)

    def _with_system(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.system_prompt and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
        return messages

    def describe(self) -> dict[str, Any]:
        """What goes into the run manifest."""
        return {
            "name": self.name,
            "prompt": self.prompt,
            "system_prompt": self.system_prompt,
            "metrics": list(self.metrics),
            "postprocess": list(self.postprocess),
            "generation": self.generation.to_dict(),
            "group_by": list(self.group_by),
            "failure_threshold": self.failure_threshold,
            "submission_format": self.submission_format,
            "metric_options": self.metric_options,
            "prompt_style": self.prompt_style,
            "suite": self.suite,
        }


def _check_template(template: str, task: str | None) -> None:
    where = f"task '{task}': " if task else ""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ConfigError(f"{where}prompt template is malformed ({exc}); write literal braces as {{{{ }}}}") from None
    if fields != {"question"}:
        extra = sorted(fields - {"question"})
        if extra:
            raise ConfigError(
                f"{where}prompt template has unknown placeholder(s) {extra}; only {{question}} "
                "is filled in (write literal braces as {{ }})"
            )
        raise ConfigError(f"{where}prompt template must contain {{question}}")


# --- YAML schema -----------------------------------------------------------------------------------
class GenerationFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_new_tokens: int = Field(32, ge=1, le=32768)
    greedy: bool = True
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    num_beams: int = Field(1, ge=1)


class TaskFile(BaseModel):
    """A custom task in YAML. `extends` copies a built-in task, then the keys given here replace its values."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    extends: str | None = None
    description: str | None = None
    prompt: str | None = None
    system_prompt: str | None = None
    metrics: list[str] | None = Field(None, min_length=1)
    postprocess: list[str | dict[str, str]] | None = None
    generation: GenerationFile | None = None
    group_by: list[str] | None = None
    failure_threshold: float | None = Field(None, ge=0.0)
    submission_format: Literal["vizwiz", "docvqa", "vqa"] | None = None
    metric_options: dict[str, dict[str, Any]] | None = None
    prompt_style: Literal["template", "choice"] | None = None
    suite: Literal["mmbench", "pope", "mme"] | None = None

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            try:
                get_metric(name)
            except VlmkitError as exc:  # re-raised as ValueError so pydantic names the key
                raise ValueError(str(exc)) from None
        return value

    @field_validator("prompt")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                _check_template(value, None)
            except VlmkitError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("postprocess")
    @classmethod
    def _known_steps(cls, value: list[Any] | None) -> list[Any] | None:
        for step in value or []:
            try:
                check_step(step)
            except VlmkitError as exc:
                raise ValueError(str(exc)) from None
        return value
