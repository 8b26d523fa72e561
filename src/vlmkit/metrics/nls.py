"""ANLS (Average Normalized Levenshtein Similarity) as the DocVQA / InfographicVQA evaluation computes it.

Per question (official RRC script, also used by lmms-eval and Qwen-VL):
- both strings are stripped, lowercased and their whitespace collapsed before the edit distance;
- the distance is divided by the length of the *original* (unnormalised) longer string, measured after
  ``upper()`` (a quirk kept on purpose: padding spaces still count in the denominator);
- score = 1 - min over the references of that normalised distance, and a score below the threshold (0.5)
  becomes 0 (a score of exactly 0.5 is kept).
"""

from __future__ import annotations

from collections.abc import Sequence

from ._checks import check_answers, check_prediction


def levenshtein(a: str, b: str) -> int:
    """Character edit distance (insert, delete, substitute all cost 1)."""
    if a == b:
        return 0
    # A shared prefix or suffix never changes the distance; near-misses (the common case) shrink a lot.
    start, end_a, end_b = 0, len(a), len(b)
    while start < end_a and start < end_b and a[start] == b[start]:
        start += 1
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a -= 1
        end_b -= 1
    a, b = a[start:end_a], b[start:end_b]
    if len(a) > len(b):
        a, b = b, a
    if not a:
        return len(b)
    previous = list(range(len(a) + 1))
    for i, cb in enumerate(b, start=1):
        left = i
        current = [i]
        for j, ca in enumerate(a):
            diag = previous[j]
            if ca != cb:
                up = previous[j + 1]
                diag = 1 + (diag if diag < up and diag < left else up if up < left else left)
            left = diag
            current.append(left)
        previous = current
    return previous[-1]


def _squash(text: str) -> str:
    return " ".join(text.strip().lower().split())


def anls(prediction: str, answers: Sequence[str] | str, *, threshold: float = 0.5) -> float:
    """ANLS of one prediction against its reference answers, in [0, 1]."""
    prediction = check_prediction(prediction, "anls")
    answers = check_answers(answers, "anls")
    det = _squash(prediction)
    det_len = len(prediction.upper())
    distances = []
    cutoff = 1 - threshold
    for answer in answers:
        length = max(len(answer.upper()), det_len)
        if length == 0:
            distances.append(0.0)
            continue
        gt = _squash(answer)
        # The distance is at least the length difference. If even that is past the cutoff, this reference
        # can only give a score below the threshold (0), so the exact distance can't change the result.
        bound = abs(len(gt) - len(det)) / float(length)
        distances.append(bound if bound > cutoff else float(levenshtein(gt, det)) / float(length))
    score = 1 - min(distances)
    return 0.0 if score < threshold else float(score)
