"""The base checkpoint shipped in the package still does what the quickstart promises on freshly generated
held-out images: English answered, Vietnamese not. Breaks if the generator drifts from what it was trained on."""

import json

import pytest

from vlmkit.metrics.text import exact_match
from vlmkit.quickstart.pipeline import SHIPPED_BASE, TRAINING_RECORD
from vlmkit.quickstart.shapes import QUESTION_TYPES, ShapesConfig, write_split


@pytest.fixture(scope="module")
def answers(tmp_path_factory):
    from vlmkit.data.schema import read_samples
    from vlmkit.infer import GenerationParams, load_engine

    root = tmp_path_factory.mktemp("shipped")
    engine = load_engine(str(SHIPPED_BASE), batch_size=32)
    out = {}
    for lang in ("en", "vi"):
        samples = read_samples(write_split(root / lang, "test", lang, ShapesConfig(test_images=60)))
        results = engine.generate(samples, GenerationParams(max_new_tokens=8))
        out[lang] = [(s.meta["question_type"], exact_match(r.text, s.answers)) for s, r in zip(samples, results)]
    return out


def accuracy(rows, kind=None):
    scores = [score for k, score in rows if kind in (None, k)]
    return sum(scores) / len(scores)


def test_shipped_base_answers_english_on_held_out_images(answers):
    assert accuracy(answers["en"]) >= 0.85
    for kind in QUESTION_TYPES:
        assert accuracy(answers["en"], kind) >= 0.8, kind


def test_shipped_base_does_not_answer_vietnamese(answers):
    assert accuracy(answers["vi"]) <= 0.25


def test_shipped_base_carries_its_training_record():
    record = json.loads((SHIPPED_BASE / TRAINING_RECORD).read_text(encoding="utf-8"))
    assert record["command"].startswith("vlmkit quickstart --train-base")
    assert record["accuracy"]["en"] >= 0.85 and record["accuracy"]["vi"] <= 0.25
    assert record["steps"] == record["config"]["train"]["max_steps"]
    assert len(record["losses"]) > 10 and record["losses"][-1][1] < record["losses"][0][1] / 100
