"""vlmkit.metrics: VQA, document and caption metrics that match the published evaluation code.

Per-sample (prediction, answers) -> float in [0, 1]:
    vqa_accuracy, anls, relaxed_accuracy, exact_match, token_f1
Per-sample with the sample's meta (multiple-choice options): choice_accuracy, yes_no_accuracy, mmmu_accuracy;
the extractors behind them: extract_choice (VLMEvalKit's option matcher), extract_yes_no
Corpus (predictions, list of reference lists) -> what pycocoevalcap returns, as plain floats:
    bleu, rouge_l, cider, meteor, similarity
The corpus functions import pycocoevalcap on first use, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import Any

from .choice import choice_accuracy, extract_choice, extract_yes_no, mmmu_accuracy, yes_no_accuracy
from .nls import anls, levenshtein
from .registry import METRICS, MetricSpec, get_metric, score_key_names
from .relaxed import relaxed_accuracy, relaxed_correctness
from .text import exact_match, normalize_exact, normalize_squad, token_f1
from .vqa import evalai_normalize, normalize_answer, vqa_accuracy

__all__ = [
    "vqa_accuracy",
    "anls",
    "relaxed_accuracy",
    "exact_match",
    "token_f1",
    "extract_choice",
    "extract_yes_no",
    "choice_accuracy",
    "yes_no_accuracy",
    "mmmu_accuracy",
    "bleu",
    "rouge_l",
    "cider",
    "meteor",
    "similarity",
    "normalize_answer",
    "evalai_normalize",
    "normalize_exact",
    "normalize_squad",
    "relaxed_correctness",
    "levenshtein",
    "METRICS",
    "MetricSpec",
    "get_metric",
    "score_key_names",
    "tokenize",
]


def __getattr__(name: str) -> Any:
    # Lazy: the caption and similarity modules pull in pycocoevalcap / numpy only when used.
    if name in ("bleu", "rouge_l", "cider", "meteor"):
        from . import caption

        return getattr(caption, name)
    if name == "similarity":
        from .embedding import similarity

        return similarity
    if name == "tokenize":
        from .tokenizers import tokenize

        return tokenize
    raise AttributeError(f"module 'vlmkit.metrics' has no attribute '{name}'")
