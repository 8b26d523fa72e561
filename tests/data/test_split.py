"""Group-aware splits: no image or document in two splits, deterministic, nothing lost."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import pytest
from fixtures_data import image_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from vlmkit.cli import main
from vlmkit.data.schema import DatasetWriter, read_samples
from vlmkit.data.split import split_dataset
from vlmkit.errors import ConfigError


def build(
    root: Path, layout: list[tuple[int, int | None]], *, shuffle_seed: int | None = None, images: int = 12
) -> Path:
    """layout: (image index, doc id) per sample; image index -1 = text-only. Writes in the given order."""
    order = list(enumerate(layout))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)
    with DatasetWriter(root) as writer:
        paths = [writer.add_media_bytes(image_bytes(i, "PNG", size=(8, 8)), ".png") for i in range(images)]
        for index, (image, doc) in order:
            content = ([{"type": "image", "image": paths[image]}] if image >= 0 else []) + [
                {"type": "text", "text": f"q{index}"}
            ]
            writer.write(
                {
                    "id": f"s{index}",
                    "messages": [{"role": "user", "content": content}, {"role": "assistant", "content": f"a{index}"}],
                    "meta": {} if doc is None else {"doc_id": str(doc)},
                }
            )
    return root


def splits_of(out: Path) -> dict[str, list]:
    return {
        name: read_samples(out / name) for name in ("train", "val", "test") if (out / name / "samples.jsonl").exists()
    }


def owners(splits: dict[str, list], key) -> dict:
    seen = defaultdict(set)
    for name, samples in splits.items():
        for sample in samples:
            for k in key(sample):
                seen[k].add(name)
    return seen


def test_no_image_in_two_splits(tmp_path):
    layout = [(i % 12, None) for i in range(60)] + [(-1, None)] * 6
    root = build(tmp_path / "ds", layout)
    report = split_dataset(root, val=0.2, test=0.2, group_by="image", seed=3, out=tmp_path / "out")
    splits = splits_of(tmp_path / "out")
    assert sum(len(v) for v in splits.values()) == 66 == sum(report["samples"].values())
    assert {s.id for v in splits.values() for s in v} == {f"s{i}" for i in range(66)}
    assert all(len(names) == 1 for names in owners(splits, lambda s: [Path(m).name for m in s.media()]).values())
    assert all(len(splits[name]) > 0 for name in ("train", "val", "test"))
    # each split is a dataset of its own: media resolve inside it
    for name, samples in splits.items():
        for sample in samples:
            for media in sample.media():
                assert Path(media).is_file() and str(tmp_path / "out" / name) in media
    saved = json.loads((tmp_path / "out" / "split_report.json").read_text())
    assert saved["samples"] == report["samples"] and saved["group_by"] == "image"


def test_group_by_doc_keeps_documents_together(tmp_path):
    # 6 documents of 2 pages each (12 images), 2 questions per page
    layout = [(page, page // 2) for page in range(12) for _ in range(2)]
    root = build(tmp_path / "ds", layout)
    split_dataset(root, val=0.2, test=0.2, group_by="doc", seed=0, out=tmp_path / "doc")
    splits = splits_of(tmp_path / "doc")
    assert all(len(v) == 1 for v in owners(splits, lambda s: [s.meta["doc_id"]]).values())
    # grouping by image only would be allowed to separate the pages of one document
    split_dataset(root, val=0.3, test=0.3, group_by="image", seed=0, out=tmp_path / "img")
    by_image = owners(splits_of(tmp_path / "img"), lambda s: [s.meta["doc_id"]])
    assert any(len(v) > 1 for v in by_image.values())


def test_deterministic_and_independent_of_line_order(tmp_path):
    layout = [(i % 10, None) for i in range(40)]
    a = build(tmp_path / "a", layout)
    b = build(tmp_path / "b", layout, shuffle_seed=7)

    def ids(out: Path) -> dict:
        return {name: sorted(s.id for s in samples) for name, samples in splits_of(out).items()}

    split_dataset(a, seed=5, out=tmp_path / "a1")
    split_dataset(a, seed=5, out=tmp_path / "a2")
    split_dataset(b, seed=5, out=tmp_path / "b1")
    split_dataset(a, seed=6, out=tmp_path / "a3")
    assert ids(tmp_path / "a1") == ids(tmp_path / "a2") == ids(tmp_path / "b1")
    assert ids(tmp_path / "a1") != ids(tmp_path / "a3")


def test_bad_options(tmp_path):
    root = build(tmp_path / "ds", [(0, None)])
    with pytest.raises(ConfigError, match="leaves nothing to train on"):
        split_dataset(root, val=0.5, test=0.5)
    with pytest.raises(ConfigError, match="--group-by must be one of image, doc"):
        split_dataset(root, group_by="question")
    with pytest.raises(ConfigError, match=r"--val must be a fraction"):
        split_dataset(root, val=-0.1)


def test_cli(tmp_path, capsys):
    root = build(tmp_path / "ds", [(i % 6, None) for i in range(30)])
    main(["data", "split", str(root), "--val", "0.2", "--test", "0.2", "--group-by", "image", "--seed", "1"])
    out = capsys.readouterr().out
    assert "train" in out and "val" in out and "test" in out
    assert (root / "splits" / "train" / "samples.jsonl").exists()


@settings(max_examples=20, deadline=None)
@given(
    layout=st.lists(st.tuples(st.integers(-1, 7), st.one_of(st.none(), st.integers(0, 3))), min_size=1, max_size=30),
    val=st.sampled_from([0.0, 0.1, 0.3]),
    test=st.sampled_from([0.0, 0.2]),
    seed=st.integers(0, 3),
    group_by=st.sampled_from(["image", "doc"]),
)
def test_property_groups_never_straddle(tmp_path_factory, layout, val, test, seed, group_by):
    tmp = tmp_path_factory.mktemp("prop")
    root = build(tmp / "ds", layout, images=8)
    report = split_dataset(root, val=val, test=test, group_by=group_by, seed=seed, out=tmp / "out")
    splits = splits_of(tmp / "out")
    assert sorted(s.id for v in splits.values() for s in v) == sorted(f"s{i}" for i in range(len(layout)))
    assert sum(report["samples"].values()) == len(layout)
    assert all(len(v) == 1 for v in owners(splits, lambda s: [Path(m).name for m in s.media()]).values())
    if group_by == "doc":
        assert all(
            len(v) == 1 for v in owners(splits, lambda s: [s.meta["doc_id"]] if "doc_id" in s.meta else []).values()
        )
