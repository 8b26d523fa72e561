"""ChartQA relaxed accuracy as pix2struct and lmms-eval compute it (from Methani et al. 2020).

A prediction is correct when both it and the target parse as floats (a trailing "%" divides by 100) and the
relative change |p - t| / |t| is at most 5 %; otherwise the lowercased strings must be equal. Quirks kept:
a target of 0 (falsy) always falls back to the string comparison, nothing is stripped (" 5" still parses,
because float() ignores surrounding whitespace, but "5 %" does not), and Python's float() rules decide what
counts as a number ("1e3", "1_000", "nan", "inf" all parse). The sample score is the max over the targets.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._checks import check_answers, check_prediction


def _to_float(text: str) -> float | None:
    try:
        if text.endswith("%"):
            return float(text.rstrip("%")) / 100.0
        return float(text)
    except ValueError:
        return None


def relaxed_correctness(prediction: str, target: str, max_relative_change: float = 0.05) -> bool:
    """pix2struct's relaxed_correctness for one (prediction, target) pair."""
    prediction_float = _to_float(prediction)
    target_float = _to_float(target)
    if prediction_float is not None and target_float:
        return abs(prediction_float - target_float) / abs(target_float) <= max_relative_change
    return prediction.lower() == target.lower()


def relaxed_accuracy(prediction: str, answers: Sequence[str] | str, *, max_relative_change: float = 0.05) -> float:
    """1.0 if the prediction is relaxed-correct against any reference, else 0.0."""
    prediction = check_prediction(prediction, "relaxed_accuracy")
    answers = check_answers(answers, "relaxed_accuracy")
    return 1.0 if any(relaxed_correctness(prediction, t, max_relative_change) for t in answers) else 0.0
