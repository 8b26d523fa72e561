"""Argument checks shared by the per-sample metrics: fail loudly on wrong types instead of scoring garbage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_prediction(prediction: Any, metric: str) -> str:
    if not isinstance(prediction, str):
        raise TypeError(f"{metric}: prediction must be a string, got {type(prediction).__name__}")
    return prediction


def check_answers(answers: Sequence[str] | str, metric: str) -> list[str]:
    """A bare string counts as one answer; otherwise a non-empty sequence of strings."""
    if isinstance(answers, str):
        return [answers]
    if not isinstance(answers, (list, tuple)):
        raise TypeError(f"{metric}: answers must be a list of strings, got {type(answers).__name__}")
    if not answers:
        raise ValueError(f"{metric}: needs at least one reference answer")
    for answer in answers:
        if not isinstance(answer, str):
            raise TypeError(f"{metric}: every answer must be a string, got {type(answer).__name__}")
    return list(answers)
