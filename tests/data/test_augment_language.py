"""The script-based language check and the text filters of `data augment`, on real strings of each script."""

from __future__ import annotations

import unicodedata

import pytest

from vlmkit.data.augment.filters import Limits, answer_matches, clean_output, first_failure, normalize_question
from vlmkit.data.augment.language import dataset_language, detect_language, matches_language, question_language


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Biển hiệu ghi chữ gì?", "vi"),
        ("What is written on the sign?", "en"),
        ("Quelle est la couleur de la voiture ?", "en"),  # any Latin-script language reads as "en"
        ("这辆车是什么颜色？", "zh"),
        ("この車は何色ですか？", "ja"),
        ("이 차는 무슨 색입니까?", "ko"),
        ("Какого цвета машина?", "ru"),
        ("Τι χρώμα είναι το αυτοκίνητο;", "el"),
        ("ما لون السيارة؟", "ar"),
        ("รถสีอะไร", "th"),
        ("12 + 7 = ?", None),
    ],
)
def test_detects_the_script_family(text, lang):
    assert detect_language(text) == lang


def test_decomposed_vietnamese_is_vietnamese():
    assert detect_language(unicodedata.normalize("NFD", "Số điện thoại là gì?")) == "vi"


@pytest.mark.parametrize(
    ("text", "lang", "ok"),
    [
        ("Trên biển hiệu có dòng chữ nào?", "vi", True),
        ("Xe có màu gì?", "vi", True),  # no Vietnamese-only letter, but only accents Vietnamese writes
        ("Bao lâu?", "vi", True),  # too short to tell
        ("What time does the shop open?", "vi", False),  # a back-translation stuck in the pivot
        ("Où se trouve la boîte aux lettres ?", "vi", False),  # î is not Vietnamese
        ("这辆车是什么颜色？", "vi", False),
        ("What colour is the car?", "en", True),
        ("Chiếc xe màu gì?", "en", False),
        ("この車は何色？", "ja", True),
        ("何色", "ja", True),  # kanji only: ambiguous, passes
        ("What colour?", "ja", False),
        ("Какого цвета машина?", "ru", True),
        ("anything at all", "xx", True),  # a code the check does not know: never rejects
        ("?!", "vi", False),  # no letters at all
    ],
)
def test_matches_language(text, lang, ok):
    assert matches_language(text, lang) is ok


def test_a_vietnamese_dataset_claims_its_latin_questions_that_could_be_vietnamese():
    questions = ["Biển hiệu ghi chữ gì?", "Số điện thoại là gì?", "Xe có màu gì?"]
    assert dataset_language(questions) == "vi"
    assert question_language("Xe có màu gì?", "vi") == "vi"
    assert question_language("Xe có màu gì?", "en") == "en"
    assert question_language("What is the brand name?", "vi") == "en"


def test_normalisation_and_cleaning():
    assert normalize_question("  Trên biển hiệu, có DÒNG chữ nào?? ") == normalize_question(
        "trên biển hiệu có dòng chữ nào"
    )
    assert clean_output('  "Paraphrase: “Xe màu gì?”"  ') == "Xe màu gì?"
    assert clean_output("\n\n") == ""


def test_filters_in_order():
    limits = Limits(max_ratio=2.0, max_chars=40)
    source = "Xe màu gì?"
    check = lambda text, **kw: first_failure(text, source=source, lang="vi", earlier=[], limits=limits, **kw)  # noqa: E731
    assert check("") == "empty"
    assert check("Chiếc xe ở đây có màu gì vậy hả bạn?") == "overlong"  # > 2 x the source
    assert check("Xe có màu gì?", truncated=True) == "overlong"
    assert check("What color?") is None  # two words: too short for the language check
    assert check("What color is it?") == "wrong_language"
    assert check("xe màu gì") == "same_as_source"
    assert first_failure("Xe có màu gì?", source=source, lang="vi", earlier=["xe có màu gì"], limits=limits) == (
        "duplicate"
    )
    assert first_failure("Xe có màu gì?", source=source, lang=None, earlier=[], limits=limits) is None


def test_answer_matches():
    assert answer_matches("Phở Hà Nội.", ["phở hà nội"])
    assert not answer_matches("0912 345 679", ["0912 345 678"])  # default: exact after normalisation
    assert answer_matches("0912 345 679", ["0912 345 678"], threshold=0.8)
    assert not answer_matches("xanh", ["đỏ"], threshold=0.5)
    assert answer_matches("anything", [])  # nothing to compare with
