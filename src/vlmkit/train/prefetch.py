"""Batches built ahead on a background thread (`train.prefetch_batches`), when no DataLoader worker builds them.

With `train.num_workers: 0` the Trainer builds each micro-batch (media decoding, the processor, packing) on the
training thread, between two steps. Most of that work runs in C (image decoding, tokenizers, torch ops) with the
GIL released, as does most of a training step, so a thread can build the next batches while the step runs. The
order of the batches is the DataLoader's own (the thread only calls `next` on it earlier), and the collator draws
no numbers from the global RNG, so a run gives the same results with or without prefetching (tested).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterator
from typing import Any


def prefetch_depth(requested: int, num_workers: int, device_type: str) -> int:
    """How many micro-batches to build ahead on a thread: none with DataLoader workers (they prefetch), and on a
    CPU none unless torch's intra-op threads leave a core free. There the model's own OpenMP threads fill every
    core, and a thread competing with them stalls every parallel region at its barrier: on this 2-core box with 2
    torch threads, prefetching made steps a third slower (with 1 torch thread, 2-3 % faster)."""
    if not requested or num_workers > 0:
        return 0
    if device_type != "cpu":
        return requested
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return requested if torch.get_num_threads() < cores else 0


class BackgroundBatches:
    """Iterates `source` on a daemon thread, at most `depth` built batches ahead of the consumer (on an accelerator
    each of them is already on the device). An error raised while building a batch is raised to the consumer in
    its place. `paused()` holds the thread between two batches (the Trainer's evaluation uses the same collator and
    tokenizer, which are not made for two threads); `close()` stops it, waiting for a batch in progress (a run can
    end mid-epoch at max_steps)."""

    def __init__(self, source: Iterator[Any], depth: int):
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._room = threading.Semaphore(max(1, depth))  # a batch is built only with room for it
        self._building = threading.Lock()  # held while the thread builds a batch; paused() takes it
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._fill, args=(iter(source),), name="vlmkit-prefetch", daemon=True)
        self._thread.start()

    def _fill(self, source: Iterator[Any]) -> None:
        while True:
            while not self._room.acquire(timeout=0.1):
                if self._stop.is_set():
                    return
            with self._building:
                if self._stop.is_set():
                    return
                try:
                    item: tuple[str, Any] = ("batch", next(source))
                except StopIteration:
                    item = ("done", None)
                except BaseException as exc:  # handed to the training thread, raised where the batch was due
                    item = ("error", exc)
            self._queue.put(item)
            if item[0] != "batch":
                return

    def __iter__(self) -> BackgroundBatches:
        return self

    def __next__(self) -> Any:
        if self._finished:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == "batch":
            self._room.release()
            return value
        self._finished = True
        if kind == "error":
            raise value
        raise StopIteration

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No batch is built while the block runs (one in progress finishes first). Batches built before are
        still handed out; waiting in the block for one more would wait for ever."""
        with self._building:
            yield

    def close(self) -> None:
        self._stop.set()
        self._finished = True
        with self._building:  # a batch in progress is finished before the run goes on
            pass
        while True:  # free the queued batches
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)
