"""Optional embedding similarity: cosine similarity of sentence embeddings, max over the references.

Needs sentence-transformers (``pip install 'vlmkit[similarity]'``) and a model folder given by path (the
machine may be offline, so nothing is downloaded). Any object with an ``encode(list[str]) -> array`` method
can be passed instead of a path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import VlmkitError
from .caption import _check, as_reference_lists

_loaded: dict[str, Any] = {}


def load_encoder(model: str | Path) -> Any:
    path = Path(model)
    if not path.is_dir():
        raise VlmkitError(
            f"similarity: model folder not found: {path} (give the path of a sentence-transformers model saved locally)"
        )
    key = str(path.resolve())
    if key not in _loaded:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise VlmkitError("similarity needs sentence-transformers: pip install 'vlmkit[similarity]'") from exc
        _loaded[key] = SentenceTransformer(key, device="cpu")
    return _loaded[key]


def similarity(
    predictions: Sequence[str], references: Sequence[Sequence[str]], model: Any, *, batch_size: int = 64
) -> tuple[float, list[float]]:
    """Mean and per-sample max cosine similarity between each prediction and its references."""
    import numpy as np

    references = as_reference_lists(references)
    _check(predictions, references, "similarity")
    encoder = model if hasattr(model, "encode") else load_encoder(model)
    texts = sorted(set(predictions) | {r for refs in references for r in refs})
    index = {t: i for i, t in enumerate(texts)}
    vectors = np.asarray(encoder.encode(texts, batch_size=batch_size), dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms == 0, 1.0, norms)
    scores = []
    for pred, refs in zip(predictions, references):
        p = vectors[index[pred]]
        scores.append(float(max(float(vectors[index[r]] @ p) for r in refs)))
    return float(sum(scores) / len(scores)), scores
