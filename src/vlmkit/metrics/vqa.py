"""VQA accuracy as the official evaluation computes it (GT-Vision-Lab/VQA, PythonEvaluationTools/vqaEval.py).

Published VQAv2 / VizWiz / TextVQA numbers come from that code, so its quirks are kept on purpose:

- answers and prediction only get "\\n"/"\\t" -> " " and strip(); the punctuation / digit / article /
  contraction processing runs (on the prediction and every answer) only when the stripped answers are not
  all identical (``len(set(answers)) > 1``). With ten identical answers "yes", the prediction "Yes" scores 0.
- a punctuation mark is deleted (instead of replaced by a space) when it touches a space anywhere in the
  text, or when the text has a comma between two digits;
- the period regex ``(?!<=\\d)(\\.)(?!\\d)`` is a look-ahead (not a look-behind): it removes every period not
  followed by a digit, and the official call passes ``re.UNICODE`` (= 32) as the *count*, so at most 32 go;
- accuracy is the mean over leave-one-out subsets (one per answer, matched by position) of
  min(1, matches / 3); with a single reference answer that is always 0, exactly as the official code.

``always_normalize=True`` gives the variant lmms-eval uses for VizWiz and TextVQA: the prediction and every
answer go through the EvalAI answer processor (lowercase, drop "," and "?", split "'s", then the same
punctuation and digit/article processing) regardless of agreement.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from ._checks import check_answers, check_prediction

# Facts carried over from the official evaluation code (keys that are never lowercase, such as "Im",
# can never match after lowercasing; they are kept so the table stays the published one).
CONTRACTIONS = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldve": "could've",
    "couldnt": "couldn't",
    "couldn'tve": "couldn't've",
    "couldnt've": "couldn't've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hadnt've": "hadn't've",
    "hadn'tve": "hadn't've",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hed": "he'd",
    "hed've": "he'd've",
    "he'dve": "he'd've",
    "hes": "he's",
    "howd": "how'd",
    "howll": "how'll",
    "hows": "how's",
    "Id've": "I'd've",
    "I'dve": "I'd've",
    "Im": "I'm",
    "Ive": "I've",
    "isnt": "isn't",
    "itd": "it'd",
    "itd've": "it'd've",
    "it'dve": "it'd've",
    "itll": "it'll",
    "let's": "let's",
    "maam": "ma'am",
    "mightnt": "mightn't",
    "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've",
    "mightve": "might've",
    "mustnt": "mustn't",
    "mustve": "must've",
    "neednt": "needn't",
    "notve": "not've",
    "oclock": "o'clock",
    "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at",
    "shant": "shan't",
    "shed've": "she'd've",
    "she'dve": "she'd've",
    "she's": "she's",
    "shouldve": "should've",
    "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll",
    "somebodys": "somebody's",
    "someoned": "someone'd",
    "someoned've": "someone'd've",
    "someone'dve": "someone'd've",
    "someonell": "someone'll",
    "someones": "someone's",
    "somethingd": "something'd",
    "somethingd've": "something'd've",
    "something'dve": "something'd've",
    "somethingll": "something'll",
    "thats": "that's",
    "thered": "there'd",
    "thered've": "there'd've",
    "there'dve": "there'd've",
    "therere": "there're",
    "theres": "there's",
    "theyd": "they'd",
    "theyd've": "they'd've",
    "they'dve": "they'd've",
    "theyll": "they'll",
    "theyre": "they're",
    "theyve": "they've",
    "twas": "'twas",
    "wasnt": "wasn't",
    "wed've": "we'd've",
    "we'dve": "we'd've",
    "weve": "we've",
    "werent": "weren't",
    "whatll": "what'll",
    "whatre": "what're",
    "whats": "what's",
    "whatve": "what've",
    "whens": "when's",
    "whered": "where'd",
    "wheres": "where's",
    "whereve": "where've",
    "whod": "who'd",
    "whod've": "who'd've",
    "who'dve": "who'd've",
    "wholl": "who'll",
    "whos": "who's",
    "whove": "who've",
    "whyll": "why'll",
    "whyre": "why're",
    "whys": "why's",
    "wont": "won't",
    "wouldve": "would've",
    "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've",
    "yall": "y'all",
    "yall'll": "y'all'll",
    "y'allll": "y'all'll",
    "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've",
    "youd": "you'd",
    "youd've": "you'd've",
    "you'dve": "you'd've",
    "youll": "you'll",
    "youre": "you're",
    "youve": "you've",
}
NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})
# Order matters: each mark is handled in turn against the original text.
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")

_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_OFFICIAL_COMMA = re.compile(r"(\d)(\,)(\d)")
_EVALAI_COMMA = re.compile(r"(?<=\d)(\,)+(?=\d)")
# The official call is periodStrip.sub("", text, re.UNICODE): the flag lands in the `count` slot.
_PERIOD_COUNT = int(re.UNICODE)
_ANY_MARK = re.compile("[" + re.escape("".join(PUNCTUATION)) + r"\.]")


def process_punctuation(text: str, *, comma_pattern: re.Pattern = _OFFICIAL_COMMA) -> str:
    """Official processPunctuation: marks touching a space (or any text with a digit,digit comma) are deleted,
    others become a space; then periods not followed by a digit are removed (at most 32 of them)."""
    if _ANY_MARK.search(text) is None:  # nothing to do (most answers): skip the 21 passes
        return text
    out = text
    delete_all = comma_pattern.search(text) is not None
    for mark in PUNCTUATION:
        if delete_all or (mark + " " in text) or (" " + mark in text):
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_STRIP.sub("", out, _PERIOD_COUNT)


def process_digit_article(text: str) -> str:
    """Official processDigitArticle: lowercase, number words -> digits, drop articles, expand contractions."""
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES)


@lru_cache(maxsize=1 << 16)  # answers repeat a lot ("yes", "2"): cache the pure function
def normalize_answer(text: str) -> str:
    """The official answer normalisation (punctuation, then digits/articles/contractions)."""
    return process_digit_article(process_punctuation(text))


@lru_cache(maxsize=1 << 16)
def evalai_normalize(text: str) -> str:
    """The EvalAI answer processor (pythia / lmms-eval / LLaVA): used by the always-normalise variant and by
    the `vqa_answer_processor` post-processing step."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(text, comma_pattern=_EVALAI_COMMA))


def _clean(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def vqa_accuracy(prediction: str, answers: Sequence[str] | str, *, always_normalize: bool = False) -> float:
    """Official VQA accuracy of one prediction against its human answers (usually 10), in [0, 1]."""
    prediction = check_prediction(prediction, "vqa_accuracy")
    answers = check_answers(answers, "vqa_accuracy")
    if always_normalize:
        pred = evalai_normalize(prediction)
        gts = [evalai_normalize(a) for a in answers]
    else:
        pred = _clean(prediction)
        gts = [_clean(a) for a in answers]
        if len(set(gts)) > 1:
            gts = [normalize_answer(a) for a in gts]
            pred = normalize_answer(pred)
    matches = [g == pred for g in gts]
    total = sum(matches)
    # Leave-one-out by position: the official code drops one answer record per subset.
    accs = [min(1, float(total - own) / 3) for own in matches]
    return float(sum(accs)) / len(accs)
