"""Failure analysis: put each wrong answer in one category (first rule that applies, in this order).

    empty                     nothing left after post-processing (or the engine failed on the sample)
    refused_or_unanswerable   the model refused / said "unanswerable" but the references answer it, or the
                              references say "unanswerable" and the model answered anyway
    wrong_language            the answer is in another script than the references, or in plain ASCII
                              when the references are Vietnamese (the ViTextVQA failure mode)
    too_long                  more than max(2 x, +5 words over) the longest reference
    numeric_off               a reference is a number and the answer has numbers (standing alone, not inside
                              a word), none of them equal to it
    partial_match             shares words with a reference, or one contains the other
    other                     everything else
These are heuristics for reading a report, not metrics; the rules are here so anyone can check them.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

from ..metrics.text import normalize_exact, normalize_squad

CATEGORIES = ("empty", "refused_or_unanswerable", "wrong_language", "too_long", "numeric_off", "partial_match", "other")
LABELS = {
    "empty": "empty answer",
    "refused_or_unanswerable": "refused / unanswerable mismatch",
    "wrong_language": "wrong language",
    "numeric_off": "numeric answer off",
    "too_long": "too long",
    "partial_match": "partial match",
    "other": "other wrong answer",
}

_REFUSAL = re.compile(
    r"\b(unanswerable|unsuitable|cannot (?:be )?(?:determined?|answered|tell|see|read|identify|answer)"
    r"|can'?t (?:determine|tell|see|read|identify|answer)|not (?:possible|able) to|unable to|no answer"
    r"|not (?:visible|legible|readable|clear)|(?:not enough|insufficient) information|i'?m sorry|i am sorry"
    r"|unknown|không thể|không rõ|không có thông tin)\b",
    re.IGNORECASE,
)
_UNANSWERABLE_REFS = {"unanswerable", "unsuitable", "unsuitable image", "no answer", "unknown"}
# A number not glued to letters ("word2" is not a number; "$1,300" and "12%" are).
_NUMBER = re.compile(r"(?<![^\W\d_])(?:[-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+)(?![^\W\d_])")
_VIETNAMESE = set("ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ")


def _numbers(text: str) -> list[float]:
    values = []
    for match in _NUMBER.findall(text):
        try:
            values.append(float(match.replace(",", "")))
        except ValueError:
            continue
    return values


def _as_number(text: str) -> float | None:
    """A reference that is just a number (currency sign, %, thousands separators allowed)."""
    core = text.strip().strip("$€£¥%").strip().replace(",", "")
    try:
        return float(core)
    except ValueError:
        return None


def _script(text: str) -> str | None:
    """Dominant writing system of the letters in `text` (LATIN, CJK, HANGUL, CYRILLIC, ...)."""
    counts: Counter[str] = Counter()
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            counts[name.split(" ")[0] if name else "OTHER"] += 1
    return counts.most_common(1)[0][0] if counts else None


def _is_vietnamese(text: str) -> bool:
    return any(ch in _VIETNAMESE for ch in text.lower())


def _contains_words(text: str, part: str) -> bool:
    """`part` occurs in `text` as whole words ("new york" in "new york city", but "2" not in "word2")."""
    return bool(part) and re.search(r"(?<!\w)" + re.escape(part) + r"(?!\w)", text) is not None


def categorize(prediction: str, answers: Sequence[str], *, error: str | None = None) -> str:
    """The failure category of a wrong answer (see the module docstring for the rules)."""
    pred = prediction.strip()
    if not pred or error:
        return "empty"
    norm_answers = [normalize_exact(a) for a in answers]
    top = Counter(norm_answers).most_common(1)[0][0] if norm_answers else ""
    refs_unanswerable = top in _UNANSWERABLE_REFS
    pred_refuses = bool(_REFUSAL.search(pred))
    if refs_unanswerable != pred_refuses:
        return "refused_or_unanswerable"

    ref_script = _script(" ".join(answers))
    pred_script = _script(pred)
    if ref_script and pred_script and ref_script != pred_script:
        return "wrong_language"
    if (
        ref_script == "LATIN"
        and pred_script == "LATIN"
        and len(pred.split()) >= 2
        and sum(map(_is_vietnamese, answers)) * 2 > len(answers)
        and not _is_vietnamese(pred)
    ):
        return "wrong_language"

    longest = max((len(a.split()) for a in answers), default=0)
    if len(pred.split()) > max(2 * longest, longest + 5):
        return "too_long"

    ref_numbers = [n for n in map(_as_number, answers) if n is not None]
    pred_numbers = _numbers(pred)
    if ref_numbers and pred_numbers and not set(ref_numbers) & set(pred_numbers):
        return "numeric_off"

    pred_norm = normalize_exact(pred)
    pred_tokens = set(normalize_squad(pred).split())
    for answer, norm in zip(answers, norm_answers):
        if pred_tokens & set(normalize_squad(answer).split()):
            return "partial_match"
        if norm and (_contains_words(pred_norm, norm) or _contains_words(norm, pred_norm)):
            return "partial_match"
    return "other"
