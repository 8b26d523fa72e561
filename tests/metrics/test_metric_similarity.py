"""Embedding similarity: cosine of sentence vectors, max over the references (any encoder with .encode)."""

import math

import pytest

from vlmkit.errors import VlmkitError
from vlmkit.metrics import similarity


class LetterCounts:
    """A stand-in sentence encoder: the vector counts the letters a, b and c."""

    def __init__(self):
        self.calls = 0

    def encode(self, texts, batch_size=32):
        self.calls += 1
        return [[t.count("a"), t.count("b"), t.count("c")] for t in texts]


def test_cosine_max_over_references():
    encoder = LetterCounts()
    mean, scores = similarity(["ab", "c", "x"], [["ab", "c"], ["a", "b"], ["a"]], model=encoder)
    assert scores[0] == pytest.approx(1.0)  # identical vector
    assert scores[1] == pytest.approx(0.0)  # orthogonal to both references
    assert scores[2] == pytest.approx(0.0)  # a zero vector has no direction
    assert mean == pytest.approx(1 / 3)
    assert encoder.calls == 1  # every distinct text is encoded once, in one call
    _, (score,) = similarity(["aab"], [["ab"]], model=encoder)
    assert score == pytest.approx((2 + 1) / (math.sqrt(5) * math.sqrt(2)))


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(VlmkitError, match="model folder not found"):
        similarity(["a"], [["a"]], model=tmp_path / "nope")
