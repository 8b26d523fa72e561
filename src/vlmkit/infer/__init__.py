"""Inference: one engine shared by the CLI, the evaluator, the server and the quickstart.

    from vlmkit.infer import GenerationParams, load_engine
    engine = load_engine("path-or-hub-id", adapter=None, batch_size=16)
    results = engine.generate(samples, GenerationParams(max_new_tokens=64))
    for piece in engine.stream(sample, params): ...

Importing this package is cheap (no torch); the backend loads in `load_engine`.
"""

from ..data.collate import MediaSettings
from .engine import BACKENDS, Engine, GenerationParams, GenerationResult, TextStream, load_engine

__all__ = [
    "BACKENDS",
    "Engine",
    "GenerationParams",
    "GenerationResult",
    "HFEngine",
    "MediaSettings",
    "TextStream",
    "load_engine",
]


def __getattr__(name: str):
    if name == "HFEngine":  # imported on demand: the backend module is only needed once a model loads
        from .hf_engine import HFEngine

        return HFEngine
    raise AttributeError(f"module 'vlmkit.infer' has no attribute {name!r}")
