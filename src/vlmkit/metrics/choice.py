"""Multiple-choice and yes/no answer extraction, matching the public leaderboards' rule-based scorers.

- `extract_choice(prediction, options)`: VLMEvalKit's `can_infer` (its `exact_matching` policy): an option
  letter standing alone near the end of the answer, its refusal phrases (-> 'Z'), the "answer is X" pattern,
  then a single option text contained in a short answer. None when nothing can be inferred (scored wrong).
- `extract_yes_no(prediction)`: VLMEvalKit's YOrN extraction for POPE / MME ('Yes', 'No' or None).
- `mmmu_open_correct(prediction, answer)`: MMMU's own rule for its open (numeric / short text) questions.

These are reimplementations of the published rules (quirks included, commented where they surprise),
so the base model's numbers line up with the leaderboards' before a fine-tune's numbers mean anything.
"""

from __future__ import annotations

import ast
import math
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

# Phrases VLMEvalKit reads as an explicit refusal; the answer then selects the pseudo-option 'Z'.
REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
API_FAILURE = "Failed to obtain answer via API"
_SEPARATORS = str.maketrans({c: " " for c in ".()[],:;!*#{}"})
# "The correct answer is **B**": only letters A-D, any case, and no word boundary after the letter
# (so "the answer is apple" selects A when A is an option: a quirk of the reference, kept).
_ANSWER_IS = re.compile(r"(?:correct\s+)?answer\s+is\s+\**([ABCD])\**", re.IGNORECASE)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def normalize_options(options: Mapping[str, Any] | Sequence[Any] | None) -> dict[str, str]:
    """{letter: text} from a mapping (missing/NaN values dropped, as VLMEvalKit's empty option columns)
    or from a list of option texts (lettered A, B, C... in order)."""
    if not options:
        return {}
    if isinstance(options, Mapping):
        items = [(str(k), v) for k, v in options.items()]
    else:
        items = list(zip(string.ascii_uppercase, options))
    return {k: str(v) for k, v in items if not _is_missing(v)}


def _letter_near_end(answer: str, letters: Sequence[str]) -> str | None:
    """VLMEvalKit's can_infer_option."""
    if API_FAILURE in answer:
        return None
    for phrase in REFUSALS:
        if phrase in answer:
            return "Z"
    tokens = answer.translate(_SEPARATORS).split()
    present = [c for c in letters if c in tokens]
    if len(present) == 1:
        letter = present[0]
        # the first occurrence must be among the last four tokens
        if tokens.index(letter) > len(tokens) - 5:
            return letter
    elif not present and "Z" in tokens:
        return "Z"
    match = _ANSWER_IS.search(answer)
    if match and match.group(1).upper() in letters:
        return match.group(1).upper()
    return None


def _unique_option_text(answer: str, options: Mapping[str, str]) -> str | None:
    """VLMEvalKit's can_infer_text: a short answer that contains exactly one option's text."""
    answer = answer.lower()
    if len(answer) > 2 * sum(len(text) for text in options.values()):
        return None
    found = [letter for letter, text in options.items() if text.lower() in answer]
    return found[0] if len(found) == 1 else None


def extract_choice(prediction: Any, options: Mapping[str, Any] | Sequence[Any] | None) -> str | None:
    """The option letter a free-form answer selects (VLMEvalKit's rule-based matcher); 'Z' where the
    answer is a refusal the matcher knows (or a lone 'Z'); None when nothing can be inferred."""
    choices = normalize_options(options)
    answer = str(prediction)
    return _letter_near_end(answer, list(choices)) or _unique_option_text(answer, choices)


# --- yes / no (POPE, MME) ----------------------------------------------------------------------------
_PUNCT = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_COMMA_IN_NUMBER = re.compile(r"(\d)(,)(\d)")
_PERIOD = re.compile(r"(?<!\d)\.(?!\d)")


def _strip_punctuation(text: str) -> str:
    """The VQA-eval punctuation rule as VLMEvalKit applies it before looking for yes / no."""
    out = text
    has_number_comma = _COMMA_IN_NUMBER.search(text) is not None
    for p in _PUNCT:
        # decided on the original text: a mark beside a space (or any number with a comma) is deleted,
        # otherwise it becomes a space
        out = out.replace(p, "" if (p + " " in text or " " + p in text or has_number_comma) else " ")
    # the reference passes re.UNICODE (32) as the count argument: at most 32 periods are removed
    return _PERIOD.sub("", out, count=32)


def extract_yes_no(prediction: Any) -> str | None:
    """'Yes' or 'No' when exactly one of the words appears in the answer, else None."""
    words = _strip_punctuation(str(prediction).lower()).split()
    if "yes" in words and "no" not in words:
        return "Yes"
    if "no" in words and "yes" not in words:
        return "No"
    return None


def yes_no_label(answer: str) -> str | None:
    text = answer.strip().lower()
    return {"yes": "Yes", "no": "No"}.get(text)


# --- MMMU open questions ---------------------------------------------------------------------------
_NUM_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUM_SCIENTIFIC = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_NUM_SIMPLE = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")
_KEY_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")


def _mmmu_normalize(text: str) -> list[Any]:
    """A number becomes a float rounded to 2 places; text is lowered, a single character padded with a
    space on either side so it can't match inside a word."""
    text = text.strip()
    try:
        return [round(float(text.replace(",", "")), 2)]
    except ValueError:
        pass
    text = text.lower()
    return [" " + text, text + " "] if len(text) == 1 else [text]


def _mmmu_numbers(text: str) -> list[str]:
    return _NUM_COMMAS.findall(text) + _NUM_SCIENTIFIC.findall(text) + _NUM_SIMPLE.findall(text)


def mmmu_parse_open(response: str) -> list[Any]:
    """MMMU's parse_open_response: the tails after "is", "so", "answer"... of each sentence (an equation's
    right side in the last), plus the numbers in them, normalized."""
    text = response.strip().strip(".").lower()
    sentences = re.split(r"\.\s(?=[A-Z])|\n", text)
    keys: list[str] = []
    for i, sentence in enumerate(sentences):
        indicators = (*_KEY_INDICATORS, "=") if i == len(sentences) - 1 else _KEY_INDICATORS
        shortest = None
        for indicator in indicators:
            if indicator in sentence:
                tail = sentence.split(indicator)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in (":", ",", ".", "!", "?", ";", "'"):
            keys.append(shortest)
    if not keys:
        keys = [text]
    candidates = list(keys)
    for key in keys:
        candidates.extend(_mmmu_numbers(key))
    parsed: list[Any] = []
    for candidate in candidates:
        for value in _mmmu_normalize(candidate):
            if value not in parsed:
                parsed.append(value)
    return parsed


def gold_answers(answer: str) -> list[str]:
    """An MMMU answer is a string, or a list of accepted answers written as a Python list string."""
    text = answer.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return [answer]
        if isinstance(value, list):
            return [str(v) for v in value]
    return [answer]


def mmmu_open_correct(prediction: str, answers: Sequence[str]) -> bool:
    """MMMU's eval_open: a normalized gold string inside a predicted string, or an equal number."""
    golds = [g for answer in answers for text in gold_answers(answer) for g in _mmmu_normalize(text)]
    for pred in mmmu_parse_open(prediction):
        if isinstance(pred, str):
            if any(isinstance(g, str) and g in pred for g in golds):
                return True
        elif pred in golds:
            return True
    return False


# --- per-sample metrics (prediction, answers, meta) -> float ------------------------------------------
# Where the optional LLM judge (eval/judge.py) left its reading of an answer the rules could not place.
JUDGE_CHOICE, JUDGE_YES_NO = "_judge_choice", "_judge_yes_no"


def options_of(meta: Mapping[str, Any]) -> dict[str, str]:
    return normalize_options(meta.get("options"))


def selected_option(prediction: str, meta: Mapping[str, Any]) -> str | None:
    """The rules' reading, else the judge's (when one ran)."""
    return extract_choice(prediction, options_of(meta)) or meta.get(JUDGE_CHOICE)


def selected_yes_no(prediction: str, meta: Mapping[str, Any] | None) -> str | None:
    return extract_yes_no(prediction) or (meta or {}).get(JUDGE_YES_NO)


def choice_accuracy(prediction: str, answers: Sequence[str], meta: Mapping[str, Any]) -> float:
    """1.0 when the option the answer selects is the reference letter."""
    if not options_of(meta) or not answers:
        return 0.0
    return float(selected_option(prediction, meta) == answers[0].strip())


def yes_no_accuracy(prediction: str, answers: Sequence[str], meta: Mapping[str, Any] | None = None) -> float:
    gold = yes_no_label(answers[0]) if answers else None
    return float(gold is not None and selected_yes_no(prediction, meta) == gold)


def mmmu_accuracy(prediction: str, answers: Sequence[str], meta: Mapping[str, Any]) -> float:
    """Options present: the chosen letter (as `choice_accuracy`); an open question: MMMU's eval_open."""
    if options_of(meta):
        return choice_accuracy(prediction, answers, meta)
    return float(bool(answers) and mmmu_open_correct(prediction, answers))
