"""Fixtures for the training tests: small datasets built once per session, one torch thread per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import write_image_dataset, write_video_dataset


@pytest.fixture(scope="session")
def image_data(tmp_path_factory) -> Path:
    return write_image_dataset(tmp_path_factory.mktemp("train-data") / "colours")


@pytest.fixture(scope="session")
def video_data(tmp_path_factory) -> Path:
    return write_video_dataset(tmp_path_factory.mktemp("train-video") / "clips")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared machine spinning OpenMP threads slow every
    step by an order of magnitude; restore the setting afterwards so other test areas are unaffected."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
