"""A cheap script-based language check for generated questions: which writing system a text is in, and whether
that fits the language asked for.

No model and no dictionary: letters are counted by Unicode block. That tells Vietnamese (Latin with the letters
only Vietnamese uses: ă ơ ư đ and the stacked tone marks of U+1EA0-U+1EF9) from other Latin-script languages,
and Latin from Han, kana, Hangul, Cyrillic, Greek, Arabic, Hebrew, Thai and Devanagari. It cannot tell English
from French; for a paraphrase that came back translated into another script, or a back-translation that stayed
in the pivot language, it is enough.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

# language code -> the script family its questions are written in
LANGUAGE_SCRIPT = {
    "vi": "vietnamese",
    **dict.fromkeys(
        ("en", "fr", "de", "es", "it", "pt", "nl", "id", "ms", "tr", "pl", "sv", "da", "no", "fi", "cs", "ro", "tl"),
        "latin",
    ),
    "zh": "han",
    "ja": "japanese",
    "ko": "hangul",
    **dict.fromkeys(("ru", "uk", "bg", "sr", "be", "kk", "mn"), "cyrillic"),
    "el": "greek",
    **dict.fromkeys(("ar", "fa", "ur"), "arabic"),
    "he": "hebrew",
    "th": "thai",
    **dict.fromkeys(("hi", "mr", "ne"), "devanagari"),
}

# what `detect_language` answers for each script family (a Latin text is reported as English: the check
# treats every Latin-script language alike)
SCRIPT_LANGUAGE = {
    "vietnamese": "vi",
    "latin": "en",
    "han": "zh",
    "japanese": "ja",
    "hangul": "ko",
    "cyrillic": "ru",
    "greek": "el",
    "arabic": "ar",
    "hebrew": "he",
    "thai": "th",
    "devanagari": "hi",
}

LANGUAGE_NAMES = {
    "vi": "Vietnamese",
    "en": "English",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "id": "Indonesian",
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
    "ru": "Russian",
    "uk": "Ukrainian",
    "el": "Greek",
    "ar": "Arabic",
    "he": "Hebrew",
    "th": "Thai",
    "hi": "Hindi",
}

_VIETNAMESE_ONLY = set("ăâđêôơưĩũĂÂĐÊÔƠƯĨŨ")  # with U+1EA0-U+1EF9 (ạ ả ấ ... ỹ), letters French and the rest lack
_VIETNAMESE_ONLY -= set("âêôÂÊÔ")  # French writes these too; they count as plain Latin
# accented vowels Vietnamese shares with other languages: a Latin text with these and no other diacritic may be
# Vietnamese ("Xe có màu gì?" has no Vietnamese-only letter)
_VIETNAMESE_SHARED = set("àáâãèéêìíòóôõùúýÀÁÂÃÈÉÊÌÍÒÓÔÕÙÚÝ")
_SHORT_WORDS = 3  # a question this short may lack a Vietnamese-only letter ("Ai là tác giả" has one, "Bao lâu?" not)


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def script_of(char: str) -> str | None:
    """The script family of one letter, or None for digits, punctuation, spaces and symbols."""
    if not char.isalpha():
        return None
    point = ord(char)
    if char in _VIETNAMESE_ONLY or 0x1EA0 <= point <= 0x1EF9:
        return "vietnamese"
    if point < 0x0250 or 0x1E00 <= point <= 0x1EFF:
        return "latin"
    if 0x0370 <= point <= 0x03FF:
        return "greek"
    if 0x0400 <= point <= 0x052F:
        return "cyrillic"
    if 0x0590 <= point <= 0x05FF:
        return "hebrew"
    if 0x0600 <= point <= 0x06FF or 0x0750 <= point <= 0x077F:
        return "arabic"
    if 0x0900 <= point <= 0x097F:
        return "devanagari"
    if 0x0E00 <= point <= 0x0E7F:
        return "thai"
    if 0x3040 <= point <= 0x30FF or 0x31F0 <= point <= 0x31FF or 0xFF66 <= point <= 0xFF9F:
        return "kana"
    if 0xAC00 <= point <= 0xD7AF or 0x1100 <= point <= 0x11FF or 0x3130 <= point <= 0x318F:
        return "hangul"
    if 0x4E00 <= point <= 0x9FFF or 0x3400 <= point <= 0x4DBF or 0xF900 <= point <= 0xFAFF:
        return "han"
    return "other"


def script_counts(text: str) -> Counter[str]:
    """Letters per script family (NFC first, so a decomposed "ế" counts as the Vietnamese letter it is)."""
    return Counter(s for s in map(script_of, unicodedata.normalize("NFC", text)) if s is not None)


def script_family(text: str) -> str | None:
    """The family most of the letters belong to: Vietnamese-only letters make a Latin text Vietnamese, kana
    make a Han text Japanese. None when the text has no letters."""
    counts = script_counts(text)
    if not counts:
        return None
    latin = counts["latin"] + counts["vietnamese"]
    cjk = counts["han"] + counts["kana"]
    totals = {
        "latin": latin,
        "cjk": cjk,
        **{k: v for k, v in counts.items() if k not in ("latin", "vietnamese", "han", "kana")},
    }
    top = max(totals, key=lambda k: (totals[k], k))
    if top == "latin":
        return "vietnamese" if counts["vietnamese"] else "latin"
    if top == "cjk":
        return "japanese" if counts["kana"] else "han"
    return top


def could_be_vietnamese(text: str) -> bool:
    """A Latin text whose accented letters are all ones Vietnamese writes (and there is at least one)."""
    accented = {ch for ch in unicodedata.normalize("NFC", text) if ch.isalpha() and not ch.isascii()}
    return bool(accented) and all(ch in _VIETNAMESE_SHARED or script_of(ch) == "vietnamese" for ch in accented)


def dataset_language(questions: list[str]) -> str | None:
    """The language most of a dataset's questions are in (by `detect_language`), or None."""
    votes = Counter(filter(None, map(detect_language, questions)))
    return votes.most_common(1)[0][0] if votes else None


def question_language(text: str, dataset_lang: str | None) -> str | None:
    """One question's language: its script's, except that in a Vietnamese dataset a Latin question that could be
    Vietnamese (accents Vietnamese writes, or very short) is taken as Vietnamese."""
    detected = detect_language(text)
    if detected == "en" and dataset_lang == "vi" and (len(text.split()) < _SHORT_WORDS or could_be_vietnamese(text)):
        return "vi"
    return detected


def detect_language(text: str) -> str | None:
    """A language code for the text's script ("vi", "en" for any Latin text, "zh", "ja", "ko", "ru", ...)."""
    family = script_family(text)
    return SCRIPT_LANGUAGE.get(family) if family else None


def checkable(lang: str) -> bool:
    """Whether `matches_language` knows this code's script."""
    return lang in LANGUAGE_SCRIPT


def matches_language(text: str, lang: str) -> bool:
    """True when `text` is written in the script `lang` uses (always True for a code the check does not know).

    Vietnamese: Latin with at least one Vietnamese-only letter, or a Latin question of fewer than three words.
    Japanese: kana, or Han only (a short kanji-only question is ambiguous, so it passes). Other Latin-script
    languages: Latin without Vietnamese-only letters.
    """
    expected = LANGUAGE_SCRIPT.get(lang)
    if expected is None:
        return True
    family = script_family(text)
    if family is None:
        return False
    if expected == "vietnamese" and family == "latin":
        return len(text.split()) < _SHORT_WORDS or could_be_vietnamese(text)
    if expected == "japanese" and family == "han":
        return True
    return family == expected
