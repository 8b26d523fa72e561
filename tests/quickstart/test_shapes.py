"""ShapesVQA: the answers are true of the picture, test images are never training images, and a seed gives the
same files."""

import itertools
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmkit.data.schema import read_samples
from vlmkit.quickstart.shapes import (
    COLORS,
    GRID,
    IMAGE_SIZE,
    LANGS,
    QUESTION_TYPES,
    SHADE,
    SHAPES,
    ShapesConfig,
    corpus,
    plan,
    random_scene,
    render,
    stream,
    write_split,
)

SMALL = ShapesConfig(train_images=12, base_train_images=30, test_images=6, seed=3)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    for split in ("train", "test"):
        for lang in LANGS:
            write_split(root / f"{lang}-{split}", split, lang, SMALL)
    return root


def centre_pixel(image: Image.Image, item) -> tuple[int, int, int]:
    cell = image.width / GRID
    x = int((item.cell % GRID + 0.5) * cell + item.dx)
    y = int((item.cell // GRID + 0.5) * cell + item.dy)
    return tuple(int(v) for v in np.asarray(image)[y + 1, x])  # just below the centre: inside the star's core too


def test_rendered_shapes_have_their_colour_in_their_cell():
    rng = random.Random(0)
    for index in range(60):
        scene = random_scene(rng, f"s{index}")
        image = render(scene)
        assert image.size == (IMAGE_SIZE, IMAGE_SIZE)
        for item in scene.items:
            pixel = centre_pixel(image, item)
            assert pixel == item.rgb, (scene, item)
            named = COLORS[item.color][0]
            assert all(abs(p - n) <= SHADE for p, n in zip(pixel, named))
            # the shade never makes a colour closer to another named colour than to its own
            nearest = min(COLORS, key=lambda c: sum((p - n) ** 2 for p, n in zip(pixel, COLORS[c][0])))
            assert nearest == item.color
        assert len({i.shape for i in scene.items}) == len({i.color for i in scene.items}) == len(scene.items)
        assert len({i.cell for i in scene.items}) == len(scene.items)


def test_answers_match_the_scene(datasets):
    truth = {scene.id: scene for scene, _ in plan("test", SMALL)}
    samples = read_samples(datasets / "en-test")
    assert len(samples) == SMALL.test_images
    assert [s.meta["question_type"] for s in samples] == [QUESTION_TYPES[i % 3] for i in range(SMALL.test_images)]
    for sample in samples:
        scene = truth[sample.meta["image_id"]]
        word = sample.question().rstrip("?").split()[-1]
        kind = sample.meta["question_type"]
        if kind == "count":
            assert sample.answers == [("one", "two", "three")[len(scene.items) - 1]]
        else:
            assert len(scene.items) == 1  # colour and shape are asked of one-shape images
            item = scene.items[0]
            assert (word, sample.answers[0]) == (
                (item.shape, item.color) if kind == "color" else (item.color, item.shape)
            )


def test_both_languages_ask_the_same_facts(datasets):
    translate = {
        **{c: f"màu {vi}" for c, (_, vi) in COLORS.items()},
        **SHAPES,
        "one": "một",
        "two": "hai",
        "three": "ba",
    }
    for split in ("train", "test"):
        en = read_samples(datasets / f"en-{split}")
        vi = read_samples(datasets / f"vi-{split}")
        assert [s.meta["image_id"] for s in en] == [s.meta["image_id"] for s in vi]
        assert [s.media("image")[0].rsplit("/", 1)[1] for s in en] == [
            s.media("image")[0].rsplit("/", 1)[1] for s in vi
        ]
        for a, b in zip(en, vi):
            assert translate[a.answers[0]] == b.answers[0], (a.question(), b.question())


def test_test_images_are_never_training_images(datasets):
    def images(name):
        return {Path(p).name for s in read_samples(datasets / name) for p in s.media("image")}

    assert images("en-train").isdisjoint(images("en-test"))
    assert images("en-train") == images("vi-train")
    # the check covers the larger (base) training stream too, not only what this folder holds
    base_keys = {scene.key for scene, _ in itertools.islice(stream("train", SMALL.seed), SMALL.base_train_images)}
    assert all(scene.key not in base_keys for scene, _ in plan("test", SMALL))


def test_test_split_skips_scenes_the_training_stream_contains(monkeypatch, request):
    # A world of eight possible images, so the streams collide for sure.
    from vlmkit.quickstart import shapes
    from vlmkit.quickstart.shapes import Item, Scene

    def tiny_world(rng, scene_id, shapes=None):
        return Scene(scene_id, (Item("circle", "red", rng.randrange(4)),), (240, 240, 240 - rng.randrange(2)))

    monkeypatch.setattr(shapes, "random_scene", tiny_world)
    shapes.training_keys.cache_clear()  # keys cached from the real world must not leak in, nor these out
    request.addfinalizer(shapes.training_keys.cache_clear)
    config = ShapesConfig(train_images=3, base_train_images=5, test_images=2, seed=1)
    seen = {scene.key for scene, _ in itertools.islice(stream("train", 1), 5)}
    candidates = [scene.key for scene, _ in itertools.islice(stream("test", 1), 40)]
    assert any(key in seen for key in candidates[:10])  # collisions do happen in this world
    test = plan("test", config)
    assert len(test) == 2 and all(scene.key not in seen for scene, _ in test)
    assert [scene.key for scene, _ in test] == [key for key in candidates if key not in seen][:2]


def test_training_samples_are_single_questions_with_balanced_types(tmp_path):
    out = write_split(tmp_path / "train", "train", "en", ShapesConfig(train_images=300, seed=0))
    samples = read_samples(out)
    kinds = [s.meta["question_type"] for s in samples]
    assert all(60 <= kinds.count(k) <= 140 for k in QUESTION_TYPES), kinds
    for sample in samples:
        assert [m.role for m in sample.messages] == ["user", "assistant"]
        assert sample.messages[0].content[0].type == "image"
        if sample.meta["question_type"] != "count":
            assert sample.meta["shapes"] == 1
    assert {s.meta["shapes"] for s in samples} == {1, 2, 3}


def test_a_smaller_split_is_a_prefix_of_a_larger_one(tmp_path):
    small = read_samples(write_split(tmp_path / "s", "train", "vi", SMALL, images=5), resolve_media=False)
    large = read_samples(write_split(tmp_path / "l", "train", "vi", SMALL, images=20), resolve_media=False)
    assert [s.to_json() for s in small] == [s.to_json() for s in large[:5]]


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    write_split(tmp_path / "a", "train", "vi", SMALL)
    write_split(tmp_path / "b", "train", "vi", SMALL)
    write_split(tmp_path / "c", "train", "vi", ShapesConfig(train_images=12, seed=4))
    text = [(tmp_path / n / "samples.jsonl").read_text(encoding="utf-8") for n in "abc"]
    assert text[0] == text[1]
    assert text[0] != text[2]


def test_mixture_takes_the_asked_counts_and_copies_media(datasets, tmp_path):
    from vlmkit.data.merge import merge_datasets

    mix = tmp_path / "mix"
    merge_datasets([(datasets / "vi-train", None), (datasets / "en-train", 6)], mix, seed=0, progress=False)
    samples = read_samples(mix)
    langs = [s.meta["lang"] for s in samples]
    assert langs.count("vi") == SMALL.train_images and langs.count("en") == 6
    assert all(Path(p).is_file() and str(mix) in p for s in samples for p in s.media("image"))


def test_corpus_covers_every_word_the_datasets_use(datasets):
    words = {w for line in corpus() for w in line.lower().replace("?", " ").split()}
    for lang in LANGS:
        for split in ("train", "test"):
            for sample in read_samples(datasets / f"{lang}-{split}"):
                for message in sample.messages:
                    assert set(message.text().lower().replace("?", " ").split()) <= words
