"""Exact match and SQuAD-style token F1: simple string metrics for short free-form answers (e.g. ViTextVQA)."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

from ._checks import check_answers, check_prediction

_ASCII_PUNCT = frozenset(string.punctuation)


def _is_trailing_junk(char: str) -> bool:
    return char.isspace() or char in _ASCII_PUNCT or unicodedata.category(char).startswith("P")


def normalize_exact(text: str) -> str:
    """Lowercase, collapse whitespace, strip trailing punctuation: Python's string.punctuation plus any
    Unicode punctuation ("。", "…", "»"), and any whitespace left between them."""
    text = " ".join(text.lower().split())
    end = len(text)
    while end and _is_trailing_junk(text[end - 1]):
        end -= 1
    return text[:end]


def exact_match(prediction: str, answers: Sequence[str] | str) -> float:
    """1.0 if the normalised prediction equals any normalised reference, else 0.0."""
    prediction = check_prediction(prediction, "exact_match")
    answers = check_answers(answers, "exact_match")
    pred = normalize_exact(prediction)
    return 1.0 if any(normalize_exact(a) == pred for a in answers) else 0.0


_SQUAD_PUNCT = _ASCII_PUNCT
_SQUAD_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_squad(text: str) -> str:
    """SQuAD's normalize_answer: lowercase, drop ASCII punctuation, drop English articles, collapse spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _SQUAD_PUNCT)
    return " ".join(_SQUAD_ARTICLES.sub(" ", text).split())


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        # SQuAD v2 rule: two empty answers agree, one empty answer scores 0.
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: Sequence[str] | str) -> float:
    """SQuAD-style token-overlap F1, max over the references, in [0, 1]."""
    prediction = check_prediction(prediction, "token_f1")
    answers = check_answers(answers, "token_f1")
    pred_tokens = normalize_squad(prediction).split()
    return max(_f1(pred_tokens, normalize_squad(a).split()) for a in answers)
