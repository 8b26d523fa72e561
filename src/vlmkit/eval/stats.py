"""Small statistics for reports: latency percentiles and paired bootstrap confidence intervals."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default); None for no values."""
    if not values:
        return None
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


def paired_bootstrap(
    base: Sequence[float],
    other: Sequence[float],
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    chunk: int = 100,
) -> dict[str, float]:
    """Delta of means (other - base) over the same samples, with a percentile bootstrap CI.

    Samples are resampled in pairs, so per-sample difficulty cancels out. `p_le_0` is the share of resamples
    whose delta is <= 0 (a one-sided bootstrap p-value for "other is better").
    """
    import numpy as np

    a = np.asarray(base, dtype=float)
    b = np.asarray(other, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("paired_bootstrap needs two equally long, non-empty score lists")
    diff = b - a
    rng = np.random.default_rng(seed)
    deltas = []
    for start in range(0, resamples, chunk):  # chunks keep memory flat for 100k-sample runs
        size = min(chunk, resamples - start)
        idx = rng.integers(0, diff.size, size=(size, diff.size))
        deltas.append(diff[idx].mean(axis=1))
    all_deltas = np.concatenate(deltas)
    tail = (1 - confidence) / 2 * 100
    return {
        "delta": float(diff.mean()),
        "ci_low": float(np.percentile(all_deltas, tail)),
        "ci_high": float(np.percentile(all_deltas, 100 - tail)),
        "p_le_0": float((all_deltas <= 0).mean()),
        "n": int(diff.size),
        "resamples": int(resamples),
        "confidence": float(confidence),
    }


def paired_delta(
    base: Sequence[float], other: Sequence[float], *, corpus_delta: float | None = None, **bootstrap: float
) -> dict[str, float]:
    """`paired_bootstrap`, or, for a corpus metric (BLEU, METEOR: not a mean of the per-sample scores), its
    interval moved onto the corpus-level delta and marked approximate."""
    stats = paired_bootstrap(base, other, **bootstrap)
    if corpus_delta is not None:
        shift = corpus_delta - stats["delta"]
        stats.update(
            delta=corpus_delta, ci_low=stats["ci_low"] + shift, ci_high=stats["ci_high"] + shift, approximate=True
        )
    return stats
