"""Train/eval leakage: the same image (or a near copy of it), or the same question about it, on both sides.

Three checks between a training and an evaluation dataset folder:
- exact duplicates: media files with the same content hash (sha256 of the bytes), images and videos
- near duplicates: images whose perceptual hashes (imagehash.phash, 64 bits) differ in at most
  `threshold` bits: re-encodes, resizes and small crops of one photo
- identical (image, question) pairs: an eval question asked, word for word (case and spacing aside),
  about the same or a near-duplicate image in training
- augmented variants: a training sample made by `vlmkit data augment` from an eval sample (its
  `meta.source_id` is the eval sample's id), or a variant in eval of a training sample, whatever the wording

Hashes are cached by path, size and mtime (hash_cache.py), so a rerun reads only new or changed files.

The report names every eval sample involved; `--strict` turns any finding into a non-zero exit.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MediaError
from .hash_cache import HashCache
from .schema import iter_samples

DEFAULT_THRESHOLD = 5  # of 64 phash bits; re-encoded or resized copies land at 0-4, different photos at 20+
PAIR_CHUNK = 1 << 22  # hash comparisons per numpy step: a few tens of MB at most


def normalize_question(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


class _Side:
    """Media hashes and (image, question) pairs of one dataset folder."""

    def __init__(self, root: Path, progress: bool | None, label: str, cache: HashCache | None):
        from tqdm.auto import tqdm

        self.root = root
        self.cache = cache
        self.samples_by_media: dict[str, list[str]] = defaultdict(list)
        self.sources: list[tuple[str, str | None]] = []  # (sample id, meta.source_id of an augmented variant)
        self.questions: list[tuple[str, list[str], str]] = []  # (sample id, media, normalised question)
        self.kinds: dict[str, str] = {}
        for sample in iter_samples(root, resolve_media=False):
            source = sample.meta.get("source_id")
            self.sources.append((sample.id, str(source) if source is not None and str(source).strip() else None))
            media = sample.media()
            for path in dict.fromkeys(media):
                self.samples_by_media[path].append(sample.id)
            for path in sample.media("video"):
                self.kinds[path] = "video"
            for message in sample.messages:
                if message.role == "user" and message.text().strip():
                    self.questions.append((sample.id, media, normalize_question(message.text())))
        self.sha: dict[str, str] = {}
        self.phash: dict[str, int] = {}
        self.unreadable: list[dict[str, str]] = []
        for path in tqdm(
            list(self.samples_by_media),
            desc=f"hash {label}",
            unit="file",
            disable=None if progress is None else not progress,
        ):
            self._hash(path)

    def _hash(self, rel: str) -> None:
        full = Path(rel) if os.path.isabs(rel) else self.root / rel
        kind = self.kinds.get(rel, "image")
        entry = self.cache.get(full) if self.cache is not None else None
        if entry is None or (kind == "image" and entry[1] is None):
            try:
                entry = hash_media(full, kind)
            except OSError as exc:
                self.unreadable.append({"media": rel, "reason": f"can't read: {exc.strerror or exc}"})
                return
            except MediaError as exc:
                self.unreadable.append({"media": rel, "reason": exc.reason})
                return
            if self.cache is not None:
                self.cache.put(full, entry)
        self.sha[rel] = entry[0]
        if entry[1] is not None:
            self.phash[rel] = entry[1]


def hash_media(path: Path, kind: str = "image") -> tuple[str, int | None]:
    """(sha256 of the bytes, 64-bit perceptual hash of the image, None for a video); OSError / MediaError when
    the file cannot be read or decoded."""
    from .media import decode_image_bytes

    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if kind == "video":
        return digest, None
    image = decode_image_bytes(data, str(path))
    import imagehash

    return digest, int(str(imagehash.phash(image)), 16)


def check_leakage(
    train: str | os.PathLike,
    eval: str | os.PathLike,
    *,
    threshold: int = DEFAULT_THRESHOLD,
    progress: bool | None = None,
    hash_cache: bool | str | os.PathLike = True,
) -> dict[str, Any]:
    """Compare two dataset folders; returns the report (`leaks` is True when anything was found).
    `hash_cache`: True for the default cache file, a path for another one, False to hash every file."""
    if not 0 <= threshold <= 64:
        raise ConfigError(f"--threshold is a number of differing bits out of 64, got {threshold}")
    cache = None if hash_cache is False else HashCache(None if hash_cache is True else hash_cache)
    try:
        left, right = _Side(Path(train), progress, "train", cache), _Side(Path(eval), progress, "eval", cache)
    finally:
        if cache is not None:
            cache.close()

    by_sha = defaultdict(list)
    for path, digest in left.sha.items():
        by_sha[digest].append(path)
    exact = []
    matches: dict[str, set[str]] = defaultdict(set)  # eval media -> train media it copies
    for path, digest in right.sha.items():
        if digest in by_sha:
            matches[path].update(by_sha[digest])
            exact.append(
                {
                    "kind": right.kinds.get(path, "image"),
                    "sha256": digest,
                    "eval_media": path,
                    "train_media": by_sha[digest],
                    "eval_samples": right.samples_by_media[path],
                    "train_samples": sorted({s for t in by_sha[digest] for s in left.samples_by_media[t]})[:20],
                }
            )

    near = []
    for eval_path, train_path, distance in _near_pairs(left.phash, right.phash, threshold):
        if left.sha.get(train_path) == right.sha.get(eval_path):
            continue  # already listed as an exact duplicate
        matches[eval_path].add(train_path)
        near.append(
            {
                "eval_media": eval_path,
                "train_media": train_path,
                "distance": distance,
                "eval_samples": right.samples_by_media[eval_path],
                "train_samples": left.samples_by_media[train_path][:20],
            }
        )

    train_pairs: dict[tuple[str, str], str] = {}
    for sample_id, media, question in left.questions:
        for path in media:
            train_pairs.setdefault((path, question), sample_id)
    same_question = []
    for sample_id, media, question in right.questions:
        for path in media:
            hit = next(
                (
                    (t, train_pairs[(t, question)])
                    for t in sorted(matches.get(path, ()))
                    if (t, question) in train_pairs
                ),
                None,
            )
            if hit:
                same_question.append(
                    {
                        "eval_sample": sample_id,
                        "train_sample": hit[1],
                        "question": question,
                        "eval_media": path,
                        "train_media": hit[0],
                    }
                )
                break

    variants = _variants_across(left.sources, right.sources)
    leaking = {s for item in exact + near for s in item["eval_samples"]} | {i["eval_sample"] for i in same_question}
    leaking |= {item["eval_sample"] for item in variants}
    eval_samples = len(
        {sid for sid, _, _ in right.questions} | {s for ids in right.samples_by_media.values() for s in ids}
    )
    return {
        "train": str(train),
        "eval": str(eval),
        "threshold": threshold,
        "train_media": len(left.samples_by_media),
        "eval_media": len(right.samples_by_media),
        "eval_samples": eval_samples,
        "exact_duplicates": {"count": len(exact), "items": exact},
        "near_duplicates": {"count": len(near), "items": near},
        "identical_image_question": {"count": len(same_question), "items": same_question},
        "augmented_from_eval": {"count": len(variants), "items": variants},
        "eval_samples_leaking": len(leaking),
        "eval_leak_share": round(len(leaking) / eval_samples, 4) if eval_samples else 0.0,
        "unreadable": {"train": left.unreadable, "eval": right.unreadable},
        "leaks": bool(exact or near or same_question or variants),
    }


def _variants_across(train: list[tuple[str, str | None]], evals: list[tuple[str, str | None]]) -> list[dict[str, str]]:
    """Pairs of a train and an eval sample with the same source (`meta.source_id`, else the sample's own id)
    where at least one of the two is an augmented variant: the same question reworded on both sides."""
    by_source: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for sample_id, source in evals:
        by_source[source or sample_id].append((sample_id, source is not None))
    items = []
    for sample_id, source in train:
        for eval_id, eval_is_variant in by_source.get(source or sample_id, ()):
            if source is not None or eval_is_variant:
                items.append({"train_sample": sample_id, "eval_sample": eval_id, "source_id": source or sample_id})
    return items


def _near_pairs(train: dict[str, int], evals: dict[str, int], threshold: int) -> Iterator[tuple[str, str, int]]:
    """(eval, train, bits) for every pair within `threshold` bits, compared in numpy chunks."""
    import numpy as np

    if not train or not evals:
        return
    train_keys = list(train)
    train_hashes = np.array([train[k] for k in train_keys], dtype=np.uint64)
    eval_keys = list(evals)
    eval_hashes = np.array([evals[k] for k in eval_keys], dtype=np.uint64)
    step = max(1, PAIR_CHUNK // len(train_hashes))
    for start in range(0, len(eval_hashes), step):
        block = eval_hashes[start : start + step]
        distances = np.bitwise_count(block[:, None] ^ train_hashes[None, :])
        for row, col in zip(*np.nonzero(distances <= threshold)):
            yield eval_keys[start + row], train_keys[col], int(distances[row, col])


def summary_lines(report: dict[str, Any], limit: int = 5) -> list[str]:
    lines = [
        f"train {report['train']} ({report['train_media']} media) "
        f"vs eval {report['eval']} ({report['eval_media']} media)",
        f"exact duplicates: {report['exact_duplicates']['count']}",
        f"near duplicates (phash <= {report['threshold']} bits): {report['near_duplicates']['count']}",
        f"identical (image, question) pairs: {report['identical_image_question']['count']}",
        f"augmented variants of eval samples in train (meta.source_id): {report['augmented_from_eval']['count']}",
        f"eval samples affected: {report['eval_samples_leaking']} of {report['eval_samples']} "
        f"({report['eval_leak_share']:.1%})",
    ]
    for item in report["exact_duplicates"]["items"][:limit]:
        lines.append(f"  exact: {item['eval_media']} == {item['train_media'][0]}")
    for item in report["near_duplicates"]["items"][:limit]:
        lines.append(f"  near ({item['distance']} bits): {item['eval_media']} ~ {item['train_media']}")
    for item in report["augmented_from_eval"]["items"][:limit]:
        lines.append(
            f"  variant: train {item['train_sample']} ~ eval {item['eval_sample']} (source {item['source_id']})"
        )
    for item in report["identical_image_question"]["items"][:limit]:
        lines.append(
            f"  same question: eval {item['eval_sample']} = train {item['train_sample']}: {item['question'][:80]}"
        )
    return lines
