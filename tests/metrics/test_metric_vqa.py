"""VQA accuracy: cases derived by hand from GT-Vision-Lab/VQA vqaEval.py (master) and lmms-eval's
EvalAIAnswerProcessor, plus a differential test against the step-by-step oracle."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metric_oracles import vqa_official

from vlmkit.metrics import evalai_normalize, normalize_answer, vqa_accuracy

TEN_YES = ["yes"] * 10


@pytest.mark.parametrize(
    "prediction, answers, expected, why",
    [
        ("yes", TEN_YES, 1.0, "every leave-one-out subset has 9 matches -> min(1, 9/3)"),
        ("Yes", TEN_YES, 0.0, "unanimous answers: no normalisation at all, so case matters"),
        ("yes.", TEN_YES, 0.0, "unanimous answers: the period is not stripped"),
        (" yes\n", TEN_YES, 1.0, "newline/tab -> space and strip() always apply"),
        ("yes\tsir", ["yes sir"] * 10, 1.0, "a tab becomes a space before comparing"),
        ("YES", ["yes"] * 9 + ["Yes"], 1.0, "two distinct answers switch normalisation on for all"),
        ("two", ["2"] * 3 + ["no"] * 7, 0.9, "number word -> digit; 3 matches: 3 subsets of 2 (2/3), 7 of 3 (1)"),
        ("cat", ["cat"] + [f"x{i}" for i in range(9)], 0.3, "one match: 9 subsets score 1/3, one scores 0"),
        ("cat", ["cat", "cat"] + [f"x{i}" for i in range(8)], 0.6, "two matches: 2 x 1/3 + 8 x 2/3, over 10"),
        ("a dog", ["the dog"] * 5 + ["dog"] * 5, 1.0, "articles dropped on both sides"),
        ("hot-dog", ["hot dog"] * 3 + ["pizza"] * 7, 0.9, "a hyphen not touching a space becomes a space"),
        ("1,000-2", ["10002"] * 3 + ["x"] * 7, 0.9, "digit,digit anywhere: every mark is deleted, not spaced"),
        ("x" + "." * 32, ["x."] * 3 + ["y"] * 7, 0.9, "32 periods are all removed"),
        ("x" + "." * 33, ["x."] * 3 + ["y"] * 7, 0.0, "re.UNICODE lands in sub()'s count: only 32 periods go"),
        ("3.5", ["3.5"] * 3 + ["3"] * 7, 0.9, "a period before a digit stays"),
        ("dont", ["don't"] * 3 + ["no"] * 7, 0.9, "contraction map; the apostrophe is not in the mark list"),
        ("none", ["0"] * 3 + ["1"] * 7, 0.9, "'none' maps to '0'"),
        ("yes!", ["yes"] * 4 + ["no"] * 6, 1.0, "'!' becomes a space, then split/join drops it"),
        ("left/right", ["left right"] * 3 + ["up"] * 7, 0.9, "'/' becomes a space"),
        ("yes", ["yes"], 0.0, "one answer: its only leave-one-out subset is empty"),
        ("yes", ["yes", "yes"], 1 / 3, "two answers: each subset has one match"),
        ("Yes", ["yes", "yes"], 0.0, "unanimous again: no lowercasing"),
    ],
)
def test_official_vqa_accuracy_cases(prediction, answers, expected, why):
    assert vqa_accuracy(prediction, answers) == pytest.approx(expected), why


@pytest.mark.parametrize(
    "prediction, answers, expected",
    [
        ("Yes", TEN_YES, 1.0),  # always normalised: case no longer matters
        ("Two dogs", ["2 dogs"] * 10, 1.0),
        ("it's", ["it's"] * 10, 1.0),  # both become "it 's"
        ("1,000", ["1000"] * 10, 1.0),  # the EvalAI processor deletes every comma first
        ("What?", ["what"] * 10, 1.0),
        ("cat", ["cat"] + [f"x{i}" for i in range(9)], 0.3),
        ("Unanswerable", ["unanswerable"] * 10, 1.0),
    ],
)
def test_lmms_always_normalise_variant(prediction, answers, expected):
    assert vqa_accuracy(prediction, answers, always_normalize=True) == pytest.approx(expected)


def test_always_normalise_is_an_option_not_the_default():
    assert vqa_accuracy("Yes", TEN_YES) == 0.0
    assert vqa_accuracy("Yes", TEN_YES, always_normalize=True) == 1.0


def test_normalisers():
    assert normalize_answer("The Two dogs!") == "2 dogs"
    assert normalize_answer("hot- dog") == "hot dog"  # "- " in text: the hyphen is deleted
    assert normalize_answer("red,blue") == "red blue"  # a comma not between digits becomes a space
    assert evalai_normalize("It's 1,000 Dogs?") == "it 's 1000 dogs"


def test_bad_arguments():
    with pytest.raises(ValueError):
        vqa_accuracy("yes", [])
    with pytest.raises(TypeError):
        vqa_accuracy(None, ["yes"])
    with pytest.raises(TypeError):
        vqa_accuracy("yes", ["yes", 2])
    assert vqa_accuracy("yes", "yes") == 0.0  # a bare string is one answer


TOKENS = [
    "yes",
    "Yes",
    "no",
    "2",
    "two",
    "the",
    "a",
    "dog",
    "dog.",
    "hot-dog",
    "hot dog",
    "1,000",
    "1000",
    "don't",
    "dont",
    "it's",
    "x!",
    "(x)",
    " yes ",
    "yes\n",
    "none",
    "0",
    "3.5",
    "a.m.",
    "x;y",
    "a/b",
]
text = st.one_of(st.sampled_from(TOKENS), st.text(alphabet="ab .,-!?/'(0123\n\t", max_size=12))


@settings(max_examples=400, deadline=None)
@given(prediction=text, answers=st.lists(st.one_of(st.sampled_from(TOKENS), text), min_size=1, max_size=10))
def test_matches_step_by_step_oracle(prediction, answers):
    assert vqa_accuracy(prediction, answers) == vqa_official(prediction, answers)
