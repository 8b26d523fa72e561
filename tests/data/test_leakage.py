"""Leakage between train and eval: exact copies, near copies, and the same question about the same image."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmkit.cli import main
from vlmkit.data.leakage import check_leakage
from vlmkit.data.schema import DatasetWriter


def pattern(kind: str, size: tuple[int, int] = (128, 96)) -> Image.Image:
    """Smooth photo-like images (a random 4x5 colour grid, upsampled); different kinds are 20+ phash bits
    apart, while a resized JPEG of one stays within 2 bits of it."""
    seed = {"stripes": 0, "bands": 1, "checker": 2, "diagonal": 5, "ramp": 7}[kind]
    grid = np.random.default_rng(seed).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    return Image.fromarray(grid, "RGB").resize(size, Image.Resampling.BICUBIC)


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def dataset(root: Path, items: list[tuple[bytes, str, str]]) -> Path:
    with DatasetWriter(root) as writer:
        for index, (data, suffix, question) in enumerate(items):
            path = writer.add_media_bytes(data, suffix)
            writer.write(
                {
                    "id": f"{root.name}-{index}",
                    "messages": [
                        {
                            "role": "user",
                            "content": [{"type": "image", "image": path}, {"type": "text", "text": question}],
                        },
                        {"role": "assistant", "content": "x"},
                    ],
                }
            )
    return root


@pytest.fixture
def pair(tmp_path):
    stripes, bands, checker, diagonal = (pattern(k) for k in ("stripes", "bands", "checker", "diagonal"))
    train = dataset(
        tmp_path / "train",
        [
            (encode(stripes), ".png", "What is shown?"),
            (encode(bands), ".png", "How many bands?"),
            (encode(checker), ".png", "Which colour?"),
        ],
    )
    near_copy = encode(bands.resize((120, 90)), "JPEG", quality=70)  # resized and re-encoded
    evals = dataset(
        tmp_path / "eval",
        [
            (encode(stripes), ".png", "Something else?"),  # exact copy, new question
            (near_copy, ".jpg", "  how MANY bands? "),  # near copy, same question (case/space aside)
            (encode(diagonal), ".png", "What is shown?"),  # new image, a question train asked elsewhere
        ],
    )
    return train, evals


def test_finds_exact_near_and_same_question(pair):
    train, evals = pair
    report = check_leakage(train, evals, progress=False)
    assert report["leaks"] is True
    [exact] = report["exact_duplicates"]["items"]
    assert exact["eval_samples"] == ["eval-0"] and exact["train_samples"] == ["train-0"] and exact["kind"] == "image"
    [near] = report["near_duplicates"]["items"]
    assert near["eval_samples"] == ["eval-1"] and near["train_samples"] == ["train-1"] and 0 < near["distance"] <= 5
    [same] = report["identical_image_question"]["items"]
    assert (same["eval_sample"], same["train_sample"]) == ("eval-1", "train-1")
    assert report["eval_samples_leaking"] == 2 and report["eval_samples"] == 3
    assert report["eval_leak_share"] == round(2 / 3, 4)


def test_threshold_zero_keeps_only_exact(pair):
    train, evals = pair
    report = check_leakage(train, evals, threshold=0, progress=False)
    assert report["exact_duplicates"]["count"] == 1 and report["near_duplicates"]["count"] == 0
    assert report["identical_image_question"]["count"] == 0


def test_clean_pair_and_strict_exit_codes(tmp_path, pair, capsys):
    train, evals = pair
    clean = dataset(tmp_path / "clean", [(encode(pattern("ramp")), ".png", "What is shown?")])
    assert check_leakage(train, clean, progress=False)["leaks"] is False

    main(["data", "check-leakage", str(train), str(clean), "--strict"])  # returns: exit code 0
    assert "no leakage found" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "check-leakage", str(train), str(evals), "--strict", "--out", str(tmp_path / "leak.json")])
    assert exit_info.value.code == 1
    assert json.loads((tmp_path / "leak.json").read_text())["exact_duplicates"]["count"] == 1
    main(["data", "check-leakage", str(train), str(evals)])  # without --strict: a report, exit 0
    assert (evals / "leakage_report.json").exists()


def test_bad_threshold(pair):
    from vlmkit.errors import ConfigError

    with pytest.raises(ConfigError, match="out of 64"):
        check_leakage(*pair, threshold=65, progress=False)


def test_hash_cache_skips_unchanged_files_and_rehashes_a_changed_one(tmp_path, pair, monkeypatch):
    """Issue 18: check-leakage re-hashed every image each run. The second run reads no unchanged file; a file
    rewritten in place (new size and mtime) is hashed again, and its new hash is what the report uses."""
    import os

    from vlmkit.data import leakage

    hashed = []
    real = leakage.hash_media
    monkeypatch.setattr(leakage, "hash_media", lambda path, kind="image": hashed.append(path.name) or real(path, kind))
    cache = tmp_path / "cache.sqlite"
    train, evals = pair
    first = check_leakage(train, evals, progress=False, hash_cache=cache)
    assert len(hashed) == 6 and cache.is_file()  # 3 train + 3 eval files
    hashed.clear()
    second = check_leakage(train, evals, progress=False, hash_cache=cache)
    assert hashed == [] and second == first

    # eval's exact copy of train-0 is replaced by another picture (same path, new bytes)
    changed = evals / read_first_media(evals)
    stat = changed.stat()
    changed.write_bytes(encode(pattern("ramp")))
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    third = check_leakage(train, evals, progress=False, hash_cache=cache)
    assert hashed == [changed.name]
    assert third["exact_duplicates"]["count"] == 0 and first["exact_duplicates"]["count"] == 1
    hashed.clear()
    check_leakage(train, evals, progress=False, hash_cache=False)  # --no-hash-cache reads everything
    assert len(hashed) == 6


def read_first_media(root: Path) -> str:
    from vlmkit.data.schema import read_samples

    return read_samples(root, resolve_media=False)[0].media()[0]
