"""`train.prefetch_batches`: batches built ahead on a background thread give the same run as batches built between
steps, an error building a batch reaches the training thread as it would have without the thread, and no thread
outlives the run."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import base_config, write_image_dataset

from vlmkit.config import config_from_dict
from vlmkit.data.schema import read_samples
from vlmkit.train import train
from vlmkit.train.prefetch import BackgroundBatches


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "vlmkit-prefetch"]


# --- the iterator ----------------------------------------------------------------------------------


def test_batches_come_in_order_and_the_thread_reads_at_most_depth_ahead():
    pulled = []

    def source():
        for i in range(10):
            pulled.append(i)
            yield i

    batches = BackgroundBatches(source(), depth=2)
    assert next(batches) == 0
    time.sleep(0.3)  # ample time for the thread to run ahead as far as it may
    assert len(pulled) == 3  # batch 0 taken, 2 built ahead: never more than depth past the consumer
    assert list(batches) == list(range(1, 10))
    with pytest.raises(StopIteration):
        next(batches)  # exhausted stays exhausted, without waiting on the queue


def test_no_batch_is_built_while_paused():
    pulled = []

    def source():
        for i in range(10):
            pulled.append(i)
            yield i

    batches = BackgroundBatches(source(), depth=1)
    assert next(batches) == 0
    time.sleep(0.3)  # batch 1 is built ahead
    with batches.paused():
        assert next(batches) == 1  # what was built before the pause is still handed out
        time.sleep(0.3)
        assert pulled == [0, 1]  # and nothing after it
    assert list(batches) == list(range(2, 10))


def test_an_error_building_a_batch_is_raised_where_that_batch_was_due():
    def source():
        yield "a"
        yield "b"
        raise ValueError("sample 's3': cannot decode image x.png")

    batches = BackgroundBatches(source(), depth=4)
    assert [next(batches), next(batches)] == ["a", "b"]
    with pytest.raises(ValueError, match="s3"):
        next(batches)


def test_close_stops_a_thread_that_waits_for_room():
    batches = BackgroundBatches(iter(range(1000)), depth=1)
    assert next(batches) == 0
    batches.close()
    assert not _prefetch_threads()


# --- in a run --------------------------------------------------------------------------------------


def _counting(init, started):
    def wrapped(self, source, depth):
        started.append(depth)
        init(self, source, depth)

    return wrapped


def _run(model, data, out, prefetch, **train_options):
    config = base_config(
        model,
        data,
        out,
        data={"packing": False},  # packing decodes every image before training; here batches are built mid-run
        lora={"rank": 4, "alpha": 8, "dropout": 0.1},  # dropout draws from the global RNG on the training thread
        train={"batch_size": 2, "max_steps": 6, "seed": 0, "prefetch_batches": prefetch, **train_options},
    )
    return train(config_from_dict(config), progress=False)


@pytest.mark.parametrize("packing", [False, True], ids=["grouped", "packed"])
def test_a_prefetched_run_equals_one_built_between_steps(tmp_path, image_data, tiny_model, packing, monkeypatch):
    if len(os.sched_getaffinity(0)) <= torch.get_num_threads():
        pytest.skip("no core free beside torch's threads: prefetching stays off (see the test below)")
    model = tiny_model("qwen2_vl")
    started = []
    monkeypatch.setattr(BackgroundBatches, "__init__", _counting(BackgroundBatches.__init__, started))
    runs = {}
    for prefetch in (0, 2):
        out = tmp_path / f"prefetch-{prefetch}"
        extra = {} if not packing else {"group_by_length": False}
        config = base_config(
            model,
            image_data,
            out,
            data={"packing": packing, **({"max_length": 80} if packing else {})},
            lora={"rank": 4, "alpha": 8, "dropout": 0.1},
            train={"batch_size": 2, "max_steps": 6, "seed": 0, "prefetch_batches": prefetch, **extra},
            eval={"every": 2},  # evaluation mid-training uses the same collator: the thread waits meanwhile
        )
        config["data"]["eval"] = str(image_data)
        result = train(config_from_dict(config), progress=False)
        evals = [row["eval_loss"] for row in result.log_history if "eval_loss" in row]
        runs[prefetch] = (result.losses() + evals, load_file(result.adapter_dir / "adapter_model.safetensors"))
    assert started and set(started) == {2}  # the prefetched run used the thread (one per epoch)
    assert runs[0][0] == runs[2][0] and len(runs[0][0]) == 6 + 4  # 6 steps, 3 evaluations and the final one
    assert runs[0][1].keys() == runs[2][1].keys()
    assert all(torch.equal(runs[0][1][k], runs[2][1][k]) for k in runs[0][1])
    assert not _prefetch_threads()  # max_steps ended the run mid-epoch, with batches still queued


def test_a_broken_image_fails_the_run_naming_it_as_without_prefetching(tmp_path, tiny_model):
    image_data = write_image_dataset(tmp_path / "data")  # its own copy: one image gets broken
    samples = read_samples(image_data)
    broken = samples[5]
    image = broken.messages[0].content[0].image
    whole = open(image, "rb").read()
    with open(image, "wb") as f:  # the header (size) still reads, so it fails at decoding: mid-run, in the collator
        f.write(whole[:60])
    messages = {}
    for prefetch in (0, 2):
        out = tmp_path / f"prefetch-{prefetch}"
        with pytest.raises(Exception) as failure:
            _run(tiny_model("qwen2_vl"), image_data, out, prefetch, group_by_length=False, max_steps=8)
        messages[prefetch] = (type(failure.value), str(failure.value))
        assert json.loads((out / "manifest.json").read_text())["status"] == "failed"
    assert messages[0] == messages[2]
    assert str(image)[:60] in messages[2][1] and "corrupt or truncated" in messages[2][1]  # the path, shortened
    assert not _prefetch_threads()


def test_on_a_cpu_prefetching_waits_for_a_core_that_torch_leaves_free():
    """With torch's OpenMP threads on every core, a prefetch thread stalled their barriers (steps a third slower on
    2 cores); it runs only beside fewer torch threads than cores, on an accelerator, and never beside workers."""
    from vlmkit.train.prefetch import prefetch_depth

    cores = len(os.sched_getaffinity(0))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(cores)
        assert prefetch_depth(2, 0, "cpu") == 0
        assert prefetch_depth(2, 0, "cuda") == 2
        if cores > 1:
            torch.set_num_threads(cores - 1)
            assert prefetch_depth(2, 0, "cpu") == 2
        assert prefetch_depth(2, 1, "cuda") == 0 and prefetch_depth(0, 0, "cuda") == 0
    finally:
        torch.set_num_threads(threads)
