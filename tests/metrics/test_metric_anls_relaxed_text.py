"""ANLS (DocVQA RRC script), relaxed accuracy (pix2struct / lmms-eval), exact match and token F1: cases
derived by hand from the reference code, differential tests against the oracles, and pix2struct's own test."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metric_oracles import anls_official, levenshtein, relaxed_pix2struct

from vlmkit.metrics import anls, exact_match, relaxed_accuracy, token_f1
from vlmkit.metrics.nls import levenshtein as our_levenshtein


@pytest.mark.parametrize(
    "prediction, answers, expected, why",
    [
        ("abc", ["abc"], 1.0, "identical"),
        ("Abc", ["abc"], 1.0, "both lowercased"),
        ("  abc  ", ["abc"], 1.0, "stripped; distance 0 whatever the denominator"),
        ("abcd", ["abce"], 0.75, "one edit over 4 characters"),
        ("ab", ["abcd"], 0.5, "normalised distance exactly 0.5 is kept (only < 0.5 becomes 0)"),
        ("a", ["abcd"], 0.0, "3/4 -> 0.25, below the threshold"),
        ("abc  ", ["abd"], 0.8, "denominator uses the unstripped prediction: 1 edit / 5 characters"),
        ("strasse", ["straße"], 1 - 2 / 7, "length measured after upper(): 'ß' -> 'SS'"),
        ("abce", ["xyz", "abcd"], 0.75, "best reference wins"),
        ("new   york", ["New York"], 1.0, "inner whitespace collapsed"),
        ("", ["abc"], 0.0, "empty prediction"),
        ("", [""], 1.0, "both empty: length 0 counts as distance 0"),
        ("Don't", ["Won't"], 0.8, "pix2struct test case"),
        ("100%", ["96%"], 0.0, "3 edits over 4 characters"),
    ],
)
def test_anls_cases(prediction, answers, expected, why):
    assert anls(prediction, answers) == pytest.approx(expected), why


def test_pix2struct_published_anls_and_relaxed_accuracy():
    # pix2struct/metrics_test.py: anls 47.5 and relaxed_accuracy 62.5 on these eight pairs.
    predictions = ["abc", "abc", "Abc", "100%", "100%", "100%", "100%", "Don't"]
    targets = [["abc"], ["Abc"], ["abc"], ["96%"], ["94%"], ["0.96"], ["0.94"], ["Won't"]]
    assert 100 * sum(anls(p, t) for p, t in zip(predictions, targets)) / 8 == pytest.approx(47.5)
    assert 100 * sum(relaxed_accuracy(p, t) for p, t in zip(predictions, targets)) / 8 == pytest.approx(62.5)
    assert 100 * sum(exact_match(p, t) for p, t in zip(predictions, targets)) / 8 >= 12.5  # ours also lowercases


@pytest.mark.parametrize(
    "prediction, answers, expected, why",
    [
        ("100%", ["96%"], 1.0, "1.00 vs 0.96: 4.2 % off"),
        ("100%", ["94%"], 0.0, "6.4 % off"),
        ("5%", ["0.05"], 1.0, "a trailing % divides by 100"),
        ("5", ["5%"], 0.0, "5 vs 0.05"),
        ("105", ["100"], 1.0, "exactly 5 % is within tolerance"),
        ("95", ["100"], 1.0, "5 % below"),
        ("105.1", ["100"], 0.0, "just over 5 %"),
        ("1.05", ["1"], 0.0, "float rounding: |1.05 - 1| / 1 is 0.05000000000000004"),
        ("0", ["0"], 1.0, "target 0 is falsy: string comparison"),
        ("0.0", ["0"], 0.0, "target 0: '0.0' != '0' as strings"),
        ("Yes", ["yes"], 1.0, "non-numeric: case-insensitive exact match"),
        (" yes", ["yes"], 0.0, "nothing is stripped"),
        (" 5", ["5"], 1.0, "float() itself ignores surrounding spaces"),
        ("1e2", ["100"], 1.0, "float() parses exponents"),
        ("1,000", ["1000"], 0.0, "a thousands separator does not parse: string comparison"),
        ("nan", ["nan"], 0.0, "both parse to NaN; NaN <= 0.05 is False even though the strings match"),
        ("50%", ["50%"], 1.0, "both percentages"),
        ("103", ["abc", "100"], 1.0, "max over the references"),
        ("5%%", ["0.05"], 1.0, "rstrip removes every trailing %"),
    ],
)
def test_relaxed_accuracy_cases(prediction, answers, expected, why):
    assert relaxed_accuracy(prediction, answers) == expected, why


@pytest.mark.parametrize(
    "prediction, answers, expected",
    [
        ("Paris.", ["paris"], 1.0),
        ("  New   York ", ["new york"], 1.0),
        ("New York!!", ["new york"], 1.0),
        ("Hà Nội。", ["hà nội"], 1.0),  # any Unicode punctuation at the end
        ("new-york", ["new york"], 0.0),
        (".paris", ["paris"], 0.0),  # only trailing punctuation goes
        ("b", ["a", "B"], 1.0),
    ],
)
def test_exact_match_cases(prediction, answers, expected):
    assert exact_match(prediction, answers) == expected


@pytest.mark.parametrize(
    "prediction, answers, expected",
    [
        ("the cat sat", ["a cat sat on"], 0.8),  # SQuAD: articles dropped -> P 1, R 2/3
        ("Cat!", ["cat"], 1.0),
        ("dog", ["cat"], 0.0),
        ("", ["the"], 1.0),  # both normalise to nothing (SQuAD v2 rule)
        ("x", ["the"], 0.0),
        ("x y z", ["y z w", "x y z w"], 2 * 0.75 / 1.75),  # best of 2/3 and 0.857
    ],
)
def test_token_f1_cases(prediction, answers, expected):
    assert token_f1(prediction, answers) == pytest.approx(expected)


words = st.text(alphabet="abcdeABß %.,-0123456789", max_size=10)


@settings(max_examples=300, deadline=None)
@given(prediction=words, answers=st.lists(words, min_size=1, max_size=4))
def test_anls_matches_oracle(prediction, answers):
    assert anls(prediction, answers) == anls_official(prediction, answers)


@settings(max_examples=300, deadline=None)
@given(a=st.text(max_size=12), b=st.text(max_size=12))
def test_levenshtein_matches_oracle(a, b):
    assert our_levenshtein(a, b) == levenshtein(a, b)


numbers = st.one_of(
    st.sampled_from(["0", "0.0", "100", "96%", "1e2", " 5", "nan", "inf", "-3", "1,000", "abc", "%"]),
    st.floats(allow_nan=False, width=32).map(lambda f: f"{f:g}"),
    st.text(alphabet="0123.%-e ", max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(prediction=numbers, answers=st.lists(numbers, min_size=1, max_size=3))
def test_relaxed_matches_oracle(prediction, answers):
    assert relaxed_accuracy(prediction, answers) == float(relaxed_pix2struct(prediction, answers))
