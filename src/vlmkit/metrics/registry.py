"""Metric names used by tasks, YAML files and `vlmkit score --metric`.

A per-sample metric maps (prediction, answers) -> float; a record metric also reads the sample's meta
(prediction, answers, meta) -> float (multiple-choice options); a corpus metric maps (predictions, reference
lists) -> (corpus score, per-sample scores). `keys` are the score names a metric writes into scores.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from ..errors import VlmkitError
from .choice import choice_accuracy, mmmu_accuracy, yes_no_accuracy
from .nls import anls
from .relaxed import relaxed_accuracy
from .text import exact_match, token_f1
from .vqa import vqa_accuracy


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: Literal["sample", "record", "corpus"]
    description: str
    keys: tuple[str, ...] = ()
    needs_java: bool = False
    options: tuple[str, ...] = ()  # keyword options a task may set (e.g. the similarity model path)
    _fn: Any = field(default=None, repr=False)

    @property
    def fn(self) -> Callable:
        if isinstance(self._fn, str):  # corpus metrics import pycocoevalcap lazily
            from . import caption, embedding

            return {
                "bleu": caption.bleu,
                "rouge_l": caption.rouge_l,
                "cider": caption.cider,
                "meteor": caption.meteor,
                "similarity": embedding.similarity,
            }[self._fn]
        return self._fn

    @property
    def score_keys(self) -> tuple[str, ...]:
        return self.keys or (self.name,)


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in [
        MetricSpec("vqa_accuracy", "sample", "official VQA accuracy (GT-Vision-Lab vqaEval.py)", _fn=vqa_accuracy),
        MetricSpec(
            "vqa_accuracy_lmms",
            "sample",
            "VQA accuracy, always-normalise variant (lmms-eval VizWiz/TextVQA)",
            _fn=partial(vqa_accuracy, always_normalize=True),
        ),
        MetricSpec("anls", "sample", "ANLS, threshold 0.5 (DocVQA / InfographicVQA)", _fn=anls),
        MetricSpec(
            "relaxed_accuracy", "sample", "ChartQA relaxed accuracy (5% numeric tolerance)", _fn=relaxed_accuracy
        ),
        MetricSpec(
            "exact_match", "sample", "lowercase, collapsed whitespace, trailing punctuation stripped", _fn=exact_match
        ),
        MetricSpec("token_f1", "sample", "SQuAD-style token F1", _fn=token_f1),
        MetricSpec(
            "choice_accuracy",
            "record",
            "multiple choice: the option VLMEvalKit's rule-based matcher reads is the answer (options in meta)",
            _fn=choice_accuracy,
        ),
        MetricSpec(
            "yes_no_accuracy", "record", "yes/no: VLMEvalKit's yes/no extraction equals the answer", _fn=yes_no_accuracy
        ),
        MetricSpec(
            "mmmu_accuracy",
            "record",
            "MMMU: option matching for multiple choice, MMMU's open-answer rule otherwise",
            _fn=mmmu_accuracy,
        ),
        MetricSpec(
            "bleu",
            "corpus",
            "BLEU-1..4 (pycocoevalcap)",
            keys=("bleu_1", "bleu_2", "bleu_3", "bleu_4"),
            options=("tokenizer",),
            _fn="bleu",
        ),
        MetricSpec("rouge_l", "corpus", "ROUGE-L (pycocoevalcap)", options=("tokenizer",), _fn="rouge_l"),
        MetricSpec("cider", "corpus", "CIDEr-D (pycocoevalcap)", options=("tokenizer",), _fn="cider"),
        MetricSpec(
            "meteor",
            "corpus",
            "METEOR 1.5 (pycocoevalcap, needs java)",
            needs_java=True,
            options=("tokenizer",),
            _fn="meteor",
        ),
        MetricSpec(
            "similarity",
            "corpus",
            "sentence-embedding cosine similarity (needs a model path)",
            options=("model", "batch_size"),
            _fn="similarity",
        ),
    ]
}


def get_metric(name: str) -> MetricSpec:
    try:
        return METRICS[name]
    except KeyError:
        raise VlmkitError(f"unknown metric '{name}' (known: {', '.join(METRICS)})") from None


def score_key_names(metric_names: list[str] | tuple[str, ...]) -> list[str]:
    """Every score key the given metrics produce, in order (bleu expands to bleu_1..bleu_4)."""
    return [key for name in metric_names for key in get_metric(name).score_keys]
