"""Data-parallel evaluation: the processes started by torchrun or accelerate launch split one run's samples.

Every rank loads the model on its own device and predicts a disjoint, size-balanced share of the samples still to
do, appending each batch (flushed) to its own part file, `predictions.part-<rank>-of-<world>.jsonl`. Rank 0 then
merges the parts into predictions.jsonl in dataset order and scores once. A part file is never trusted to be
complete: any run, with any world size (1 included), first folds every part left in the folder into
predictions.jsonl (deduplicated by id, torn last lines dropped) and deletes the parts only after that file is
atomically replaced, so a job killed at any moment resumes with every sample exactly once.

Collectives go through a gloo group with a timeout (VLMKIT_DIST_TIMEOUT_S, default 1800 s): a rank that dies or
hangs fails the others with a message that says so, instead of leaving them waiting forever.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import VlmkitError

PART_PATTERN = "predictions.part-*.jsonl"
_PART_NAME = re.compile(r"^predictions\.part-(\d+)-of-(\d+)\.jsonl$")
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class World:
    """This process's place in the job: rank, world size and local rank (its device index on the node)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self) -> str:
        """cuda:LOCAL_RANK where there are GPUs, else the CPU."""
        import torch

        return f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"


def current_world() -> World:
    """From the environment torchrun and accelerate launch set (RANK, WORLD_SIZE, LOCAL_RANK)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise VlmkitError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers ({exc})") from None
    return World(rank=rank, size=max(size, 1), local_rank=local)


def timeout_s() -> float:
    value = os.environ.get("VLMKIT_DIST_TIMEOUT_S")
    try:
        return float(value) if value else DEFAULT_TIMEOUT_S
    except ValueError:
        raise VlmkitError(f"VLMKIT_DIST_TIMEOUT_S must be a number of seconds (got '{value}')") from None


class Group:
    """The few collectives a data-parallel run needs, over gloo (CPU tensors, works beside GPUs too)."""

    def __init__(self, world: World):
        import torch.distributed as dist

        self.world = world
        self.timeout = timeout_s()
        self._dist = dist
        if not dist.is_initialized():
            dist.init_process_group(
                "gloo", rank=world.rank, world_size=world.size, timeout=datetime.timedelta(seconds=self.timeout)
            )
            self._owned = True
        else:
            self._owned = False
        # a separate gloo group even when the caller set up NCCL: object broadcasts and barriers stay on the CPU
        self._group = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=self.timeout))

    def barrier(self, what: str) -> None:
        try:
            # monitored_barrier names the rank that failed to arrive, unlike a plain barrier
            self._dist.monitored_barrier(group=self._group, timeout=datetime.timedelta(seconds=self.timeout))
        except RuntimeError as exc:
            raise self._lost(what, exc) from None

    def broadcast(self, value: Any, what: str) -> Any:
        """Rank 0's value on every rank."""
        box = [value]
        try:
            self._dist.broadcast_object_list(box, src=0, group=self._group)
        except RuntimeError as exc:
            raise self._lost(what, exc) from None
        return box[0]

    def _lost(self, what: str, exc: Exception) -> VlmkitError:
        reason = str(exc).splitlines()[0][:300]
        return VlmkitError(
            f"rank {self.world.rank} of {self.world.size}: another process of the job died or stopped answering "
            f"while {what} (waited up to {self.timeout:.0f} s, VLMKIT_DIST_TIMEOUT_S): {reason}. What was "
            "predicted is kept; rerun the same command (any number of processes) to finish the run"
        )

    def close(self) -> None:
        if self._owned and self._dist.is_initialized():
            self._dist.destroy_process_group()


def part_path(out: Path, world: World) -> Path:
    return out / f"predictions.part-{world.rank}-of-{world.size}.jsonl"


def part_files(out: Path) -> list[Path]:
    return sorted(p for p in out.glob(PART_PATTERN) if _PART_NAME.match(p.name))


def shard(sizes: Sequence[float], world_size: int) -> list[list[int]]:
    """Indices split into `world_size` disjoint shares of about equal total size (largest first onto the
    lightest share, the classic greedy bound), each share kept in ascending (dataset) order."""
    shares: list[list[int]] = [[] for _ in range(world_size)]
    loads = [0.0] * world_size
    for index in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        lightest = min(range(world_size), key=lambda r: (loads[r], len(shares[r]), r))
        shares[lightest].append(index)
        loads[lightest] += sizes[index]
    return [sorted(share) for share in shares]


def sample_cost(sample: Any) -> float:
    """A cheap stand-in for a sample's inference cost: media count and on-disk size, plus question length."""
    cost = 1.0 + len(sample.question()) / 200.0
    for path in sample.media():
        try:
            cost += 1.0 + os.path.getsize(path) / 1e6
        except OSError:
            cost += 1.0
    return cost


_GROUP: Group | None = None


def job_group(world: World) -> Group | None:
    """The job's collectives (set up once per process), or None in a one-process run."""
    global _GROUP
    if not world.distributed:
        return None
    if _GROUP is None:
        _GROUP = Group(world)
    return _GROUP


def fold_parts(out: Path, predictions: Path, order: dict[str, int]) -> int:
    """Merge predictions.jsonl and every part file in `out` into predictions.jsonl in dataset order, each id once
    (the first record wins; torn last lines are dropped), then delete the parts. The merged file replaces the old
    one atomically before any part goes, so a kill at any point leaves every prediction in some file."""
    from ..io import iter_jsonl, write_jsonl

    parts = part_files(out)
    if not parts:
        return 0
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for path in (predictions, *parts):
        if not path.exists():
            continue
        for _, row in iter_jsonl(path, skip_torn_tail=True):
            key = row.get("id") if isinstance(row, dict) else None
            if key is None or key in seen:
                continue
            seen.add(key)
            rows.append(row)
    rows.sort(key=lambda row: order.get(row["id"], len(order)))
    write_jsonl(predictions, rows)
    for path in parts:
        path.unlink(missing_ok=True)
    return len(rows)
