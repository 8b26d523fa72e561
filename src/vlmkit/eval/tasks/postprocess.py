"""Answer post-processing steps a task applies to the raw model output before scoring.

The raw text stays in predictions.jsonl; steps run at scoring time, so a run can be re-scored with other
steps. A step is a name (below) or {"regex": PATTERN}: the first capture group (or the whole match) of the
first match, the text unchanged when nothing matches. Steps are data, never code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from ...errors import ConfigError
from ...metrics.vqa import evalai_normalize

_ANSWER_PREFIX = re.compile(r"^\s*(?:the\s+)?(?:final\s+)?answer\s*(?:is)?\s*[:：]?\s*", re.IGNORECASE)


def _first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


STEPS: dict[str, Callable[[str], str]] = {
    "strip": str.strip,
    "lower": str.lower,
    "collapse_whitespace": lambda t: " ".join(t.split()),
    "first_line": _first_line,
    "strip_answer_prefix": lambda t: _ANSWER_PREFIX.sub("", t, count=1),
    "strip_trailing_period": lambda t: t.rstrip().rstrip("."),
    # The EvalAI answer processor LLaVA applies before VizWiz / TextVQA submissions ("Unanswerable" ->
    # "unanswerable", "two" -> "2", articles dropped).
    "vqa_answer_processor": evalai_normalize,
}


def check_step(step: Any) -> str | dict[str, str]:
    """Validate one step spec; ConfigError says what is allowed."""
    if isinstance(step, str):
        if step not in STEPS:
            raise ConfigError(f"unknown post-processing step '{step}' (known: {', '.join(STEPS)}, or {{regex: ...}})")
        return step
    if isinstance(step, dict) and set(step) == {"regex"} and isinstance(step["regex"], str):
        try:
            re.compile(step["regex"])
        except re.error as exc:
            raise ConfigError(f"post-processing regex {step['regex']!r} does not compile: {exc}") from None
        return {"regex": step["regex"]}
    raise ConfigError(f"a post-processing step is a name or {{regex: PATTERN}}, got {step!r}")


def _regex_step(pattern: str) -> Callable[[str], str]:
    compiled = re.compile(pattern, re.DOTALL)

    def apply(text: str) -> str:
        match = compiled.search(text)
        if not match:
            return text
        return match.group(1) if compiled.groups else match.group(0)

    return apply


def build_pipeline(steps: Sequence[str | dict[str, str]]) -> Callable[[str], str]:
    funcs = [STEPS[s] if isinstance(s, str) else _regex_step(s["regex"]) for s in map(check_step, steps)]

    def run(text: str) -> str:
        for func in funcs:
            text = func(text)
        return text

    return run
