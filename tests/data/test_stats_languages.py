"""Stats that hold for small and non-Latin datasets: the classification-head verdict needs enough answers and
repeated ones; Chinese/Japanese text counts characters as words; CJK questions are typed by their question words."""

from __future__ import annotations

import pytest

from vlmkit.data.stats import classification_verdict, coverage_at, question_language, question_type, words


def test_verdict_on_a_tiny_dataset_is_too_few_not_could_work():
    from collections import Counter

    answers = Counter({f"answer {i}": 1 for i in range(12)})
    verdict = classification_verdict(coverage_at(answers, [1, 1000, 5000]), 12, 6)
    assert verdict.startswith("Too few answers") and "could work" not in verdict


def test_verdict_refuses_when_most_answers_are_unique():
    verdict = classification_verdict({1000: 0.95, 5000: 1.0}, 1_900, 2_000)
    assert "can't work" in verdict and "most answers are unique" in verdict


@pytest.mark.parametrize(
    "text,count",
    [("这是什么颜色？", 6), ("これは何ですか", 7), ("이것은 무엇입니까?", 2), ("What is it?", 3), ("Màu gì?", 2)],
)
def test_cjk_characters_count_as_words(text, count):
    assert len(words(text)) == count


@pytest.mark.parametrize(
    "question,language,kind",
    [
        ("图片里有多少只猫？", "zh", "how many / much"),
        ("这是什么颜色？", "zh", "what color"),
        ("这个人是谁？", "zh", "who"),
        ("桌子上有书吗？", "zh", "yes/no"),
        ("猫在哪里？", "zh", "where"),
        ("これは何ですか？", "ja", "what is this"),
        ("猫は何匹いますか？", "ja", "how many / much"),
        ("車は何色ですか？", "ja", "what color"),
        ("犬はどこにいますか？", "ja", "where"),
        ("これは猫ですか？", "ja", "yes/no"),
        ("고양이는 몇 마리입니까?", "ko", "how many / much"),
        ("이 차는 무슨 색입니까?", "ko", "what color"),
        ("이 사람은 누구입니까?", "ko", "who"),
        ("개는 어디에 있습니까?", "ko", "where"),
        ("Có bao nhiêu con mèo?", "vi", "how many / much"),
        ("Người đàn ông đang làm gì?", "vi", "what / which"),
    ],
)
def test_cjk_and_vietnamese_questions_are_typed(question, language, kind):
    assert question_language(question) == language
    assert question_type(question) == kind
