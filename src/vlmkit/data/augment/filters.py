"""What makes a generated question unusable, checked in a fixed order so each variant is counted once:
failed (the endpoint gave no answer), empty, overlong, wrong language, same as the source, duplicate of an
earlier variant of the same source; then (optional) answer mismatch, decided by `answer_matches`.

Identity is decided after `normalize_question`: Unicode NFKC, case folded, punctuation dropped, whitespace
collapsed, so "What is this?" and "what is this" are the same question.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from .language import matches_language

FILTERS = ("failed", "empty", "overlong", "wrong_language", "same_as_source", "duplicate", "answer_mismatch")
_QUOTES = "\"'“”‘’«»「」『』`"
_LABEL = re.compile(r"^(?:rewritten question|paraphrase|question|translation)\s*[:：]\s*", re.IGNORECASE)


def normalize_question(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(text.split())


def clean_output(text: str) -> str:
    """The question in a model's reply: outer whitespace, a leading "Paraphrase:" label and wrapping quotes off."""
    previous = None
    while text != previous:  # "Paraphrase: “...”" and "“Paraphrase: ...”" alike
        previous = text
        text = _LABEL.sub("", text.strip()).strip()
        if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
            text = text[1:-1].strip()
    return text


@dataclass(frozen=True)
class Limits:
    max_ratio: float = 3.0  # a variant longer than this many times its source (in characters) is overlong
    max_chars: int | None = None  # and any longer than this


def first_failure(
    text: str,
    *,
    source: str,
    lang: str | None,
    earlier: Sequence[str],
    limits: Limits,
    truncated: bool = False,
) -> str | None:
    """The first filter `text` (already cleaned) fails, or None when it is kept. `earlier`: the normalised kept
    variants of the same source so far; `truncated`: the endpoint stopped at its token limit."""
    if not text.strip():
        return "empty"
    if (
        truncated
        or len(text) > limits.max_ratio * max(len(source), 1)
        or (limits.max_chars is not None and len(text) > limits.max_chars)
    ):
        return "overlong"
    if lang is not None and not matches_language(text, lang):
        return "wrong_language"
    normal = normalize_question(text)
    if normal == normalize_question(source):
        return "same_as_source"
    if normal in earlier:
        return "duplicate"
    return None


def answer_matches(prediction: str, answers: Sequence[str], *, threshold: float = 1.0) -> bool:
    """The endpoint's answer to a variant agrees with the source's answers: an exact match after
    `vlmkit.metrics.normalize_exact` (case, spacing, trailing punctuation aside), or ANLS at least `threshold`
    when that is below 1 (0.8 forgives one wrong character in five; numbers then may differ in a digit)."""
    from ...metrics import anls, exact_match

    answers = [a for a in answers if a.strip()]
    if not answers:
        return True  # nothing to compare with: the check cannot reject
    if exact_match(prediction, answers) == 1.0:
        return True
    return threshold < 1 and anls(prediction, answers, threshold=threshold) >= threshold
