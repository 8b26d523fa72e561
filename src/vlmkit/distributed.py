"""Data-parallel prediction (`vlmkit eval` and `vlmkit infer --data`): the processes that torchrun or accelerate
launch start split one run's samples. `DataParallel` is the one scheme both verbs use.

Every rank loads the model on its own device and predicts a disjoint, size-balanced share of the samples still to
do, appending each batch (flushed) to its own part file beside the predictions file (`predictions.jsonl` ->
`predictions.part-<rank>-of-<world>.jsonl`). Rank 0 then merges the parts into the predictions file in dataset
order (and eval scores once). A part file is never trusted to be complete: any run, with any world size (1
included), first folds every part left beside the predictions file into it (deduplicated by id, torn last lines
dropped) and deletes the parts only after that file is atomically replaced, so a job killed at any moment resumes
with every sample exactly once.

Collectives go through a gloo group with a timeout (VLMKIT_DIST_TIMEOUT_S, default 1800 s): a rank that dies or
hangs fails the others with a message that says so, instead of leaving them waiting forever.
"""

from __future__ import annotations

import datetime
import glob
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import VlmkitError

if TYPE_CHECKING:
    from .infer.options import EngineOptions

DEFAULT_TIMEOUT_S = 1800.0
T = TypeVar("T")


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


# torchrun's variables first, then MPI's (accelerate's multi-CPU launch runs under mpirun), as accelerate reads them
_RANK = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
_SIZE = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_LOCAL = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK")


def _env_int(names: Sequence[str], default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value:
            try:
                return int(value)
            except ValueError:
                raise VlmkitError(f"{name} must be an integer (got '{value}')") from None
    return default


def current_world() -> World:
    """From the environment the launcher set: torchrun and `accelerate launch` (RANK, WORLD_SIZE, LOCAL_RANK), or
    MPI (PMI_* / OMPI_COMM_WORLD_* / MV2_COMM_WORLD_*)."""
    rank = _env_int(_RANK, 0)
    return World(rank=rank, size=max(_env_int(_SIZE, 1), 1), local_rank=_env_int(_LOCAL, rank))


def timeout_s() -> float:
    value = os.environ.get("VLMKIT_DIST_TIMEOUT_S")
    try:
        return float(value) if value else DEFAULT_TIMEOUT_S
    except ValueError:
        raise VlmkitError(f"VLMKIT_DIST_TIMEOUT_S must be a number of seconds (got '{value}')") from None


PREDICTIONS_KEPT = "What was predicted is kept; rerun the same command (any number of processes) to finish the run"


class Group:
    """The few collectives a data-parallel run needs, over gloo (CPU tensors, works beside GPUs too)."""

    def __init__(self, world: World):
        import torch.distributed as dist

        self.world = world
        self.timeout = timeout_s()
        self._dist = dist
        if not dist.is_initialized():
            missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
            if missing:  # torchrun and accelerate set them; a bare mpirun does not
                raise VlmkitError(
                    f"started as rank {world.rank} of {world.size} but {' and '.join(missing)} "
                    "not set: launch with torchrun or accelerate launch, or export MASTER_ADDR and MASTER_PORT"
                )
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

    def broadcast(self, value: Any, what: str, advice: str = PREDICTIONS_KEPT) -> Any:
        """Rank 0's value on every rank; `advice` ends the error if a rank is lost."""
        box = [value]
        try:
            self._dist.broadcast_object_list(box, src=0, group=self._group)
        except RuntimeError as exc:
            raise self._lost(what, exc, advice) from None
        return box[0]

    def _lost(self, what: str, exc: Exception, advice: str = PREDICTIONS_KEPT) -> VlmkitError:
        reason = str(exc).splitlines()[0][:300]
        return VlmkitError(
            f"rank {self.world.rank} of {self.world.size}: another process of the job died or stopped answering "
            f"while {what} (waited up to {self.timeout:.0f} s, VLMKIT_DIST_TIMEOUT_S): {reason}. {advice}"
        )

    def close(self) -> None:
        if self._owned and self._dist.is_initialized():
            self._dist.destroy_process_group()


def part_path(predictions: Path, world: World) -> Path:
    """This rank's part file beside the predictions file: NAME.jsonl -> NAME.part-<rank>-of-<world>.jsonl."""
    predictions = Path(predictions)
    return predictions.with_name(f"{predictions.stem}.part-{world.rank}-of-{world.size}{predictions.suffix}")


def part_files(predictions: Path) -> list[Path]:
    """Every part file an earlier or current data-parallel job left beside the predictions file (any world size)."""
    predictions = Path(predictions)
    name = re.compile(rf"^{re.escape(predictions.stem)}\.part-\d+-of-\d+{re.escape(predictions.suffix)}$")
    if not predictions.parent.is_dir():
        return []
    return sorted(p for p in predictions.parent.glob(f"{glob.escape(predictions.stem)}.part-*") if name.match(p.name))


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


def fold_parts(predictions: Path, order: dict[str, int]) -> int:
    """Merge the predictions file and every part file beside it into the predictions file in dataset order (`order`:
    id -> position), each id once (the first record wins; torn last lines are dropped), then delete the parts. The
    merged file replaces the old one atomically before any part goes, so a kill at any point leaves every
    prediction in some file. Returns the number of records merged (0: there were no parts, nothing was touched)."""
    from .io import iter_jsonl, write_jsonl

    predictions = Path(predictions)
    parts = part_files(predictions)
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


def per_rank_engine(options: EngineOptions | None) -> EngineOptions | None:
    """Engine options for this rank: under torchrun / accelerate launch each rank loads its own copy of the model
    on its own device (cuda:LOCAL_RANK or the CPU). A remote engine runs no model here and scales with
    --concurrency instead, so it is refused."""
    world = current_world()
    if not world.distributed:
        return options
    from .infer.options import EngineOptions

    options = options or EngineOptions()
    if options.engine != "hf":
        raise VlmkitError(
            f"--engine {options.engine} runs no model in this process: start one process and raise --concurrency "
            f"instead of launching {world.size} with torchrun / accelerate launch"
        )
    return options if options.device else replace(options, device=world.device())


class DataParallel:
    """One prediction run split over the job's processes (a plain one-process run when there is no job).

    dp = DataParallel(predictions_file)
    todo = dp.on_main("reading the run folder", prepare)   # rank 0 reads/rewrites files, all get the result
    mine = dp.share(todo)                                   # this rank's disjoint, size-balanced share
    ... append mine's predictions to dp.output ...          # the predictions file itself, or this rank's part
    if dp.gather(order): ... rank 0 (or the only process) goes on with the merged file ...
    """

    def __init__(self, predictions: str | os.PathLike, world: World | None = None):
        self.predictions = Path(predictions)
        self.world = world or current_world()
        self.group = job_group(self.world)
        self.waited_s = self.merged_s = 0.0  # set by gather: the wait for the other ranks, rank 0's merge

    @property
    def main(self) -> bool:
        return self.world.main

    @property
    def distributed(self) -> bool:
        return self.group is not None

    @property
    def output(self) -> Path:
        """Where this rank appends its predictions."""
        return part_path(self.predictions, self.world) if self.distributed else self.predictions

    def on_main(self, what: str, prepare: Callable[[], T]) -> T:
        """Rank 0 alone runs `prepare` (it reads and rewrites the run's files); every rank gets its result, or
        raises its error, so no rank goes on when rank 0 refused the run."""
        if self.group is None:
            return prepare()
        outcome: tuple[str, Any] = ("error", "rank 0 did not prepare the run")
        if self.main:
            try:
                outcome = ("ok", prepare())
            except VlmkitError as exc:
                outcome = ("error", str(exc))
        outcome = self.group.broadcast(outcome, what)
        if outcome[0] == "error":
            raise VlmkitError(outcome[1])
        return outcome[1]

    def share(self, pending: Sequence[T], cost: Callable[[T], float] = sample_cost) -> list[T]:
        """This rank's disjoint share of `pending`, balanced by `cost`, in the given order (all of it alone)."""
        if self.group is None:
            return list(pending)
        return [pending[i] for i in shard([cost(item) for item in pending], self.world.size)[self.world.rank]]

    def gather(self, order: dict[str, int]) -> bool:
        """Wait until every rank has predicted its share; rank 0 then merges the parts into the predictions file in
        dataset order. True on the process that goes on with the merged file (rank 0, or the only process)."""
        if self.group is None:
            return True
        started = time.perf_counter()
        self.group.barrier("predicting its share")
        self.waited_s = time.perf_counter() - started  # for the slowest share
        if not self.main:
            return False
        started = time.perf_counter()
        fold_parts(self.predictions, order)
        self.merged_s = time.perf_counter() - started
        return True
