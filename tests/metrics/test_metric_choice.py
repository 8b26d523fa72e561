"""extract_choice / extract_yes_no / MMMU open answers: cases derived from reading VLMEvalKit's
matching_util.py (can_infer_option, can_infer_text) and yorn.py, and MMMU's eval_utils.py, each with the
reason the reference gives that result."""

import math

import pytest

from vlmkit.metrics import choice_accuracy, extract_choice, extract_yes_no, mmmu_accuracy, yes_no_accuracy
from vlmkit.metrics.choice import mmmu_open_correct, mmmu_parse_open

ABCD = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}


@pytest.mark.parametrize(
    "prediction, options, expected",
    [
        ("B", ABCD, "B"),
        ("(C)", ABCD, "C"),  # brackets are separators
        ("B.", ABCD, "B"),
        ("The answer is D", ABCD, "D"),  # the one letter is among the last four tokens
        # a single letter too far from the end is not taken; no "answer is"; the text is too long to match
        ("B is right because the picture clearly shows one small animal on grass", ABCD, None),
        # ... but "answer is X" rescues it, even with the letter in bold and many words after
        ("The correct answer is **C**. Here is why: it has feathers and wings and a beak", ABCD, "C"),
        ("answer is b", ABCD, "B"),  # the pattern ignores case
        ("the answer is a", {"A": "pear", "B": "apple"}, "A"),
        # quirk: no word boundary after the letter, so "apple" selects A here
        ("The answer is apple", {"A": "pear", "B": "apple"}, "A"),
        ("the answer is E", {**ABCD, "E": "cow"}, "E"),  # E stands alone near the end
        ("A and B", ABCD, None),  # two letters: ambiguous, and no option text inside
        ("a dog", ABCD, "B"),  # no capital letter; the only option text contained
        ("hot dog", {"A": "dog", "B": "hot dog"}, None),  # two option texts contained
        ("Z", ABCD, "Z"),  # a lone Z (no option letter) is the matcher's "none of them"
        ("Cannot determine the answer from the picture, A", ABCD, "Z"),  # refusal phrase wins
        ("I can't process this file.", ABCD, "Z"),
        ("I'm sorry, but without the image provided I can't say", ABCD, "Z"),
        ("Failed to obtain answer via API: B", ABCD, None),  # no letter reading; "b" is no option text
        ("Failed to obtain answer via API", {"A": "answer via API", "B": "ok"}, "A"),  # the text rule still runs
        ("D", {"A": "x", "B": "y", "C": "z"}, None),  # not an option
        ("C", {"A": "x", "B": "y", "C": math.nan}, None),  # NaN option column = absent
        ("B", ["x", "y"], "B"),  # options as a list are lettered in order
        ("", ABCD, None),
    ],
)
def test_extract_choice(prediction, options, expected):
    assert extract_choice(prediction, options) == expected


def test_extract_choice_length_limit_on_text_matching():
    options = {"A": "red", "B": "blue"}  # 7 characters: answers over 14 characters are not text-matched
    assert extract_choice("it is red", options) == "A"
    assert extract_choice("it is clearly red", options) is None


@pytest.mark.parametrize(
    "prediction, expected",
    [
        ("Yes", "Yes"),
        ("no.", "No"),
        ("Yes, there is a dog.", "Yes"),
        ("No, there is no dog.", "No"),
        ("yes or no", None),
        ("There is a dog", None),
        ("Not at all", None),  # "not" is not "no"
        ("no-one knows", "No"),  # a hyphen with no space beside it becomes a space, leaving the word "no"
        ("I think (yes)", "Yes"),
    ],
)
def test_extract_yes_no(prediction, expected):
    assert extract_yes_no(prediction) == expected


def test_record_metrics_read_meta():
    meta = {"options": {"A": "cat", "B": "dog"}}
    assert choice_accuracy("B", ["B"], meta) == 1.0 and choice_accuracy("A", ["B"], meta) == 0.0
    assert choice_accuracy("B", ["B"], {}) == 0.0  # no options in meta: nothing to select
    assert yes_no_accuracy("Yes.", ["yes"]) == 1.0 and yes_no_accuracy("maybe", ["no"]) == 0.0
    assert mmmu_accuracy("B", ["B"], meta) == 1.0
    assert mmmu_accuracy("The total is 1,200 dollars", ["1200"], {}) == 1.0


@pytest.mark.parametrize(
    "prediction, answer, expected",
    [
        ("4", "4", True),
        ("The answer is 4.0", "4", True),  # numbers compare as floats rounded to 2 places
        ("so x = 3.14159", "3.14", True),
        ("It is 5", "4", False),
        ("the capital is Paris", "paris", True),
        ("b", "b", True),
        ("abc", "b", False),  # a one-letter gold must stand alone
        ("it is 24", "['24', '24.0']", True),  # a list of accepted answers
    ],
)
def test_mmmu_open(prediction, answer, expected):
    assert mmmu_open_correct(prediction, [answer]) is expected


def test_mmmu_parse_open_takes_the_tail_after_the_indicator():
    assert mmmu_parse_open("First we add. Therefore the result is 4") == [4.0]
