"""Group-aware train/val/test splits: no image (or document) ends up in two splits.

Samples are grouped by what they share. `--group-by image`: samples that show the same media file are
one group (content-addressed paths, so the same picture is the same path); a sample with several
images joins all of their groups (union-find). `--group-by doc`: the same, plus samples with the same
`meta.doc_id` (DocVQA's docId: several pages/questions of one document) are one group. Either way a
sample and the variants made of it (`vlmkit data augment`: `meta.source_id` names the source) are one
group, text-only ones too. Other text-only samples are groups of one.

Groups are sorted by name, shuffled with the seed and dealt out until each split has its share of
samples, so the result depends only on the data and the seed, never on line order. Each split is a
dataset folder of its own; media files are hard-linked from the source (copied across filesystems).
"""

from __future__ import annotations

import os
import random
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..io import check_output_dir, link_or_copy, write_json
from .schema import SAMPLES_FILE, DatasetWriter, iter_samples

GROUP_BY = ("image", "doc")
SPLIT_NAMES = ("train", "val", "test")


def split_dataset(
    dataset: str | os.PathLike,
    *,
    val: float = 0.1,
    test: float = 0.1,
    group_by: str = "image",
    seed: int = 0,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write OUT/train, OUT/val, OUT/test (those with a share > 0) and OUT/split_report.json."""
    if group_by not in GROUP_BY:
        raise ConfigError(f"--group-by must be one of {', '.join(GROUP_BY)}, not '{group_by}'")
    for name, share in (("val", val), ("test", test)):
        if not 0 <= share < 1:
            raise ConfigError(f"--{name} must be a fraction in [0, 1), got {share}")
    if val + test >= 1:
        raise ConfigError(f"--val + --test = {val + test:g} leaves nothing to train on")
    root = Path(dataset)
    if out is not None and not _strictly_inside(Path(out), root):  # DATASET/<folder> (the default) is fine
        check_output_dir(out, {"DATASET": root})
    out = Path(out) if out is not None else root / "splits"
    groups = _group(root, group_by)
    assignment, group_split = _deal(groups, {"val": val, "test": test}, seed)
    written, missing = _write(root, out, assignment, overwrite)
    counts = {
        name: written.get(name, 0) for name in SPLIT_NAMES if name == "train" or {"val": val, "test": test}[name] > 0
    }
    report = {
        "dataset": str(root),
        "out": str(out),
        "group_by": group_by,
        "seed": seed,
        "requested": {"train": round(1 - val - test, 6), "val": val, "test": test},
        "samples": counts,
        "fractions": {k: round(v / max(1, sum(counts.values())), 4) for k, v in counts.items()},
        "groups": dict(Counter(group_split.values())),
        "largest_group": max((size for _, size in groups.sizes.values()), default=0),
        "samples_without_doc_id": groups.without_doc,
        "missing_media_files": len(missing),
        "missing_media_examples": list(dict.fromkeys(missing))[:5],
    }
    write_json(out / "split_report.json", report)
    return report


class _Groups:
    """Union-find over group keys (media paths, doc ids); each sample points at one key node."""

    def __init__(self) -> None:
        self.node: dict[str, int] = {}
        self.parent = array("l")
        self.label: list[str] = []  # smallest key in the component, kept at the root
        self.sample_node = array("l")
        self.without_doc = 0
        self.sizes: dict[int, tuple[str, int]] = {}

    def _id(self, key: str) -> int:
        if key not in self.node:
            self.node[key] = len(self.parent)
            self.parent.append(len(self.parent))
            self.label.append(key)
        return self.node[key]

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            keep, drop = (ra, rb) if self.label[ra] <= self.label[rb] else (rb, ra)
            self.parent[drop] = keep

    def add_sample(self, keys: list[str]) -> None:
        nodes = [self._id(k) for k in keys]
        for other in nodes[1:]:
            self.union(nodes[0], other)
        self.sample_node.append(nodes[0])

    def finish(self) -> None:
        sizes: Counter[int] = Counter(self.find(n) for n in self.sample_node)
        self.sizes = {root: (self.label[root], size) for root, size in sizes.items()}

    def group_of(self, index: int) -> int:
        return self.find(self.sample_node[index])


def _group(root: Path, group_by: str) -> _Groups:
    groups = _Groups()
    for sample in iter_samples(root, resolve_media=False):
        keys = [f"media:{m}" for m in sample.media()]
        if group_by == "doc":
            doc = sample.meta.get("doc_id")
            if doc is not None and str(doc).strip():
                keys.insert(0, f"doc:{doc}")
            else:
                groups.without_doc += 1
        # a variant joins its source (data augment's meta.source_id); a plain sample is its own source
        source = sample.meta.get("source_id")
        keys.append(f"source:{source if isinstance(source, str) and source.strip() else sample.id}")
        groups.add_sample(keys)
    groups.finish()
    if not groups.sizes:
        raise DataError("dataset has no samples to split", path=root / SAMPLES_FILE)
    return groups


def _deal(groups: _Groups, shares: dict[str, float], seed: int) -> tuple[array, dict[int, str]]:
    """Shuffle the groups (sorted first, so line order doesn't matter) and fill test, then val, then train."""
    order = sorted(groups.sizes, key=lambda root: groups.sizes[root][0])
    random.Random(seed).shuffle(order)
    total = sum(size for _, size in groups.sizes.values())
    targets = {name: round(share * total) for name, share in shares.items()}
    # a requested split gets at least one group when there are enough groups to go round
    if len(order) >= 3:
        targets = {name: max(1, t) if shares[name] > 0 else 0 for name, t in targets.items()}
    filled = Counter()
    group_split: dict[int, str] = {}
    for root in order:
        size = groups.sizes[root][1]
        name = next((n for n in ("test", "val") if filled[n] < targets[n]), "train")
        group_split[root] = name
        filled[name] += size
    codes = {name: i for i, name in enumerate(SPLIT_NAMES)}
    assignment = array("b", (codes[group_split[groups.group_of(i)]] for i in range(len(groups.sample_node))))
    return assignment, group_split


def _write(root: Path, out: Path, assignment: array, overwrite: bool) -> tuple[dict[str, int], list[str]]:
    used = sorted(set(assignment))
    writers = {code: DatasetWriter(out / SPLIT_NAMES[code], overwrite=overwrite) for code in used}
    owner: dict[str, int] = {}
    missing: list[str] = []  # ids of samples whose media file is missing
    try:
        for index, sample in enumerate(iter_samples(root, resolve_media=False)):
            code = assignment[index]
            for media in sample.media():
                if owner.setdefault(media, code) != code:  # cannot happen with union-find; a guard, not a hope
                    raise DataError(f"internal error: {media} assigned to two splits", path=root)
                if not (os.path.isabs(media) or "://" in media or media.startswith("data:")):
                    if not _link(root / media, out / SPLIT_NAMES[code] / media):
                        missing.append(sample.id)
                    writers[code].keep_media(media)
            writers[code].write(sample)
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    for writer in writers.values():
        writer.close()
    return {SPLIT_NAMES[code]: writers[code].samples_written for code in used}, missing


def _strictly_inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path != folder and path.is_relative_to(folder)


def _link(source: Path, target: Path) -> bool:
    """Hard-link (or copy) one media file into a split; False if the source file is missing."""
    if target.exists():
        return True
    if not source.is_file():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    link_or_copy(source, target)
    return True
