"""The memory arithmetic behind docs/training.md's strategy table (ZeRO paper accounting), and the table itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlmkit.train.memory import DOC_MODELS, GIB, per_gpu_bytes, per_gpu_gib, table


def test_full_finetune_bytes_per_parameter():
    # 16 bytes per parameter replicated under DDP; ZeRO-2 keeps the 2-byte weights whole; ZeRO-3 shards all
    assert per_gpu_bytes(1e9, gpus=8, strategy="ddp", trainable=1e9) == 16e9
    assert per_gpu_bytes(1e9, gpus=8, strategy="zero2", trainable=1e9) == 2e9 + 14e9 / 8
    assert per_gpu_bytes(1e9, gpus=8, strategy="zero3", trainable=1e9) == 16e9 / 8
    assert per_gpu_gib(7e9, gpus=1, strategy="fsdp", trainable=7e9) == pytest.approx(7e9 * 16 / GIB)


def test_lora_pays_for_frozen_weights_only_once():
    base = per_gpu_bytes(7e9, gpus=8, strategy="ddp", trainable=0)
    assert base == 14e9
    # the adapter: 2 bytes of weights, 2 of gradients, 12 of AdamW state per parameter
    assert per_gpu_bytes(7e9, gpus=8, strategy="ddp", trainable=1e7) == pytest.approx(14e9 + 16 * 1e7)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        per_gpu_bytes(1e9, gpus=0, strategy="ddp", trainable=1e9)
    with pytest.raises(ValueError):
        per_gpu_bytes(1e9, gpus=2, strategy="tp", trainable=1e9)  # type: ignore[arg-type]


def test_docs_show_the_computed_table():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text(encoding="utf-8")
    assert table(DOC_MODELS) in docs
