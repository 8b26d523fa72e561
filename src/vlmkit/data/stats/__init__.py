"""EDA for any vlmkit dataset: what is in it, before anyone spends GPU hours on it.

`compute.dataset_stats` streams samples.jsonl once and returns the numbers; `report.write_stats` writes
stats.json, stats.md and PNG plots, and `report.summary_table` is the terminal view.
"""

from .compute import (
    COVERAGE_K,
    DEFAULT_TOKENIZER,
    classification_verdict,
    coverage_at,
    coverage_curve,
    dataset_stats,
    describe,
    load_tokenizer,
    normalize_answer,
    question_language,
    question_type,
    words,
)
from .report import headline, markdown, public, summary_table, write_stats

__all__ = [
    "COVERAGE_K",
    "DEFAULT_TOKENIZER",
    "classification_verdict",
    "words",
    "coverage_at",
    "coverage_curve",
    "dataset_stats",
    "describe",
    "headline",
    "load_tokenizer",
    "markdown",
    "normalize_answer",
    "public",
    "question_language",
    "question_type",
    "summary_table",
    "write_stats",
]
