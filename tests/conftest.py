"""Shared test set-up: offline hub, headless plotting, and quiet tokenizers for every test."""

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
# caches that vlmkit keeps in the user's home (check-leakage's media hashes) go to a folder of the test session
os.environ.setdefault("VLMKIT_CACHE_DIR", tempfile.mkdtemp(prefix="vlmkit-test-cache-"))

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Factory: tiny_model("qwen2_vl", vocab="small") -> path of a saved tiny checkpoint (built once per session)."""
    from vlmkit.models.tiny import build_tiny

    cache = {}

    def build(family: str, vocab: str = "small"):
        key = (family, vocab)
        if key not in cache:
            cache[key] = build_tiny(family, tmp_path_factory.mktemp(f"tiny-{family}-{vocab}"), vocab=vocab)
        return cache[key]

    return build
